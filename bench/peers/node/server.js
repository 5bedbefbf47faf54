// The seed protocol on Node's reference socket.io server: a welcome on connect, and every
// `message` broadcast to all. Prints `listening on http://ADDRESS` like causerie-server.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 0);
const http = createServer();
const io = new Server(http, { cors: { origin: '*' } });

io.on('connection', (socket) => {
  socket.emit('welcome', { message: 'welcome' });
  socket.on('message', (text) => io.emit('message', text));
});

http.listen(port, '127.0.0.1', () => {
  const { port: bound } = http.address();
  console.log(`listening on http://127.0.0.1:${bound}`);
});
process.on('SIGTERM', () => http.close(() => process.exit(0)));

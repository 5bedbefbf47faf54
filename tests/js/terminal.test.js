// The terminal client (crates/causerie-client/examples/chat.rs) chats with the official
// socket.io-client through the real server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { CHAT_EXAMPLE_BIN, PATIENCE_MS, causerie, join, next, request, startServer } from './fixture.js';

let server;
before(async () => { server = await startServer(); });
after(() => server.cleanup());

/** Resolves with the first line from `lines` that satisfies `match`. */
function lineMatching(lines, match, what) {
  return new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${PATIENCE_MS} ms`)), PATIENCE_MS);
    const seen = (line) => {
      if (match(line)) { clearTimeout(timer); lines.off('line', seen); resolveLine(line); }
    };
    lines.on('line', seen);
  });
}

test('the terminal client and socket.io-client chat both ways', async () => {
  const { socket: js } = await join(server.url, causerie('Js'));
  await request(js, 'message', { id: 'earlier', text: 'said before you came' });

  const terminal = spawn(CHAT_EXAMPLE_BIN, ['--server', server.url, '--name', 'Term'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => terminal.on('exit', (code) => r(code)));
  try {
    const stdout = createInterface({ input: terminal.stdout });
    const stderr = createInterface({ input: terminal.stderr });
    const printed = [];
    stdout.on('line', (line) => printed.push(line));

    await lineMatching(stderr, (l) => l === 'connected', 'connection');
    await lineMatching(stdout, (l) => l === 'Js: said before you came', 'history line');
    await request(js, 'message', { id: 'live', text: 'hello terminal' });
    await lineMatching(stdout, (l) => l === 'Js: hello terminal', 'live line');

    terminal.stdin.write('hello socket.io\n');
    let received;
    do { received = await next(js, 'message'); } while (received.author.name !== 'Term');
    assert.equal(received.text, 'hello socket.io');
    assert.equal(received.room, 'general');

    // At the end of input it waits for the confirmation, then leaves cleanly.
    terminal.stdin.end('last words\n');
    assert.equal(await exited, 0);
    assert.deepEqual(printed, [
      'Js: said before you came',
      'Js: hello terminal',
      'Term: hello socket.io',
      'Term: last words',
    ]);
  } finally {
    terminal.kill();
    js.close();
  }
});

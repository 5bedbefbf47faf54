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

/**
 * Every line a stream printed, and a way to await one. A line may be printed before the test
 * asks for it (the terminal can print a message before the sender's ack arrives), so waiting
 * looks at the lines already seen first.
 */
function lineLog(stream) {
  const lines = [];
  const waiters = new Set();
  createInterface({ input: stream }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters) waiter();
  });
  return {
    lines,
    /** Resolves with the first line that satisfies `match`; rejects after `ms`. */
    waitFor(match, what, ms = PATIENCE_MS) {
      return new Promise((resolveLine, reject) => {
        const check = () => {
          const found = lines.find(match);
          if (found === undefined) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolveLine(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${ms} ms; printed: ${JSON.stringify(lines.slice(-5))}`));
        }, ms);
        if (!check()) waiters.add(check);
      });
    },
  };
}

function startTerminal(name) {
  const process = spawn(CHAT_EXAMPLE_BIN, ['--server', server.url, '--name', name], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => process.on('exit', (code) => r(code)));
  return { process, exited, stdout: lineLog(process.stdout), stderr: lineLog(process.stderr) };
}

test('the terminal client and socket.io-client chat both ways', async () => {
  const { socket: js } = await join(server.url, causerie('Js'));
  await request(js, 'message', { id: 'earlier', text: 'said before you came' });

  const terminal = startTerminal('Term');
  try {
    await terminal.stderr.waitFor((l) => l === 'connected', 'connection');
    await terminal.stdout.waitFor((l) => l === 'Js: said before you came', 'history line');
    await request(js, 'message', { id: 'live', text: 'hello terminal' });
    await terminal.stdout.waitFor((l) => l === 'Js: hello terminal', 'live line');

    terminal.process.stdin.write('hello socket.io\n');
    let received;
    do { received = await next(js, 'message'); } while (received.author.name !== 'Term');
    assert.equal(received.text, 'hello socket.io');
    assert.equal(received.room, 'general');

    // At the end of input it waits for the confirmation, then leaves cleanly.
    terminal.process.stdin.end('last words\n');
    assert.equal(await terminal.exited, 0);
    assert.deepEqual(terminal.stdout.lines, [
      'Js: said before you came',
      'Js: hello terminal',
      'Term: hello socket.io',
      'Term: last words',
    ]);
  } finally {
    terminal.process.kill();
    js.close();
  }
});

test('a message sent while the terminal client connects is printed, 200 runs of 200', async () => {
  const { socket: js } = await join(server.url, causerie('Sender'), { transports: ['websocket'] });
  try {
    // How long a terminal takes from start to welcome here, so that the sends below sweep across
    // the moment the server subscribes it, reads its history and greets it.
    const started = performance.now();
    const probe = startTerminal('Probe');
    await probe.stderr.waitFor((l) => l === 'connected', 'connection');
    const connecting = performance.now() - started;
    probe.process.kill();

    const missed = [];
    for (let run = 0; run < 200; run += 1) {
      const terminal = startTerminal(`Term${run}`);
      try {
        await new Promise((r) => setTimeout(r, (connecting * (120 + run)) / 200));
        await request(js, 'message', { id: `race-${run}`, text: `race ${run}` });
        const line = `Sender: race ${run}`;
        await terminal.stdout.waitFor((l) => l === line, `line of run ${run}`, 5_000).catch(() => {});
        const times = terminal.stdout.lines.filter((l) => l === line).length;
        if (times !== 1) missed.push({ run, times });
      } finally {
        terminal.process.kill();
      }
    }
    assert.deepEqual(missed, [], 'runs that did not print the message exactly once');
  } finally {
    js.close();
  }
});

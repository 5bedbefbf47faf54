// Shared fixtures: the real causerie-server binary on 127.0.0.1:0 with a temporary data dir, and
// official socket.io-client sockets with helpers that await events with a timeout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

const here = new URL('.', import.meta.url).pathname;
/**
 * The server under test: one node, or with CAUSERIE_CLUSTER_BIN a whole local cluster (the
 * `causerie-cluster` launcher: PostgreSQL, Redis, two nodes and HAProxy), which takes the same
 * flags and prints the same first line.
 */
export const SERVER_BIN = process.env.CAUSERIE_CLUSTER_BIN
  ?? process.env.CAUSERIE_SERVER_BIN
  ?? resolve(here, '../../target/debug/causerie-server');
export const CHAT_EXAMPLE_BIN =
  process.env.CAUSERIE_CHAT_BIN ?? resolve(here, '../../target/debug/examples/chat');
export const PATIENCE_MS = 10_000;
export const QUIET_MS = 400;

/**
 * Starts the server binary; `args` are extra flags. Flood control and the limits per client
 * address are off unless asked for: every test client comes from 127.0.0.1.
 */
export async function startServer(args = [], { dataDir, bind = '127.0.0.1:0' } = {}) {
  dataDir ??= mkdtempSync(joinPath(tmpdir(), 'causerie-js-'));
  const defaults = [
    ['--rate-limit', '0'],
    ['--new-guests-per-minute', '0'],
    ['--max-connections-per-address', '0'],
  ].filter(([flag]) => !args.includes(flag)).flat();
  const child = spawn(
    SERVER_BIN,
    ['--bind', bind, '--data-dir', dataDir, ...defaults, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolveExit) => child.on('exit', (code, signal) => resolveExit({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), PATIENCE_MS);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^listening on (http:\/\/\S+)$/.exec(line);
      if (match) { clearTimeout(timer); resolveUrl(match[1]); }
    });
    child.on('exit', () => reject(new Error(`server exited:\n${stderr}`)));
    child.on('error', (error) => reject(new Error(`cannot start ${SERVER_BIN}: ${error.message}`)));
  });
  const server = {
    url,
    dataDir,
    args,
    /** Stops the server with SIGTERM; resolves with its exit status. */
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    /** Stops it, then starts it again on the same port and data dir. */
    async restart() {
      await server.stop();
      return startServer(args, { dataDir, bind: new URL(url).host });
    },
    cleanup() {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** A connected Causerie client, resolved with `{socket, welcome}`. */
export async function join(url, auth, options = {}) {
  const socket = connect(url, auth, options);
  const welcome = await next(socket, 'welcome');
  return { socket, welcome };
}

/** A socket that connects to `url` with `auth` (no reconnection: tests say what happens). */
export function connect(url, auth, options = {}) {
  // withCredentials: keep cookies, as a browser does: HAProxy's sticky cookie keeps a polling
  // session on one node of a cluster.
  const socket = io(url, { auth, reconnection: false, forceNew: true, withCredentials: true, ...options });
  socket.received = [];
  socket.onAny((event, ...args) => socket.received.push({ event, data: args[0] }));
  return socket;
}

/** The next `event` on `socket` not yet consumed; rejects after PATIENCE_MS. */
export function next(socket, event, timeoutMs = PATIENCE_MS) {
  socket.consumed ??= {};
  const index = socket.consumed[event] ?? 0;
  return new Promise((resolveEvent, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      const matches = socket.received.filter((r) => r.event === event);
      if (matches.length > index) {
        socket.consumed[event] = index + 1;
        resolveEvent(matches[index].data);
      } else if (Date.now() > deadline) {
        reject(new Error(`no ${event} within ${timeoutMs} ms`));
      } else {
        setTimeout(poll, 5);
      }
    };
    poll();
  });
}

/** Resolves with the events named `event` that arrive within QUIET_MS and were not consumed. */
export async function unconsumed(socket, event) {
  await new Promise((r) => setTimeout(r, QUIET_MS));
  const index = socket.consumed?.[event] ?? 0;
  return socket.received.filter((r) => r.event === event).slice(index).map((r) => r.data);
}

/** Emits with an ack and resolves with the ack. */
export function request(socket, event, data) {
  return socket.timeout(PATIENCE_MS).emitWithAck(event, data);
}

/** Resolves with the connect error of a refused socket. */
export function connectError(socket) {
  return new Promise((resolveError, reject) => {
    const timer = setTimeout(() => reject(new Error('no connect_error')), PATIENCE_MS);
    socket.on('connect_error', (error) => { clearTimeout(timer); resolveError(error); });
  });
}

export const causerie = (name, extra = {}) => ({ protocol: 3, name, ...extra });

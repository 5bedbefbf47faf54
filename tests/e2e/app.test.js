// The real app, driven through WebDriver (tauri-driver + WebKitWebDriver) under Xvfb, with a real
// causerie-server and the official socket.io-client as the other person in the chat.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { test } from 'node:test';
import { causerie, join, next, request, startServer } from '../js/fixture.js';
import { freePort, openApp, page, screenshot, sendFromApp, useDriver } from './harness.js';

useDriver();

test('the app chats with socket.io-client, survives a server restart, and delivers what was sent offline', async () => {
  let server = await startServer();
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-app-'));
  const app = await openApp(['--server', server.url, '--name', 'Appy', '--data-dir', dataDir]);
  try {
    await app.until('the app to connect', `${page.connection} === 'Connected'`);
    const { socket: js } = await join(server.url, causerie('Js'));

    // What the other client sends appears in the app.
    await request(js, 'message', { id: 'from-js', text: 'hello app' });
    await app.until('the message from socket.io-client', `${page.texts}.includes('hello app')`);

    // What the user types reaches the other client.
    await sendFromApp(app, 'hello socket.io');
    let received;
    do { received = await next(js, 'message'); } while (received.author.name !== 'Appy');
    assert.equal(received.text, 'hello socket.io');
    js.close();

    // The server goes away: the app says so, and keeps what the user sends meanwhile.
    await server.stop();
    await app.until('the outage to show', `/^(Reconnecting|Offline)/.test(${page.connection})`);
    await sendFromApp(app, 'sent while offline');
    await app.until('the pending message', `${page.pending} === 1`);

    // It comes back on the same port and data dir: the app reconnects, catches up, delivers.
    server = await server.restart();
    await app.until('the reconnection', `${page.connection} === 'Connected'`, { timeoutMs: 60_000 });
    await app.until('the offline message to be confirmed', `${page.pending} === 0`);
    const texts = await app.value(page.texts);
    assert.deepEqual(texts, ['hello app', 'hello socket.io', 'sent while offline'], 'each message once, in order');

    const { socket: again, welcome } = await join(server.url, causerie('Js'));
    assert.deepEqual(welcome.history.map((m) => m.text), ['hello app', 'hello socket.io', 'sent while offline']);
    again.close();

    await screenshot(app, 1280, 800, 'app-desktop.png');
    await screenshot(app, 390, 844, 'app-phone.png');
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('with no server given, the app hosts its own chat and another client can join it', async () => {
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-host-'));
  const port = await freePort();
  // Settings as the settings screen writes them: host, open to the local network on `port`.
  writeFileSync(joinPath(dataDir, 'settings.json'), JSON.stringify({ mode: 'host', hostOnLan: true, port, name: 'Host' }));
  const app = await openApp(['--data-dir', dataDir]);
  try {
    await app.until('the app to connect to itself', `${page.connection} === 'Connected'`);
    await sendFromApp(app, 'welcome to my chat');
    const { socket: guest, welcome } = await join(`http://127.0.0.1:${port}`, causerie('Guest'));
    const history = welcome.history.map((m) => m.text);
    const seen = history.includes('welcome to my chat') ? history : [(await next(guest, 'message')).text];
    assert.ok(seen.includes('welcome to my chat'));
    await request(guest, 'message', { id: 'guest-1', text: 'thanks for hosting' });
    await app.until('the guest message', `${page.texts}.includes('thanks for hosting')`);
    guest.close();
  } finally {
    await app.close().catch(() => {});
  }
});

test('settings left half-written by a crash: the app starts anyway and says what it did', async () => {
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-crashed-'));
  const truncated = '{"mode":"join","serverUrl":"http://chat.exa';
  writeFileSync(joinPath(dataDir, 'settings.json'), truncated);
  const app = await openApp(['--data-dir', dataDir]);
  try {
    await app.until('the notice', "document.querySelector('.app-notice')?.textContent.includes('could not be read')");
    await app.until('the first-run screen, from the defaults', "!!document.querySelector('input#name')");
    const aside = readdirSync(dataDir).filter((f) => f.startsWith('settings-unreadable-'));
    assert.equal(aside.length, 1, 'the unreadable file is kept aside');
    assert.equal(readFileSync(joinPath(dataDir, aside[0]), 'utf8'), truncated);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, 'the data folder is private');
    await screenshot(app, 390, 844, 'app-settings-recovered-phone.png');
  } finally {
    await app.close().catch(() => {});
  }
});

test('scrolling up loads older history, and new messages wait behind a pill while scrolled up', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  for (let i = 1; i <= 70; i += 1) await request(js, 'message', { id: `old-${i}`, text: `old ${i}` });
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-scroll-'));
  const app = await openApp(['--server', server.url, '--name', 'Scroller', '--data-dir', dataDir]);
  try {
    // The welcome brings the latest 50; the top of the list asks for the rest.
    await app.until('the latest 50', `${page.texts}.length === 50 && ${page.texts}[0] === 'old 21'`);
    await app.run("const list = document.querySelector('.messages'); list.scrollTop = 0; list.dispatchEvent(new Event('scroll'));");
    await app.until('all 70, oldest first', `${page.texts}.length === 70 && ${page.texts}[0] === 'old 1'`);

    // Scrolled away from the bottom, a new message does not move the view: a pill says it came.
    await app.run("const list = document.querySelector('.messages'); list.scrollTop = 0; list.dispatchEvent(new Event('scroll'));");
    await request(js, 'message', { id: 'fresh', text: 'something new' });
    await app.until('the new-messages pill', "document.querySelector('.pill')?.textContent.includes('1 new message')");
    await app.click('.pill');
    await app.until('the view at the bottom, pill gone', "!document.querySelector('.pill') && (() => { const l = document.querySelector('.messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40; })()");
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

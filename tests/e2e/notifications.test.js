// Notifications in the real app. Its window is put in the background for real: another X window
// takes the input focus (steal-focus.py). The app then shows notifications through Tauri's
// notification plugin on the session bus, where this test runs a notification server
// (notification-server.js): a headless session has no desktop to run one. So what is checked is
// what the app asked the system to show, and what it does when the system reports a click.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { causerie, join, next, request, startServer } from '../js/fixture.js';
import { openApp, page, screenshots, useDriver } from './harness.js';
import { startNotificationServer } from './notification-server.js';

useDriver();

const title = "document.querySelector('.app-bar h1')?.textContent";

/** Another window takes the focus until `giveBack()`. */
async function stealFocus() {
  const child = spawn('python3', [new URL('./steal-focus.py', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => { if (line === 'focused') resolve(); });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`steal-focus.py ended (${code})`)));
  });
  return { giveBack: () => child.stdin.end() };
}

/** The app's kept notification levels, once `room`'s is `level` (the file is written a moment
 *  after the bell shows the choice). */
async function keptLevel(dataDir, room, level) {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const alerts = JSON.parse(readFileSync(joinPath(dataDir, 'settings.json'), 'utf8')).alerts ?? {};
    if (Object.values(alerts).some((levels) => levels[room] === level)) return alerts;
  }
  throw new Error(`${room} never kept as ${level}`);
}

test('in the background, direct messages and mentions are notified, a muted room is not, and a click opens the room', async () => {
  const notifications = await startNotificationServer();
  const server = await startServer();
  const { socket: other } = await join(server.url, causerie('Other'));
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-notify-'));
  const app = await openApp(['--server', server.url, '--name', 'Dee', '--data-dir', dataDir]);
  let focus;
  try {
    await app.until('the app to connect', `${page.connection} === 'Connected'`);
    // Dee, as Other hears of the app's arrival.
    let dee;
    while (!dee) {
      const presence = await next(other, 'presence');
      dee = [...presence.joined, ...(presence.online ?? [])].find((u) => u.name === 'Dee');
    }
    const direct = await request(other, 'direct', { user: dee.id });
    assert.equal((await request(other, 'join', { room: direct.room })).ok, true);
    await app.until('the conversation listed', "!!document.querySelector('nav.rooms .directs .room')");
    await app.type('#room-name', 'side');
    await app.click('.join button[type="submit"]');
    await app.until('#side open', `${title} === '#side'`);
    assert.equal((await request(other, 'join', { room: 'side' })).ok, true);

    // #general muted from its bell; the choice is kept in the app's settings.
    await app.click('nav.rooms li:first-child .room');
    await app.until('#general open', `${title} === '#general'`);
    await app.click('.alerts-toggle');
    await app.until('the menu', "document.querySelector('#room-alerts input:checked')?.value === 'mentions'");
    await screenshots(app, 'window-notifications');
    await app.click('#room-alerts input[value="none"]');
    await app.until('muted', "document.querySelector('.alerts-toggle')?.getAttribute('aria-label') === 'Notifications for #general: Nothing (muted)'");
    assert.deepEqual(Object.values(await keptLevel(dataDir, 'general', 'none')), [{ general: 'none' }]);

    focus = await stealFocus();
    await app.until('the window in the background', '!document.hasFocus()');
    // Neither a mention in the muted room nor a plain message in #side is shown; a mention in
    // #side and a direct message are, in order.
    await request(other, 'message', { id: 'g1', text: '@Dee in general', mentions: [dee.id] });
    await request(other, 'message', { id: 's1', room: 'side', text: 'plain in side' });
    await request(other, 'message', { id: 's2', room: 'side', text: '@Dee in side', mentions: [dee.id] });
    let [shown] = await notifications.shownCount(1);
    assert.deepEqual([shown.summary, shown.body], ['Other in #side', '@Dee in side']);
    assert.ok(shown.actions.includes('default'), 'a click on it is reported');
    await request(other, 'message', { id: 'd1', room: direct.room, text: 'psst' });
    shown = (await notifications.shownCount(2))[1];
    assert.deepEqual([shown.summary, shown.body], ['Other', 'psst']);

    // A click on it opens the conversation; read there, its notification is taken back.
    focus.giveBack();
    notifications.click(shown.id);
    await app.until('the conversation open', `${title} === 'Other' && ${page.texts}.includes('psst')`);
    await notifications.closedSoon(shown.id);
    assert.equal(notifications.shown.length, 2, 'nothing else was shown');
  } finally {
    focus?.giveBack();
    await app.close().catch(() => {});
    other.close();
    server.cleanup();
    await notifications.stop();
  }
});

// The window in the dark theme, as people who choose it see it: the system's dark preference
// (GTK's dark variant here) reaches the page, and each state is kept as a screenshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { causerie, join, request, startServer } from '../js/fixture.js';
import { openApp, page, screenshot, sendFromApp, useDriver } from './harness.js';

useDriver({ GTK_THEME: 'Adwaita:dark' });

test('in the dark theme, the conversation, a failed message, the drawer and offline read well', async () => {
  let server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  await request(js, 'message', { id: 'd-1', text: 'evening 🌙 see https://example.org/a_(b)' });
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-dark-'));
  const app = await openApp(['--server', server.url, '--name', 'Night', '--data-dir', dataDir]);
  try {
    await app.until('the app to connect', `${page.connection} === 'Connected'`);
    assert.equal(await app.value("matchMedia('(prefers-color-scheme: dark)').matches"), true, 'the page sees the dark preference');
    await sendFromApp(app, 'hello from the dark side');
    await app.until('both messages', `${page.texts}.length === 2`);
    await screenshot(app, 1280, 800, 'dark-conversation-desktop.png');
    await screenshot(app, 390, 844, 'dark-conversation-phone.png');
    await app.click('.rooms-toggle');
    await app.until('the drawer', "document.querySelector('nav.rooms').classList.contains('open')");
    await screenshot(app, 390, 844, 'dark-drawer-phone.png');
    await app.type('nav.rooms .room', '\uE00C');
    await server.stop();
    await app.until('the banner', "!!document.querySelector('.offline-banner')", { timeoutMs: 30_000 });
    await sendFromApp(app, 'a message longer than ten');
    await screenshot(app, 390, 844, 'dark-offline-phone.png');
    server = await startServer(['--max-message-chars', '10'], { dataDir: server.dataDir, bind: new URL(server.url).host });
    await app.click('.offline-banner button');
    await app.until('the refusal', "!!document.querySelector('.message.failed')", { timeoutMs: 60_000 });
    await screenshot(app, 1280, 800, 'dark-failed-desktop.png');
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

// The desktop package as people install it: the .deb that `./x package` builds, its files
// extracted into a temporary root (`dpkg-deb -x`), and its binary opened to the first screen.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { test } from 'node:test';
import { openApp, screenshot, useDriver } from './harness.js';

useDriver();

test('the .deb holds the app, its icon and its menu entry, and the app opens to its first screen', async () => {
  const deb = process.env.CAUSERIE_DEB;
  assert.ok(deb && existsSync(deb), `CAUSERIE_DEB names the .deb to test (./x package builds it): ${deb}`);
  const root = mkdtempSync(joinPath(tmpdir(), 'causerie-deb-'));
  execFileSync('dpkg-deb', ['-x', deb, root]);
  const fields = execFileSync('dpkg-deb', ['-f', deb, 'Package', 'Depends'], { encoding: 'utf8' });
  assert.match(fields, /^Package: causerie/m);
  assert.match(fields, /libwebkit2gtk-4\.1/, 'it depends on the WebKitGTK it needs');
  const binary = joinPath(root, 'usr/bin/causerie-app');
  for (const file of [binary, 'usr/share/icons/hicolor/128x128/apps/causerie-app.png']) {
    assert.ok(existsSync(file.startsWith('/') ? file : joinPath(root, file)), `${file} is in the package`);
  }
  // The menu entry starts the installed binary, with the installed icon.
  const entry = readFileSync(joinPath(root, 'usr/share/applications/Causerie.desktop'), 'utf8');
  assert.match(entry, /^Exec=causerie-app$/m);
  assert.match(entry, /^Icon=causerie-app$/m);

  // A first start: no settings yet, so it asks for a name.
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-deb-data-'));
  const app = await openApp(['--data-dir', dataDir], binary);
  try {
    await app.until('the first screen, asking for a name', "document.querySelector('label[for=\"name\"]')?.textContent === 'Your name'");
    await screenshot(app, 1280, 800, 'package-first-run-desktop.png');
  } finally {
    await app.close().catch(() => {});
    rmSync(root, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
});

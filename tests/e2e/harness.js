// What every end-to-end suite shares: a tauri-driver for the file's tests, the app's binary,
// the expressions read in its page, and screenshots kept as artifacts.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join as joinPath, resolve } from 'node:path';
import { after, before } from 'node:test';
import { WebDriver } from './webdriver.js';

const here = new URL('.', import.meta.url).pathname;
export const APP = process.env.CAUSERIE_APP_BIN ?? resolve(here, '../../target/debug/causerie-app');
export const ARTIFACTS = process.env.CAUSERIE_ARTIFACTS ?? resolve(here, '../../artifacts');
/** The theme of this run's windows: `dark` runs the apps with GTK's dark variant. */
export const THEME = process.env.CAUSERIE_E2E_THEME === 'dark' ? 'dark' : 'light';

/** Expressions read in the app's page. */
export const page = {
  connection: "document.querySelector('.connection')?.textContent ?? ''",
  texts: "[...document.querySelectorAll('.messages article .body')].map((e) => e.textContent)",
  pending: "document.querySelectorAll('.messages [data-pending]').length",
  /** How far the message list is from its bottom, in px. */
  fromBottom: "(() => { const l = document.querySelector('.messages'); return l.scrollHeight - l.scrollTop - l.clientHeight; })()",
};

export function freePort() {
  return new Promise((resolvePort) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

let driver;
let driverUrl;

/** Starts a tauri-driver before the calling file's tests and stops it after them; the apps it
 *  starts inherit `env`, and run in this run's [THEME]. */
export function useDriver(env = {}) {
  before(async () => {
    const port = await freePort();
    const theme = THEME === 'dark' ? { GTK_THEME: 'Adwaita:dark' } : {};
    driver = spawn('tauri-driver', ['--port', String(port)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ...theme, ...env },
    });
    driverUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await fetch(`${driverUrl}/status`, { signal: AbortSignal.timeout(1000) });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`tauri-driver did not start: ${error}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(() => driver?.kill());
}

/** Opens the app (`binary`, the one built for the tests unless given) with `args` in a new
 *  WebDriver session. */
export function openApp(args, binary = APP) {
  return WebDriver.open(driverUrl, binary, args);
}

/** Resizes the window, lets the layout and its transitions settle, and keeps a screenshot. */
export async function screenshot(app, width, height, file) {
  await resize(app, width, height);
  await new Promise((r) => setTimeout(r, 500));
  writeFileSync(joinPath(ARTIFACTS, file), await app.screenshot());
}

/** Keeps a state as screenshots at desktop and phone size in this run's theme
 *  (`<state>-<theme>-desktop.png`, `-phone.png`), then gives the window its desktop size back. */
export async function screenshots(app, state) {
  await screenshot(app, 1280, 800, `${state}-${THEME}-desktop.png`);
  await screenshot(app, 390, 844, `${state}-${THEME}-phone.png`);
  await resize(app, 1280, 800);
}

/** Resizes the window and waits for the page to see it. */
export async function resize(app, width, height) {
  await app.resize(width, height);
  await app.until(`a ${width}x${height} page`, `Math.abs(window.innerWidth - ${width}) < 40 && Math.abs(window.innerHeight - ${height}) < 120`);
}

export async function sendFromApp(app, text) {
  await app.type('textarea[aria-label="Message"]', `${text}\uE007`);
}

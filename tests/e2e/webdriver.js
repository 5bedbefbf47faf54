// A small W3C WebDriver client: enough to drive the app through tauri-driver. Every request has a
// timeout, so a stuck driver fails the test instead of hanging it.
const REQUEST_TIMEOUT_MS = 30_000;

export class WebDriver {
  constructor(base, sessionId) {
    this.base = base;
    this.sessionId = sessionId;
  }

  static async request(base, method, path, body) {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`);
    return json.value;
  }

  /** Starts the app at `application` with `args` in a new session. */
  static async open(base, application, args) {
    const capabilities = { alwaysMatch: { 'tauri:options': { application, args } } };
    const value = await WebDriver.request(base, 'POST', '/session', { capabilities });
    return new WebDriver(base, value.sessionId);
  }

  call(method, path, body) {
    return WebDriver.request(this.base, method, `/session/${this.sessionId}${path}`, body);
  }

  async find(css) {
    const value = await this.call('POST', '/element', { using: 'css selector', value: css });
    return Object.values(value)[0];
  }

  async type(css, text) {
    const element = await this.find(css);
    await this.call('POST', `/element/${element}/value`, { text });
  }

  /** Empties a text field, as a user selecting all and deleting would. */
  async clear(css) {
    const element = await this.find(css);
    await this.call('POST', `/element/${element}/clear`, {});
  }

  async click(css) {
    const element = await this.find(css);
    await this.call('POST', `/element/${element}/click`, {});
  }

  /** Runs `script` in the page (a function body; `arguments` holds `args`). */
  run(script, ...args) {
    return this.call('POST', '/execute/sync', { script, args });
  }

  /** The value of a JavaScript expression in the page. */
  value(expression) {
    return this.run(`return (${expression});`);
  }

  /** Polls `expression` until it is truthy; rejects with `what` after `timeoutMs`. */
  async until(what, expression, { timeoutMs = 20_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
      last = await this.value(expression);
      if (last) return last;
      await new Promise((r) => setTimeout(r, 150));
    }
    // What the page showed, to tell a slow page from a wrong one when a run fails far away.
    const shown = await this.value("document.body?.innerText.replace(/\\s+/g, ' ').slice(0, 600)").catch((e) => `unreadable: ${e}`);
    throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)}); the page showed: ${shown}`);
  }

  resize(width, height) {
    return this.call('POST', '/window/rect', { width, height });
  }

  async screenshot() {
    return Buffer.from(await this.call('GET', '/screenshot'), 'base64');
  }

  close() {
    return this.call('DELETE', '');
  }
}

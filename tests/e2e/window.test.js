// The chat window to the habits people bring from other apps, in the real window: scrolling,
// drafts, the composer, failed messages, notices, settings, the drawer, offline. Each state is
// kept as a screenshot at desktop and phone size, in the theme of the run (window.dark.test.js
// runs them all again in the dark theme).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { test } from 'node:test';
import { causerie, join, next, request, startServer, unconsumed } from '../js/fixture.js';
import { THEME, openApp, page, resize, screenshot, screenshots, sendFromApp, useDriver } from './harness.js';

useDriver();

const field = 'textarea[aria-label="Message"]';
/** WebDriver keys. */
const ENTER = '\uE007';
const ESCAPE = '\uE00C';
const TAB = '\uE004';

/** The top of the message (its bubble) whose text is `text`, from the top of the list, in px.
 *  The bubble, not its text: a message that becomes a follow-on of the older one landing above
 *  it loses its name line, as it should. */
function topOf(text) {
  return `(() => { const list = document.querySelector('.messages');
    const body = [...list.querySelectorAll('article .body')].find((e) => e.textContent === ${JSON.stringify(text)});
    return body ? body.closest('article').getBoundingClientRect().top - list.getBoundingClientRect().top : null; })()`;
}

async function launch(server, name, dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-window-'))) {
  const app = await openApp(['--server', server.url, '--name', name, '--data-dir', dataDir]);
  await app.until('the app to connect', `${page.connection} === 'Connected'`);
  return { app, dataDir };
}

/** The session token the app keeps in its settings, once it has written it (a moment after
 *  its welcome). */
async function savedToken(dataDir) {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    try {
      const token = Object.values(JSON.parse(readFileSync(joinPath(dataDir, 'settings.json'), 'utf8')).tokens ?? {})[0];
      if (token) return token;
    } catch {
      // Not written yet, or being written.
    }
  }
  throw new Error('the app never kept its token');
}

async function joinFromApp(app, room) {
  await app.type('#room-name', room);
  await app.click('.join button[type="submit"]');
  await app.until(`#${room} open`, `document.querySelector('.app-bar h1')?.textContent === '#${room}'`);
}

async function connectsTotal(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^causerie_connects_total (\d+)/m.exec(text)?.[1]);
}

/** The server's connection count once it counted the app's: the app can show "Connected"
 *  (its welcome came) a moment before the server's counter moves. */
async function countedConnects(server) {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const connects = await connectsTotal(server);
    if (connects > 0) return connects;
  }
  throw new Error("the server never counted the app's connection");
}

test('older history lands above without moving the reader; only new messages count as new', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  for (let i = 1; i <= 70; i += 1) await request(js, 'message', { id: `old-${i}`, text: `old ${i}` });
  const { app } = await launch(server, 'Reader');
  try {
    await app.until('the latest 50', `${page.texts}.length === 50`);
    // At the top, the first message in view is "old 21"; the older page lands above it.
    const before = await app.run(`const list = document.querySelector('.messages'); list.scrollTop = 0; return ${topOf('old 21')};`);
    await app.until('all 70', `${page.texts}.length === 70 && ${page.texts}[0] === 'old 1'`);
    const after = await app.value(topOf('old 21'));
    assert.ok(Math.abs(after - before) <= 4, `"old 21" moved from ${before} to ${after} px`);
    assert.equal(await app.value("!!document.querySelector('.pill')"), false, 'older history is not new');

    // Scrolled up, a new message waits behind a pill that counts it alone.
    await request(js, 'message', { id: 'fresh', text: 'something new' });
    await app.until('the pill', "document.querySelector('.pill')?.textContent.includes('1 new message')");
    await screenshots(app, 'window-pill');
    await app.click('.pill');
    await app.until('the bottom', `${page.fromBottom} < 4 && !document.querySelector('.jump')`);

    // Scrolled up with nothing new: a plain button goes back down.
    await app.run("document.querySelector('.messages').scrollTop = 0;");
    await app.until('the jump button', "!!document.querySelector('.jump:not(.pill)')");
    await app.click('.jump');
    await app.until('the bottom again', `${page.fromBottom} < 4`);
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

test('at the bottom, the view stays there when the window shrinks and when someone types', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  for (let i = 1; i <= 40; i += 1) await request(js, 'message', { id: `m-${i}`, text: `message ${i}` });
  const { app } = await launch(server, 'Phone');
  try {
    await app.until('the messages', `${page.texts}.length === 40 && ${page.fromBottom} < 4`);
    await resize(app, 390, 500);
    await app.until('still at the bottom after shrinking', `${page.fromBottom} < 4`);
    js.emit('typing', { room: 'general', typing: true });
    await app.until('the typing line', "document.querySelector('.typing').textContent.includes('Js is typing')");
    assert.ok((await app.value(page.fromBottom)) < 4, 'the typing line does not cover the newest message');
    await screenshot(app, 390, 500, `window-typing-${THEME}-phone-keyboard.png`);
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

test('each room keeps its own draft, across a switch and a restart; joined rooms come back too', async () => {
  const server = await startServer();
  let { app, dataDir } = await launch(server, 'Drafter');
  try {
    await app.type(field, 'half a thought');
    await joinFromApp(app, 'random');
    assert.equal(await app.value(`document.querySelector('${field}').value`), '', 'the draft stays in #general');
    await sendFromApp(app, 'said in random');
    await app.until('sent in random', `${page.texts}.includes('said in random')`);
    await app.click('.rooms li:first-child .room');
    await app.until('the draft back in #general', `document.querySelector('${field}').value === 'half a thought'`);
    await new Promise((r) => setTimeout(r, 1000)); // drafts are kept once typing pauses
    await app.close();

    ({ app } = await launch(server, 'Drafter', dataDir));
    await app.until('the draft after a restart', `document.querySelector('${field}').value === 'half a thought'`);
    await app.until('#random joined again', "[...document.querySelectorAll('.rooms .room .name')].some((b) => b.textContent === '#random')");
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('the composer grows with its lines and says in words what is over the limit', async () => {
  const server = await startServer(['--max-message-chars', '20']);
  const { app } = await launch(server, 'Writer');
  try {
    const oneLine = await app.value(`document.querySelector('${field}').offsetHeight`);
    // Four lines as a paste brings them (Shift+Enter itself is covered by the component tests).
    await app.run(`const f = document.querySelector('${field}'); f.value = 'one\\ntwo\\nthree\\nfour'; f.dispatchEvent(new Event('input', { bubbles: true }));`);
    await app.until('the field grown to four lines', `document.querySelector('${field}').offsetHeight > ${oneLine} * 2.5`);
    await app.run(`const f = document.querySelector('${field}'); f.value = Array.from({ length: 20 }, (_, i) => 'line ' + i).join('\\n'); f.dispatchEvent(new Event('input', { bubbles: true }));`);
    const tall = await app.value(`document.querySelector('${field}').offsetHeight`);
    assert.ok(tall < oneLine * 10, `twenty lines stop growing at about eight (${tall} px, one line ${oneLine} px)`);
    await app.run(`const f = document.querySelector('${field}'); f.value = 'one two three four'; f.dispatchEvent(new Event('input', { bubbles: true }));`);
    await app.type(field, ' and more words');
    await app.until('the limit in words', "document.querySelector('.composer .limit').textContent.includes('over the 20-character limit')");
    await app.type(field, ENTER);
    await app.until('why Enter did nothing', "document.querySelector('.composer .limit').textContent.includes('shorten it to send')");
    assert.equal(await app.value(page.pending), 0, 'nothing was sent');
    await screenshots(app, 'window-composer-over');
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('a message refused for good offers no Retry, and can be edited, copied or discarded', async () => {
  let server = await startServer();
  const { app } = await launch(server, 'Refused');
  try {
    // Written while the server is away; it comes back with a lower limit and refuses it.
    await server.stop();
    await app.until('the outage', `/^(Reconnecting|Offline)/.test(${page.connection})`);
    await sendFromApp(app, 'a message longer than ten');
    server = await startServer(['--max-message-chars', '10'], { dataDir: server.dataDir, bind: new URL(server.url).host });
    await app.click('.offline-banner button');
    await app.until('the refusal', "document.querySelector('.message.failed')?.textContent.includes('Not sent')", { timeoutMs: 60_000 });
    const buttons = await app.value("[...document.querySelectorAll('.message.failed .actions button')].map((b) => b.textContent)");
    assert.deepEqual(buttons, ['Edit', 'Copy', 'Discard']);
    await screenshots(app, 'window-failed');
    await app.click('.message.failed .actions button');
    await app.until('the text back in the composer', `document.querySelector('${field}').value === 'a message longer than ten' && !document.querySelector('.message.failed')`);
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('the user edits and deletes their message in place, and others see both; theirs change too', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  const { app } = await launch(server, 'Editor');
  try {
    await sendFromApp(app, 'helo everyone');
    const sent = await next(js, 'message');
    const own = `.message.own[data-seq="${sent.seq}"]`;
    await app.until('it is sent', `!!document.querySelector('${own} .state.sent')`);
    // A tap (focus) or a hover shows the message's actions.
    await app.run(`document.querySelector('${own}').focus();`);
    assert.deepEqual(await app.value(`[...document.querySelectorAll('${own} .message-actions button')].map((b) => b.textContent)`), ['Reply', 'React', 'Edit', 'Delete']);
    await app.click(`${own} .message-actions button:nth-child(3)`);
    await app.until('the text in the composer', `document.querySelector('${field}').value === 'helo everyone' && !!document.querySelector('.composer .editing')`);
    await screenshots(app, 'window-editing');
    await app.clear(field);
    await app.type(field, `hello everyone${ENTER}`);
    const edited = await next(js, 'change');
    assert.deepEqual([edited.kind, edited.target, edited.text], ['edit', sent.seq, 'hello everyone']);
    await app.until('the edit in place', `document.querySelector('${own} .body')?.textContent === 'hello everyone' && !!document.querySelector('${own} .edited') && !document.querySelector('.composer .editing')`);

    // Deleting asks once more, then leaves "Message deleted" in place.
    await app.run(`document.querySelector('${own}').focus();`);
    await app.click(`${own} .message-actions button:last-child`);
    await app.until('the confirmation', `document.querySelector('${own} .confirm')?.textContent === 'Delete for everyone?'`);
    await app.click(`${own} .message-actions button.danger`);
    const deleted = await next(js, 'change');
    assert.deepEqual([deleted.kind, deleted.target], ['delete', sent.seq]);
    await app.until('the deletion in place', `document.querySelector('${own} .gone')?.textContent === 'Message deleted'`);

    // Someone else's edit shows in place too, marked as edited.
    const { message: theirs } = await request(js, 'message', { id: 'js-typo', text: 'teh end' });
    await app.until('their message', `${page.texts}.includes('teh end')`);
    await request(js, 'edit', { id: 'js-fix', target: theirs.seq, text: 'the end' });
    await app.until('their edit', `${page.texts}.includes('the end') && !${page.texts}.includes('teh end')`);
    const theirActions = await app.value(`[...document.querySelectorAll('.message:not(.own) .message-actions button')].map((b) => b.textContent)`);
    assert.deepEqual(theirActions, ['Reply', 'React', 'Message'], 'others\' messages may be answered, reacted to and their author written to, not changed');
    await screenshots(app, 'window-edited');
  } finally {
    js.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('unread counts per room and in the title, a divider at the first unread, and the same on another device', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  assert.equal((await request(js, 'join', { room: 'news' })).ok, true);
  const { app, dataDir } = await launch(server, 'Reader');
  let phone;
  try {
    // The app's other device: a socket.io-client with the app's token, so the same user.
    const token = await savedToken(dataDir);
    ({ socket: phone } = await join(server.url, causerie('Reader', { token })));
    await joinFromApp(app, 'news');
    assert.equal((await request(phone, 'join', { room: 'news' })).ok, true);
    await app.click('nav.rooms li:first-child .room');
    await app.until('#general open', "document.querySelector('.app-bar h1')?.textContent === '#general'");
    const sent = [];
    for (let i = 1; i <= 3; i += 1) {
      sent.push((await request(js, 'message', { id: `news-${i}`, room: 'news', text: `news ${i}` })).message);
    }
    const badge = "document.querySelector('nav.rooms li:nth-child(2) .badge')?.textContent";
    await app.until('a count of 3 on #news', `${badge} === '3'`);
    await app.until('the title says 3', "document.title === '(3) Causerie'");
    await screenshots(app, 'window-unread');

    // Read on the phone up to the first: the app counts what is left.
    const read = await request(phone, 'read', { room: 'news', seq: sent[0].seq });
    assert.deepEqual([read.seq, read.unread], [sent[0].seq, 2]);
    await app.until('a count of 2 on #news', `${badge} === '2'`);
    await app.until('the title says 2', "document.title === '(2) Causerie'");

    // Opening the room: a divider above the first unread; read on screen, the phone hears it.
    await app.click('nav.rooms li:nth-child(2) .room');
    await app.until('the divider above "news 2"', `document.querySelector('.unread-divider')?.nextElementSibling?.querySelector('.body')?.textContent === 'news 2'`);
    const told = await next(phone, 'read');
    assert.deepEqual([told.room, told.seq, told.unread], ['news', sent[2].seq, 0]);
    await app.until('no count and a plain title', `${badge} === undefined && document.title === 'Causerie'`);
    await screenshots(app, 'window-unread-divider');

    // More unread than fit: the room opens at the divider, and what is below it is not read
    // until the reader gets there.
    await app.click('nav.rooms li:first-child .room');
    await app.until('#general open', "document.querySelector('.app-bar h1')?.textContent === '#general'");
    const more = [];
    for (let i = 4; i <= 43; i += 1) {
      more.push((await request(js, 'message', { id: `news-${i}`, room: 'news', text: `news ${i}` })).message);
    }
    await app.until('a count of 40 on #news', `${badge} === '40'`);
    await app.click('nav.rooms li:nth-child(2) .room');
    const dividerInView = `(() => { const list = document.querySelector('.messages'); const d = document.querySelector('.unread-divider');
      return !!d && d.nextElementSibling?.querySelector('.body')?.textContent === 'news 4'
        && d.getBoundingClientRect().top >= list.getBoundingClientRect().top; })()`;
    await app.until('the room open at its divider', dividerInView);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await unconsumed(phone, 'read'), [], 'nothing read below the divider yet');
    assert.equal(await app.value(badge), '40');
    await app.run("const list = document.querySelector('.messages'); list.scrollTop = list.scrollHeight;");
    const caughtUp = await next(phone, 'read');
    assert.deepEqual([caughtUp.seq, caughtUp.unread], [more[more.length - 1].seq, 0]);
    await app.until('no count once read to the end', `${badge} === undefined`);
  } finally {
    js.close();
    phone?.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('a reply quotes its original, the quote shows the original in its context, and the app replies too', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  for (let i = 1; i <= 70; i += 1) await request(js, 'message', { id: `r-old-${i}`, text: `old ${i}` });
  const { app } = await launch(server, 'Replier');
  try {
    await app.until('the latest page', `${page.texts}.includes('old 70')`);
    const { message: answer } = await request(js, 'message', { id: 'r-answer', text: 'about that one', replyTo: 3 });
    const reply = `.message[data-seq="${answer.seq}"]`;
    await app.until('the reply with its quote', `document.querySelector('${reply} .quote-text')?.textContent === 'old 3'`);

    // "old 3" is far older than what is shown: its context replaces the latest until "back".
    await app.click(`${reply} .quote`);
    await app.until('old 3 in its context', `!!document.querySelector('.context-banner') && !!document.querySelector('.message[data-seq="3"]')`);
    assert.equal(await app.value(`document.querySelector('.message[data-seq="3"] .body').textContent`), 'old 3');
    await screenshots(app, 'window-reply-context');
    assert.equal(await app.value('document.activeElement?.dataset.seq'), '3', 'the focus on the original');
    await app.click('.context-banner button');
    const atEnd = "(() => { const l = document.querySelector('.messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40; })()";
    await app.until('the latest again, at their end, with no pill', `!document.querySelector('.context-banner') && !!document.querySelector('${reply}') && ${atEnd} && !document.querySelector('.jump.pill')`);

    // The app answers Js's reply.
    await app.run(`document.querySelector('${reply}').focus();`);
    assert.equal(await app.value(`document.querySelector('${reply} .message-actions button').textContent`), 'Reply');
    await app.click(`${reply} .message-actions button`);
    await app.until('the composer says whom it answers', `document.querySelector('.composer .replying')?.textContent.includes('Replying to Js')`);
    await screenshots(app, 'window-replying');
    await app.type(field, `right back${ENTER}`);
    let received;
    do received = await next(js, 'message'); while (received.text !== 'right back');
    assert.deepEqual([received.replyTo.seq, received.replyTo.excerpt], [answer.seq, 'about that one']);
    await app.until('the reply shown with its quote', `[...document.querySelectorAll('.message.own .quote-text')].some((e) => e.textContent === 'about that one')`);
  } finally {
    js.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('reactions show with counts and who gave them, and the app toggles its own', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  const { app } = await launch(server, 'Reactor');
  try {
    await app.click(field); // the window in use: what comes is seen as it comes
    const { message } = await request(js, 'message', { id: 'react-me', text: 'lunch at noon?' });
    const line = `.message[data-seq="${message.seq}"]`;
    await app.until('the message', `!!document.querySelector('${line}')`);
    const given = await request(js, 'react', { id: 'js-r1', target: message.seq, emoji: '👍' });
    assert.equal(given.change.kind, 'react');
    const chip = `${line} .reaction`;
    await app.until('a chip with its count', `document.querySelector('${chip}')?.textContent === '👍1'`);
    assert.equal(await app.value(`document.querySelector('${chip}').title`), 'Js');

    // The app adds its own from the picker: the same chip counts two, marked as the user's.
    await app.run(`document.querySelector('${line}').focus();`);
    await app.click(`${line} .message-actions button:nth-child(2)`);
    await app.until('the picker', `!!document.querySelector('${line} .reaction-picker')`);
    await screenshots(app, 'window-reacting');
    await app.click(`${line} .reaction-picker button:first-child`);
    let change;
    do change = await next(js, 'change'); while (change.author.name !== 'Reactor');
    assert.deepEqual([change.kind, change.emoji, change.target], ['react', '👍', message.seq]);
    await app.until('two, one of them the user', `document.querySelector('${chip}')?.textContent === '👍2' && document.querySelector('${chip}').classList.contains('mine')`);
    await screenshots(app, 'window-reactions');

    // A click on the chip takes it back.
    await app.click(chip);
    do change = await next(js, 'change'); while (change.author.name !== 'Reactor');
    assert.equal(change.kind, 'unreact');
    await app.until('back to one, not the user', `document.querySelector('${chip}')?.textContent === '👍1' && !document.querySelector('${chip}').classList.contains('mine')`);
  } finally {
    js.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('search finds words in the user\'s rooms, newest first, and a result opens in its context', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  assert.equal((await request(js, 'join', { room: 'food' })).ok, true);
  assert.equal((await request(js, 'join', { room: 'private' })).ok, true);
  const { message: old } = await request(js, 'message', { id: 's-old', room: 'food', text: 'Pizza on Friday?' });
  for (let i = 1; i <= 60; i += 1) await request(js, 'message', { id: `s-fill-${i}`, room: 'food', text: `filler ${i}` });
  await request(js, 'message', { id: 's-new', text: 'pizza place downstairs is open' });
  await request(js, 'message', { id: 's-hidden', room: 'private', text: 'pizza secret' });
  const { app } = await launch(server, 'Seeker');
  try {
    await joinFromApp(app, 'food');
    await app.click('.search-toggle');
    await app.type('.search-panel input', 'PIZZ');
    const results = "[...document.querySelectorAll('.search-result .search-text')].map((e) => e.textContent)";
    await app.until('two results, newest first', `JSON.stringify(${results}) === JSON.stringify(['pizza place downstairs is open', 'Pizza on Friday?'])`);
    assert.deepEqual(await app.value("[...document.querySelectorAll('.search-result mark')].map((m) => m.textContent)"), ['pizza', 'Pizza']);
    await screenshots(app, 'window-search');
    // The older one is far back in #food: it opens in its context, marked.
    await app.click('.search-results li:nth-child(2) .search-result');
    await app.until('#food, at the message found', `document.querySelector('.app-bar h1')?.textContent === '#food' && !!document.querySelector('.context-banner') && document.activeElement?.dataset.seq === '${old.seq}'`);
  } finally {
    js.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('a mention stands out and is counted apart, and the app mentions with @ completion', async () => {
  const server = await startServer();
  const { socket: js, welcome: jsWelcome } = await join(server.url, causerie('Js'));
  const { app } = await launch(server, 'Named');
  try {
    await joinFromApp(app, 'side');
    const who = await request(js, 'who', { room: 'general' });
    const named = who.users.find((u) => u.name === 'Named');
    assert.ok(named, JSON.stringify(who));
    await request(js, 'message', { id: 'plain', text: 'a plain one' });
    const { message } = await request(js, 'message', { id: 'mention', text: '@Named lunch?', mentions: [named.id] });
    assert.deepEqual(message.mentions, [named.id]);
    const badges = "[...document.querySelectorAll('nav.rooms li:first-child .badge')].map((b) => b.textContent)";
    await app.until('#general counts 2, one of them a mention', `JSON.stringify(${badges}) === JSON.stringify(['@1', '2'])`);
    await app.click('nav.rooms li:first-child .room');
    await app.until('the mention stands out', `!!document.querySelector('.message.mentioned[data-seq="${message.seq}"]')`);

    // The app answers with @ completion: Js is picked from who is online.
    await app.type(field, 'sure @J');
    await app.until('Js offered', "document.querySelector('.mention-suggestions [aria-selected=\"true\"]')?.textContent === '@Js'");
    await screenshots(app, 'window-mentioning');
    await app.type(field, `${ENTER}see you${ENTER}`);
    let received;
    do received = await next(js, 'message'); while (received.author.name !== 'Named');
    assert.deepEqual([received.text, received.mentions], ['sure @Js see you', [jsWelcome.user.id]]);
  } finally {
    js.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('a direct conversation with the app: opened from who is online or a message, private, listed apart with its count', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  const { socket: other } = await join(server.url, causerie('Other'));
  const { app } = await launch(server, 'Dee');
  const title = "document.querySelector('.app-bar h1')?.textContent";
  const directs = "[...document.querySelectorAll('nav.rooms .directs .room')]";
  try {
    // From who is online.
    await app.until('who is online, shown', "document.querySelector('.app-bar .online')");
    await app.click('.app-bar .online');
    // The list is asked for when the panel opens: Js is in it once it answered.
    await app.until('Js listed', `document.querySelector('.who button[aria-label="Message Js"]')`);
    await app.click('.who button[aria-label="Message Js"]');
    await app.until('the conversation with Js open', `${title} === 'Js'`);
    await app.until('its empty state', "document.querySelector('.empty-title')?.textContent.includes('conversation with Js')");
    const opened = await next(js, 'direct');
    assert.equal(opened.peer.name, 'Dee');
    assert.equal((await request(js, 'join', { room: opened.room })).ok, true);
    await app.until('Js there', "document.querySelector('.peer-presence')?.textContent === 'Js is online'");
    await sendFromApp(app, 'just between us');
    let received;
    do received = await next(js, 'message'); while (received.room !== opened.room);
    assert.equal(received.text, 'just between us');
    assert.equal((await request(other, 'join', { room: opened.room })).error.code, 'forbidden');

    // Js answers while the app shows #general: counted on the conversation, listed apart.
    await app.click('nav.rooms li:first-child .room');
    await app.until('#general open', `${title} === '#general'`);
    await request(js, 'message', { id: 'dm-1', room: opened.room, text: 'sure, what is it?' });
    await app.until('a count on the conversation with Js', `${directs}.some((b) => b.querySelector('.name').textContent === 'Js' && b.querySelector('.badge')?.textContent === '1')`);
    await app.until('the title counts it', "document.title === '(1) Causerie'");

    // From a message: Other writes in #general; the app opens a conversation from it, which
    // Other sees and answers.
    const { message } = await request(other, 'message', { id: 'o-general', text: 'anyone around?' });
    const article = `article[data-seq="${message.seq}"]`;
    await app.until('the message of Other', `!!document.querySelector('${article}')`);
    await app.run(`document.querySelector('${article}').focus();`);
    await app.click(`${article} .message-actions button[aria-label="Message Other"]`);
    await app.until('the conversation with Other open', `${title} === 'Other'`);
    const toOther = await next(other, 'direct');
    assert.equal((await request(other, 'join', { room: toOther.room })).ok, true);
    await request(other, 'message', { id: 'o-1', room: toOther.room, text: 'yes, here' });
    await app.until('the answer of Other', `${page.texts}.includes('yes, here')`);
    await screenshots(app, 'window-direct');
    // A conversation is notified in full, or not at all.
    await app.click('.alerts-toggle');
    const options = "[...document.querySelectorAll('#room-alerts label')].map((l) => l.textContent.trim())";
    await app.until('two choices', `JSON.stringify(${options}) === JSON.stringify(['Every message', 'Nothing (muted)'])`);
    await screenshots(app, 'window-direct-alerts');
    await app.click('.alerts-toggle');

    await app.click('nav.rooms li:first-child .room');
    await screenshots(app, 'window-direct-unread');
    await app.run(`${directs}.find((b) => b.textContent.includes('Js')).click();`);
    await app.until('the answer of Js, then read', `${page.texts}.includes('sure, what is it?') && document.title === 'Causerie'`);
  } finally {
    js.close();
    other.close();
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('someone arriving is announced above their first message, with a time', async () => {
  const server = await startServer();
  const { app } = await launch(server, 'Watcher');
  try {
    const { socket: gail } = await join(server.url, causerie('Gail'));
    await request(gail, 'message', { id: 'g-1', text: 'hello from Gail' });
    await app.until('the notice and the message', `${page.texts}.includes('hello from Gail') && [...document.querySelectorAll('.messages .notice')].some((n) => n.textContent.includes('Gail joined'))`);
    const order = await app.value(`(() => {
      const notice = [...document.querySelectorAll('.messages .notice')].find((n) => n.textContent.includes('Gail joined'));
      const message = [...document.querySelectorAll('.messages article')].find((a) => a.textContent.includes('hello from Gail'));
      return { before: !!(notice.compareDocumentPosition(message) & Node.DOCUMENT_POSITION_FOLLOWING), time: !!notice.querySelector('time') };
    })()`);
    assert.deepEqual(order, { before: true, time: true });
    await screenshots(app, 'window-notice');
    gail.close();
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('saving unchanged settings does not reconnect', async () => {
  const server = await startServer();
  const { app } = await launch(server, 'Settler');
  try {
    const connects = await countedConnects(server);
    await app.click('button[aria-label="Settings"]');
    await app.click('dialog.settings button[type="submit"]');
    await app.until('the dialog closed', "!document.querySelector('dialog.settings')");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await connectsTotal(server), connects, 'the server saw no new connection');
    assert.equal(await app.value(page.connection), 'Connected');
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('a new name reconnects in place: what is shown stays, and others see the new name', async () => {
  const server = await startServer();
  const dataDir = mkdtempSync(joinPath(tmpdir(), 'causerie-window-'));
  // The name from the settings, not the command line (which would win over any change).
  writeFileSync(joinPath(dataDir, 'settings.json'), JSON.stringify({ mode: 'join', serverUrl: server.url, name: 'Before' }));
  const { socket: js } = await join(server.url, causerie('Js'));
  const app = await openApp(['--data-dir', dataDir]);
  try {
    await app.until('the app to connect', `${page.connection} === 'Connected'`);
    await request(js, 'message', { id: 'kept', text: 'still shown after the rename' });
    await app.until('the message', `${page.texts}.includes('still shown after the rename')`);
    await app.run("window.keptArticle = document.querySelector('.messages article');");
    const connects = await countedConnects(server);
    await app.click('button[aria-label="Settings"]');
    await app.clear('#settings-name');
    await app.type('#settings-name', 'After');
    await screenshots(app, 'window-settings');
    await app.click('dialog.settings button[type="submit"]');
    // The others hear of the new name (each presence awaited in turn, with a timeout).
    while (!(await next(js, 'presence')).joined.some((u) => u.name === 'After'));
    await app.until('connected again', `${page.connection} === 'Connected'`);
    assert.equal(await connectsTotal(server), connects + 1, 'one new connection, no restart of the chat');
    assert.equal(await app.value('document.contains(window.keptArticle)'), true, 'the list was kept, not rebuilt');
    assert.deepEqual(await app.value(page.texts), ['still shown after the rename']);
    const saved = JSON.parse(readFileSync(joinPath(dataDir, 'settings.json'), 'utf8'));
    assert.equal(saved.name, 'After');
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

test('on a phone, the keyboard never covers the composer, and every control is a 44 px target', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  for (let i = 1; i <= 30; i += 1) await request(js, 'message', { id: `k-${i}`, text: `line ${i}` });
  const { app } = await launch(server, 'Thumbs');
  try {
    await resize(app, 390, 844);
    await app.until('the messages at the bottom', `${page.texts}.length === 30 && ${page.fromBottom} < 4`);
    const small = await app.value(`[...document.querySelectorAll('button, input, textarea')]
      .filter((e) => e.getClientRects().length > 0 && !e.closest('[inert]'))
      .map((e) => ({ what: e.getAttribute('aria-label') || e.textContent.trim() || e.id, height: e.getBoundingClientRect().height }))
      .filter((c) => c.height < 44)`);
    assert.deepEqual(small, [], 'every control in view is at least 44 px high');

    // The keyboard slides up: WebKit shrinks the visual viewport (not dvh). Here no keyboard can
    // appear, so the viewport says it is 500 px high and tells its listeners, as WebKit does.
    await app.run("Object.defineProperty(window.visualViewport, 'height', { configurable: true, get: () => 500 }); window.visualViewport.dispatchEvent(new Event('resize'));");
    await app.until('the composer above the keyboard', "document.querySelector('.composer').getBoundingClientRect().bottom <= 500");
    await app.until('the newest message still in view', `${page.fromBottom} < 4`);
    await screenshot(app, 390, 844, `window-keyboard-${THEME}-phone.png`);
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

test('on a phone, the room drawer takes the focus, closes on Escape, and is out of reach when closed', async () => {
  const server = await startServer();
  const { app } = await launch(server, 'Thumbs');
  try {
    await resize(app, 390, 844);
    await app.until('the closed drawer inert', "document.querySelector('nav.rooms').inert === true");
    await app.click('.rooms-toggle');
    await app.until('the drawer open with the focus', "document.querySelector('nav.rooms').classList.contains('open') && document.querySelector('nav.rooms').contains(document.activeElement)");
    await screenshot(app, 390, 844, `window-drawer-${THEME}-phone.png`);
    // Tab goes round inside the open drawer: past its last control, back to its first.
    await app.run("const c = [...document.querySelectorAll('nav.rooms button:not(:disabled), nav.rooms input')]; c[c.length - 1].focus();");
    await app.type('nav.rooms input#room-name', TAB);
    await app.until('the focus back at the top of the drawer', "document.activeElement === document.querySelector('nav.rooms .room')");
    await app.type('nav.rooms .room', ESCAPE);
    await app.until('the drawer closed', "!document.querySelector('nav.rooms').classList.contains('open') && document.querySelector('nav.rooms').inert");
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('offline, a banner says so and its button reconnects at once', async () => {
  let server = await startServer();
  const { app } = await launch(server, 'Offliner');
  try {
    await app.until('the online count', "!!document.querySelector('.status .online')");
    await server.stop();
    // Wait for a countdown of a few seconds: the button must not wait for it.
    const waiting = await app.until('a countdown of 3 s or more', `(() => { const m = /Reconnecting in (\\d+) s/.exec(${page.connection}); return m && Number(m[1]) >= 3 ? Number(m[1]) : 0; })()`, { timeoutMs: 60_000 });
    assert.equal(await app.value("!!document.querySelector('.status .online')"), false, 'no online count while offline');
    await screenshots(app, 'window-offline');
    server = await server.restart();
    await app.click('.offline-banner button');
    await app.until('connected before the countdown ran out', `${page.connection} === 'Connected'`, { timeoutMs: (waiting - 1) * 1000 });
  } finally {
    await app.close().catch(() => {});
    server.cleanup();
  }
});

test('long messages are collapsed, links keep their brackets, and each person has a colour', async () => {
  const server = await startServer();
  const { socket: js } = await join(server.url, causerie('Js'));
  await request(js, 'message', { id: 'long', text: `A long one. ${'word '.repeat(700)}` });
  await request(js, 'message', { id: 'link', text: 'see https://en.wikipedia.org/wiki/Rust_(programming_language) and www.example.org' });
  const { app } = await launch(server, 'Looker');
  try {
    await app.until('both', `${page.texts}.length === 2`);
    const collapsed = await app.value("document.querySelector('.text.collapsed').getBoundingClientRect().height");
    assert.ok(collapsed < 300, `a collapsed message is ${collapsed} px high`);
    const links = await app.value("[...document.querySelectorAll('.messages a')].map((a) => a.getAttribute('href'))");
    assert.deepEqual(links, ['https://en.wikipedia.org/wiki/Rust_(programming_language)', 'https://www.example.org']);
    assert.equal(await app.value("matchMedia('(prefers-color-scheme: dark)').matches"), THEME === 'dark', `the page sees the ${THEME} theme`);
    await screenshots(app, 'window-details');
    await app.click('.message .more');
    await app.until('expanded', "!document.querySelector('.text.collapsed')");
  } finally {
    await app.close().catch(() => {});
    js.close();
    server.cleanup();
  }
});

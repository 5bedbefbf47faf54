import { describe, expect, test } from 'vitest';
import { Chat, connectionLabel, noticeText } from '../src/lib/chat.svelte';
import { dayLabel, hueOf, initials, isLong, isOpenable, linkify } from '../src/lib/text';
import { FakeBackend, ada, bob, message, session } from './fake-backend';

async function started() {
  const backend = new FakeBackend();
  const chat = new Chat(backend);
  await chat.start();
  backend.emit({ type: 'welcome', data: session() });
  return { backend, chat };
}

describe('the chat state', () => {
  test('a pending message is replaced in place by its confirmation', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'hi', action: { kind: 'send' } } });
    expect(chat.linesOf('general').map((l) => l.kind)).toEqual(['pending']);
    const theirs = message(bob, 'hello');
    backend.emit({ type: 'message', data: { message: theirs, confirms: null, fresh: true } });
    // Stored messages stay above our own still on their way.
    expect(chat.linesOf('general').map((l) => l.kind)).toEqual(['message', 'pending']);
    const ours = message(ada, 'hi', { clientId: 'l1' });
    backend.emit({ type: 'message', data: { message: ours, confirms: 'l1', fresh: true } });
    expect(chat.linesOf('general').map((l) => l.key)).toEqual([theirs.id, ours.id]);
  });

  test('a failed message keeps its text and its place, and later messages go below it', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'too long', action: { kind: 'send' } } });
    backend.emit({ type: 'failed', data: { localId: 'l1', error: { code: 'too_long', message: 'too long' }, resendable: false } });
    const line = chat.linesOf('general')[0];
    expect(line.kind === 'pending' && line.failed?.code).toBe('too_long');
    const later = message(bob, 'after it');
    backend.emit({ type: 'message', data: { message: later, confirms: null, fresh: true } });
    expect(chat.linesOf('general').map((l) => l.key)).toEqual(['l1', later.id]);
    chat.edit('l1');
    expect(chat.draftOf('general')).toBe('too long');
    expect(chat.linesOf('general').map((l) => l.key)).toEqual([later.id]);
  });

  test("an edit of the user's message goes through the composer, and the draft waits aside", async () => {
    const { backend, chat } = await started();
    const mine = message(ada, 'helo', { sentAt: new Date().toISOString() });
    backend.emit({ type: 'message', data: { message: mine, confirms: null, fresh: true } });
    chat.setDraft('general', 'half a thought');
    chat.startEdit('general', mine.seq);
    expect(chat.draftOf('general')).toBe('helo');
    await chat.send('hello');
    expect(backend.callsTo('edit')).toEqual([['general', mine.seq, 'hello']]);
    expect(chat.editing).toBeNull();
    expect(chat.draftOf('general')).toBe('half a thought');
    // Saved unchanged: nothing to send.
    chat.startEdit('general', mine.seq);
    await chat.send('helo');
    expect(backend.callsTo('edit')).toHaveLength(1);
  });

  test('a reply goes with the seq it answers, and its quote follows the original', async () => {
    const { backend, chat } = await started();
    const original = message(bob, '\n  first line\nsecond line');
    backend.emit({ type: 'message', data: { message: original, confirms: null, fresh: true } });
    chat.startReply('general', original.seq);
    expect(chat.replying?.quote).toMatchObject({ seq: original.seq, excerpt: 'first line', author: bob });
    await chat.send('agreed');
    expect(backend.callsTo('reply')).toEqual([['general', original.seq, 'agreed']]);
    expect(chat.replying).toBeNull();
    const reply = message(ada, 'agreed', { replyTo: { seq: original.seq, author: bob, excerpt: 'first line' } });
    backend.emit({ type: 'message', data: { message: reply, confirms: null, fresh: true } });
    // Edited, then deleted: the reply's quote shows it.
    const quoteOfReply = () => chat.linesOf('general').flatMap((l) => (l.kind === 'message' && l.message.seq === reply.seq ? [l.message.replyTo] : []))[0];
    const at = new Date().toISOString();
    backend.emit({ type: 'change', data: { change: { id: 'x1', clientId: 'c-x1', room: 'general', seq: reply.seq + 1, author: bob, kind: 'edit', target: original.seq, text: 'better first line', at }, confirms: null } });
    expect(quoteOfReply()).toMatchObject({ excerpt: 'better first line' });
    backend.emit({ type: 'change', data: { change: { id: 'x2', clientId: 'c-x2', room: 'general', seq: reply.seq + 2, author: bob, kind: 'delete', target: original.seq, at }, confirms: null } });
    expect(quoteOfReply()).toMatchObject({ excerpt: '', deleted: true });
  });

  test('reactions toggle on the message, and a refused one is told', async () => {
    const { backend, chat } = await started();
    const target = message(bob, 'lunch?');
    backend.emit({ type: 'message', data: { message: target, confirms: null, fresh: true } });
    await chat.react('general', target.seq, '👍');
    expect(backend.callsTo('react')).toEqual([['general', target.seq, '👍']]);
    const at = new Date().toISOString();
    const toggle = (seq: number, author: typeof ada, kind: 'react' | 'unreact') => backend.emit({
      type: 'change',
      data: { change: { id: `x${seq}`, clientId: `c-x${seq}`, room: 'general', seq, author, kind, target: target.seq, emoji: '👍', at }, confirms: null },
    });
    const reactions = () => chat.linesOf('general').flatMap((l) => (l.kind === 'message' && l.message.seq === target.seq ? [l.message.reactions ?? []] : []))[0];
    toggle(target.seq + 1, ada, 'react');
    toggle(target.seq + 2, bob, 'react');
    expect(reactions()).toEqual([{ emoji: '👍', count: 2, users: [ada, bob] }]);
    toggle(target.seq + 3, ada, 'unreact');
    expect(reactions()).toEqual([{ emoji: '👍', count: 1, users: [bob] }]);
    toggle(target.seq + 4, bob, 'unreact');
    expect(reactions()).toEqual([]);
    // Refused: no line to mark, so the error says it.
    backend.emit({ type: 'pending', data: { localId: 'r-1', room: 'general', text: '👍', action: { kind: 'react', target: target.seq } } });
    expect(chat.linesOf('general').some((l) => l.kind === 'pending')).toBe(false);
    backend.emit({ type: 'failed', data: { localId: 'r-1', error: { code: 'reaction_limit', message: 'too many' }, resendable: false } });
    expect(chat.error).toBe('Reaction not saved: too many');
  });

  test('going to a message not shown asks for its context, and back goes to the latest', async () => {
    const { backend, chat } = await started();
    chat.jumpTo('general', 3);
    expect(backend.callsTo('around')).toEqual([['general', 3]]);
    const old = [1, 2, 3, 4].map((seq) => message(bob, `old ${seq}`, { seq }));
    backend.emit({ type: 'around', data: { around: 3, page: { room: 'general', messages: old, changes: [], hasMore: false } } });
    expect(chat.context?.lines.map((l) => (l.kind === 'message' ? l.message.seq : 0))).toEqual([1, 2, 3, 4]);
    expect(chat.linesOf('general')).toHaveLength(0);
    // An answer for a jump given up is ignored.
    chat.closeContext();
    backend.emit({ type: 'around', data: { around: 3, page: { room: 'general', messages: old, changes: [], hasMore: false } } });
    expect(chat.context).toBeNull();
  });

  test('a change shows at once, is confirmed by the server, and is undone if refused', async () => {
    const { backend, chat } = await started();
    const mine = message(ada, 'helo', { sentAt: new Date().toISOString() });
    backend.emit({ type: 'message', data: { message: mine, confirms: null, fresh: true } });
    const line = () => {
      const found = chat.linesOf('general').find((l) => l.kind === 'message');
      if (found?.kind !== 'message') throw new Error('no message line');
      return found;
    };
    const edit = { kind: 'edit' as const, target: mine.seq };
    backend.emit({ type: 'pending', data: { localId: 'e1', room: 'general', text: 'hello', action: edit } });
    expect([line().message.text, line().saving]).toEqual(['hello', true]);
    expect(chat.linesOf('general')).toHaveLength(1);
    const change = {
      id: 'c1', clientId: 'e1', room: 'general', seq: mine.seq + 1, author: ada,
      kind: 'edit' as const, target: mine.seq, text: 'hello', at: new Date().toISOString(),
    };
    backend.emit({ type: 'change', data: { change, confirms: 'e1' } });
    expect([line().message.text, line().saving, line().message.editedAt]).toEqual(['hello', false, change.at]);
    // A deletion refused: the message comes back as it was.
    backend.emit({ type: 'pending', data: { localId: 'd1', room: 'general', text: '', action: { kind: 'delete', target: mine.seq } } });
    expect(line().message.deleted).toBe(true);
    backend.emit({ type: 'failed', data: { localId: 'd1', error: { code: 'not_found', message: 'gone' }, resendable: false } });
    expect([line().message.deleted ?? false, line().message.text, line().saving]).toEqual([false, 'hello', false]);
    expect(chat.error).toContain('gone');
  });

  test("a refused edit goes back to the server's state, not to what was shown before it", async () => {
    const { backend, chat } = await started();
    const mine = message(ada, 'original', { sentAt: new Date().toISOString() });
    backend.emit({ type: 'message', data: { message: mine, confirms: null, fresh: true } });
    backend.emit({ type: 'pending', data: { localId: 'e1', room: 'general', text: 'edited', action: { kind: 'edit', target: mine.seq } } });
    // Deleted meanwhile from the user's other device.
    const deletion = {
      id: 'c1', clientId: 'other-device', room: 'general', seq: mine.seq + 1, author: ada,
      kind: 'delete' as const, target: mine.seq, at: new Date().toISOString(),
    };
    backend.emit({ type: 'change', data: { change: deletion, confirms: null } });
    backend.emit({ type: 'failed', data: { localId: 'e1', error: { code: 'not_found', message: 'deleted' }, resendable: false } });
    const line = chat.linesOf('general')[0];
    expect(line.kind === 'message' && [line.message.deleted, line.message.text, line.saving]).toEqual([true, '', false]);
    // The refused text is not lost.
    expect(chat.draftOf('general')).toBe('edited');
  });

  test("others' edits and deletions change their messages in place", async () => {
    const { backend, chat } = await started();
    const theirs = message(bob, 'first try');
    backend.emit({ type: 'message', data: { message: theirs, confirms: null, fresh: true } });
    const at = new Date().toISOString();
    const base = { room: 'general', author: bob, target: theirs.seq, at };
    backend.emit({ type: 'change', data: { change: { ...base, id: 'c1', clientId: 'x1', seq: theirs.seq + 1, kind: 'edit', text: 'second try' }, confirms: null } });
    const shown = () => chat.linesOf('general').flatMap((l) => (l.kind === 'message' ? [[l.message.text, l.message.deleted ?? false]] : []));
    expect(shown()).toEqual([['second try', false]]);
    backend.emit({ type: 'change', data: { change: { ...base, id: 'c2', clientId: 'x2', seq: theirs.seq + 2, kind: 'delete' }, confirms: null } });
    expect(shown()).toEqual([['', true]]);
    expect(chat.canDelete(theirs)).toBe(false);
  });

  test('the user may edit their messages within the edit window, and delete them at any time', async () => {
    const { chat } = await started();
    const day = 86_400_000;
    const mine = message(ada, 'mine', { sentAt: new Date(Date.now() - day / 2).toISOString() });
    expect(chat.canEdit(mine)).toBe(true);
    expect(chat.canEdit(mine, Date.now() + day)).toBe(false);
    expect(chat.canDelete(mine)).toBe(true);
    expect(chat.canDelete({ ...mine, deleted: true })).toBe(false);
  });

  test('older history goes above what is shown', async () => {
    const { backend, chat } = await started();
    const [m1, m2, m3] = [message(bob, 'one'), message(bob, 'two'), message(bob, 'three')];
    backend.emit({ type: 'message', data: { message: m3, confirms: null, fresh: true } });
    await chat.loadOlder('general');
    expect(backend.callsTo('history')).toEqual([['general', m3.seq]]);
    backend.emit({ type: 'history', data: { room: 'general', messages: [m1, m2], changes: [], hasMore: false } });
    expect(chat.linesOf('general').map((l) => l.key)).toEqual([m1.id, m2.id, m3.id]);
    expect(chat.complete.general).toBe(true);
  });

  test('a page of older history that was refused may be asked for again', async () => {
    const { backend, chat } = await started();
    const m5 = message(bob, 'five', { seq: 5 });
    backend.emit({ type: 'message', data: { message: m5, confirms: null, fresh: true } });
    await chat.loadOlder('general');
    await chat.loadOlder('general');
    expect(backend.callsTo('history')).toHaveLength(1);
    backend.emit({ type: 'error', data: { code: 'not_connected', message: 'not connected to the server' } });
    await chat.loadOlder('general');
    expect(backend.callsTo('history')).toHaveLength(2);
  });

  test('who is online comes from the core client, and presence leaves notices', async () => {
    const { backend, chat } = await started();
    const cy = { id: 'u-cy', name: 'Cy' };
    backend.emit({ type: 'online', data: { room: 'general', users: [ada, bob, cy], count: 3 } });
    expect(chat.online.general).toEqual({ users: [ada, bob, cy], count: 3 });
    backend.emit({
      type: 'presence',
      data: { room: 'general', count: 3, joined: [cy, ada], left: [bob], truncated: false },
    });
    const notices = () => chat.linesOf('general').flatMap((l) => (l.kind === 'notice' ? [l.text] : []));
    expect(notices()).toEqual(['Cy joined · Bob left']);
    // Bob back within the group: a reconnect is no news.
    backend.emit({ type: 'presence', data: { room: 'general', count: 3, joined: [bob], left: [], truncated: false } });
    expect(notices()).toEqual(['Cy joined']);
  });

  test('a rename the core client tells is a notice above the first message under the new name', async () => {
    const { backend, chat } = await started();
    const renamed = { ...bob, name: 'Robert' };
    // Their first message under the new name comes a little before the rename is told.
    const hello = message(renamed, 'hello again');
    backend.emit({ type: 'message', data: { message: hello, confirms: null, fresh: true } });
    backend.emit({ type: 'renamed', data: { room: 'general', user: renamed, from: 'Bob' } });
    backend.emit({ type: 'renamed', data: { room: 'general', user: { ...ada, name: 'Ada L' }, from: 'Ada' } });
    backend.emit({ type: 'presence', data: { room: 'general', count: 2, joined: [], left: [], truncated: false } });
    expect(chat.linesOf('general').map((l) => (l.kind === 'renamed' || l.kind === 'notice' ? l.text : l.key))).toEqual(['Bob is now Robert', hello.id]);
  });

  test('a notice goes above the first message of whom it announces, and a message ends a group', async () => {
    const { backend, chat } = await started();
    const gail = { id: 'u-gail', name: 'Gail' };
    const hello = message(gail, 'hello all');
    backend.emit({ type: 'message', data: { message: hello, confirms: null, fresh: true } });
    backend.emit({ type: 'presence', data: { room: 'general', count: 2, joined: [gail], left: [], truncated: false } });
    expect(chat.linesOf('general').map((l) => (l.kind === 'notice' ? l.text : l.key))).toEqual(['Gail joined', hello.id]);
    backend.emit({ type: 'presence', data: { room: 'general', count: 1, joined: [], left: [bob], truncated: false } });
    expect(chat.linesOf('general').map((l) => (l.kind === 'notice' ? l.text : l.key))).toEqual(['Gail joined', hello.id, 'Bob left']);
  });

  test('notices name a few and count the rest', () => {
    const people = ['Ada', 'Bob', 'Cy', 'Dee', 'Eve'].map((name) => ({ id: name, name }));
    expect(noticeText(people.slice(0, 1), [])).toBe('Ada joined');
    expect(noticeText(people.slice(0, 2), [])).toBe('Ada and Bob joined');
    expect(noticeText(people.slice(0, 3), [])).toBe('Ada, Bob and Cy joined');
    expect(noticeText(people, people.slice(0, 1))).toBe('Ada, Bob and 3 others joined · Ada left');
  });

  test('who is typing is what the core client last said, per room', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'typing', data: { room: 'general', users: [bob] } });
    backend.emit({ type: 'typing', data: { room: 'side', users: [ada, bob] } });
    expect(chat.typingIn('general').map((u) => u.name)).toEqual(['Bob']);
    backend.emit({ type: 'typing', data: { room: 'general', users: [] } });
    expect(chat.typingIn('general')).toEqual([]);
    expect(chat.typingIn('side')).toHaveLength(2);
  });

  test('a restart (say, on another server) starts from a clean slate', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'message', data: { message: message(bob, 'from the old server'), confirms: null, fresh: true } });
    backend.emit({ type: 'joined', data: { room: 'side' } });
    chat.current = 'side';
    await chat.start();
    expect(chat.linesOf('general')).toEqual([]);
    expect(chat.rooms).toEqual(['general']);
    expect(chat.current).toBe('general');
    expect(chat.session).toBeNull();
  });

  test('a direct conversation is listed by the other person, opened once, and has no notices', async () => {
    const { backend, chat } = await started();
    const room = `~${ada.id}+${bob.id}`;
    await chat.openDirect(bob);
    expect(backend.callsTo('openDirect')).toEqual([[bob.id]]);
    expect(chat.current).toBe('general');
    backend.emit({ type: 'direct', data: { room, peer: bob } });
    expect(chat.current).toBe(room);
    expect(chat.titleOf(room)).toBe(bob.name);
    expect(chat.titleOf('general')).toBe('#general');
    backend.emit({ type: 'joined', data: { room } });
    expect(chat.knownRooms).not.toContain(room);
    // Opened again: shown at once, not asked for.
    chat.current = 'general';
    await chat.openDirect(bob);
    expect(chat.current).toBe(room);
    expect(backend.callsTo('openDirect')).toHaveLength(1);
    // Someone coming and going in it is in the bar, not in the conversation.
    backend.emit({ type: 'presence', data: { room, joined: [bob], left: [], count: 2, truncated: false } });
    expect(chat.linesOf(room)).toEqual([]);
  });

  test('the connection label counts a reconnection down', () => {
    const state = { status: 'reconnecting', attempt: 2, delayMs: 4_000 } as const;
    expect(connectionLabel(state, 0, 1_000)).toBe('Reconnecting in 3 s');
    expect(connectionLabel(state, 0, 5_000)).toBe('Reconnecting…');
    expect(connectionLabel({ status: 'connected' }, 0, 0)).toBe('Connected');
    expect(connectionLabel({ status: 'disconnected', reason: { kind: 'lost', detail: 'x' } }, 0, 0)).toBe('Offline');
  });
});

describe('message text', () => {
  test('links are found, trailing punctuation left out, other schemes ignored', () => {
    expect(linkify('see https://example.org/a?b=1. and javascript:alert(1)')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'link', text: 'https://example.org/a?b=1', url: 'https://example.org/a?b=1' },
      { kind: 'text', text: '. and javascript:alert(1)' },
    ]);
    expect(isOpenable('https://x.org')).toBe(true);
    expect(isOpenable('file:///etc/passwd')).toBe(false);
  });

  test('a link keeps the brackets it opened, not those around it, and www. addresses are links', () => {
    const links = (text: string) => linkify(text).flatMap((p) => (p.kind === 'link' ? [p.url] : []));
    expect(links('https://en.wikipedia.org/wiki/Rust_(programming_language)')).toEqual([
      'https://en.wikipedia.org/wiki/Rust_(programming_language)',
    ]);
    expect(links('(see https://example.org/a)')).toEqual(['https://example.org/a']);
    expect(links('[https://example.org/x_(y)].')).toEqual(['https://example.org/x_(y)']);
    expect(links('go to www.example.org, now')).toEqual(['https://www.example.org']);
    expect(linkify('www.')).toEqual([{ kind: 'text', text: 'www.' }]);
  });

  test('days are named for separators, and long texts are collapsed', () => {
    const now = new Date(2026, 10, 26, 15, 0);
    expect(dayLabel(new Date(2026, 10, 26, 9, 0).toISOString(), now)).toBe('Today');
    expect(dayLabel(new Date(2026, 10, 25, 23, 0).toISOString(), now)).toBe('Yesterday');
    expect(dayLabel(new Date(2026, 10, 20, 12, 0).toISOString(), now)).not.toMatch(/Today|Yesterday/);
    expect(isLong('x'.repeat(4000))).toBe(true);
    expect(isLong('a short line')).toBe(false);
    expect(isLong('line\n'.repeat(20))).toBe(true);
    expect(initials('Ada Lovelace')).toBe('AL');
    expect(hueOf('u-1')).toBe(hueOf('u-1'));
  });
});

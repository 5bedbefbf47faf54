import { describe, expect, test } from 'vitest';
import { Chat, connectionLabel } from '../src/lib/chat.svelte';
import { linkify, isOpenable } from '../src/lib/text';
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
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'hi' } });
    expect(chat.linesOf('general').map((l) => l.kind)).toEqual(['pending']);
    const theirs = message(bob, 'hello');
    backend.emit({ type: 'message', data: { message: theirs, confirms: null } });
    // Stored messages stay above our own still on their way.
    expect(chat.linesOf('general').map((l) => l.kind)).toEqual(['message', 'pending']);
    const ours = message(ada, 'hi', { clientId: 'l1' });
    backend.emit({ type: 'message', data: { message: ours, confirms: 'l1' } });
    expect(chat.linesOf('general').map((l) => l.key)).toEqual([theirs.id, ours.id]);
  });

  test('a failed message keeps its text and can be retried', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'too long' } });
    backend.emit({ type: 'failed', data: { localId: 'l1', error: { code: 'too_long', message: 'too long' } } });
    const line = chat.linesOf('general')[0];
    expect(line.kind === 'pending' && line.failed?.code).toBe('too_long');
    await chat.retry('l1');
    expect(backend.callsTo('send')).toEqual([['general', 'too long']]);
    expect(chat.linesOf('general')).toEqual([]);
  });

  test('older history goes above what is shown, without repeats', async () => {
    const { backend, chat } = await started();
    const [m1, m2, m3] = [message(bob, 'one'), message(bob, 'two'), message(bob, 'three')];
    backend.emit({ type: 'message', data: { message: m3, confirms: null } });
    await chat.loadOlder('general');
    expect(backend.callsTo('history')).toEqual([['general', m3.seq]]);
    backend.emit({ type: 'history', data: { room: 'general', messages: [m1, m2, m3], hasMore: false } });
    expect(chat.linesOf('general').map((l) => l.key)).toEqual([m1.id, m2.id, m3.id]);
    expect(chat.complete.general).toBe(true);
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
    const notices = chat.linesOf('general').filter((l) => l.kind === 'notice');
    expect(notices.map((l) => l.kind === 'notice' && l.text)).toEqual(['Cy joined', 'Bob left']);
  });

  test('typing notices show others only, until they stop or expire', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'typing', data: { room: 'general', user: bob, typing: true } });
    backend.emit({ type: 'typing', data: { room: 'general', user: ada, typing: true } });
    expect(chat.typingIn('general').map((u) => u.name)).toEqual(['Bob']);
    expect(chat.typingIn('general', Date.now() + 60_000)).toEqual([]);
    backend.emit({ type: 'typing', data: { room: 'general', user: bob, typing: false } });
    expect(chat.typingIn('general')).toEqual([]);
  });

  test('a restart (say, on another server) starts from a clean slate', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'message', data: { message: message(bob, 'from the old server'), confirms: null } });
    backend.emit({ type: 'joined', data: { room: 'side' } });
    chat.current = 'side';
    await chat.start();
    expect(chat.linesOf('general')).toEqual([]);
    expect(chat.rooms).toEqual(['general']);
    expect(chat.current).toBe('general');
    expect(chat.session).toBeNull();
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
});

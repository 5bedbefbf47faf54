import { describe, expect, test } from 'vitest';
import { ALERT_PACE_MS, alertFor, type AlertContext } from '../src/lib/alerts';
import { Chat } from '../src/lib/chat.svelte';
import { FakeBackend, ada, bob, message, session } from './fake-backend';

const background: AlertContext = {
  me: ada.id, focused: false, level: 'mentions', direct: false, roomTitle: '#general',
  mentionsMe: false, readUpTo: 0, notified: null, now: 100_000,
};

describe('when a message is notified', () => {
  test('in the background only, never for the user, nor for what was read', () => {
    const theirs = message(bob, 'hi', { seq: 5 });
    const direct = { ...background, direct: true, roomTitle: 'Bob' };
    expect(alertFor(theirs, direct)).toEqual({ title: 'Bob', body: 'hi' });
    expect(alertFor(theirs, { ...direct, focused: true })).toBeNull();
    expect(alertFor(message(ada, 'mine', { seq: 6 }), direct)).toBeNull();
    expect(alertFor(theirs, { ...direct, readUpTo: 5 })).toBeNull();
    expect(alertFor(theirs, { ...direct, readUpTo: null })).toBeNull();
    expect(alertFor({ ...theirs, deleted: true }, direct)).toBeNull();
  });

  test('by the room\'s level: every message, mentions (and direct ones), or none', () => {
    const plain = message(bob, 'lunch?', { seq: 7 });
    expect(alertFor(plain, background)).toBeNull();
    expect(alertFor(plain, { ...background, mentionsMe: true })).toEqual({ title: 'Bob in #general', body: 'lunch?' });
    expect(alertFor(plain, { ...background, level: 'all' })).not.toBeNull();
    expect(alertFor(plain, { ...background, level: 'none', mentionsMe: true })).toBeNull();
    expect(alertFor(plain, { ...background, level: 'none', direct: true })).toBeNull();
  });

  test('once per room in a burst, and never twice for one message', () => {
    const first = message(bob, 'one', { seq: 8 });
    const context = { ...background, level: 'all' as const, notified: { seq: 8, at: background.now } };
    expect(alertFor(first, context)).toBeNull();
    const next = message(bob, 'two', { seq: 9 });
    expect(alertFor(next, { ...context, now: background.now + 1_000 })).toBeNull();
    expect(alertFor(next, { ...context, now: background.now + ALERT_PACE_MS })).not.toBeNull();
  });


});

describe('notifications in the chat', () => {
  async function started() {
    const backend = new FakeBackend();
    backend.storedAlerts = { general: 'all' };
    const chat = new Chat(backend);
    await chat.start();
    backend.emit({ type: 'welcome', data: session() });
    backend.emit({ type: 'unread', data: { room: 'general', read: 0, count: 0, mentions: 0 } });
    return { backend, chat };
  }

  test('a message in the background is notified by its room\'s kept level, and a click opens its room', async () => {
    const { backend, chat } = await started();
    expect(chat.alertOf('general')).toBe('all');
    const room = `~${ada.id}+${bob.id}`;
    backend.emit({ type: 'direct', data: { room, peer: bob } });
    backend.emit({ type: 'joined', data: { room } });
    backend.emit({ type: 'unread', data: { room, read: 0, count: 0, mentions: 0 } });

    backend.emit({ type: 'message', data: { message: message(bob, 'seen as it comes'), confirms: null, fresh: true } });
    expect(backend.callsTo('notify')).toEqual([]);
    chat.focused = false;
    // The past a page brings is not news.
    backend.emit({ type: 'message', data: { message: message(bob, 'from before', { room }), confirms: null, fresh: false } });
    backend.emit({ type: 'message', data: { message: message(bob, 'in general'), confirms: null, fresh: true } });
    backend.emit({ type: 'message', data: { message: message(bob, 'just us', { room }), confirms: null, fresh: true } });
    expect(backend.callsTo('notify')).toEqual([['general', 'Bob in #general', 'in general'], [room, 'Bob', 'just us']]);

    backend.clickNotification(room);
    expect(chat.current).toBe(room);
    // Read (here, or on another device): its notification is taken back, once.
    backend.emit({ type: 'unread', data: { room, read: 200, count: 0, mentions: 0 } });
    backend.emit({ type: 'unread', data: { room, read: 200, count: 0, mentions: 0 } });
    expect(backend.callsTo('withdrawNotification')).toEqual([[room]]);
    backend.clickNotification('left-long-ago');
    expect(chat.current).toBe(room);
  });

  test('a muted room is not notified, not counted in the title, and the choice is kept', async () => {
    const { backend, chat } = await started();
    backend.emit({ type: 'unread', data: { room: 'general', read: 0, count: 3, mentions: 1 } });
    expect(chat.unreadTotal).toBe(3);
    await chat.setAlert('general', 'none');
    expect(backend.callsTo('setAlert')).toEqual([['general', 'none']]);
    expect(chat.unreadTotal).toBe(0);
    chat.focused = false;
    const mention = message(bob, '@Ada look', { mentions: [ada.id] });
    backend.emit({ type: 'message', data: { message: mention, confirms: null, fresh: true } });
    expect(backend.callsTo('notify')).toEqual([]);
    await chat.setAlert('general', 'mentions');
    expect(backend.storedAlerts).toEqual({});
  });
});

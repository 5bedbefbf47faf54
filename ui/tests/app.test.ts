import { cleanup, render, screen, waitFor } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import App from '../src/App.svelte';
import { FakeBackend, ada, bob, message, session } from './fake-backend';

afterEach(cleanup);

async function openApp(settings = {}) {
  const backend = new FakeBackend(settings);
  render(App, { props: { backend } });
  return backend;
}

async function openChat(backend = new FakeBackend()) {
  const starts = backend.callsTo('start').length;
  render(App, { props: { backend } });
  await waitFor(() => expect(backend.callsTo('start')).toHaveLength(starts + 1));
  backend.emit({ type: 'state', data: { status: 'connected' } });
  backend.emit({ type: 'welcome', data: session() });
  backend.emit({ type: 'online', data: { room: 'general', users: [ada, bob], count: 2 } });
  return backend;
}

describe('the app', () => {
  test('says so when it set aside unreadable settings, until dismissed', async () => {
    const backend = new FakeBackend({ name: null });
    backend.pending = [{ code: 'settings_unreadable', message: 'Your settings could not be read.' }];
    render(App, { props: { backend } });
    const notice = await screen.findByRole('alert');
    expect(notice.textContent).toContain('Your settings could not be read.');
    expect(await screen.findByLabelText('Your name')).toBeTruthy();
    await userEvent.click(screen.getByRole('button', { name: 'Dismiss' }));
    expect(screen.queryByRole('alert')).toBeNull();
  });

  test('asks a first-time user for a name, then starts hosting', async () => {
    const backend = await openApp({ name: null });
    const name = await screen.findByLabelText('Your name');
    const start = screen.getByRole('button', { name: 'Start chatting' });
    expect(start).toHaveProperty('disabled', true);
    await userEvent.type(name, 'Ada');
    await userEvent.click(start);
    await waitFor(() => expect(backend.callsTo('start')).toHaveLength(1));
    expect(backend.callsTo('applySettings')[0][0]).toMatchObject({ name: 'Ada', mode: 'host' });
  });

  test('starts the chat again only when the app says the change needs it', async () => {
    // jsdom has no modal dialogs; the real window's is tested in tests/e2e.
    HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) { this.open = true; };
    const backend = await openChat();
    backend.emit({ type: 'message', data: { message: message(bob, 'kept across a rename'), confirms: null, fresh: true } });
    await screen.findByText('kept across a rename');
    const save = async (applied: 'unchanged' | 'reconnecting' | 'restart') => {
      backend.applied = applied;
      await userEvent.click(screen.getByRole('button', { name: 'Settings' }));
      await userEvent.click(await screen.findByRole('button', { name: 'Save' }));
      await waitFor(() => expect(screen.queryByRole('button', { name: 'Save' })).toBeNull());
    };
    await save('unchanged');
    await save('reconnecting');
    expect(backend.callsTo('start')).toHaveLength(1);
    expect(screen.getByText('kept across a rename')).toBeTruthy();
    await save('restart');
    await waitFor(() => expect(backend.callsTo('start')).toHaveLength(2));
    expect(screen.queryByText('kept across a rename')).toBeNull();
  });

  test('shows the room, the connection and who is online', async () => {
    const backend = await openChat();
    expect(await screen.findByRole('heading', { name: '#general' })).toBeTruthy();
    expect(screen.getByText('Connected')).toBeTruthy();
    expect(screen.getByText('2 online')).toBeTruthy();
    backend.emit({ type: 'state', data: { status: 'reconnecting', attempt: 1, delayMs: 3_000 } });
    expect((await screen.findAllByText(/Reconnecting in [23] s/)).length).toBeGreaterThan(0);
    // Offline: a banner says so, no online count is shown, and the button asks to try now.
    expect(screen.queryByText('2 online')).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: 'Reconnect now' }));
    expect(backend.callsTo('checkConnection')).toHaveLength(1);
    backend.emit({ type: 'state', data: { status: 'connected' } });
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Reconnect now' })).toBeNull());
  });

  test('Enter sends, Shift+Enter starts a new line, and the button waits for text', async () => {
    const backend = await openChat();
    const field = await screen.findByRole('textbox', { name: 'Message' });
    const send = screen.getByRole('button', { name: 'Send' });
    expect(send).toHaveProperty('disabled', true);
    await userEvent.type(field, 'line one{Shift>}{Enter}{/Shift}line two');
    expect(backend.callsTo('send')).toEqual([]);
    expect(send).toHaveProperty('disabled', false);
    await userEvent.type(field, '{Enter}');
    expect(backend.callsTo('send')).toEqual([['general', 'line one\nline two']]);
    expect((field as HTMLTextAreaElement).value).toBe('');
  });

  test('says in words how much is left near the limit, how much is over past it, and why Enter did nothing', async () => {
    const backend = await openChat(); // the session's limit is 20 characters
    const field = await screen.findByRole('textbox', { name: 'Message' });
    await userEvent.type(field, 'x'.repeat(19));
    expect(screen.getByText('1 character left')).toBeTruthy();
    await userEvent.type(field, 'xx');
    expect(screen.getByText('1 character over the 20-character limit')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', true);
    await userEvent.type(field, '{Enter}');
    expect(screen.getByText('1 character over the 20-character limit: shorten it to send')).toBeTruthy();
    expect(backend.callsTo('send')).toEqual([]);
    expect(field.getAttribute('aria-invalid')).toBe('true');
  });

  test('keeps one draft per room, across a room switch and a restart of the app', async () => {
    const backend = await openChat();
    const field = await screen.findByRole('textbox', { name: 'Message' });
    await userEvent.type(field, 'half a thought');
    backend.emit({ type: 'joined', data: { room: 'random' } });
    await userEvent.click(await screen.findByRole('button', { name: '#random' }));
    await waitFor(() => expect((field as HTMLTextAreaElement).value).toBe(''));
    await userEvent.type(field, 'for random{Enter}');
    expect(backend.callsTo('send')).toEqual([['random', 'for random']]);
    await userEvent.click(screen.getByRole('button', { name: '#general' }));
    await waitFor(() => expect((field as HTMLTextAreaElement).value).toBe('half a thought'));
    // The app starts again (the same app files): the draft is still there, the sent one is not.
    await waitFor(() => expect(backend.storedDrafts).toEqual({ general: 'half a thought' }));
    cleanup();
    await openChat(backend);
    const again = await screen.findByRole('textbox', { name: 'Message' });
    await waitFor(() => expect((again as HTMLTextAreaElement).value).toBe('half a thought'));
  });

  test('sets own messages apart and shows pending, sent and failed states', async () => {
    const backend = await openChat();
    backend.emit({ type: 'message', data: { message: message(bob, 'hi Ada'), confirms: null, fresh: true } });
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'on its way', action: { kind: 'send' } } });
    backend.emit({ type: 'pending', data: { localId: 'l2', room: 'general', text: 'refused', action: { kind: 'send' } } });
    backend.emit({ type: 'failed', data: { localId: 'l2', error: { code: 'too_long', message: 'too long' }, resendable: false } });
    expect(await screen.findByText('Sending…')).toBeTruthy();
    expect(screen.getByText('Not sent: too long')).toBeTruthy();
    backend.emit({ type: 'message', data: { message: message(ada, 'on its way', { clientId: 'l1' }), confirms: 'l1', fresh: true } });
    await waitFor(() => expect(screen.queryByText('Sending…')).toBeNull());
    expect(screen.getByLabelText('Sent')).toBeTruthy();
    const own = screen.getByText('on its way').closest('article');
    expect(own?.classList.contains('own')).toBe(true);
    expect(screen.getByText('hi Ada').closest('article')?.classList.contains('own')).toBe(false);
    // Refused for good: no Retry, but Edit, Copy and Discard.
    expect(screen.queryByRole('button', { name: 'Retry' })).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: 'Edit' }));
    const field = screen.getByRole('textbox', { name: 'Message' }) as HTMLTextAreaElement;
    await waitFor(() => expect(field.value).toBe('refused'));
    expect(screen.queryByText('Not sent: too long')).toBeNull();
  });

  test('a message refused for a room not joined offers Retry; any failed one can be discarded', async () => {
    const backend = await openChat();
    backend.emit({ type: 'pending', data: { localId: 'l3', room: 'general', text: 'lost room', action: { kind: 'send' } } });
    backend.emit({ type: 'failed', data: { localId: 'l3', error: { code: 'not_joined', message: 'join first' }, resendable: true } });
    await userEvent.click(await screen.findByRole('button', { name: 'Retry' }));
    expect(backend.callsTo('send')).toEqual([['general', 'lost room']]);
    backend.emit({ type: 'pending', data: { localId: 'l4', room: 'general', text: 'never mind', action: { kind: 'send' } } });
    backend.emit({ type: 'failed', data: { localId: 'l4', error: { code: 'empty', message: 'empty' }, resendable: false } });
    await userEvent.click(await screen.findByRole('button', { name: 'Discard' }));
    expect(screen.queryByText('never mind')).toBeNull();
  });

  test('renders message text as text and opens only http(s) links, in the system browser', async () => {
    const backend = await openChat();
    const text = '<img src=x onerror=alert(1)> see https://example.org';
    backend.emit({ type: 'message', data: { message: message(bob, text), confirms: null, fresh: true } });
    const link = await screen.findByRole('link', { name: 'https://example.org' });
    expect(document.querySelector('.messages img')).toBeNull();
    expect(screen.getByText(/<img src=x onerror=alert\(1\)> see/)).toBeTruthy();
    await userEvent.click(link);
    expect(backend.callsTo('openUrl')).toEqual([['https://example.org']]);
  });

  test('groups consecutive messages of one author', async () => {
    const backend = await openChat();
    for (const text of ['one', 'two']) backend.emit({ type: 'message', data: { message: message(bob, text), confirms: null, fresh: true } });
    backend.emit({ type: 'message', data: { message: message(ada, 'three'), confirms: null, fresh: true } });
    await screen.findByText('three');
    const articles = [...document.querySelectorAll('.messages article')];
    expect(articles.map((a) => a.classList.contains('continued'))).toEqual([false, true, false]);
  });

  test('older history is asked for only once the reader goes up, not while the first messages come', async () => {
    // jsdom lays nothing out: the list's sizes are set by hand, and it never resizes.
    vi.stubGlobal('ResizeObserver', class { observe() {} disconnect() {} });
    const backend = await openChat();
    for (let i = 0; i < 5; i += 1) {
      backend.emit({ type: 'message', data: { message: message(bob, `m${i}`, { seq: 100 + i }), confirms: null, fresh: false } });
    }
    const list = await screen.findByRole('log');
    // The first messages, a little higher than the view, at their end: near the top, and at
    // the bottom.
    Object.defineProperties(list, { scrollHeight: { value: 50, configurable: true } });
    list.scrollTop = 20;
    list.dispatchEvent(new Event('scroll'));
    expect(backend.callsTo('history')).toEqual([]);
    // Gone up, in a taller list: the older page is asked for.
    Object.defineProperties(list, { scrollHeight: { value: 3000, configurable: true } });
    list.scrollTop = 100;
    list.dispatchEvent(new Event('scroll'));
    await waitFor(() => expect(backend.callsTo('history')).toEqual([['general', 100]]));
    vi.unstubAllGlobals();
  });

  test("a crowd shows its count, and typed letters search the server's rooms", async () => {
    const backend = await openChat();
    backend.emit({ type: 'online', data: { room: 'general', users: [ada, bob], count: 5000 } });
    // The count opens the list of who is online, by touch or keyboard; it pages the rest.
    await userEvent.click(await screen.findByRole('button', { name: '5000 online' }));
    const list = screen.getByRole('region', { name: 'Online in #general' });
    expect(list.textContent).toContain('Ada (you)');
    expect(list.textContent).toContain('Bob');
    await userEvent.click(screen.getByRole('button', { name: 'Show more (4998 not listed)' }));
    expect(backend.callsTo('loadMoreOnline')).toEqual([['general']]);
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('region', { name: 'Online in #general' })).toBeNull();
    const field = screen.getByLabelText('Join or create');
    await userEvent.type(field, 'ru');
    await waitFor(() => expect(backend.callsTo('findRooms')).toContainEqual(['ru', null]));
    backend.emit({ type: 'rooms', data: { prefix: 'ru', rooms: ['ruby', 'rust'], next: null } });
    expect(await screen.findByRole('button', { name: '#rust' })).toBeTruthy();
    expect(screen.getByRole('heading', { name: 'Matching rooms' })).toBeTruthy();
  });

  test('joins a room from the room list, and checks its name first', async () => {
    const backend = await openChat();
    const field = screen.getByLabelText('Join or create');
    await userEvent.type(field, 'Bad Name');
    expect(screen.getByRole('button', { name: 'Join' })).toHaveProperty('disabled', true);
    await userEvent.clear(field);
    await userEvent.type(field, 'rust-fr{Enter}');
    expect(backend.callsTo('join')).toEqual([['rust-fr']]);
    backend.emit({ type: 'joined', data: { room: 'rust-fr' } });
    expect(await screen.findByRole('heading', { name: '#rust-fr' })).toBeTruthy();
  });

  test('shows who is typing', async () => {
    const backend = await openChat();
    backend.emit({ type: 'typing', data: { room: 'general', users: [bob] } });
    expect(await screen.findByText('Bob is typing…')).toBeTruthy();
  });
});

describe('unread messages', () => {
  // jsdom's document never has the focus; the real window's does (tests/e2e).
  beforeEach(() => { vi.spyOn(document, 'hasFocus').mockReturnValue(true); });
  afterEach(() => { vi.restoreAllMocks(); });

  test('each room shows its count, the title the total, and the room on screen is read', async () => {
    const backend = await openChat();
    backend.emit({ type: 'joined', data: { room: 'dev' } });
    backend.emit({ type: 'unread', data: { room: 'general', read: 0, count: 0, mentions: 0 } });
    backend.emit({ type: 'unread', data: { room: 'dev', read: 4, count: 3, mentions: 0 } });
    const dev = await screen.findByRole('button', { name: /^#dev/ });
    await waitFor(() => expect(dev.querySelector('.badge')?.textContent).toBe('3'));
    expect(dev.querySelector('.badge')?.getAttribute('aria-label')).toBe('3 unread');
    await waitFor(() => expect(document.title).toBe('(3) Causerie'));
    expect(backend.title).toBe('(3) Causerie');

    // A message in the room on screen, at its end, with the window focused: read at once.
    const seen = message(bob, 'seen as it came');
    backend.emit({ type: 'message', data: { message: seen, confirms: null, fresh: true } });
    await waitFor(() => expect(backend.callsTo('markRead')).toContainEqual(['general', seen.seq]));
    // The server's count carries past 999 as "999+".
    backend.emit({ type: 'unread', data: { room: 'dev', read: 4, count: 1000, mentions: 0 } });
    await waitFor(() => expect(document.title).toBe('(999+) Causerie'));
    backend.emit({ type: 'unread', data: { room: 'dev', read: 1004, count: 0, mentions: 0 } });
    await waitFor(() => expect(document.title).toBe('Causerie'));
    expect(dev.querySelector('.badge')).toBeNull();
  });

  test('a divider marks the first unread message, and nothing is read while the window is away', async () => {
    const backend = await openChat();
    const first = message(bob, 'already read');
    const second = message(bob, 'first unread');
    const third = message(bob, 'second unread');
    backend.emit({ type: 'unread', data: { room: 'general', read: first.seq, count: 2, mentions: 0 } });
    for (const m of [first, second, third]) backend.emit({ type: 'message', data: { message: m, confirms: null, fresh: true } });
    const divider = await screen.findByText('New messages');
    const next = divider.parentElement?.nextElementSibling;
    expect(next?.textContent).toContain('first unread');
    // On screen, so read; the divider stays while the room is open.
    await waitFor(() => expect(backend.callsTo('markRead')).toContainEqual(['general', third.seq]));
    backend.emit({ type: 'unread', data: { room: 'general', read: third.seq, count: 0, mentions: 0 } });

    // Away from the window: what comes is not read, and the divider stays where it was.
    vi.mocked(document.hasFocus).mockReturnValue(false);
    window.dispatchEvent(new Event('blur'));
    const reads = backend.callsTo('markRead').length;
    backend.emit({ type: 'message', data: { message: message(bob, 'while away'), confirms: null, fresh: true } });
    await screen.findByText('while away');
    expect(backend.callsTo('markRead')).toHaveLength(reads);
    expect(screen.getAllByText('New messages')).toHaveLength(1);
    // Back: it is read then.
    vi.mocked(document.hasFocus).mockReturnValue(true);
    window.dispatchEvent(new Event('focus'));
    await waitFor(() => expect(backend.callsTo('markRead')).toHaveLength(reads + 1));
  });
});

describe('search', () => {
  test('asks as the user pauses, lists what was found with its room, and goes to a result', async () => {
    const backend = await openChat();
    await userEvent.click(await screen.findByRole('button', { name: 'Search messages' }));
    const field = await screen.findByRole('searchbox', { name: 'Search messages' });
    await userEvent.type(field, 'lunch');
    await waitFor(() => expect(backend.callsTo('search')).toEqual([['lunch', null]]));
    const found = message(bob, 'Lunch at noon?', { room: 'dev', seq: 40 });
    backend.emit({ type: 'search', data: { query: 'lunch', results: [found], next: 'x' } });
    const result = await screen.findByRole('button', { name: /#dev · Bob/ });
    expect(result.querySelector('mark')?.textContent).toBe('Lunch');
    await userEvent.click(screen.getByRole('button', { name: 'Older results' }));
    expect(backend.callsTo('search')[1]).toEqual(['lunch', 'x']);
    // A stale answer (for what was typed before) is not shown.
    backend.emit({ type: 'search', data: { query: 'lun', results: [message(bob, 'lunar')], next: null } });
    expect(screen.queryByText('lunar')).toBeNull();
    await userEvent.click(result);
    expect(backend.callsTo('around')).toEqual([['dev', 40]]);
    expect(screen.queryByRole('searchbox')).toBeNull();
  });
});

describe('mentions', () => {
  test('@ completes from the room\'s people, and what is picked is mentioned when sent', async () => {
    const backend = await openChat();
    const field = await screen.findByLabelText('Message');
    await userEvent.type(field, 'hey @b');
    const option = await screen.findByRole('option', { name: '@Bob' });
    expect(option.getAttribute('aria-selected')).toBe('true');
    await userEvent.keyboard('{Enter}');
    expect((field as HTMLTextAreaElement).value).toBe('hey @Bob ');
    await userEvent.type(field, 'lunch?{Enter}');
    await waitFor(() => expect(backend.callsTo('send')).toEqual([['general', 'hey @Bob lunch?', ['u-bob']]]));
    // A name taken out of the text before sending is not mentioned.
    await userEvent.type(field, '@b{Tab}');
    await userEvent.clear(field);
    await userEvent.type(field, 'never mind{Enter}');
    await waitFor(() => expect(backend.callsTo('send')[1]).toEqual(['general', 'never mind']));
  });

  test('a message mentioning the user stands out, and its room counts it apart', async () => {
    const backend = await openChat();
    backend.emit({ type: 'joined', data: { room: 'dev' } });
    backend.emit({ type: 'unread', data: { room: 'dev', read: 0, count: 3, mentions: 1 } });
    const dev = await screen.findByRole('button', { name: /^#dev/ });
    await waitFor(() => expect(dev.querySelector('.badge.mention')?.textContent).toBe('@1'));
    backend.emit({ type: 'message', data: { message: message(bob, '@Ada look', { mentions: [ada.id] }), confirms: null, fresh: true } });
    const line = (await screen.findByText('@Ada look')).closest('article');
    expect(line?.classList.contains('mentioned')).toBe(true);
  });
});

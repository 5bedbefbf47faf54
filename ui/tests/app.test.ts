import { cleanup, render, screen, waitFor } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, test } from 'vitest';
import App from '../src/App.svelte';
import { FakeBackend, ada, bob, message, session } from './fake-backend';

afterEach(cleanup);

async function openApp(settings = {}) {
  const backend = new FakeBackend(settings);
  render(App, { props: { backend } });
  return backend;
}

async function openChat() {
  const backend = await openApp();
  await waitFor(() => expect(backend.callsTo('start')).toHaveLength(1));
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
    expect(backend.callsTo('saveSettings')[0][0]).toMatchObject({ name: 'Ada', mode: 'host' });
  });

  test('shows the room, the connection and who is online', async () => {
    const backend = await openChat();
    expect(await screen.findByRole('heading', { name: '#general' })).toBeTruthy();
    expect(screen.getByText('Connected')).toBeTruthy();
    expect(screen.getByText('2 online')).toBeTruthy();
    backend.emit({ type: 'state', data: { status: 'reconnecting', attempt: 1, delayMs: 3_000 } });
    expect(await screen.findByText(/Reconnecting in [23] s/)).toBeTruthy();
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

  test('counts down near the length limit and refuses past it', async () => {
    await openChat(); // the session's limit is 20 characters
    const field = await screen.findByRole('textbox', { name: 'Message' });
    await userEvent.type(field, 'x'.repeat(19));
    expect(screen.getByText('1')).toBeTruthy();
    await userEvent.type(field, 'xx');
    expect(screen.getByText('-1')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Send' })).toHaveProperty('disabled', true);
  });

  test('sets own messages apart and shows pending, sent and failed states', async () => {
    const backend = await openChat();
    backend.emit({ type: 'message', data: { message: message(bob, 'hi Ada'), confirms: null } });
    backend.emit({ type: 'pending', data: { localId: 'l1', room: 'general', text: 'on its way' } });
    backend.emit({ type: 'pending', data: { localId: 'l2', room: 'general', text: 'refused' } });
    backend.emit({ type: 'failed', data: { localId: 'l2', error: { code: 'too_long', message: 'too long' } } });
    expect(await screen.findByLabelText('Sending')).toBeTruthy();
    expect(screen.getByText('Not sent: too long')).toBeTruthy();
    backend.emit({ type: 'message', data: { message: message(ada, 'on its way', { clientId: 'l1' }), confirms: 'l1' } });
    await waitFor(() => expect(screen.queryByLabelText('Sending')).toBeNull());
    expect(screen.getByLabelText('Sent')).toBeTruthy();
    const own = screen.getByText('on its way').closest('article');
    expect(own?.classList.contains('own')).toBe(true);
    expect(screen.getByText('hi Ada').closest('article')?.classList.contains('own')).toBe(false);
    await userEvent.click(screen.getByRole('button', { name: 'Retry' }));
    expect(backend.callsTo('send')).toEqual([['general', 'refused']]);
  });

  test('renders message text as text and opens only http(s) links, in the system browser', async () => {
    const backend = await openChat();
    const text = '<img src=x onerror=alert(1)> see https://example.org';
    backend.emit({ type: 'message', data: { message: message(bob, text), confirms: null } });
    const link = await screen.findByRole('link', { name: 'https://example.org' });
    expect(document.querySelector('.messages img')).toBeNull();
    expect(screen.getByText(/<img src=x onerror=alert\(1\)> see/)).toBeTruthy();
    await userEvent.click(link);
    expect(backend.callsTo('openUrl')).toEqual([['https://example.org']]);
  });

  test('groups consecutive messages of one author', async () => {
    const backend = await openChat();
    for (const text of ['one', 'two']) backend.emit({ type: 'message', data: { message: message(bob, text), confirms: null } });
    backend.emit({ type: 'message', data: { message: message(ada, 'three'), confirms: null } });
    await screen.findByText('three');
    const articles = [...document.querySelectorAll('.messages article')];
    expect(articles.map((a) => a.classList.contains('continued'))).toEqual([false, true, false]);
  });

  test("a crowd shows its count, and typed letters search the server's rooms", async () => {
    const backend = await openChat();
    backend.emit({ type: 'online', data: { room: 'general', users: [ada, bob], count: 5000 } });
    const count = await screen.findByText('5000 online');
    expect(count.getAttribute('title')).toBe('Ada, Bob and 4998 more');
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
    backend.emit({ type: 'typing', data: { room: 'general', user: bob, typing: true } });
    expect(await screen.findByText('Bob is typing…')).toBeTruthy();
  });
});

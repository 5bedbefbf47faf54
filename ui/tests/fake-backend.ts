// A backend for component tests: records what the UI asks, and lets a test play the core
// client's events.
import type { Backend } from '../src/lib/backend';
import type { AlertLevel, AppNotice, Applied, ChatInfo, ClientEvent, Message, Session, Settings, User } from '../src/lib/types';

export class FakeBackend implements Backend {
  calls: { method: string; args: unknown[] }[] = [];
  stored: Settings;
  /** Given once by `notices()`, as the app does. */
  pending: AppNotice[] = [];
  private listener: ((event: ClientEvent) => void) | null = null;
  private ids = 0;

  constructor(settings: Partial<Settings> = {}) {
    this.stored = { mode: 'host', serverUrl: null, hostOnLan: false, port: 3000, joinCode: null, name: 'Ada', ...settings };
  }

  private record(method: string, ...args: unknown[]) {
    this.calls.push({ method, args });
  }

  callsTo(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** Plays an event as the core client would send it. */
  emit(event: ClientEvent) {
    if (!this.listener) throw new Error('the chat was not started');
    this.listener(event);
  }

  async start(onEvent: (event: ClientEvent) => void): Promise<ChatInfo> {
    this.record('start');
    this.listener = onEvent;
    return { serverUrl: 'http://127.0.0.1:3000', hosting: { lanUrls: [], joinCode: null } };
  }
  async send(room: string, text: string, mentions: string[] = []) { this.record('send', room, text, ...(mentions.length ? [mentions] : [])); this.ids += 1; return `local-${this.ids}`; }
  async reply(room: string, target: number, text: string, mentions: string[] = []) { this.record('reply', room, target, text, ...(mentions.length ? [mentions] : [])); this.ids += 1; return `local-${this.ids}`; }
  async around(room: string, seq: number) { this.record('around', room, seq); }
  async search(query: string, after: string | null) { this.record('search', query, after); }
  async openDirect(user: string) { this.record('openDirect', user); }
  async react(room: string, target: number, emoji: string) { this.record('react', room, target, emoji); this.ids += 1; return `local-${this.ids}`; }
  async edit(room: string, target: number, text: string) { this.record('edit', room, target, text); this.ids += 1; return `local-${this.ids}`; }
  async remove(room: string, target: number) { this.record('remove', room, target); this.ids += 1; return `local-${this.ids}`; }
  async history(room: string, before: number | null) { this.record('history', room, before); }
  async join(room: string) { this.record('join', room); }
  async leave(room: string) { this.record('leave', room); }
  async typing(room: string, typing: boolean) { this.record('typing', room, typing); }
  async markRead(room: string, seq: number) { this.record('markRead', room, seq); }
  title = 'Causerie';
  async setTitle(title: string) { this.title = title; }
  async findRooms(prefix: string, after: string | null) { this.record('findRooms', prefix, after); }
  async loadMoreOnline(room: string) { this.record('loadMoreOnline', room); }
  /** Kept across starts, as the app's file is. */
  storedDrafts: Record<string, string> = {};
  async drafts() { return { ...this.storedDrafts }; }
  async saveDrafts(drafts: Record<string, string>) { this.record('saveDrafts', drafts); this.storedDrafts = { ...drafts }; }
  async settings() { return { ...this.stored }; }
  /** What the next saves say they did (the app decides; see src-tauri/tests/core.rs). */
  applied: Applied = 'restart';
  async applySettings(settings: Settings) { this.record('applySettings', settings); this.stored = settings; return this.applied; }
  async checkConnection() { this.record('checkConnection'); }
  async notices() { const given = this.pending; this.pending = []; return given; }
  async openUrl(url: string) { this.record('openUrl', url); }
  async notify(room: string, title: string, body: string) { this.record('notify', room, title, body); }
  async withdrawNotification(room: string) { this.record('withdrawNotification', room); }
  async askNotifications() { this.record('askNotifications'); return true; }
  private opened: ((room: string) => void) | null = null;
  async onNotificationOpened(open: (room: string) => void) { this.opened = open; return () => { this.opened = null; }; }
  /** Plays a click on a notification of `room`. */
  clickNotification(room: string) { this.opened?.(room); }
  /** Kept across starts, as the app's settings are. */
  storedAlerts: Record<string, AlertLevel> = {};
  async alerts() { return { ...this.storedAlerts }; }
  async setAlert(room: string, level: AlertLevel) { this.record('setAlert', room, level); if (level === 'mentions') delete this.storedAlerts[room]; else this.storedAlerts[room] = level; }
}

export const ada: User = { id: 'u-ada', name: 'Ada' };
export const bob: User = { id: 'u-bob', name: 'Bob' };

export function session(user: User = ada): Session {
  return {
    user,
    token: 't',
    rooms: ['general'],
    roomsNext: null,
    limits: {
      maxMessageChars: 20, maxNameChars: 32, maxRoomChars: 32, maxClientIdChars: 64, editWindowSecs: 86400,
      maxHistoryLimit: 200, maxPayloadBytes: 65536, rateLimitPerSecond: 5, rateLimitBurst: 10,
      maxJoinedRooms: 100,
    },
    server: { name: 'causerie', version: '0.1.0' },
  };
}

let seq = 0;
export function message(author: User, text: string, extra: Partial<Message> = {}): Message {
  seq += 1;
  return {
    id: `m-${seq}`, clientId: `c-${seq}`, room: 'general', seq, asOf: 0, author, text,
    sentAt: new Date(Date.UTC(2026, 10, 25, 9, 0, seq)).toISOString(), ...extra,
  };
}

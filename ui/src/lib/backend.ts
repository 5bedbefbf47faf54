// The one way the UI reaches the app: an interface, implemented over Tauri in tauri-backend.ts
// and by a fake in the tests.
import type { AlertLevel, AppNotice, Applied, ChatInfo, ClientEvent, LocalId, Settings } from './types';

export interface Backend {
  /** Starts (or restarts) the chat; every event of the core client reaches `onEvent`, in order. */
  start(onEvent: (event: ClientEvent) => void): Promise<ChatInfo>;
  /** Sends `text`, mentioning the people whose ids are `mentions`. */
  send(room: string, text: string, mentions: string[]): Promise<LocalId>;
  /** Sends `text` as an answer to the message at seq `target`. */
  reply(room: string, target: number, text: string, mentions: string[]): Promise<LocalId>;
  /** Toggles the user's reaction `emoji` to the message at seq `target`; confirmed by a
   *  `change` event. */
  react(room: string, target: number, emoji: string): Promise<LocalId>;
  /** Opens the direct conversation with a user; it arrives as a `direct` event. */
  openDirect(user: string): Promise<void>;
  /** Searches the user's rooms; the results arrive as a `search` event. */
  search(query: string, after: string | null): Promise<void>;
  /** The messages around seq `seq`; they arrive as an `around` event. */
  around(room: string, seq: number): Promise<void>;
  /** Edits the user's message at seq `target`; confirmed by a `change` event. */
  edit(room: string, target: number, text: string): Promise<LocalId>;
  /** Deletes the user's message at seq `target`; confirmed by a `change` event. */
  remove(room: string, target: number): Promise<LocalId>;
  history(room: string, before: number | null): Promise<void>;
  join(room: string): Promise<void>;
  leave(room: string): Promise<void>;
  typing(room: string, typing: boolean): Promise<void>;
  /** The user has read `room` up to `seq`; its count arrives as an `unread` event. */
  markRead(room: string, seq: number): Promise<void>;
  /** The window's title (where the system shows it: the task bar, the window list). */
  setTitle(title: string): Promise<void>;
  /** Rooms whose name starts with `prefix`, after `after`; they arrive as a `rooms` event. */
  findRooms(prefix: string, after: string | null): Promise<void>;
  /** More of the people online in `room`; they arrive in the next `online` event. */
  loadMoreOnline(room: string): Promise<void>;
  /** The running chat's drafts by room, as last saved. */
  drafts(): Promise<Record<string, string>>;
  /** Keeps the running chat's drafts (all of them), so that they outlive a restart. */
  saveDrafts(drafts: Record<string, string>): Promise<void>;
  settings(): Promise<Settings>;
  /** Keeps the settings and applies what it can to the running chat. */
  applySettings(settings: Settings): Promise<Applied>;
  checkConnection(): Promise<void>;
  /** What the app did by itself at start that the user should know (each is given once). */
  notices(): Promise<AppNotice[]>;
  /** Opens an http(s) link in the system browser. */
  openUrl(url: string): Promise<void>;
  /** Shows a system notification of `room`; a click on it comes back to `onNotificationOpened`. */
  notify(room: string, title: string, body: string): Promise<void>;
  /** Takes back the notification of `room`: it was read. */
  withdrawNotification(room: string): Promise<void>;
  /** Asks the system for the permission to notify (phones ask the user); whether granted. */
  askNotifications(): Promise<boolean>;
  /** Calls `open` with the room of each notification the user clicks. */
  onNotificationOpened(open: (room: string) => void): Promise<() => void>;
  /** The running chat's notification levels of the rooms not at the default. */
  alerts(): Promise<Record<string, AlertLevel>>;
  /** Keeps the notification level of a room of the running chat. */
  setAlert(room: string, level: AlertLevel): Promise<void>;
}

// The types the UI speaks: generated from Rust (see the bindings' own headers), re-exported here.
export type {
  ErrorBody, HistoryPage, Limits, Message, Presence, Typing, User,
} from '../../../crates/causerie-protocol/bindings/protocol';
export { DEFAULT_ROOM, MAX_ROOM_CHARS } from '../../../crates/causerie-protocol/bindings/protocol';
export type {
  ClientEvent, ConnectionState, LocalId, OutboxEntry, Session,
} from '../../../crates/causerie-client/bindings/events';

/** The app's settings (src-tauri/src/settings.rs). */
export interface Settings {
  mode: 'host' | 'join';
  serverUrl: string | null;
  hostOnLan: boolean;
  port: number;
  joinCode: string | null;
  name: string | null;
  tokens?: Record<string, string>;
  /** Rooms joined beside general, by server: the app's, kept as they are. */
  rooms?: Record<string, string[]>;
}

/** What saving settings did to the running chat (src-tauri/src/core.rs): nothing it uses
 *  changed; the same chat reconnects under the new name or code; or another chat must start. */
export type Applied = 'unchanged' | 'reconnecting' | 'restart';

/** What the app says about the running chat (src-tauri/src/core.rs). */
export interface ChatInfo {
  serverUrl: string;
  hosting: { lanUrls: string[]; joinCode: string | null } | null;
}

/** Something the app did by itself, such as setting aside unreadable settings. */
export interface AppNotice {
  code: 'settings_unreadable';
  message: string;
}

/** An error of a command: a stable code and a sentence. */
export interface AppError {
  code: string;
  message: string;
}

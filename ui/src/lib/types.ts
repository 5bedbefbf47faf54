// The types the UI speaks: generated from Rust (see the bindings' own headers), re-exported here.
export type {
  Change, ErrorBody, HistoryPage, Limits, Message, Presence, Quote, Reaction, Typing, User,
} from '../../../crates/causerie-protocol/bindings/protocol';
export {
  DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_ROOM, DIRECT_ROOM_PREFIX, MAX_NAME_CHARS, MAX_REACTORS_LISTED, MAX_ROOM_CHARS,
  MAX_UNREAD_COUNTED,
  TYPING_IDLE_MS,
} from '../../../crates/causerie-protocol/bindings/protocol';
export type {
  ClientEvent, ConnectionState, LocalId, OutboxEntry, Session,
} from '../../../crates/causerie-client/bindings/events';

export type {
  AlertLevel, Applied, AppError, ChatInfo, Hosting, Mode, Notice as AppNotice, Settings,
} from '../../../src-tauri/bindings/app';

// When a message calls for a system notification, and what it says. The rules people know from
// other chat apps: only while the window is in the background; never for the user's own
// messages, nor for what they already read (on another device); per room, every message, only
// those that mention them (the default; in a direct conversation, every message), or none.
import type { AlertLevel, Message } from './types';

export const DEFAULT_ALERT: AlertLevel = 'mentions';

/** One notification per room at most this often: a burst (a busy room, a catch-up after a
 *  reconnection) makes one, and the room's count says the rest. */
export const ALERT_PACE_MS = 5_000;

export interface AlertContext {
  /** The user's id. */
  me: string | null;
  /** Whether the user sees the window. */
  focused: boolean;
  level: AlertLevel;
  /** Whether the room is a direct conversation. */
  direct: boolean;
  /** How the room is called (`#general`, or the other person's name). */
  roomTitle: string;
  mentionsMe: boolean;
  /** The room's read marker, when known: what is at or below it was read. */
  readUpTo: number | null;
  /** The newest seq of the room notified so far, and when. */
  notified: { seq: number; at: number } | null;
  now: number;
}

/** The notification `message` calls for, if any. */
export function alertFor(message: Message, context: AlertContext): { title: string; body: string } | null {
  const { me, focused, level, direct, mentionsMe, readUpTo, notified, now } = context;
  if (focused || me === null || message.author.id === me || message.deleted) return null;
  if (readUpTo === null || message.seq <= readUpTo) return null;
  if (notified && (message.seq <= notified.seq || now - notified.at < ALERT_PACE_MS)) return null;
  if (level === 'none' || (level === 'mentions' && !direct && !mentionsMe)) return null;
  // Made one plain line, cut and escaped by the app (src-tauri/src/notifications.rs).
  const title = direct ? message.author.name : `${message.author.name} in ${context.roomTitle}`;
  return { title, body: message.text };
}

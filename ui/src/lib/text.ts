// Message text is shown as text, never as HTML; links become parts the view renders as anchors.
import { MAX_ROOM_CHARS } from './types';

export type TextPart = { kind: 'text'; text: string } | { kind: 'link'; text: string; url: string };

const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"']+/gi;

/** How much of `url` is the link: trailing punctuation is the sentence's, and a closing bracket
 *  is the link's only when the link opened it (`https://en.wikipedia.org/wiki/Rust_(language)`
 *  keeps its `)`, `(see https://example.org)` does not). */
function trimLink(url: string): string {
  let end = url.length;
  for (;;) {
    const char = url[end - 1];
    if ('.,;:!?\'"'.includes(char)) {
      end -= 1;
      continue;
    }
    const open = char === ')' ? '(' : char === ']' ? '[' : null;
    if (open) {
      const body = url.slice(0, end);
      if (body.split(open).length < body.split(char).length) {
        end -= 1;
        continue;
      }
    }
    return url.slice(0, end);
  }
}

/** Splits `text` into plain parts and links: http(s) addresses, and `www.` ones (opened as
 *  https). */
export function linkify(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    const link = trimLink(match[0]);
    const start = match.index ?? 0;
    if (link.length <= 4 || start < last) continue;
    if (start > last) parts.push({ kind: 'text', text: text.slice(last, start) });
    const url = /^www\./i.test(link) ? `https://${link}` : link;
    parts.push({ kind: 'link', text: link, url });
    last = start + link.length;
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  return parts;
}

/** Whether `url` may be opened: http and https only. */
export function isOpenable(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** Room names: 1 to MAX_ROOM_CHARS of a-z, 0-9, - and _. */
export const ROOM_NAME = new RegExp(`^[a-z0-9_-]{1,${MAX_ROOM_CHARS}}$`);

/** `HH:MM` in local time. */
export function clock(sentAt: string): string {
  const date = new Date(sentAt);
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** The full date and time of `sentAt`, for a tooltip. */
export function fullDate(sentAt: string): string {
  const date = new Date(sentAt);
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleString([], { dateStyle: 'full', timeStyle: 'short' });
}

/** The day of `sentAt` as a separator says it: "Today", "Yesterday", or the date. */
export function dayLabel(sentAt: string, now = new Date()): string {
  const date = new Date(sentAt);
  if (Number.isNaN(date.getTime())) return '';
  const day = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(now) - day(date)) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return date.toLocaleDateString([], {
    weekday: 'long', day: 'numeric', month: 'long',
    year: date.getFullYear() === now.getFullYear() ? undefined : 'numeric',
  });
}

/** Whether two instants fall on different local days. */
export function otherDay(a: string, b: string): boolean {
  return new Date(a).toDateString() !== new Date(b).toDateString();
}

/** A colour for a person's name and avatar, the same everywhere for the same id (hues chosen to
 *  read on the light and the dark theme alike). */
export function hueOf(id: string): number {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

/** The initials an avatar shows. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [name.trim()];
  return letters.map((w) => [...w][0] ?? '').join('').toUpperCase() || '?';
}

/** Beyond this, a message shows collapsed, with "Show more". */
export const LONG_TEXT_CHARS = 700;
export const LONG_TEXT_LINES = 12;

/** Whether `text` is long enough to be collapsed. */
export function isLong(text: string): boolean {
  return text.length > LONG_TEXT_CHARS || text.split('\n').length > LONG_TEXT_LINES;
}

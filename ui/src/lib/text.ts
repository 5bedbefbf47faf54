// Message text is shown as text, never as HTML; links become parts the view renders as anchors.

export type TextPart = { kind: 'text'; text: string } | { kind: 'link'; text: string; url: string };

const LINK = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Splits `text` into plain parts and http(s) links (trailing punctuation stays text). */
export function linkify(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let url = match[0];
    const trailing = /[.,;:!?)\]]+$/.exec(url)?.[0] ?? '';
    url = url.slice(0, url.length - trailing.length);
    const start = match.index ?? 0;
    if (start > last) parts.push({ kind: 'text', text: text.slice(last, start) });
    parts.push({ kind: 'link', text: url, url });
    last = start + url.length;
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

/** Room names: 1 to 32 of a-z, 0-9, - and _. */
export const ROOM_NAME = /^[a-z0-9_-]{1,32}$/;

/** `HH:MM` in local time. */
export function clock(sentAt: string): string {
  const date = new Date(sentAt);
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

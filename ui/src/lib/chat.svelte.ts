// The chat as the UI shows it, built from the core client's events. The core client already
// guarantees each message once and in order per room; this only arranges them for display.
import type { Backend } from './backend';
import type {
  ChatInfo, ClientEvent, ConnectionState, ErrorBody, Limits, Message, Session, User,
} from './types';
import { DEFAULT_ROOM } from './types';

/** A line of a room: a stored message, one of ours still on its way, or a notice. */
export type Line =
  | { kind: 'message'; key: string; message: Message }
  | { kind: 'pending'; key: string; localId: string; room: string; text: string; failed: ErrorBody | null }
  | { kind: 'notice'; key: string; text: string };

/** How long a typing notice lasts without a refresh. */
const TYPING_MS = 6_000;

export class Chat {
  connection = $state<ConnectionState>({ status: 'connecting' });
  /** When the state last changed, to count down a reconnection. */
  connectionSince = $state(Date.now());
  session = $state<Session | null>(null);
  info = $state<ChatInfo | null>(null);
  rooms = $state<string[]>([DEFAULT_ROOM]);
  knownRooms = $state<string[]>([]);
  current = $state(DEFAULT_ROOM);
  lines = $state<Record<string, Line[]>>({});
  /** Who is online in each room: the server's count, and those the core client lists. */
  online = $state<Record<string, { users: User[]; count: number }>>({});
  /** The latest answer to a search of rooms by prefix ("join or create"). */
  roomSearch = $state<{ prefix: string; rooms: string[] } | null>(null);
  typing = $state<Record<string, Record<string, { user: User; until: number }>>>({});
  /** Rooms whose oldest messages are all here. */
  complete = $state<Record<string, boolean>>({});
  loadingOlder = $state<Record<string, boolean>>({});
  error = $state<string | null>(null);

  constructor(private readonly backend: Backend) {}

  get me(): User | null {
    return this.session?.user ?? null;
  }

  get limits(): Limits | null {
    return this.session?.limits ?? null;
  }

  linesOf(room: string): Line[] {
    return this.lines[room] ?? [];
  }

  typingIn(room: string, now = Date.now()): User[] {
    return Object.values(this.typing[room] ?? {})
      .filter((t) => t.until > now && t.user.id !== this.me?.id)
      .map((t) => t.user);
  }

  /** Starts (or restarts, perhaps on another server) the chat, from a clean slate. */
  async start(): Promise<void> {
    this.reset();
    try {
      this.info = await this.backend.start((event) => this.apply(event));
      this.error = null;
    } catch (e) {
      this.error = describe(e);
    }
  }

  private reset(): void {
    this.connection = { status: 'connecting' };
    this.connectionSince = Date.now();
    this.session = null;
    this.info = null;
    this.rooms = [DEFAULT_ROOM];
    this.knownRooms = [];
    this.current = DEFAULT_ROOM;
    this.lines = {};
    this.online = {};
    this.roomSearch = null;
    this.typing = {};
    this.complete = {};
    this.loadingOlder = {};
    this.error = null;
  }

  async send(text: string): Promise<void> {
    const room = this.current;
    try {
      await this.backend.send(room, text);
      await this.backend.typing(room, false);
    } catch (e) {
      this.error = describe(e);
    }
  }

  /** Sends a failed message again, as a new message. */
  async retry(localId: string): Promise<void> {
    for (const [room, lines] of Object.entries(this.lines)) {
      const line = lines.find((l) => l.kind === 'pending' && l.localId === localId);
      if (line?.kind === 'pending') {
        this.lines[room] = lines.filter((l) => l !== line);
        await this.backend.send(room, line.text).catch((e) => { this.error = describe(e); });
      }
    }
  }

  async loadOlder(room: string): Promise<void> {
    if (this.complete[room] || this.loadingOlder[room]) return;
    const first = this.linesOf(room).find((l) => l.kind === 'message');
    if (first?.kind === 'message' && first.message.seq <= 1) {
      this.complete[room] = true;
      return;
    }
    this.loadingOlder[room] = true;
    await this.backend
      .history(room, first?.kind === 'message' ? first.message.seq : null)
      .catch((e) => { this.loadingOlder[room] = false; this.error = describe(e); });
  }

  async join(room: string): Promise<void> {
    await this.backend.join(room).catch((e) => { this.error = describe(e); });
    this.current = room;
  }

  async leave(room: string): Promise<void> {
    await this.backend.leave(room).catch((e) => { this.error = describe(e); });
  }

  /** Asks for the rooms whose name starts with `prefix`; they land in `roomSearch`. */
  async findRooms(prefix: string): Promise<void> {
    await this.backend.findRooms(prefix, null).catch((e) => { this.error = describe(e); });
  }

  /** Lists more of the people online in `room`, in a crowd. */
  async loadMoreOnline(room: string): Promise<void> {
    await this.backend.loadMoreOnline(room).catch((e) => { this.error = describe(e); });
  }

  /** Takes one event of the core client. */
  apply(event: ClientEvent): void {
    switch (event.type) {
      case 'state':
        this.connection = event.data;
        this.connectionSince = Date.now();
        break;
      case 'welcome':
        this.session = event.data;
        this.knownRooms = event.data.rooms;
        break;
      case 'online':
        this.online[event.data.room] = { users: event.data.users, count: event.data.count };
        break;
      case 'rooms':
        this.roomSearch = { prefix: event.data.prefix, rooms: event.data.rooms };
        break;
      case 'pending': {
        const { localId, room, text } = event.data;
        if (!this.linesOf(room).some((l) => l.key === localId)) {
          this.push(room, { kind: 'pending', key: localId, localId, room, text, failed: null });
        }
        break;
      }
      case 'message': {
        const { message, confirms } = event.data;
        const lines = this.linesOf(message.room).filter((l) => l.key !== confirms);
        // Stored messages stay in seq order, above our own still on their way.
        const firstPending = lines.findIndex((l) => l.kind === 'pending');
        const line: Line = { kind: 'message', key: message.id, message };
        if (firstPending < 0) lines.push(line);
        else lines.splice(firstPending, 0, line);
        this.lines[message.room] = lines;
        const typing = this.typing[message.room];
        if (typing) delete typing[message.author.id];
        break;
      }
      case 'failed':
        for (const lines of Object.values(this.lines)) {
          for (const line of lines) {
            if (line.kind === 'pending' && line.localId === event.data.localId) line.failed = event.data.error;
          }
        }
        break;
      case 'joined':
        if (!this.rooms.includes(event.data.room)) this.rooms = [...this.rooms, event.data.room];
        if (!this.knownRooms.includes(event.data.room)) this.knownRooms = [...this.knownRooms, event.data.room].sort();
        break;
      case 'left':
        this.rooms = this.rooms.filter((r) => r !== event.data.room);
        if (this.current === event.data.room) this.current = DEFAULT_ROOM;
        break;
      case 'presence': {
        // Who is online comes as its own event; these are the notices in the conversation.
        const { room, joined, left } = event.data;
        for (const user of joined) if (user.id !== this.me?.id) this.push(room, notice(`${user.name} joined`));
        for (const user of left) if (user.id !== this.me?.id) this.push(room, notice(`${user.name} left`));
        break;
      }
      case 'typing': {
        const { room, user, typing } = event.data;
        const inRoom = (this.typing[room] ??= {});
        if (typing) inRoom[user.id] = { user, until: Date.now() + TYPING_MS };
        else delete inRoom[user.id];
        break;
      }
      case 'history': {
        const { room, messages, hasMore } = event.data;
        const lines = this.linesOf(room);
        const known = new Set(lines.map((l) => l.key));
        const older: Line[] = messages
          .filter((m) => !known.has(m.id))
          .map((m) => ({ kind: 'message', key: m.id, message: m }));
        this.lines[room] = [...older, ...lines];
        this.complete[room] = !hasMore;
        this.loadingOlder[room] = false;
        break;
      }
      case 'error':
        this.error = event.data.message;
        break;
    }
  }

  private push(room: string, line: Line): void {
    this.lines[room] = [...this.linesOf(room), line];
  }
}

let notices = 0;
function notice(text: string): Line {
  notices += 1;
  return { kind: 'notice', key: `notice-${notices}`, text };
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) return String(error.message);
  return String(error);
}

/** The connection as the app bar says it; `now` counts a reconnection down. */
export function connectionLabel(state: ConnectionState, since: number, now: number): string {
  switch (state.status) {
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return 'Connected';
    case 'reconnecting': {
      const seconds = Math.max(0, Math.ceil((since + state.delayMs - now) / 1000));
      return seconds > 0 ? `Reconnecting in ${seconds} s` : 'Reconnecting…';
    }
    case 'disconnected':
      return state.reason.kind === 'refused' ? `Refused: ${state.reason.detail.message}` : 'Offline';
  }
}

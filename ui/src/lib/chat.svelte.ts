// The chat as the UI shows it, built from the core client's events. The core client already
// guarantees each message once and in order per room; this only arranges them for display.
import type { Backend } from './backend';
import type {
  AlertLevel, Change, ChatInfo, ClientEvent, ConnectionState, ErrorBody, Limits, Message, Quote, Session, User,
} from './types';
import { DEFAULT_ROOM, DIRECT_ROOM_PREFIX, MAX_REACTORS_LISTED, MAX_UNREAD_COUNTED } from './types';
import { DEFAULT_ALERT, alertFor } from './alerts';

/** A line of a room: a stored message, one of ours still on its way, or a notice of people
 *  arriving and going (grouped while nothing else happens: see [`Chat.notify`]). `at` is when
 *  the line came, in ms. */
export type Line =
  /** `saving`: the user's edit or deletion of it is on its way. */
  | { kind: 'message'; key: string; message: Message; at: number; saving?: boolean }
  | { kind: 'pending'; key: string; localId: string; room: string; text: string; failed: ErrorBody | null; resendable: boolean; replyTo: number | null; mentions: string[] }
  | { kind: 'notice'; key: string; at: number; joined: User[]; left: User[]; text: string }
  /** Someone listed already came back under a new name. */
  | { kind: 'renamed'; key: string; at: number; text: string };

/** How long after a change of people a notice still takes more of them. */
const NOTICE_GROUP_MS = 5 * 60_000;
/** How late a presence may reach us after the messages of those it announces (the server
 *  coalesces changes for up to a second in a big room). */
const PRESENCE_LAG_MS = 2_000;

/** How long a jump to a message waits for its page before it is given up. */
const JUMP_GIVEN_UP_MS = 10_000;

/** How long an asked-for direct conversation is waited for, to show it when it comes. */
const OPENING_DIRECT_MS = 10_000;

/** How long after the last key a draft is kept. */
const DRAFT_SAVE_MS = 400;


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
  /** Notification levels of the rooms not at the default (kept by the app, per server). */
  alerts = $state<Record<string, AlertLevel>>({});
  /** The newest message notified per room, and when. */
  private notified: Record<string, { seq: number; at: number }> = {};
  private alertsLoaded = false;
  /** Rooms whose notification may still be shown. */
  private showing = new Set<string>();
  /** The user's direct conversations: the other person of each, by room. */
  directs = $state<Record<string, User>>({});
  /** Who is online in each room: the server's count, and those the core client lists. */
  online = $state<Record<string, { users: User[]; count: number }>>({});
  /** The latest answer to a search of rooms by prefix ("join or create"). */
  roomSearch = $state<{ prefix: string; rooms: string[] } | null>(null);
  /** Who is typing in each room, as the core client says (never the user). */
  typing = $state<Record<string, User[]>>({});
  /** How far the user has read each joined room, and how many messages are unread in it (the
   *  server's count, the same on all the user's devices, carried on by the core client). */
  unread = $state<Record<string, { read: number; count: number; mentions: number }>>({});
  /** Whether the user can see the window (focused, not hidden): only then is what shows read. */
  focused = $state(true);
  /** Counts the starts of the chat: what belongs to one chat (a view's place in a room) is not
   *  carried into the next. */
  generation = $state(0);
  /** Rooms whose oldest messages are all here. */
  complete = $state<Record<string, boolean>>({});
  loadingOlder = $state<Record<string, boolean>>({});
  error = $state<string | null>(null);
  /** What is typed but not sent, per room of this server: kept across room switches and restarts. */
  drafts = $state<Record<string, string>>({});
  /** The user's message being edited in the composer (of `room`), and the draft it set aside. */
  editing = $state<{ room: string; seq: number; draft: string } | null>(null);
  /** The message the next one sent in `room` answers. */
  replying = $state<{ room: string; quote: Quote } | null>(null);
  /** Older messages shown in place of a room's latest, around one the user went to (the
   *  original of a reply), until they go back to the latest. */
  context = $state<{ room: string; around: number; lines: Line[] } | null>(null);
  /** The latest search and what it found, newest first (`next`: more may be asked for). */
  searchResults = $state<{ query: string; results: Message[]; next: string | null } | null>(null);
  /** The message to bring into view and mark for a moment (a reply's original). */
  highlight = $state<{ room: string; seq: number } | null>(null);
  /** The user's edits and deletions on their way, with the message as it was (to put back if
   *  one is refused). */
  private changing: Record<string, { room: string; before: Message; text: string | null }> = {};
  /** The user's reactions on their way, by local id: a refusal of one is told. */
  private reacting = new Set<string>();

  /** Whether clicked notifications are listened to (once for the app's life). */
  private listening = false;

  /** The person whose conversation the user just asked to open: shown once it comes (soon, or
   *  never: a refusal comes as an error, and one opened by them much later opens nothing). */
  private openingDirect: { id: string; at: number } | null = null;

  constructor(private readonly backend: Backend) {}

  /** Whether `room` is a direct conversation rather than a room. */
  isDirect(room: string): boolean {
    return room.startsWith(DIRECT_ROOM_PREFIX);
  }

  /** How a room is called: `#name`, or the other person's name for a direct conversation. */
  titleOf(room: string): string {
    if (!this.isDirect(room)) return `#${room}`;
    return this.directs[room]?.name || 'Direct conversation';
  }

  /** Opens the direct conversation with `user` (creating it the first time), and shows it. */
  async openDirect(user: User): Promise<void> {
    const known = Object.entries(this.directs).find(([, peer]) => peer.id === user.id)?.[0];
    if (known && this.rooms.includes(known)) {
      this.current = known;
      return;
    }
    this.openingDirect = { id: user.id, at: Date.now() };
    await this.backend.openDirect(user.id).catch((e) => { this.error = describe(e); });
  }

  draftOf(room: string): string {
    return this.drafts[room] ?? '';
  }

  /** Changes a room's draft; it is kept (by the app, in its data folder) once typing pauses. */
  setDraft(room: string, text: string): void {
    if (text) this.drafts[room] = text;
    else delete this.drafts[room];
    clearTimeout(this.savingDrafts);
    this.savingDrafts = setTimeout(() => {
      this.savingDrafts = undefined;
      this.saveDrafts();
    }, DRAFT_SAVE_MS);
  }

  private savingDrafts: ReturnType<typeof setTimeout> | undefined;

  private saveDrafts(): void {
    // A draft that cannot be kept stays in memory for this session: not worth an error.
    this.backend.saveDrafts({ ...this.drafts }).catch(() => {});
  }

  get me(): User | null {
    return this.session?.user ?? null;
  }

  get limits(): Limits | null {
    return this.session?.limits ?? null;
  }

  /** Unread messages across the rooms the user is in, muted ones aside: the window title
   *  says it. */
  get unreadTotal(): number {
    return this.rooms
      .filter((room) => this.alertOf(room) !== 'none')
      .reduce((total, room) => total + (this.unread[room]?.count ?? 0), 0);
  }

  /** What of `room`'s messages is notified while the window is in the background. */
  alertOf(room: string): AlertLevel {
    return this.alerts[room] ?? DEFAULT_ALERT;
  }

  /** Changes what of `room`'s messages is notified (`none` mutes it). */
  async setAlert(room: string, level: AlertLevel): Promise<void> {
    const before = this.alertOf(room);
    if (level === DEFAULT_ALERT) delete this.alerts[room];
    else this.alerts[room] = level;
    try {
      await this.backend.setAlert(room, level);
    } catch (e) {
      if (before === DEFAULT_ALERT) delete this.alerts[room];
      else this.alerts[room] = before;
      this.error = describe(e);
    }
  }

  /** A system notification for `message`, if it calls for one (once the levels are known:
   *  before, only the rooms' pages come). */
  private notifyOf(message: Message): void {
    if (!this.alertsLoaded) return;
    const { room } = message;
    const now = Date.now();
    const alert = alertFor(message, {
      me: this.me?.id ?? null,
      focused: this.focused,
      level: this.alertOf(room),
      direct: this.isDirect(room),
      roomTitle: this.titleOf(room),
      mentionsMe: this.mentionsMe(message),
      readUpTo: this.unread[room]?.read ?? null,
      notified: this.notified[room] ?? null,
      now,
    });
    if (!alert) return;
    this.notified[room] = { seq: message.seq, at: now };
    this.showing.add(room);
    this.backend.notify(room, alert.title, alert.body).catch(() => {});
  }

  /** A notification of `room` was clicked: its room shows (if the user is still in it). */
  openFromNotification(room: string): void {
    if (!this.rooms.includes(room)) return;
    if (this.context) this.closeContext();
    this.current = room;
  }

  /** The user saw `room` up to `seq`. Once the core client knows the room's marker, and only
   *  forward: the core client tells the server, which tells the user's other devices. */
  markRead(room: string, seq: number): void {
    const known = this.unread[room];
    if (!known || seq <= known.read) return;
    this.backend.markRead(room, seq).catch(() => {});
  }

  linesOf(room: string): Line[] {
    return this.lines[room] ?? [];
  }

  typingIn(room: string): User[] {
    return this.typing[room] ?? [];
  }

  /** Starts (or restarts, perhaps on another server) the chat, from a clean slate. */
  async start(): Promise<void> {
    // Drafts not kept yet belong to the chat being left: keep them before it stops.
    if (this.savingDrafts !== undefined) {
      clearTimeout(this.savingDrafts);
      this.savingDrafts = undefined;
      await this.backend.saveDrafts({ ...this.drafts }).catch(() => {});
    }
    this.reset();
    try {
      this.info = await this.backend.start((event) => this.apply(event));
      this.drafts = await this.backend.drafts().catch(() => ({}));
      this.alerts = await this.backend.alerts().catch(() => ({}));
      this.alertsLoaded = true;
      if (!this.listening) {
        this.listening = true;
        await this.backend.onNotificationOpened((room) => this.openFromNotification(room)).catch(() => {});
        // Phones ask the user once; a refusal leaves the app without notifications.
        this.backend.askNotifications().catch(() => false);
      }
      this.error = null;
    } catch (e) {
      this.error = describe(e);
    }
  }

  private reset(): void {
    this.generation += 1;
    this.connection = { status: 'connecting' };
    this.connectionSince = Date.now();
    this.session = null;
    this.info = null;
    this.rooms = [DEFAULT_ROOM];
    this.knownRooms = [];
    this.current = DEFAULT_ROOM;
    this.lines = {};
    this.online = {};
    this.directs = {};
    this.openingDirect = null;
    this.alerts = {};
    this.alertsLoaded = false;
    this.notified = {};
    this.showing = new Set();
    this.roomSearch = null;
    this.typing = {};
    this.unread = {};
    this.complete = {};
    this.loadingOlder = {};
    this.error = null;
    this.drafts = {};
    this.editing = null;
    this.replying = null;
    this.context = null;
    this.highlight = null;
    this.searchResults = null;
    this.changing = {};
    this.reacting = new Set();
  }

  /** The last typing notice on its way: a send waits for it, so that the core client, which
   *  tells the room the user stopped typing when they send, sees them in that order. */
  private typingSent: Promise<unknown> = Promise.resolve();

  /** Tells the current room the user is typing, or stopped. */
  setTyping(typing: boolean): void {
    this.typingSent = this.backend.typing(this.current, typing).catch(() => {});
  }

  /** Sends `text` to the current room (or saves the edit in progress), mentioning the people
   *  whose ids are `mentions`. */
  async send(text: string, mentions: string[] = []): Promise<void> {
    const room = this.current;
    if (this.editing?.room === room) return this.saveEdit(text);
    const replyTo = this.replying?.room === room ? this.replying.quote.seq : null;
    if (replyTo !== null) this.replying = null;
    // What is sent shows at the end of the latest messages: back to them.
    if (this.context?.room === room) this.closeContext();
    this.setDraft(room, '');
    try {
      await this.typingSent;
      // The core client tells the room the user stopped typing.
      if (replyTo === null) await this.backend.send(room, text, mentions);
      else await this.backend.reply(room, replyTo, text, mentions);
    } catch (e) {
      this.error = describe(e);
    }
  }

  /** Whether `message` mentions the user. */
  mentionsMe(message: Message): boolean {
    const me = this.me?.id;
    return me !== undefined && (message.mentions ?? []).includes(me);
  }

  /** Whether the user may still edit `message`: theirs, not deleted, within the edit window. */
  canEdit(message: Message, now = Date.now()): boolean {
    const window = (this.limits?.editWindowSecs ?? 0) * 1000;
    return this.canDelete(message) && now < Date.parse(message.sentAt) + window;
  }

  /** Whether the user may delete `message`: theirs, not deleted yet, on a server that takes
   *  edits and deletions (one without says no `editWindowSecs`). */
  canDelete(message: Message): boolean {
    const server = this.limits?.editWindowSecs != null;
    return server && message.author.id === this.me?.id && !message.deleted;
  }

  /** Searches the user's rooms for `query`'s words; `more` asks for the next page. */
  async search(query: string, more = false): Promise<void> {
    const after = more && this.searchResults?.query === query ? this.searchResults.next : null;
    if (!more) this.searchResults = { query, results: [], next: null };
    await this.backend.search(query, after).catch((e) => { this.error = describe(e); });
  }

  /** Shows a message found: its room, then the message in its context. */
  open(room: string, seq: number): void {
    this.current = room;
    this.jumpTo(room, seq);
  }

  /** Toggles the user's reaction `emoji` to a message. */
  async react(room: string, seq: number, emoji: string): Promise<void> {
    await this.backend.react(room, seq, emoji).catch((e) => { this.error = describe(e); });
  }

  /** Answers a message: the composer says so until the answer is sent or the reply cancelled. */
  startReply(room: string, seq: number): void {
    const line = this.shownLine(room, seq);
    if (!line || line.message.deleted) return;
    if (this.editing) this.cancelEdit();
    this.replying = { room, quote: quoteOf(line.message) };
    this.current = room;
  }

  cancelReply(): void {
    this.replying = null;
  }

  /** Brings a message into view (a reply's original): where it is shown already, or else in
   *  its context, asked of the server. */
  jumpTo(room: string, seq: number): void {
    const highlight = { room, seq };
    this.highlight = highlight;
    // A jump whose page never comes (offline, refused) is given up, rather than springing on
    // the reader when they scroll to that message later.
    setTimeout(() => { if (this.highlight === highlight) this.highlight = null; }, JUMP_GIVEN_UP_MS);
    if (this.context?.room === room && this.context.lines.some((l) => l.kind === 'message' && l.message.seq === seq)) return;
    if (this.messageLine(room, seq)) {
      this.context = null;
      return;
    }
    this.backend.around(room, seq).catch((e) => { this.error = describe(e); });
  }

  /** Back from older messages to the room's latest. */
  closeContext(): void {
    this.context = null;
    this.highlight = null;
  }

  /** Puts one of the user's messages into the composer to edit it; the draft waits aside. */
  startEdit(room: string, seq: number): void {
    const line = this.shownLine(room, seq);
    if (!line || !this.canEdit(line.message)) return;
    // Editing elsewhere: that edit ends, and its room gets its draft back.
    if (this.editing && this.editing.room !== room) this.cancelEdit();
    this.replying = null;
    const draft = this.editing?.room === room ? this.editing.draft : this.draftOf(room);
    this.editing = { room, seq, draft };
    this.current = room;
    this.setDraft(room, line.message.text);
  }

  /** Leaves the edit, and gives the draft back. */
  cancelEdit(): void {
    if (!this.editing) return;
    const { room, draft } = this.editing;
    this.editing = null;
    this.setDraft(room, draft);
  }

  private async saveEdit(text: string): Promise<void> {
    if (!this.editing) return;
    const { room, seq } = this.editing;
    const line = this.messageLine(room, seq);
    this.cancelEdit();
    // Unchanged: nothing to tell anyone.
    if (line?.message.text === text) return;
    await this.backend.edit(room, seq, text).catch((e) => { this.error = describe(e); });
  }

  /** Deletes one of the user's messages, for everyone. */
  async deleteMessage(room: string, seq: number): Promise<void> {
    if (this.editing?.room === room && this.editing.seq === seq) this.cancelEdit();
    await this.backend.remove(room, seq).catch((e) => { this.error = describe(e); });
  }

  /** The message line of `room` at `seq`, in its latest messages or in the older ones shown in
   *  their place. */
  private shownLine(room: string, seq: number) {
    const context = this.context?.room === room ? this.context.lines : [];
    const line = context.find((l) => l.kind === 'message' && l.message.seq === seq);
    return this.messageLine(room, seq) ?? (line?.kind === 'message' ? line : undefined);
  }

  /** The message line of `room` at `seq`, if shown. */
  private messageLine(room: string, seq: number) {
    const line = this.linesOf(room).find((l) => l.kind === 'message' && l.message.seq === seq);
    return line?.kind === 'message' ? line : undefined;
  }

  /** Takes a failed message out of the conversation. */
  discard(localId: string): void {
    for (const [room, lines] of Object.entries(this.lines)) {
      if (lines.some((l) => l.kind === 'pending' && l.localId === localId)) {
        this.lines[room] = lines.filter((l) => !(l.kind === 'pending' && l.localId === localId));
      }
    }
  }

  /** Puts a failed message back into its room's composer, to change it and send it again. */
  edit(localId: string): void {
    for (const lines of Object.values(this.lines)) {
      const line = lines.find((l) => l.kind === 'pending' && l.localId === localId);
      if (line?.kind === 'pending') {
        this.discard(localId);
        this.setDraft(line.room, line.text);
        this.current = line.room;
        return;
      }
    }
  }

  /** Sends a failed message again, as a new message (offered where the core client says it
   *  can succeed: `resendable`). */
  async retry(localId: string): Promise<void> {
    for (const [room, lines] of Object.entries(this.lines)) {
      const line = lines.find((l) => l.kind === 'pending' && l.localId === localId);
      if (line?.kind === 'pending') {
        this.lines[room] = lines.filter((l) => l !== line);
        const sent = line.replyTo === null
          ? this.backend.send(room, line.text, line.mentions)
          : this.backend.reply(room, line.replyTo, line.text, line.mentions);
        await sent.catch((e) => { this.error = describe(e); });
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
        const { localId, room, text, action } = event.data;
        // A reaction shows once the server has it (a moment later): only a refusal is told.
        if (action.kind === 'react') {
          this.reacting.add(localId);
          break;
        }
        if (action.kind === 'edit' || action.kind === 'delete') {
          // An edit or deletion on its way: shown at once on the message, marked as saving.
          const line = this.messageLine(room, action.target);
          if (line && !this.changing[localId]) {
            const edit = action.kind === 'edit' ? text : null;
            this.changing[localId] = { room, before: line.message, text: edit };
            line.message = action.kind === 'edit'
              ? { ...line.message, text }
              : { ...line.message, text: '', deleted: true };
            line.saving = true;
          }
          break;
        }
        if (!this.linesOf(room).some((l) => l.key === localId)) {
          this.push(room, { kind: 'pending', key: localId, localId, room, text, failed: null, resendable: false, replyTo: event.data.replyTo ?? null, mentions: event.data.mentions ?? [] });
        }
        break;
      }
      case 'message': {
        const { message, confirms } = event.data;
        const lines = this.linesOf(message.room).filter((l) => l.key !== confirms);
        // Stored messages stay in seq order, above our own still on their way; a failed one
        // is done with, and stays where it failed, in time order.
        const firstPending = lines.findIndex((l) => l.kind === 'pending' && !l.failed);
        const line: Line = { kind: 'message', key: message.id, message, at: Date.now() };
        if (firstPending < 0) lines.push(line);
        else lines.splice(firstPending, 0, line);
        this.lines[message.room] = lines;
        if (event.data.fresh) this.notifyOf(message);
        break;
      }
      case 'change': {
        const { change, confirms } = event.data;
        const line = this.messageLine(change.room, change.target);
        // The server's state is what a refused change of ours goes back to, not what was shown.
        const apply = (message: Message): Message => applyChange(message, change);
        if (confirms !== null) {
          delete this.changing[confirms];
          this.reacting.delete(confirms);
        }
        const ours = Object.values(this.changing).filter((p) => p.room === change.room && p.before.seq === change.target);
        for (const pending of ours) pending.before = apply(pending.before);
        // While more of ours are on their way, they show; the server's state waits in `before`.
        if (line && ours.length === 0) {
          line.message = apply(line.message);
          line.saving = false;
        }
        if (change.kind === 'delete' && this.editing?.room === change.room && this.editing.seq === change.target) {
          this.cancelEdit();
        }
        // Its replies quote it as it is now; an older page shown for context changes too.
        const requote = (message: Message): Message => {
          if (message.replyTo?.seq !== change.target) return message;
          if (change.kind !== 'edit' && change.kind !== 'delete') return message;
          const excerpt = change.kind === 'edit' ? quoteOf({ ...message, text: change.text ?? '' }).excerpt : '';
          return { ...message, replyTo: { ...message.replyTo, excerpt, deleted: change.kind === 'delete' } };
        };
        const contextLines = this.context?.room === change.room ? this.context.lines : [];
        for (const l of [...this.linesOf(change.room), ...contextLines]) {
          if (l.kind !== 'message') continue;
          l.message = requote(l.message);
          if (contextLines.includes(l) && l.message.seq === change.target) l.message = apply(l.message);
        }
        if (this.replying?.room === change.room && this.replying.quote.seq === change.target && change.kind === 'delete') {
          this.replying = null;
        }
        break;
      }
      case 'failed': {
        if (this.reacting.delete(event.data.localId)) {
          this.error = `Reaction not saved: ${event.data.error.message}`;
          break;
        }
        const refused = this.changing[event.data.localId];
        if (refused) {
          // The message as it was, and why the change did not happen.
          delete this.changing[event.data.localId];
          const line = this.messageLine(refused.room, refused.before.seq);
          if (line) {
            line.message = refused.before;
            line.saving = false;
          }
          this.error = `Not saved: ${event.data.error.message}`;
          // The edited text is not lost: back in the composer, if it holds nothing else.
          if (refused.text !== null && !this.draftOf(refused.room) && !this.editing) {
            this.setDraft(refused.room, refused.text);
          }
          break;
        }
        for (const lines of Object.values(this.lines)) {
          for (const line of lines) {
            if (line.kind === 'pending' && line.localId === event.data.localId) {
              line.failed = event.data.error;
              line.resendable = event.data.resendable;
            }
          }
        }
        break;
      }
      case 'joined': {
        const { room } = event.data;
        if (!this.rooms.includes(room)) this.rooms = [...this.rooms, room];
        if (!this.isDirect(room) && !this.knownRooms.includes(room)) this.knownRooms = [...this.knownRooms, room].sort();
        break;
      }
      case 'direct': {
        const { room, peer } = event.data;
        this.directs[room] = peer;
        if (this.openingDirect?.id === peer.id && Date.now() - this.openingDirect.at < OPENING_DIRECT_MS) {
          this.openingDirect = null;
          this.current = room;
        }
        break;
      }
      case 'left':
        this.rooms = this.rooms.filter((r) => r !== event.data.room);
        delete this.typing[event.data.room];
        delete this.unread[event.data.room];
        if (this.context?.room === event.data.room) this.context = null;
        if (this.highlight?.room === event.data.room) this.highlight = null;
        if (this.replying?.room === event.data.room) this.replying = null;
        if (this.current === event.data.room) this.current = DEFAULT_ROOM;
        break;
      case 'presence': {
        // Who is online comes as its own event; these are the notices in the conversation.
        const { room, joined, left } = event.data;
        // Between two people, who is online shows in the bar: no notices in the conversation.
        if (this.isDirect(room)) break;
        const others = (users: User[]) => users.filter((u) => u.id !== this.me?.id);
        this.notify(room, others(joined), others(left));
        break;
      }
      case 'renamed': {
        const { room, user, from } = event.data;
        if (user.id === this.me?.id) break;
        notices += 1;
        const now = Date.now();
        const lines = [...this.linesOf(room)];
        lines.splice(noticeIndex(lines, [user], now), 0, { kind: 'renamed', key: `notice-${notices}`, at: now, text: `${from} is now ${user.name}` });
        this.lines[room] = lines;
        break;
      }
      case 'typing':
        this.typing[event.data.room] = event.data.users;
        break;
      case 'unread':
        this.unread[event.data.room] = { read: event.data.read, count: event.data.count, mentions: event.data.mentions };
        // Read (here or on another device): its notification has nothing left to say.
        if (event.data.count === 0 && this.showing.delete(event.data.room)) {
          this.backend.withdrawNotification(event.data.room).catch(() => {});
        }
        break;
      case 'search': {
        const { query, results, next } = event.data;
        // Only the answer to the latest search: typing asks again at each pause.
        if (this.searchResults?.query !== query) break;
        this.searchResults = { query, results: [...this.searchResults.results, ...results], next };
        break;
      }
      case 'around': {
        const { around, page } = event.data;
        // Only for the message still wanted: a later jump replaces an earlier one.
        if (this.highlight?.room !== page.room || this.highlight.seq !== around) break;
        const lines: Line[] = page.messages.map((m) => ({ kind: 'message', key: m.id, message: m, at: 0 }));
        this.context = { room: page.room, around, lines };
        break;
      }
      case 'history': {
        // Older than all shown, each once: the core client sees to it.
        const { room, messages, hasMore } = event.data;
        const lines = this.linesOf(room);
        const older: Line[] = messages.map((m) => ({ kind: 'message', key: m.id, message: m, at: 0 }));
        this.lines[room] = [...older, ...lines];
        this.complete[room] = !hasMore;
        this.loadingOlder[room] = false;
        break;
      }
      case 'error':
        this.error = event.data.message;
        // A page asked for and refused (or not sent, offline) may be asked for again.
        this.loadingOlder = {};
        break;
    }
  }

  private push(room: string, line: Line): void {
    this.lines[room] = [...this.linesOf(room), line];
  }

  /** Says who arrived and who went, in order and grouped: added to the room's last notice while
   *  nothing else came since (someone who left and came back, or came and left, cancels out:
   *  reconnects are no news); otherwise a new notice, placed above the first message of those
   *  who arrived that came in just before it (presence is told a little later than messages). */
  private notify(room: string, joined: User[], left: User[]): void {
    if (joined.length === 0 && left.length === 0) return;
    const lines = [...this.linesOf(room)];
    const now = Date.now();
    const index = noticeIndex(lines, joined, now);
    const previous = lines[index - 1];
    if (previous?.kind === 'notice' && now - previous.at < NOTICE_GROUP_MS) {
      let was = { joined: [...previous.joined], left: [...previous.left] };
      for (const user of joined) {
        if (was.left.some((u) => u.id === user.id)) was.left = was.left.filter((u) => u.id !== user.id);
        else was.joined = [...was.joined.filter((u) => u.id !== user.id), user];
      }
      for (const user of left) {
        if (was.joined.some((u) => u.id === user.id)) was.joined = was.joined.filter((u) => u.id !== user.id);
        else was.left = [...was.left.filter((u) => u.id !== user.id), user];
      }
      if (was.joined.length === 0 && was.left.length === 0) lines.splice(index - 1, 1);
      else lines[index - 1] = { ...previous, ...was, text: noticeText(was.joined, was.left) };
    } else {
      lines.splice(index, 0, notice(joined, left, now));
    }
    this.lines[room] = lines;
  }
}

/** Where a notice about `people` goes: at the end, above our own still on their way, and above
 *  the first of their messages that came in just before it (presence is told a little later
 *  than messages). */
function noticeIndex(lines: Line[], people: User[], now: number): number {
  let index = lines.findIndex((l) => l.kind === 'pending' && !l.failed);
  if (index < 0) index = lines.length;
  const ids = new Set(people.map((u) => u.id));
  for (let i = index - 1; i >= 0; i -= 1) {
    const line = lines[i];
    if (line.kind !== 'message' || line.at < now - PRESENCE_LAG_MS) break;
    if (ids.has(line.message.author.id)) index = i;
  }
  return index;
}

let notices = 0;
function notice(joined: User[], left: User[], at: number): Line {
  notices += 1;
  return { kind: 'notice', key: `notice-${notices}`, at, joined, left, text: noticeText(joined, left) };
}

/** "Ada joined", "Ada and Bob joined · Cy left", "Ada, Bob and 3 others joined". */
export function noticeText(joined: User[], left: User[]): string {
  const names = (users: User[]) => {
    const shown = users.slice(0, users.length > 3 ? 2 : 3).map((u) => u.name);
    const rest = users.length - shown.length;
    if (rest > 0) return `${shown.join(', ')} and ${rest} ${rest === 1 ? 'other' : 'others'}`;
    return shown.length > 1 ? `${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1]}` : shown[0];
  };
  const parts = [];
  if (joined.length > 0) parts.push(`${names(joined)} joined`);
  if (left.length > 0) parts.push(`${names(left)} left`);
  return parts.join(' · ');
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) return String(error.message);
  return String(error);
}

/** `message` as `change` (one of its own) leaves it: the rules of the protocol's
 *  `Message::apply`, for the messages the UI shows. A change its state reflects already
 *  (`asOf`: a page's own) changes nothing. */
export function applyChange(message: Message, change: Change): Message {
  if (change.seq <= message.asOf) return message;
  const changed = applied(message, change);
  return { ...changed, asOf: change.seq };
}

function applied(message: Message, change: Change): Message {
  switch (change.kind) {
    case 'edit':
      return { ...message, text: change.text ?? '', editedAt: change.at };
    case 'delete':
      return { ...message, text: '', deleted: true, reactions: [], mentions: [] };
    case 'react': {
      if (!change.emoji) return message;
      const reactions = [...(message.reactions ?? [])];
      const at = reactions.findIndex((r) => r.emoji === change.emoji);
      if (at < 0) reactions.push({ emoji: change.emoji ?? '', count: 1, users: [change.author] });
      else {
        const listed = reactions[at].users.length < MAX_REACTORS_LISTED ? [...reactions[at].users, change.author] : reactions[at].users;
        reactions[at] = { ...reactions[at], count: reactions[at].count + 1, users: listed };
      }
      return { ...message, reactions };
    }
    case 'unreact': {
      const reactions = (message.reactions ?? [])
        .map((r) => (r.emoji === change.emoji
          ? { ...r, count: r.count - 1, users: r.users.filter((u) => u.id !== change.author.id) }
          : r))
        .filter((r) => r.count > 0);
      return { ...message, reactions };
    }
    case 'unknown':
      return message;
  }
}

/** The quote of `message` as a reply shows it: its first line, cut at 140 characters (the
 *  server sends the same with each reply; this one shows in the composer before sending). */
export function quoteOf(message: Message): Quote {
  const line = message.text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
  const chars = [...line];
  const excerpt = chars.length > 140 ? `${chars.slice(0, 140).join('').trimEnd()}…` : line;
  return { seq: message.seq, author: message.author, excerpt: message.deleted ? '' : excerpt, deleted: message.deleted ?? false };
}

/** An unread count as a badge shows it: the server counts up to its bound, which means "at
 *  least", so one less and a plus from there. */
export function unreadBadge(count: number): string {
  return count >= MAX_UNREAD_COUNTED ? `${MAX_UNREAD_COUNTED - 1}+` : String(count);
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

//! Durable history behind the [`Store`] trait, so that the chat logic does not know which database
//! keeps its messages. [`SqliteStore`] is the default, a file of the server's own;
//! [`PostgresStore`] is what several nodes share.

mod postgres;
mod rows;
mod sqlite;
mod writer;

pub use postgres::PostgresStore;
pub use sqlite::{DEFAULT_BUSY_TIMEOUT, SqliteStore};

use async_trait::async_trait;
use causerie_protocol::{Change, ChangeKind, Direct, Message, Quote, ReadState, User};

/// A message to store, as the chat logic accepted it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The sender's id for the message; with `author.id`, the idempotency key.
    pub client_id: String,
    /// A room that exists.
    pub room: String,
    /// Who sends it.
    pub author: User,
    /// The validated text.
    pub text: String,
    /// The seq of the message in the same room it answers (checked to exist beforehand).
    pub reply_to: Option<u64>,
    /// The ids of the people it mentions (validated, each once).
    pub mentions: Vec<String>,
}

/// An edit or a deletion to store, as the chat logic accepted it (the text checked, the room
/// joined); whether the message is the author's, and still editable, the store decides.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The sender's id for the change; with `author.id`, the idempotency key.
    pub client_id: String,
    /// A room that exists.
    pub room: String,
    /// Who asks.
    pub author: User,
    /// What to do to it.
    pub action: ChangeAction,
    /// The seq of the message to change.
    pub target: u64,
    /// How long after it was sent a message may be edited.
    pub edit_window: std::time::Duration,
}

/// What a [`NewChange`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    /// Replaces the text.
    Edit {
        /// The new text, validated.
        text: String,
    },
    /// Deletes the message.
    Delete,
    /// Toggles the asker's reaction `emoji` (validated) to the message: anyone may.
    React {
        /// One emoji.
        emoji: String,
    },
}

impl ChangeAction {
    /// The kind of change it makes.
    pub fn kind(&self) -> ChangeKind {
        match self {
            Self::Edit { .. } => ChangeKind::Edit,
            Self::Delete => ChangeKind::Delete,
            // A toggle: stored as `Unreact` when it takes a reaction back.
            Self::React { .. } => ChangeKind::React,
        }
    }
}

/// What [`Store::change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Stored now, or earlier under the same author and client id (`duplicate`).
    Stored {
        /// The change, with its seq.
        change: Box<Change>,
        /// `true` when it was stored before and this call stored nothing.
        duplicate: bool,
    },
    /// Not allowed: nothing was stored.
    Refused(ChangeRefusal),
}

/// Why a change was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// No such message in the room, or it was deleted.
    NotFound,
    /// The message is someone else's.
    Forbidden,
    /// An edit past the edit window.
    TooLate,
    /// The client id was used before by this author for another change.
    IdReused,
    /// A new emoji for a message with as many different ones as it may have.
    ReactionLimit,
}

/// What [`Store::mark_read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedRead {
    /// The user's marker now: the seq asked for, or a later one stored before.
    pub seq: u64,
    /// Whether the marker moved: only then do the user's other connections need telling.
    pub moved: bool,
}

/// What [`Store::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message: new, or the one stored earlier under the same client id.
    pub message: Message,
    /// `true` when the message was stored before and this call stored nothing.
    pub duplicate: bool,
}

/// Which slice of a room's log to read (see [`causerie_protocol::HistoryRequest`]). A page holds
/// at most `limit` entries (messages and changes) and [`MAX_PAGE_BYTES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only seqs above this; the page then starts at the oldest match.
    pub after: Option<u64>,
    /// Only seqs below this.
    pub before: Option<u64>,
    /// The entries around this seq (alone): half the page up to it, it included, the rest
    /// after it; each half bounded in bytes as a page is.
    pub around: Option<u64>,
    /// Most entries in the page.
    pub limit: u32,
}

/// Most bytes of messages (as JSON) in one history page, welcome and join pages included: a
/// sixteenth of what a connection may have waiting (`outgoing::MAX_QUEUED_BYTES`), so that the
/// pages a client asks for on a reconnect (its rooms' joins and catch-ups) never close it. A page
/// always holds at least one message. 256 KiB is 200 ordinary messages, or 16 of the longest.
pub const MAX_PAGE_BYTES: usize = 256 * 1024;

/// Drops entries from the end of `nearest_first` beyond `max_bytes`; `true` if any.
pub(crate) fn keep_within_page_bytes<T: serde::Serialize>(
    nearest_first: &mut Vec<T>,
    max_bytes: usize,
) -> bool {
    let mut total = 0;
    let fits = nearest_first
        .iter()
        .take_while(|entry| {
            total += serde_json::to_vec(entry).map_or(usize::MAX, |json| json.len() + 1);
            total <= max_bytes
        })
        .count()
        .max(1);
    let dropped = fits < nearest_first.len();
    nearest_first.truncate(fits);
    dropped
}

/// The two pages an `around` query reads, end to end, sharing the page's entries (and each
/// half its bytes): up to `around` (it included), then after it, if the page has room left.
pub(crate) fn around_halves(
    around: u64,
    query: HistoryQuery,
) -> (HistoryQuery, Option<HistoryQuery>) {
    let older = HistoryQuery {
        before: Some(around.saturating_add(1)),
        limit: query.limit.div_ceil(2).max(1),
        ..HistoryQuery::default()
    };
    let newer_limit = query.limit.saturating_sub(older.limit);
    let newer = (newer_limit > 0).then_some(HistoryQuery {
        after: Some(around),
        limit: newer_limit,
        ..HistoryQuery::default()
    });
    (older, newer)
}

/// The page of an `around` query, from its two halves ([`around_halves`]).
pub(crate) fn join_halves(mut older: HistorySlice, newer: HistorySlice) -> HistorySlice {
    older.messages.extend(newer.messages);
    older.changes.extend(newer.changes);
    older.has_newer = newer.has_more;
    older
}

/// A page of history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySlice {
    /// The messages, oldest first, as they are now.
    pub messages: Vec<Message>,
    /// The changes among the page's entries, oldest first.
    pub changes: Vec<Change>,
    /// Whether more entries match beyond the page (past `limit` or past [`MAX_PAGE_BYTES`]).
    pub has_more: bool,
    /// For an `around` page: whether newer entries follow it.
    pub has_newer: bool,
}

/// A page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Newest first, as they are now, without their quotes and reactions.
    pub messages: Vec<Message>,
    /// Where the next page starts (an opaque position), if there may be more.
    pub next: Option<i64>,
}

/// Whether the store can write now. Reads never depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteHealth {
    /// The last write (or probe) committed.
    Writable,
    /// The last write failed: new messages are refused with `internal` until a write commits
    /// again, which the store finds out by itself.
    Failing(WriteFailure),
}

/// Why writes fail, as far as the database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// The filesystem is full (`SQLITE_FULL`).
    DiskFull,
    /// Another process holds the database's write lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    Locked,
    /// Reading or writing the file failed (`SQLITE_IOERR`, or the OS refused).
    Io,
    /// The database cannot be reached (PostgreSQL: the connection failed or timed out).
    Unreachable,
    /// Any other database error.
    Other,
}

impl WriteFailure {
    /// A short phrase for people: logs and `/healthz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk full",
            Self::Locked => "database locked by another process",
            Self::Io => "disk I/O error",
            Self::Unreachable => "database unreachable",
            Self::Other => "database error",
        }
    }
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A page of room names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsSlice {
    /// Sorted.
    pub rooms: Vec<String>,
    /// Whether more rooms match beyond the page.
    pub has_more: bool,
}

/// Why the store failed. The chat logic reports every variant to clients as `internal`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The transaction holding the write failed, and was rolled back: nothing of it was stored.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// The store was closed for shutdown.
    #[error("the store is closed")]
    Closed,
}

/// Where messages and rooms are kept.
///
/// Implementations must make a message durable before `append` returns `Ok`, never return `Ok`
/// for a write that was not committed, and assign each room's seqs 1, 2, 3... with no gaps and no
/// repeats even when appends race or fail.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a message, or returns the one already stored under the same author and client id.
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError>;

    /// Stores an edit or a deletion of one of the author's messages (in the same transaction,
    /// the message's row takes its new state), or returns the one already stored under the same
    /// author and client id, or says why it is not allowed.
    async fn change(&self, change: NewChange) -> Result<Changed, StoreError>;

    /// The message `author_id` stored under `client_id`, if any: what a resend is answered with.
    async fn sent(&self, author_id: &str, client_id: &str) -> Result<Option<Message>, StoreError>;

    /// Up to `limit` messages of `rooms` with every word of `words` (the last one a prefix),
    /// newest first, older than `after` (a `Found::next`).
    async fn search(
        &self,
        rooms: &[String],
        words: &[String],
        after: Option<i64>,
        limit: u32,
    ) -> Result<Found, StoreError>;

    /// Those of `ids` who are members of `room` (they have a read marker there: they joined it,
    /// and have not left), in the order given.
    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// The quote of the message at `seq` in `room`, if there is one (deleted or not).
    async fn quote(&self, room: &str, seq: u64) -> Result<Option<Quote>, StoreError>;

    /// Reads a page of a room's log: messages as they are now, and changes.
    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistorySlice, StoreError>;

    /// Moves `user_id`'s read marker of `room` forward to `seq` (never back).
    async fn mark_read(
        &self,
        user_id: &str,
        room: &str,
        seq: u64,
    ) -> Result<MarkedRead, StoreError>;

    /// `user_id`'s read marker of `room` and the unread messages (by others, not deleted) after
    /// it up to `head`, counted among the first [`causerie_protocol::limits::MAX_UNREAD_COUNTED`]
    /// messages: a bounded read. `None` when the user never marked the room read.
    async fn read_state(
        &self,
        user_id: &str,
        room: &str,
        head: u64,
    ) -> Result<Option<ReadState>, StoreError>;

    /// Forgets `user_id`'s read marker of `room`: they left it, and coming back later starts
    /// from what is new then, not from where they left.
    async fn forget_read(&self, user_id: &str, room: &str) -> Result<(), StoreError>;

    /// Keeps who `user` is (their id and latest name): someone a direct conversation can be
    /// opened with.
    async fn remember_user(&self, user: &User) -> Result<(), StoreError>;

    /// The user with id `id`, under their latest name, if this server has seen them.
    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Creates, if it does not exist, the direct conversation between users `one` and `other`
    /// in `room` (a [`causerie_protocol::limits::direct_room`]), and keeps who both are.
    async fn open_direct(&self, room: &str, one: &User, other: &User) -> Result<(), StoreError>;

    /// Up to `limit` of `user_id`'s direct conversations, the most recently active first.
    async fn directs_of(&self, user_id: &str, limit: usize) -> Result<Vec<Direct>, StoreError>;

    /// The latest committed seq of `room` (0 while it is empty), if it exists. A store shared
    /// by several servers may have to read it.
    async fn head(&self, room: &str) -> Result<Option<u64>, StoreError>;

    /// Creates a room if it does not exist (without writing when it does).
    async fn create_room(&self, room: &str) -> Result<(), StoreError>;

    /// Whether a room exists.
    async fn room_exists(&self, room: &str) -> Result<bool, StoreError>;

    /// How many rooms exist (not counting direct conversations).
    async fn room_count(&self) -> Result<u64, StoreError>;

    /// How many direct conversations exist.
    async fn direct_count(&self) -> Result<u64, StoreError>;

    /// Up to `limit` room names in order, after `after`, starting with `prefix` (both `""` for
    /// the first page of all rooms). Never a direct conversation.
    async fn rooms_page(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<RoomsSlice, StoreError>;

    /// Whether writes succeed now (for `/healthz` and `/metrics`).
    fn health(&self) -> WriteHealth;

    /// Transactions committed since the store opened: fewer than the writes when they were
    /// grouped (group commit is part of the contract).
    fn commits(&self) -> u64;

    /// Finishes pending writes and closes the database; later calls fail with [`StoreError::Closed`].
    async fn close(&self);
}

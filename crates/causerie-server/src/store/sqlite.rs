//! The SQLite store: one file in WAL mode with `synchronous = FULL`, one writer, a pool of readers.
//!
//! Every write goes through the writer task ([`super::writer`]), which owns the only writing
//! connection and commits what is queued in one transaction (group commit). Being the only
//! writer also makes seq assignment simple: it keeps each room's next seq in memory.
//! A second task checkpoints the WAL in the background, so no commit waits for a checkpoint.
//!
//! Failures are where a store earns its keep, so the writer owns its transactions itself
//! (`BEGIN IMMEDIATE` ... `COMMIT` as plain statements) rather than through sqlx's `Transaction`:
//! after a failed COMMIT, sqlx 0.8 keeps counting the transaction as open, and later "transactions"
//! became savepoints inside one that was never committed, acked all the same. Here any failure
//! (BEGIN, any statement, COMMIT) fails the whole batch: every request in it is answered
//! `NotCommitted`, the transaction is rolled back, the connection is known to be back in
//! autocommit or is reopened, and each room's next seq is read from the file again. A request is
//! answered `Ok` only after its COMMIT returned success.
//!
//! While writes fail (a full disk, a lock held by another process), the writer reports it through
//! [`Store::health`], logs once per change, and retries a one-row write every second when idle, so
//! that it notices recovery by itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use causerie_protocol::limits::{direct_members, is_direct_room};
use causerie_protocol::{Change, ChangeKind, Direct, Message, Quote, ReadState, User};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::rows::{
    self, CHANGE_COLUMNS, MESSAGE_COLUMNS, ReactionRow, change_row, entry_row, mentions_column,
    message_row, now, seq_from_i64, to_i64, unfilled,
};
use super::writer::{self, Batches, Operation, Write, WriteReply, WriterTask, Written};
use super::{
    Appended, ChangeAction, ChangeRefusal, Changed, Found, HistoryQuery, HistorySlice, MarkedRead,
    NewChange, NewMessage, RoomsSlice, Store, StoreError, WriteFailure, WriteHealth,
};

const READERS: u32 = 4;
/// Most writes committed together: one fsync for them all.
const MAX_BATCH: usize = 1024;
/// How long a write waits for another process's lock on the database by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The latest seq of a room's log (0 when empty): messages and changes share it.
const LAST_SEQ: &str = "SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0), \
     COALESCE((SELECT MAX(seq) FROM changes WHERE room = ?1), 0))";

/// The rooms and the latest seq of each, kept in memory: every welcome lists rooms and every
/// catch-up asks what is newer than a seq, and neither should cost a read of the file (at a
/// reconnect wave, thousands a second). Loaded when the store opens; the writer updates it once
/// a transaction committed, before anyone is answered, so it never shows what is not on disk.
#[derive(Debug, Default)]
struct Catalog {
    /// Each room by name, with its latest committed seq (0 while it is empty). Direct
    /// conversations too: they sort after every room.
    rooms: std::sync::RwLock<BTreeMap<String, u64>>,
    /// How many of them are direct conversations.
    directs: AtomicU64,
    /// The users in at least one direct conversation: the welcome of anyone else (most of a
    /// reconnection wave) lists theirs without a read.
    in_directs: std::sync::RwLock<HashSet<String>>,
}

impl Catalog {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, u64>> {
        // Nothing panics while holding it; a poisoned lock still holds consistent data.
        self.rooms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The latest committed seq of `room`, if it exists.
    fn head(&self, room: &str) -> Option<u64> {
        self.read().get(room).copied()
    }

    /// Whether `user_id` is in a direct conversation.
    fn in_directs(&self, user_id: &str) -> bool {
        self.in_directs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(user_id)
    }

    /// Counts a direct conversation that is new, and keeps its members.
    fn add_direct(&self, room: &str) {
        self.directs.fetch_add(1, Ordering::Relaxed);
        if let Some((one, other)) = direct_members(room) {
            let mut members = self
                .in_directs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            members.insert(one.to_owned());
            members.insert(other.to_owned());
        }
    }

    /// Rooms created and seqs assigned by a transaction that committed.
    fn committed(&self, created: Vec<String>, heads: &HashMap<String, u64>) {
        let mut rooms = self
            .rooms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for room in created {
            if let std::collections::btree_map::Entry::Vacant(vacant) = rooms.entry(room) {
                if is_direct_room(vacant.key()) {
                    self.add_direct(vacant.key());
                }
                vacant.insert(0);
            }
        }
        for (room, &head) in heads {
            let known = rooms.entry(room.clone()).or_insert(0);
            *known = (*known).max(head);
        }
    }

    /// Reads every room and its latest seq from the file (an index lookup per room).
    async fn load(connection: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM rooms")
            .fetch_all(&mut *connection)
            .await?;
        let mut rooms = BTreeMap::new();
        for name in names {
            let head: i64 = sqlx::query_scalar(LAST_SEQ)
                .bind(&name)
                .fetch_one(&mut *connection)
                .await?;
            rooms.insert(name, seq_from_i64(head)?);
        }
        let catalog = Self::default();
        for name in rooms.keys().filter(|name| is_direct_room(name)) {
            catalog.add_direct(name);
        }
        *catalog
            .rooms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rooms;
        Ok(catalog)
    }
}

/// Messages and rooms in a SQLite file.
pub struct SqliteStore {
    writer: WriterTask,
    reads: SqlitePool,
    catalog: Arc<Catalog>,
    checkpoints: JoinHandle<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations, and makes sure the
    /// default room exists. Writes wait [`DEFAULT_BUSY_TIMEOUT`] for another process's lock.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT).await
    }

    /// Like [`SqliteStore::open`], with writes waiting at most `busy_timeout` for a lock held
    /// by another process before they fail.
    pub async fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            // A deleted message's text is overwritten in the file, not left in a free cell.
            .pragma("secure_delete", "ON");
        // Checkpoints (copying the WAL back into the database file, with an fsync) run beside the
        // writer rather than inside the commit that crosses the threshold, which would make every
        // message queued behind that commit wait for them.
        let writer_options = options.clone().pragma("wal_autocheckpoint", "0");
        let mut connection = SqliteConnection::connect_with(&writer_options).await?;
        // `run_direct`, not `run`: `run` over `&mut SqliteConnection` makes this future not `Send`.
        MIGRATOR.run_direct(&mut connection).await?;
        let catalog = Arc::new(Catalog::load(&mut connection).await?);
        let reads = SqlitePoolOptions::new()
            .max_connections(READERS)
            // A read that fails says so itself; pinging the connection's thread before each one
            // doubled the cost of a welcome's history read.
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await?;

        let purge = Arc::new(Notify::new());
        // A purge that finds readers or the writer in the way tries again at the next tick
        // rather than holding writers back while it waits.
        let checkpointer = options.clone().busy_timeout(Duration::from_millis(100));
        let checkpoints = tokio::spawn(checkpoint_loop(
            SqliteConnection::connect_with(&checkpointer).await?,
            purge.clone(),
        ));

        let writer = WriterTask::spawn(MAX_BATCH, |health, commits| Writer {
            connection: Some(connection),
            options: writer_options,
            next_seq: HashMap::new(),
            health,
            commits,
            catalog: catalog.clone(),
            purge,
        });
        let store = Self {
            writer,
            reads,
            catalog,
            checkpoints,
        };
        store.create_room(causerie_protocol::DEFAULT_ROOM).await?;
        Ok(store)
    }

    /// A page of the log after and/or before a seq (see [`HistoryQuery`]), with its quotes.
    async fn page(
        &self,
        room: &str,
        query: HistoryQuery,
        max_bytes: usize,
    ) -> Result<HistorySlice, StoreError> {
        // Nothing newer than what the client has, or nothing at all: no need to read the file.
        if let Some(head) = self.catalog.head(room)
            && (head == 0 || query.after.is_some_and(|after| after >= head))
        {
            return Ok(HistorySlice {
                messages: Vec::new(),
                changes: Vec::new(),
                has_more: false,
                has_newer: false,
            });
        }
        let fetch = i64::from(query.limit) + 1;
        let after = query.after.map(to_i64);
        let before = query.before.map(to_i64).unwrap_or(i64::MAX);
        // With `after` the page starts at the oldest entry, else it ends at the newest. Messages
        // and changes are read in one ordered query: the page is a stretch of the log.
        let order = if after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT 'message' AS entry, {MESSAGE_COLUMNS}, NULL AS kind, NULL AS target, NULL AS at \
             FROM messages WHERE room = ?1 AND seq > ?2 AND seq < ?3 \
             UNION ALL \
             SELECT 'change' AS entry, id, client_id, room, seq, author_id, author_name, text, \
             NULL, NULL, 0, NULL, NULL, kind, target, at \
             FROM changes WHERE room = ?1 AND seq > ?2 AND seq < ?3 \
             ORDER BY seq {order} LIMIT ?4"
        );
        // One snapshot for the entries, the messages' quotes and reactions, and the head their
        // state reflects (`asOf`): a reaction given meanwhile is in all of them or in none.
        let mut snapshot = self.reads.begin().await?;
        let head: i64 = sqlx::query_scalar(LAST_SEQ)
            .bind(room)
            .fetch_one(&mut *snapshot)
            .await?;
        let head = seq_from_i64(head)?;
        let found = sqlx::query(&sql)
            .bind(room)
            .bind(after.unwrap_or(0))
            .bind(before)
            .bind(fetch)
            .fetch_all(&mut *snapshot)
            .await?;
        let mut entries = found.iter().map(entry_row).collect::<Result<Vec<_>, _>>()?;
        let has_more = entries.len() > query.limit as usize;
        entries.truncate(query.limit as usize);
        // Filled before the page is cut to its bytes: quotes and reactions count too.
        let mut messages = rows::messages_of(&entries);
        fill_quotes(&mut *snapshot, room, &mut messages).await?;
        fill_reactions(&mut *snapshot, room, &mut messages).await?;
        snapshot.commit().await?;
        Ok(rows::finish_page(
            entries,
            messages,
            head,
            has_more,
            after.is_none(),
            max_bytes,
        ))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        self.writer.append(message).await
    }

    async fn change(&self, change: NewChange) -> Result<Changed, StoreError> {
        self.writer.change(change).await
    }

    async fn sent(&self, author_id: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
        let mut snapshot = self.reads.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = ? AND client_id = ?"
        ))
        .bind(author_id)
        .bind(client_id)
        .fetch_optional(&mut *snapshot)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut message = [message_row(&row)?];
        let room = message[0].room.clone();
        let head: i64 = sqlx::query_scalar(LAST_SEQ)
            .bind(&room)
            .fetch_one(&mut *snapshot)
            .await?;
        fill_quotes(&mut *snapshot, &room, &mut message).await?;
        fill_reactions(&mut *snapshot, &room, &mut message).await?;
        snapshot.commit().await?;
        let [mut message] = message;
        message.as_of = seq_from_i64(head)?;
        Ok(Some(message))
    }

    async fn search(
        &self,
        rooms: &[String],
        words: &[String],
        after: Option<i64>,
        limit: u32,
    ) -> Result<Found, StoreError> {
        if rooms.is_empty() || words.is_empty() {
            return Ok(Found {
                messages: Vec::new(),
                next: None,
            });
        }
        // Each word a quoted FTS5 string (no operator of the user's reaches the engine), all
        // of them required, the last one also as the start of a longer word.
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        let mut matching = quoted.join(" ");
        matching.push('*');
        let marks = vec!["?"; rooms.len()].join(", ");
        let sql = format!(
            "SELECT rowid, room, seq FROM messages_fts \
             WHERE messages_fts MATCH ? AND rowid < ? AND room IN ({marks}) \
             ORDER BY rowid DESC LIMIT ?"
        );
        let mut query = sqlx::query(&sql)
            .bind(&matching)
            .bind(after.unwrap_or(i64::MAX));
        for room in rooms {
            query = query.bind(room);
        }
        let fetch = i64::from(limit) + 1;
        let hits = query.bind(fetch).fetch_all(&self.reads).await?;
        let more = hits.len() > limit as usize;
        let mut found = Vec::with_capacity(limit as usize);
        let mut last = None;
        for hit in hits.iter().take(limit as usize) {
            let room: String = hit.try_get("room")?;
            let seq: i64 = hit.try_get("seq")?;
            last = Some(hit.try_get::<i64, _>("rowid")?);
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq = ?"
            ))
            .bind(&room)
            .bind(seq)
            .fetch_optional(&self.reads)
            .await?;
            if let Some(row) = row {
                let mut message = message_row(&row)?;
                message.reply_to = None;
                found.push(message);
            }
        }
        Ok(Found {
            messages: found,
            next: if more { last } else { None },
        })
    }

    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql =
            format!("SELECT user_id FROM read_markers WHERE room = ? AND user_id IN ({marks})");
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(room);
        for id in ids {
            query = query.bind(id);
        }
        let members = query.fetch_all(&self.reads).await?;
        Ok(ids
            .iter()
            .filter(|id| members.contains(id))
            .cloned()
            .collect())
    }

    async fn quote(&self, room: &str, seq: u64) -> Result<Option<Quote>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq = ?"
        ))
        .bind(room)
        .bind(to_i64(seq))
        .fetch_optional(&self.reads)
        .await?;
        Ok(match row {
            Some(row) => Some(Quote::of(&message_row(&row)?)),
            None => None,
        })
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistorySlice, StoreError> {
        let Some(around) = query.around else {
            return self.page(room, query, super::MAX_PAGE_BYTES).await;
        };
        let (older, newer) = super::around_halves(around, query);
        let mut slice = self.page(room, older, super::MAX_PAGE_BYTES / 2).await?;
        let Some(newer) = newer else {
            slice.has_newer = self.catalog.head(room).is_some_and(|head| head > around);
            return Ok(slice);
        };
        let later = self.page(room, newer, super::MAX_PAGE_BYTES / 2).await?;
        Ok(super::join_halves(slice, later))
    }

    async fn mark_read(
        &self,
        user_id: &str,
        room: &str,
        seq: u64,
    ) -> Result<MarkedRead, StoreError> {
        self.writer.mark_read(user_id, room, seq).await
    }

    async fn read_state(
        &self,
        user_id: &str,
        room: &str,
        head: u64,
    ) -> Result<Option<ReadState>, StoreError> {
        let marker: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM read_markers WHERE user_id = ? AND room = ?")
                .bind(user_id)
                .bind(room)
                .fetch_optional(&self.reads)
                .await?;
        let Some(marker) = marker else {
            return Ok(None);
        };
        let seq = seq_from_i64(marker)?.min(head);
        let bound = causerie_protocol::limits::MAX_UNREAD_COUNTED;
        let unread: i64 = if seq < head {
            // The scan stops after the first `bound` messages, whoever wrote them; one that
            // reached it says "at least that many" rather than an exact count it is not.
            let (scanned, unread): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(deleted = 0 AND author_id <> ?5), 0) \
                 FROM (SELECT author_id, deleted FROM messages \
                 WHERE room = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4)",
            )
            .bind(room)
            .bind(to_i64(seq))
            .bind(to_i64(head))
            .bind(i64::from(bound))
            .bind(user_id)
            .fetch_one(&self.reads)
            .await?;
            if scanned >= i64::from(bound) {
                i64::from(bound)
            } else {
                unread
            }
        } else {
            0
        };
        let mentions: i64 = if seq < head {
            // As bounded as the count above: the first `bound` mentions after the marker, then
            // those of them still standing.
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT m.room, m.seq FROM mentions m \
                 WHERE m.user_id = ?1 AND m.room = ?2 AND m.seq > ?3 AND m.seq <= ?4 \
                 ORDER BY m.seq LIMIT ?5) x \
                 JOIN messages g ON g.room = x.room AND g.seq = x.seq \
                 WHERE g.deleted = 0 AND g.author_id <> ?1",
            )
            .bind(user_id)
            .bind(room)
            .bind(to_i64(seq))
            .bind(to_i64(head))
            .bind(i64::from(bound))
            .fetch_one(&self.reads)
            .await?
        } else {
            0
        };
        Ok(Some(ReadState {
            room: room.to_owned(),
            seq,
            unread: u32::try_from(unread).unwrap_or(u32::MAX),
            mentions: u32::try_from(mentions).unwrap_or(u32::MAX),
            head,
        }))
    }

    async fn forget_read(&self, user_id: &str, room: &str) -> Result<(), StoreError> {
        self.writer.forget_read(user_id, room).await
    }

    async fn remember_user(&self, user: &User) -> Result<(), StoreError> {
        self.writer.remember_user(user).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(name.map(|name| User {
            id: id.to_owned(),
            name,
        }))
    }

    async fn open_direct(&self, room: &str, one: &User, other: &User) -> Result<(), StoreError> {
        // Opening one that exists needs no write, so it works while writes fail.
        if self.catalog.head(room).is_some() {
            return Ok(());
        }
        self.writer.open_direct(room, one, other).await
    }

    async fn directs_of(&self, user_id: &str, limit: usize) -> Result<Vec<Direct>, StoreError> {
        if !self.catalog.in_directs(user_id) {
            return Ok(Vec::new());
        }
        // Read in order from the index, `limit` rows whatever the user's number of them.
        let rows = sqlx::query(
            "SELECT d.room, d.peer_id, COALESCE(u.name, '') AS name FROM directs d \
             LEFT JOIN users u ON u.id = d.peer_id WHERE d.user_id = ?1 \
             ORDER BY d.last_at DESC LIMIT ?2",
        )
        .bind(user_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Direct {
                    room: row.try_get("room")?,
                    peer: User {
                        id: row.try_get("peer_id")?,
                        name: row.try_get("name")?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn head(&self, room: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.catalog.head(room))
    }

    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        // Joining a room that exists needs no write, so it works while writes fail.
        if self.catalog.head(room).is_some() {
            return Ok(());
        }
        self.writer.create_room(room).await
    }

    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        Ok(self.catalog.head(room).is_some())
    }

    async fn room_count(&self) -> Result<u64, StoreError> {
        let all = self.catalog.read().len() as u64;
        Ok(all.saturating_sub(self.catalog.directs.load(Ordering::Relaxed)))
    }

    async fn direct_count(&self) -> Result<u64, StoreError> {
        Ok(self.catalog.directs.load(Ordering::Relaxed))
    }

    async fn rooms_page(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<RoomsSlice, StoreError> {
        let rooms = self.catalog.read();
        let start = if after > prefix { after } else { prefix };
        let mut page: Vec<String> = rooms
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .map(|(name, _)| name)
            .filter(|name| name.as_str() != after)
            // Direct conversations sort after every room: the end of the rooms.
            .take_while(|name| name.starts_with(prefix) && !is_direct_room(name))
            .take(limit as usize + 1)
            .cloned()
            .collect();
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok(RoomsSlice {
            rooms: page,
            has_more,
        })
    }

    fn health(&self) -> WriteHealth {
        self.writer.health()
    }

    fn commits(&self) -> u64 {
        self.writer.commits()
    }

    async fn close(&self) {
        if !self.writer.close().await {
            return;
        }
        self.checkpoints.abort();
        self.reads.close().await;
    }
}

impl Drop for SqliteStore {
    /// A store dropped without `close` still stops checkpointing; its writer ends when the last
    /// sender of its queue goes.
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the WAL in the background. PASSIVE never blocks the writer or the readers; SQLite
/// starts the WAL over once a checkpoint has copied all of it.
///
/// After a deletion the next checkpoint is a TRUNCATE one (retried until it completes): the WAL
/// still holds the deleted text in older frames, and only emptying it makes the text gone from
/// every file.
async fn checkpoint_loop(mut connection: SqliteConnection, purge: Arc<Notify>) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    // Also at start: a crash may have come between a deletion and its purge.
    let mut purging = true;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = purge.notified() => purging = true,
        }
        let mode = if purging { "TRUNCATE" } else { "PASSIVE" };
        // One row: whether it could not finish (readers or a writer in the way), then pages.
        let checkpoint =
            sqlx::query_as::<_, (i64, i64, i64)>(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(&mut connection)
                .await;
        if let Ok((0, _, _)) = checkpoint {
            purging = false;
        }
        match checkpoint {
            // Logged once per change: on a full disk this fails twice a second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoints fail; retrying quietly");
            }
            Ok(_) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints work again");
            }
            _ => {}
        }
    }
}

/// The writer task's state.
struct Writer {
    /// The only writing connection; `None` after a failure that left its state unknown, until
    /// it is reopened.
    connection: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    /// Each room's next seq, as committed. Emptied after any failure: the file says what is true.
    next_seq: HashMap<String, u64>,
    health: watch::Sender<WriteHealth>,
    commits: Arc<AtomicU64>,
    /// Told what each transaction created and assigned, once it committed.
    catalog: Arc<Catalog>,
    /// Asks for a checkpoint that empties the WAL, after a deletion.
    purge: Arc<Notify>,
}

#[async_trait]
impl Batches for Writer {
    /// Commits `batch` in one transaction, or none of it, then answers each write alike.
    async fn commit_batch(&mut self, batch: Vec<Write>) {
        let mut replies = Vec::with_capacity(batch.len());
        let outcome = self.write_all(batch, &mut replies).await;
        match outcome {
            Ok((assigned, created)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.catalog.committed(created, &assigned);
                self.next_seq.extend(assigned);
                writer::set_health(&self.health, WriteHealth::Writable, "");
                let deleted = replies.iter().any(|(_, written)| {
                    matches!(
                        written,
                        Some(Written::Changed(Changed::Stored { change, duplicate: false }))
                            if change.kind == ChangeKind::Delete
                    )
                });
                if deleted {
                    self.purge.notify_one();
                }
                for (reply, written) in replies {
                    let written = written.expect("a committed batch wrote every write");
                    let _ = reply.send(Ok(written));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                writer::set_health(
                    &self.health,
                    WriteHealth::Failing(classify(&error)),
                    &reason,
                );
                self.recover().await;
                for (reply, _) in replies {
                    let _ = reply.send(Err(StoreError::NotCommitted(reason.clone())));
                }
            }
        }
    }

    /// Writes one row while writes fail, to find out when they work again.
    async fn probe(&mut self) {
        let result = async {
            let connection = begin(&mut self.connection, &self.options).await?;
            sqlx::query("INSERT OR REPLACE INTO write_probe (id, written_at) VALUES (1, ?)")
                .bind(now())
                .execute(&mut *connection)
                .await?;
            sqlx::query("COMMIT").execute(&mut *connection).await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match result {
            Ok(()) => writer::set_health(&self.health, WriteHealth::Writable, ""),
            Err(e) => {
                let reason = e.to_string();
                writer::set_health(&self.health, WriteHealth::Failing(classify(&e)), &reason);
                self.recover().await;
            }
        }
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take()
            && let Err(e) = connection.close().await
        {
            tracing::warn!(error = %e, "closing the SQLite writer failed");
        }
    }
}

impl Writer {
    /// Runs the batch inside `BEGIN IMMEDIATE` ... `COMMIT`, moving each write's reply into
    /// `replies`, with what it wrote if it got that far (answered once the batch's fate is
    /// known). Returns the seqs assigned and the rooms created, to keep once committed.
    async fn write_all(
        &mut self,
        batch: Vec<Write>,
        replies: &mut Vec<(WriteReply, Option<Written>)>,
    ) -> Result<(HashMap<String, u64>, Vec<String>), sqlx::Error> {
        let mut batch = batch.into_iter();
        let connection = match begin(&mut self.connection, &self.options).await {
            Ok(connection) => connection,
            Err(e) => {
                replies.extend(batch.map(|write| (write.reply, None)));
                return Err(e);
            }
        };
        // Seqs handed out in this transaction, applied to `next_seq` only once it commits.
        let mut assigned: HashMap<String, u64> = HashMap::new();
        let mut created = Vec::new();
        for Write { operation, reply } in batch.by_ref() {
            let result = match operation {
                Operation::Append(message) => {
                    append_in(connection, &self.next_seq, &mut assigned, message)
                        .await
                        .map(|appended| Written::Appended(Box::new(appended)))
                }
                Operation::Change(change) => {
                    change_in(connection, &self.next_seq, &mut assigned, change)
                        .await
                        .map(Written::Changed)
                }
                Operation::CreateRoom(room) => sqlx::query(
                    "INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&room)
                .bind(now())
                .execute(&mut *connection)
                .await
                .map(|_| {
                    created.push(room);
                    Written::RoomCreated
                }),
                Operation::ForgetRead { user_id, room } => {
                    sqlx::query("DELETE FROM read_markers WHERE user_id = ? AND room = ?")
                        .bind(&user_id)
                        .bind(&room)
                        .execute(&mut *connection)
                        .await
                        .map(|_| Written::ForgotRead)
                }
                Operation::MarkRead { user_id, room, seq } => {
                    mark_read_in(connection, &user_id, &room, seq)
                        .await
                        .map(Written::MarkedRead)
                }
                Operation::RememberUser(user) => remember_user_in(connection, &user)
                    .await
                    .map(|()| Written::RememberedUser),
                Operation::OpenDirect { room, one, other } => {
                    open_direct_in(connection, &room, &one, &other)
                        .await
                        .map(|()| {
                            created.push(room);
                            Written::OpenedDirect
                        })
                }
            };
            match result {
                Ok(written) => replies.push((reply, Some(written))),
                // One failed statement fails the batch: SQLite may already have rolled the whole
                // transaction back, and later statements would then commit one by one, unasked.
                Err(e) => {
                    replies.push((reply, None));
                    replies.extend(batch.map(|write| (write.reply, None)));
                    return Err(e);
                }
            }
        }
        sqlx::query("COMMIT").execute(&mut *connection).await?;
        Ok((assigned, created))
    }

    /// After a failure: roll back whatever is left of the transaction, so that the connection is
    /// in autocommit again, and forget the seqs. A ROLLBACK that fails (SQLite may have rolled
    /// back by itself already, on SQLITE_FULL or SQLITE_IOERR, or it may be unable to) leaves the
    /// connection's state in doubt: it is closed, which rolls back anything still open, and the
    /// next write opens a new one.
    async fn recover(&mut self) {
        self.next_seq.clear();
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *connection).await {
            tracing::debug!(error = %e, "ROLLBACK failed; reopening the SQLite writer");
            if let Some(connection) = self.connection.take() {
                let _ = connection.close().await;
            }
        }
    }
}

/// Starts a write transaction on the writer's connection, reopening it if a failure closed it,
/// and takes the write lock at once: a lock held elsewhere fails here, before any statement.
async fn begin<'c>(
    connection: &'c mut Option<SqliteConnection>,
    options: &SqliteConnectOptions,
) -> Result<&'c mut SqliteConnection, sqlx::Error> {
    if connection.is_none() {
        *connection = Some(SqliteConnection::connect_with(options).await?);
        tracing::info!("reopened the SQLite writer");
    }
    let connection = connection.as_mut().expect("opened above");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await?;
    Ok(connection)
}

/// Creates an empty database file readable by its owner only, if there is none: SQLite takes an
/// empty file as a new database, and gives its `-wal` and `-shm` files the same mode. A file
/// that exists keeps its mode (the data directory's mode is checked at start).
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

/// Which [`WriteFailure`] a database error is, from SQLite's primary result code.
fn classify(error: &sqlx::Error) -> WriteFailure {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    const SQLITE_IOERR: i64 = 10;
    const SQLITE_FULL: i64 = 13;
    match error {
        sqlx::Error::Database(database) => {
            let code = database
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|extended| extended & 0xff);
            match code {
                Some(SQLITE_FULL) => WriteFailure::DiskFull,
                Some(SQLITE_BUSY | SQLITE_LOCKED) => WriteFailure::Locked,
                Some(SQLITE_IOERR) => WriteFailure::Io,
                _ => WriteFailure::Other,
            }
        }
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => WriteFailure::DiskFull,
        sqlx::Error::Io(_) => WriteFailure::Io,
        _ => WriteFailure::Other,
    }
}

async fn append_in(
    connection: &mut SqliteConnection,
    next_seq: &HashMap<String, u64>,
    assigned: &mut HashMap<String, u64>,
    new: NewMessage,
) -> Result<Appended, sqlx::Error> {
    let seq = next_seq_in(connection, next_seq, assigned, &new.room).await?;
    let message = Message {
        id: uuid::Uuid::now_v7().to_string(),
        client_id: new.client_id,
        room: new.room,
        seq,
        author: new.author,
        text: new.text,
        sent_at: now(),
        edited_at: None,
        deleted: false,
        as_of: seq,
        mentions: new.mentions,
        reactions: Vec::new(),
        reply_to: new.reply_to.map(unfilled),
    };
    let inserted = sqlx::query(
        "INSERT INTO messages \
         (id, client_id, room, seq, author_id, author_name, text, sent_at, reply_to, mentions) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (author_id, client_id) DO NOTHING",
    )
    .bind(&message.id)
    .bind(&message.client_id)
    .bind(&message.room)
    .bind(to_i64(seq))
    .bind(&message.author.id)
    .bind(&message.author.name)
    .bind(&message.text)
    .bind(&message.sent_at)
    .bind(new.reply_to.map(to_i64))
    .bind(mentions_column(&message.mentions))
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted == 1 {
        for user_id in &message.mentions {
            sqlx::query("INSERT OR IGNORE INTO mentions (user_id, room, seq) VALUES (?, ?, ?)")
                .bind(user_id)
                .bind(&message.room)
                .bind(to_i64(seq))
                .execute(&mut *connection)
                .await?;
        }
        if let Some((one, other)) = direct_members(&message.room) {
            sqlx::query("UPDATE directs SET last_at = ? WHERE user_id IN (?, ?) AND room = ?")
                .bind(&message.sent_at)
                .bind(one)
                .bind(other)
                .bind(&message.room)
                .execute(&mut *connection)
                .await?;
        }
        assigned.insert(message.room.clone(), seq);
        let mut message = [message];
        let room = message[0].room.clone();
        fill_quotes(&mut *connection, &room, &mut message).await?;
        let [message] = message;
        return Ok(Appended {
            message,
            duplicate: false,
        });
    }
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = ? AND client_id = ?"
    ))
    .bind(&message.author.id)
    .bind(&message.client_id)
    .fetch_one(&mut *connection)
    .await?;
    let mut message = [message_row(&row)?];
    let room = message[0].room.clone();
    fill_quotes(&mut *connection, &room, &mut message).await?;
    let [message] = message;
    Ok(Appended {
        message,
        duplicate: true,
    })
}

/// Keeps `user`'s id and latest name.
async fn remember_user_in(
    connection: &mut SqliteConnection,
    user: &User,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, name) VALUES (?, ?) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE name <> excluded.name",
    )
    .bind(&user.id)
    .bind(&user.name)
    .execute(&mut *connection)
    .await
    .map(|_| ())
}

/// Creates the room of a direct conversation, its row for each member, and their read markers
/// at its start: what the other wrote before they first look is unread, unlike a room's past.
/// Both members are kept as users too (one may not have been, yet: their first write may be
/// on its way, or have failed).
async fn open_direct_in(
    connection: &mut SqliteConnection,
    room: &str,
    one: &User,
    other: &User,
) -> Result<(), sqlx::Error> {
    remember_user_in(connection, one).await?;
    remember_user_in(connection, other).await?;
    let (one, other) = (one.id.as_str(), other.id.as_str());
    let at = now();
    sqlx::query("INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
        .bind(room)
        .bind(&at)
        .execute(&mut *connection)
        .await?;
    for (user, peer) in [(one, other), (other, one)] {
        sqlx::query(
            "INSERT INTO directs (user_id, room, peer_id, last_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, room) DO NOTHING",
        )
        .bind(user)
        .bind(room)
        .bind(peer)
        .bind(&at)
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "INSERT INTO read_markers (user_id, room, seq) VALUES (?, ?, 0) \
             ON CONFLICT (user_id, room) DO NOTHING",
        )
        .bind(user)
        .bind(room)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Moves a read marker forward (never back), and says where it is now.
async fn mark_read_in(
    connection: &mut SqliteConnection,
    user_id: &str,
    room: &str,
    seq: u64,
) -> Result<MarkedRead, sqlx::Error> {
    let moved = sqlx::query(
        "INSERT INTO read_markers (user_id, room, seq) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id, room) DO UPDATE SET seq = excluded.seq \
         WHERE excluded.seq > read_markers.seq",
    )
    .bind(user_id)
    .bind(room)
    .bind(to_i64(seq))
    .execute(&mut *connection)
    .await?
    .rows_affected()
        == 1;
    if moved {
        return Ok(MarkedRead { seq, moved });
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT seq FROM read_markers WHERE user_id = ? AND room = ?")
            .bind(user_id)
            .bind(room)
            .fetch_one(&mut *connection)
            .await?;
    Ok(MarkedRead {
        seq: seq_from_i64(stored)?,
        moved,
    })
}

/// Fills the quotes of the replies among `messages` (all of `room`) with their originals as
/// they are now, in one read.
async fn fill_quotes<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    room: &str,
    messages: &mut [Message],
) -> Result<(), sqlx::Error> {
    let wanted = rows::quoted_seqs(messages);
    if wanted.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; wanted.len()].join(", ");
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq IN ({marks})");
    let mut query = sqlx::query(&sql).bind(room);
    for seq in &wanted {
        query = query.bind(to_i64(*seq));
    }
    let originals = query
        .fetch_all(executor)
        .await?
        .iter()
        .map(message_row)
        .collect::<Result<Vec<_>, _>>()?;
    rows::fill_quotes(messages, &originals);
    Ok(())
}

/// Which way a reaction toggles: `React` if the user had not given it, `Unreact` if they had;
/// `None` when it would be one emoji too many for the message.
async fn toggled_in(
    connection: &mut SqliteConnection,
    room: &str,
    target: u64,
    emoji: &str,
    user_id: &str,
) -> Result<Option<ChangeKind>, sqlx::Error> {
    let target = to_i64(target);
    let given: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM reactions WHERE room = ? AND target = ? AND emoji = ? AND user_id = ?",
    )
    .bind(room)
    .bind(target)
    .bind(emoji)
    .bind(user_id)
    .fetch_optional(&mut *connection)
    .await?;
    if given.is_some() {
        return Ok(Some(ChangeKind::Unreact));
    }
    let emoji_known: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM reactions WHERE room = ? AND target = ? AND emoji = ? LIMIT 1",
    )
    .bind(room)
    .bind(target)
    .bind(emoji)
    .fetch_optional(&mut *connection)
    .await?;
    if emoji_known.is_none() {
        // Counted no further than the bound: the writer does not read every reaction of a
        // message everyone reacted to.
        let kinds: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT DISTINCT emoji FROM reactions \
             WHERE room = ? AND target = ? LIMIT ?)",
        )
        .bind(room)
        .bind(target)
        .bind(causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE as i64)
        .fetch_one(&mut *connection)
        .await?;
        if kinds >= causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE as i64 {
            return Ok(None);
        }
    }
    Ok(Some(ChangeKind::React))
}

/// Fills the reactions of `messages` (all of `room`), in one read.
async fn fill_reactions<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    room: &str,
    messages: &mut [Message],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; messages.len()].join(", ");
    let sql = format!(
        "SELECT target, emoji, user_id, user_name FROM reactions \
         WHERE room = ? AND target IN ({marks}) ORDER BY at, emoji"
    );
    let mut query = sqlx::query(&sql).bind(room);
    for message in messages.iter() {
        query = query.bind(to_i64(message.seq));
    }
    let reactions = query
        .fetch_all(executor)
        .await?
        .iter()
        .map(ReactionRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    rows::fill_reactions(messages, reactions);
    Ok(())
}

/// The seq the next entry of `room` takes in this transaction.
async fn next_seq_in(
    connection: &mut SqliteConnection,
    next_seq: &HashMap<String, u64>,
    assigned: &HashMap<String, u64>,
    room: &str,
) -> Result<u64, sqlx::Error> {
    if let Some(last) = assigned.get(room).or_else(|| next_seq.get(room)) {
        return Ok(last + 1);
    }
    let last: i64 = sqlx::query_scalar(LAST_SEQ)
        .bind(room)
        .fetch_one(&mut *connection)
        .await?;
    Ok(seq_from_i64(last)? + 1)
}

/// Stores an edit or a deletion inside the writer's transaction, after checking it against the
/// message as committed: its author, whether it was deleted, and (for an edit) its age.
async fn change_in(
    connection: &mut SqliteConnection,
    next_seq: &HashMap<String, u64>,
    assigned: &mut HashMap<String, u64>,
    new: NewChange,
) -> Result<Changed, sqlx::Error> {
    let earlier = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM changes WHERE author_id = ? AND client_id = ?"
    ))
    .bind(&new.author.id)
    .bind(&new.client_id)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = earlier {
        let change = change_row(&row)?;
        // A retry names the same change; anything else reuses an id, and is no retry.
        if !rows::is_retry(&change, &new) {
            return Ok(Changed::Refused(ChangeRefusal::IdReused));
        }
        return Ok(Changed::Stored {
            change: Box::new(change),
            duplicate: true,
        });
    }
    let target =
        sqlx::query("SELECT author_id, sent_at, deleted FROM messages WHERE room = ? AND seq = ?")
            .bind(&new.room)
            .bind(to_i64(new.target))
            .fetch_optional(&mut *connection)
            .await?;
    let Some(target) = target else {
        return Ok(Changed::Refused(ChangeRefusal::NotFound));
    };
    if target.try_get::<i64, _>("deleted")? != 0 {
        return Ok(Changed::Refused(ChangeRefusal::NotFound));
    }
    let reaction = matches!(new.action, ChangeAction::React { .. });
    if !reaction && target.try_get::<String, _>("author_id")? != new.author.id {
        return Ok(Changed::Refused(ChangeRefusal::Forbidden));
    }
    let at = now();
    if new.action.kind() == ChangeKind::Edit {
        let sent_at: String = target.try_get("sent_at")?;
        if rows::past_edit_window(&sent_at, new.edit_window) {
            return Ok(Changed::Refused(ChangeRefusal::TooLate));
        }
    }
    let (kind, text, emoji) = match new.action {
        ChangeAction::Edit { text } => (ChangeKind::Edit, Some(text), None),
        ChangeAction::Delete => (ChangeKind::Delete, None, None),
        ChangeAction::React { emoji } => {
            match toggled_in(connection, &new.room, new.target, &emoji, &new.author.id).await? {
                Some(kind) => (kind, None, Some(emoji)),
                None => return Ok(Changed::Refused(ChangeRefusal::ReactionLimit)),
            }
        }
    };
    let seq = next_seq_in(connection, next_seq, assigned, &new.room).await?;
    let change = Change {
        id: uuid::Uuid::now_v7().to_string(),
        client_id: new.client_id,
        room: new.room,
        seq,
        author: new.author,
        kind,
        target: new.target,
        text,
        emoji,
        at,
    };
    sqlx::query(&format!(
        "INSERT INTO changes ({CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&change.id)
    .bind(&change.client_id)
    .bind(&change.room)
    .bind(to_i64(seq))
    .bind(&change.author.id)
    .bind(&change.author.name)
    .bind(change.kind.as_str())
    .bind(to_i64(change.target))
    // A reaction's emoji sits where an edit's text does.
    .bind(change.text.as_ref().or(change.emoji.as_ref()))
    .bind(&change.at)
    .execute(&mut *connection)
    .await?;
    let target = to_i64(change.target);
    match (change.kind, &change.text, &change.emoji) {
        (ChangeKind::React, _, Some(emoji)) => {
            sqlx::query(
                "INSERT INTO reactions (room, target, emoji, user_id, user_name, at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&change.room)
            .bind(target)
            .bind(emoji)
            .bind(&change.author.id)
            .bind(&change.author.name)
            .bind(&change.at)
            .execute(&mut *connection)
            .await?;
        }
        (ChangeKind::Unreact, _, Some(emoji)) => {
            sqlx::query(
                "DELETE FROM reactions WHERE room = ? AND target = ? AND emoji = ? AND user_id = ?",
            )
            .bind(&change.room)
            .bind(target)
            .bind(emoji)
            .bind(&change.author.id)
            .execute(&mut *connection)
            .await?;
        }
        (_, Some(text), _) => {
            sqlx::query("UPDATE messages SET text = ?, edited_at = ? WHERE room = ? AND seq = ?")
                .bind(text)
                .bind(&change.at)
                .bind(&change.room)
                .bind(target)
                .execute(&mut *connection)
                .await?;
        }
        // A deletion: the text is gone from the store, the message's and its earlier edits';
        // so are its reactions.
        _ => {
            sqlx::query("DELETE FROM reactions WHERE room = ? AND target = ?")
                .bind(&change.room)
                .bind(target)
                .execute(&mut *connection)
                .await?;
            // Nor does it keep who it named.
            sqlx::query("DELETE FROM mentions WHERE room = ? AND seq = ?")
                .bind(&change.room)
                .bind(target)
                .execute(&mut *connection)
                .await?;
            sqlx::query(
                "UPDATE messages SET text = '', deleted = 1, mentions = NULL \
                 WHERE room = ? AND seq = ?",
            )
            .bind(&change.room)
            .bind(to_i64(change.target))
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE changes SET text = NULL WHERE room = ? AND target = ? AND kind = 'edit'",
            )
            .bind(&change.room)
            .bind(to_i64(change.target))
            .execute(&mut *connection)
            .await?;
        }
    }
    assigned.insert(change.room.clone(), seq);
    Ok(Changed::Stored {
        change: Box::new(change),
        duplicate: false,
    })
}

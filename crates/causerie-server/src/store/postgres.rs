//! The PostgreSQL store: the history of a cluster, shared by every node.
//!
//! Each node has its own writer task ([`super::writer`]): group commit per node, as with SQLite.
//! Seqs are assigned inside the committing transaction: a batch first locks the row of each room
//! it writes to (`SELECT ... FOR UPDATE`, in name order, so that two nodes never wait on each
//! other in a cycle), reads the room's `head`, counts on from it, and writes it back before
//! `COMMIT`. A batch that fails rolls back its heads with it: seqs stay gap-free and unique
//! across nodes. `(author, clientId)` is a unique index, so a retry that reaches another node
//! finds the stored message. A deadlock or a serialization failure (another node's batch in the
//! way) retries the batch; any other failure fails it, answered `NotCommitted`, as with SQLite.
//!
//! Nothing about a room's log is cached on a node, since another node may have written since:
//! heads and pages are read from the database. Only that a room exists is kept, as rooms are
//! never removed.
//!
//! A statement, a lock wait and a transaction left idle all time out, so that a node cut off in
//! the middle of a batch neither waits forever nor holds other nodes' rooms locked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use causerie_protocol::limits::{DIRECT_ROOM_PREFIX, direct_members};
use causerie_protocol::{Change, ChangeKind, Direct, Message, Quote, ReadState, User};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use tokio::sync::watch;

use super::rows::{
    self, CHANGE_COLUMNS, MESSAGE_COLUMNS, ReactionRow, change_row, entry_row, mentions_column,
    message_row, now, seq_from_i64, to_i64, unfilled,
};
use super::writer::{self, Batches, Operation, Write, WriteReply, WriterTask, Written};
use super::{
    Appended, ChangeAction, ChangeRefusal, Changed, Found, HistoryQuery, HistorySlice, MarkedRead,
    NewChange, NewMessage, RoomsSlice, Store, StoreError, WriteFailure, WriteHealth,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections for reads, per node.
const READERS: u32 = 8;
/// How long a statement may run, and a transaction may sit idle, before the database ends it.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a batch waits for a room another node's batch holds.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting, or a read waiting for a free connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a batch may take, commit included; past it the connection is dropped (which rolls
/// back whatever it had not committed) and the batch answered `NotCommitted`.
const BATCH_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a batch that met another node's (a deadlock, a lock wait too long, the same
/// key written at once) is tried.
const ATTEMPTS: u32 = 3;
/// Most writes in one transaction: each costs round trips to the database while the batch holds
/// its rooms locked, so a batch stays well within [`BATCH_TIMEOUT`] and [`LOCK_TIMEOUT`] even
/// over a network with a few milliseconds of latency.
const MAX_BATCH: usize = 128;
/// How long a read may take, waiting for a connection included: on a partitioned network a
/// read fails after it rather than when TCP gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most search terms a query's words make (a word like "rock'n'roll" makes three).
const MAX_TERMS: usize = 16;
/// The longest word kept in the search index, in characters (a longer one is cut, in the index
/// and in queries alike). PostgreSQL refuses lexemes of 2 KiB.
const MAX_TERM_CHARS: usize = 200;

/// Messages and rooms in a PostgreSQL database.
pub struct PostgresStore {
    writer: WriterTask,
    reads: PgPool,
    /// The rooms known to exist: rooms are never removed, so once seen, always true.
    rooms: Arc<KnownRooms>,
}

/// Rooms this node knows exist.
#[derive(Debug, Default)]
struct KnownRooms(std::sync::RwLock<HashSet<String>>);

impl KnownRooms {
    fn contains(&self, room: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(room)
    }

    fn insert(&self, room: String) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(room);
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/database`), applies
    /// migrations (one node at a time: sqlx holds an advisory lock meanwhile), and makes sure
    /// the default room exists.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let timeouts = [
            ("statement_timeout", millis(STATEMENT_TIMEOUT)),
            ("lock_timeout", millis(LOCK_TIMEOUT)),
            (
                "idle_in_transaction_session_timeout",
                millis(STATEMENT_TIMEOUT),
            ),
            // An ack means committed to disk, whatever the server's default says.
            ("synchronous_commit", "on".to_owned()),
        ];
        let options = PgConnectOptions::from_str(url)?
            .application_name("causerie-server")
            .options(timeouts);
        let mut connection = connect(&options).await?;
        // `run_direct`: `run` over `&mut PgConnection` makes this future not `Send`.
        MIGRATOR.run_direct(&mut connection).await?;
        let reads = PgPoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options.clone());
        let rooms = Arc::new(KnownRooms::default());
        let writer = WriterTask::spawn(MAX_BATCH, |health, commits| Writer {
            connection: Some(connection),
            options,
            health,
            commits,
            rooms: rooms.clone(),
        });
        let store = Self {
            writer,
            reads,
            rooms,
        };
        store.create_room(causerie_protocol::DEFAULT_ROOM).await?;
        Ok(store)
    }

    /// A read-only transaction that sees one snapshot throughout.
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut snapshot = self.reads.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *snapshot)
            .await?;
        Ok(snapshot)
    }

    /// A page of the log after and/or before a seq (see [`HistoryQuery`]), with its quotes.
    async fn page(
        &self,
        room: &str,
        query: HistoryQuery,
        max_bytes: usize,
    ) -> Result<HistorySlice, StoreError> {
        let fetch = i64::from(query.limit) + 1;
        let after = query.after.map(to_i64);
        let before = query.before.map(to_i64).unwrap_or(i64::MAX);
        let order = if after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT 'message' AS entry, {MESSAGE_COLUMNS}, \
             NULL::text AS kind, NULL::bigint AS target, NULL::text AS at \
             FROM messages WHERE room = $1 AND seq > $2 AND seq < $3 \
             UNION ALL \
             SELECT 'change', id, client_id, room, seq, author_id, author_name, text, \
             NULL, NULL, false, NULL, NULL, kind, target, at \
             FROM changes WHERE room = $1 AND seq > $2 AND seq < $3 \
             ORDER BY seq {order} LIMIT $4"
        );
        let mut snapshot = self.snapshot().await?;
        let head = head_in(&mut snapshot, room).await?.unwrap_or(0);
        if head == 0 || query.after.is_some_and(|after| after >= head) {
            snapshot.commit().await?;
            return Ok(HistorySlice {
                messages: Vec::new(),
                changes: Vec::new(),
                has_more: false,
                has_newer: false,
            });
        }
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
        let mut messages = rows::messages_of(&entries);
        fill_quotes(&mut snapshot, room, &mut messages).await?;
        fill_reactions(&mut snapshot, room, &mut messages).await?;
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
impl Store for PostgresStore {
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        self.writer.append(message).await
    }

    async fn change(&self, change: NewChange) -> Result<Changed, StoreError> {
        self.writer.change(change).await
    }

    async fn sent(&self, author_id: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
        reading(async {
            let mut snapshot = self.snapshot().await?;
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
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
            let head = head_in(&mut snapshot, &room).await?.unwrap_or(0);
            fill_quotes(&mut snapshot, &room, &mut message).await?;
            fill_reactions(&mut snapshot, &room, &mut message).await?;
            snapshot.commit().await?;
            let [mut message] = message;
            message.as_of = head;
            Ok(Some(message))
        })
        .await
    }

    async fn search(
        &self,
        rooms: &[String],
        words: &[String],
        after: Option<i64>,
        limit: u32,
    ) -> Result<Found, StoreError> {
        reading(async {
            let terms: Vec<String> = words
                .iter()
                .flat_map(|word| search_terms(word))
                .take(MAX_TERMS)
                .collect();
            if rooms.is_empty() || terms.is_empty() {
                return Ok(Found {
                    messages: Vec::new(),
                    next: None,
                });
            }
            // Each term a quoted lexeme (letters and digits only: nothing a user types reaches
            // the query's syntax), all of them required, the last one also as the start of a word.
            let mut matching = terms
                .iter()
                .map(|term| format!("'{term}'"))
                .collect::<Vec<_>>()
                .join(" & ");
            matching.push_str(":*");
            let sql = format!(
                "SELECT n, {MESSAGE_COLUMNS} FROM messages \
                 WHERE search @@ $1::tsquery AND n < $2 AND room = ANY($3) \
                 ORDER BY n DESC LIMIT $4"
            );
            let hits = sqlx::query(&sql)
                .bind(&matching)
                .bind(after.unwrap_or(i64::MAX))
                .bind(rooms)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.reads)
                .await?;
            let more = hits.len() > limit as usize;
            let mut found = Vec::with_capacity(limit as usize);
            let mut last = None;
            for hit in hits.iter().take(limit as usize) {
                last = Some(hit.try_get::<i64, _>("n")?);
                let mut message = message_row(hit)?;
                message.reply_to = None;
                found.push(message);
            }
            Ok(Found {
                messages: found,
                next: if more { last } else { None },
            })
        })
        .await
    }

    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<String>, StoreError> {
        reading(async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let members: Vec<String> = sqlx::query_scalar(
                "SELECT user_id FROM read_markers WHERE room = $1 AND user_id = ANY($2)",
            )
            .bind(room)
            .bind(ids)
            .fetch_all(&self.reads)
            .await?;
            Ok(ids
                .iter()
                .filter(|id| members.contains(id))
                .cloned()
                .collect())
        })
        .await
    }

    async fn quote(&self, room: &str, seq: u64) -> Result<Option<Quote>, StoreError> {
        reading(async {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND seq = $2"
            ))
            .bind(room)
            .bind(to_i64(seq))
            .fetch_optional(&self.reads)
            .await?;
            Ok(match row {
                Some(row) => Some(Quote::of(&message_row(&row)?)),
                None => None,
            })
        })
        .await
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistorySlice, StoreError> {
        let Some(around) = query.around else {
            return self.page(room, query, super::MAX_PAGE_BYTES).await;
        };
        let (older, newer) = super::around_halves(around, query);
        let mut slice = self.page(room, older, super::MAX_PAGE_BYTES / 2).await?;
        let Some(newer) = newer else {
            slice.has_newer = self.head(room).await?.is_some_and(|head| head > around);
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
        reading(async {
            let marker: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM read_markers WHERE user_id = $1 AND room = $2")
                    .bind(user_id)
                    .bind(room)
                    .fetch_optional(&self.reads)
                    .await?;
            let Some(marker) = marker else {
                return Ok(None);
            };
            let seq = seq_from_i64(marker)?.min(head);
            let bound = causerie_protocol::limits::MAX_UNREAD_COUNTED;
            let (unread, mentions) = if seq < head {
                // Bounded as SQLite's are: the first `bound` messages after the marker, then the
                // first `bound` mentions.
                let (scanned, unread): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COALESCE(SUM((NOT deleted AND author_id <> $5)::int), 0)::bigint \
                     FROM (SELECT author_id, deleted FROM messages \
                     WHERE room = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4) AS page",
                )
                .bind(room)
                .bind(to_i64(seq))
                .bind(to_i64(head))
                .bind(i64::from(bound))
                .bind(user_id)
                .fetch_one(&self.reads)
                .await?;
                let mentions: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT m.room, m.seq FROM mentions m \
                     WHERE m.user_id = $1 AND m.room = $2 AND m.seq > $3 AND m.seq <= $4 \
                     ORDER BY m.seq LIMIT $5) AS x \
                     JOIN messages g ON g.room = x.room AND g.seq = x.seq \
                     WHERE NOT g.deleted AND g.author_id <> $1",
                )
                .bind(user_id)
                .bind(room)
                .bind(to_i64(seq))
                .bind(to_i64(head))
                .bind(i64::from(bound))
                .fetch_one(&self.reads)
                .await?;
                let unread = if scanned >= i64::from(bound) {
                    i64::from(bound)
                } else {
                    unread
                };
                (unread, mentions)
            } else {
                (0, 0)
            };
            Ok(Some(ReadState {
                room: room.to_owned(),
                seq,
                unread: u32::try_from(unread).unwrap_or(u32::MAX),
                mentions: u32::try_from(mentions).unwrap_or(u32::MAX),
                head,
            }))
        })
        .await
    }

    async fn forget_read(&self, user_id: &str, room: &str) -> Result<(), StoreError> {
        self.writer.forget_read(user_id, room).await
    }

    async fn remember_user(&self, user: &User) -> Result<(), StoreError> {
        self.writer.remember_user(user).await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        reading(async {
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.reads)
                .await?;
            Ok(name.map(|name| User {
                id: id.to_owned(),
                name,
            }))
        })
        .await
    }

    async fn open_direct(&self, room: &str, one: &User, other: &User) -> Result<(), StoreError> {
        if self.room_exists(room).await? {
            return Ok(());
        }
        self.writer.open_direct(room, one, other).await
    }

    async fn directs_of(&self, user_id: &str, limit: usize) -> Result<Vec<Direct>, StoreError> {
        reading(async {
            let rows = sqlx::query(
                "SELECT d.room, d.peer_id, COALESCE(u.name, '') AS name FROM directs d \
                 LEFT JOIN users u ON u.id = d.peer_id WHERE d.user_id = $1 \
                 ORDER BY d.last_at DESC LIMIT $2",
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
        })
        .await
    }

    async fn head(&self, room: &str) -> Result<Option<u64>, StoreError> {
        reading(async {
            let mut connection = self.reads.acquire().await?;
            let head = head_in(&mut connection, room).await?;
            if head.is_some() {
                self.rooms.insert(room.to_owned());
            }
            Ok(head)
        })
        .await
    }

    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        // Joining a room that exists needs no write, so it works while writes fail.
        if self.room_exists(room).await? {
            return Ok(());
        }
        self.writer.create_room(room).await
    }

    async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        Ok(self.rooms.contains(room) || self.head(room).await?.is_some())
    }

    async fn room_count(&self) -> Result<u64, StoreError> {
        reading(async {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE name < $1")
                .bind(DIRECT_ROOM_PREFIX.to_string())
                .fetch_one(&self.reads)
                .await?;
            Ok(seq_from_i64(count)?)
        })
        .await
    }

    async fn direct_count(&self) -> Result<u64, StoreError> {
        reading(async {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE name >= $1")
                .bind(DIRECT_ROOM_PREFIX.to_string())
                .fetch_one(&self.reads)
                .await?;
            Ok(seq_from_i64(count)?)
        })
        .await
    }

    async fn rooms_page(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<RoomsSlice, StoreError> {
        reading(async {
            let start = if after > prefix { after } else { prefix };
            // `starts_with`, not LIKE: a prefix is never a pattern.
            let mut page: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM rooms WHERE name >= $1 AND name < $4 AND name <> $2 \
                 AND starts_with(name, $3) ORDER BY name LIMIT $5",
            )
            .bind(start)
            .bind(after)
            .bind(prefix)
            .bind(DIRECT_ROOM_PREFIX.to_string())
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reads)
            .await?;
            let has_more = page.len() > limit as usize;
            page.truncate(limit as usize);
            Ok(RoomsSlice {
                rooms: page,
                has_more,
            })
        })
        .await
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
        self.reads.close().await;
    }
}

/// Fails `read` with [`StoreError::Database`] (timed out) past [`READ_TIMEOUT`].
async fn reading<T>(read: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(StoreError::Database(timed_out("a read", READ_TIMEOUT))))
}

/// `duration` as PostgreSQL settings take it.
fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// Opens a connection, giving up after [`CONNECT_TIMEOUT`].
async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| timed_out("connecting", CONNECT_TIMEOUT))?
}

/// The latest seq of `room`, if it exists.
async fn head_in(connection: &mut PgConnection, room: &str) -> Result<Option<u64>, sqlx::Error> {
    let head: Option<i64> = sqlx::query_scalar("SELECT head FROM rooms WHERE name = $1")
        .bind(room)
        .fetch_optional(&mut *connection)
        .await?;
    head.map(seq_from_i64).transpose()
}

/// The words of `text` as the search index keeps them: lower case, without diacritics, split
/// into runs of letters and digits (as SQLite's `unicode61` tokenizer does), each cut to
/// [`MAX_TERM_CHARS`]. Queries are folded alike, so that "Élan" finds "elan".
fn search_terms(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = text
        .to_lowercase()
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|term| !term.is_empty())
        .map(|term| term.chars().take(MAX_TERM_CHARS).collect())
        .collect()
}

/// The writer task's state.
struct Writer {
    /// The writing connection; `None` after a failure that left its state unknown, until it is
    /// reopened.
    connection: Option<PgConnection>,
    options: PgConnectOptions,
    health: watch::Sender<WriteHealth>,
    commits: Arc<AtomicU64>,
    /// Told which rooms a transaction created, once it committed.
    rooms: Arc<KnownRooms>,
}

#[async_trait]
impl Batches for Writer {
    async fn commit_batch(&mut self, batch: Vec<Write>) {
        let (operations, replies): (Vec<Operation>, Vec<WriteReply>) = batch
            .into_iter()
            .map(|write| (write.operation, write.reply))
            .unzip();
        let mut attempt = 1;
        let outcome = loop {
            let outcome =
                match tokio::time::timeout(BATCH_TIMEOUT, self.write_all(&operations)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        // Cut off mid-statement: the connection's state is unknown. Dropping it
                        // rolls back whatever it had not committed.
                        self.connection = None;
                        Err(timed_out("a batch", BATCH_TIMEOUT))
                    }
                };
            match outcome {
                Err(e) if attempt < ATTEMPTS && is_contention(&e) => {
                    tracing::debug!(error = %e, attempt, "batch met another node's; trying again");
                    self.recover().await;
                    attempt += 1;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok((written, created)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                for room in created {
                    self.rooms.insert(room);
                }
                writer::set_health(&self.health, WriteHealth::Writable, "");
                for (reply, written) in replies.into_iter().zip(written) {
                    let _ = reply.send(Ok(written));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                // Other nodes in the way say nothing of whether this one can write.
                if !is_contention(&error) {
                    writer::set_health(
                        &self.health,
                        WriteHealth::Failing(classify(&error)),
                        &reason,
                    );
                }
                self.recover().await;
                for reply in replies {
                    let _ = reply.send(Err(StoreError::NotCommitted(reason.clone())));
                }
            }
        }
    }

    async fn probe(&mut self) {
        let result = async {
            let connection = begin(&mut self.connection, &self.options).await?;
            sqlx::query(
                "INSERT INTO write_probe (id, written_at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
            )
            .bind(now())
            .execute(&mut *connection)
            .await?;
            sqlx::query("COMMIT").execute(&mut *connection).await?;
            Ok::<_, sqlx::Error>(())
        };
        let result = match tokio::time::timeout(BATCH_TIMEOUT, result).await {
            Ok(result) => result,
            Err(_) => {
                self.connection = None;
                Err(timed_out("a probe", BATCH_TIMEOUT))
            }
        };
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
            tracing::warn!(error = %e, "closing the PostgreSQL writer failed");
        }
    }
}

impl Writer {
    /// Runs `operations` in one transaction: locks the rooms they write to, applies each, writes
    /// the rooms' new heads, commits. Returns what each wrote and the rooms created.
    async fn write_all(
        &mut self,
        operations: &[Operation],
    ) -> Result<(Vec<Written>, Vec<String>), sqlx::Error> {
        let connection = begin(&mut self.connection, &self.options).await?;
        // Rows are locked in one order on every node (users, new rooms, then rooms written to,
        // each sorted), so that two nodes' batches rarely wait on each other in a cycle; when
        // they do, PostgreSQL ends one, and it is tried again.
        let mut users = BTreeMap::new();
        let mut new_rooms = BTreeSet::new();
        for operation in operations {
            match operation {
                Operation::RememberUser(user) => {
                    users.insert(&user.id, user);
                }
                Operation::OpenDirect { room, one, other } => {
                    users.insert(&one.id, one);
                    users.insert(&other.id, other);
                    new_rooms.insert(room.as_str());
                }
                Operation::CreateRoom(room) => {
                    new_rooms.insert(room.as_str());
                }
                _ => {}
            }
        }
        for user in users.values() {
            remember_user_in(connection, user).await?;
        }
        for room in new_rooms {
            create_room_in(connection, room).await?;
        }
        let logged: BTreeSet<&str> = operations
            .iter()
            .filter_map(Operation::logged_room)
            .collect();
        // In name order, so that batches of two nodes never wait on each other in a cycle.
        let locked: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, head FROM rooms WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        )
        .bind(logged.iter().copied().collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await?;
        let mut heads = Heads {
            locked: locked
                .into_iter()
                .map(|(name, head)| Ok((name, seq_from_i64(head)?)))
                .collect::<Result<_, sqlx::Error>>()?,
            moved: BTreeSet::new(),
        };
        let mut written = Vec::with_capacity(operations.len());
        let mut created = Vec::new();
        for operation in operations {
            let result = match operation.clone() {
                Operation::Append(message) => append_in(connection, &mut heads, message)
                    .await
                    .map(|appended| Written::Appended(Box::new(appended))),
                Operation::Change(change) => change_in(connection, &mut heads, change)
                    .await
                    .map(Written::Changed),
                Operation::CreateRoom(room) => {
                    create_room_in(connection, &room).await?;
                    created.push(room);
                    Ok(Written::RoomCreated)
                }
                Operation::ForgetRead { user_id, room } => {
                    sqlx::query("DELETE FROM read_markers WHERE user_id = $1 AND room = $2")
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
                    open_direct_in(connection, &room, &one, &other).await?;
                    created.push(room);
                    Ok(Written::OpenedDirect)
                }
            };
            // One failed statement aborts the transaction: the batch fails whole.
            written.push(result?);
        }
        for room in &heads.moved {
            sqlx::query("UPDATE rooms SET head = $2 WHERE name = $1")
                .bind(room)
                .bind(to_i64(heads.locked[room]))
                .execute(&mut *connection)
                .await?;
        }
        sqlx::query("COMMIT").execute(&mut *connection).await?;
        Ok((written, created))
    }

    /// After a failure: roll back what is left of the transaction; a connection whose state is
    /// in doubt is closed (which rolls back anything still open), and the next write opens one.
    async fn recover(&mut self) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        let rollback = tokio::time::timeout(
            CONNECT_TIMEOUT,
            sqlx::query("ROLLBACK").execute(&mut *connection),
        )
        .await;
        if !matches!(rollback, Ok(Ok(_))) {
            tracing::debug!("ROLLBACK failed; reopening the PostgreSQL writer");
            // Dropped rather than closed: closing waits on a connection that may be gone.
            self.connection = None;
        }
    }
}

/// The heads of the rooms a batch writes to, locked for it.
struct Heads {
    /// Each locked room's latest seq, counting this batch's entries.
    locked: HashMap<String, u64>,
    /// The rooms this batch added entries to.
    moved: BTreeSet<String>,
}

impl Heads {
    /// The seq the next entry of `room` takes; locks the room if the batch had not (a room
    /// created in the same batch).
    async fn next(
        &mut self,
        connection: &mut PgConnection,
        room: &str,
    ) -> Result<u64, sqlx::Error> {
        if !self.locked.contains_key(room) {
            create_room_in(connection, room).await?;
            let head: i64 = sqlx::query_scalar("SELECT head FROM rooms WHERE name = $1 FOR UPDATE")
                .bind(room)
                .fetch_one(&mut *connection)
                .await?;
            self.locked.insert(room.to_owned(), seq_from_i64(head)?);
        }
        Ok(self.locked[room] + 1)
    }

    /// Records that `room`'s entry `seq` was stored.
    fn stored(&mut self, room: &str, seq: u64) {
        self.locked.insert(room.to_owned(), seq);
        self.moved.insert(room.to_owned());
    }
}

/// Starts a transaction on the writer's connection, reopening it if a failure closed it.
async fn begin<'c>(
    connection: &'c mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<&'c mut PgConnection, sqlx::Error> {
    if connection.is_none() {
        *connection = Some(connect(options).await?);
        tracing::info!("reopened the PostgreSQL writer");
    }
    let connection = connection.as_mut().expect("opened above");
    sqlx::query("BEGIN").execute(&mut *connection).await?;
    Ok(connection)
}

/// `what` took longer than `limit`: an I/O error, as the database did not answer in time.
fn timed_out(what: &str, limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} took longer than {limit:?}: PostgreSQL did not answer"),
    ))
}

/// Whether a batch failed only because another node's was in the way: worth trying again.
fn is_contention(error: &sqlx::Error) -> bool {
    const UNIQUE_VIOLATION: &str = "23505";
    const SERIALIZATION_FAILURE: &str = "40001";
    const DEADLOCK_DETECTED: &str = "40P01";
    const LOCK_NOT_AVAILABLE: &str = "55P03";
    matches!(
        error,
        sqlx::Error::Database(database)
            if matches!(
                database.code().as_deref(),
                Some(UNIQUE_VIOLATION | SERIALIZATION_FAILURE | DEADLOCK_DETECTED | LOCK_NOT_AVAILABLE)
            )
    )
}

/// Which [`WriteFailure`] a database error is, from its SQLSTATE class.
fn classify(error: &sqlx::Error) -> WriteFailure {
    match error {
        sqlx::Error::Database(database) => match database.code().as_deref() {
            Some("53100") => WriteFailure::DiskFull,
            Some("55P03" | "40P01" | "40001" | "23505") => WriteFailure::Locked,
            // Connection exceptions, and the server shutting down or not yet accepting.
            Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                WriteFailure::Unreachable
            }
            _ => WriteFailure::Other,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => WriteFailure::Unreachable,
        _ => WriteFailure::Other,
    }
}

async fn create_room_in(connection: &mut PgConnection, room: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rooms (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(room)
    .bind(now())
    .execute(&mut *connection)
    .await
    .map(|_| ())
}

async fn append_in(
    connection: &mut PgConnection,
    heads: &mut Heads,
    new: NewMessage,
) -> Result<Appended, sqlx::Error> {
    let seq = heads.next(connection, &new.room).await?;
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
    // Waits for another node's uncommitted message with the same key, then finds it committed.
    let inserted = sqlx::query(
        "INSERT INTO messages \
         (id, client_id, room, seq, author_id, author_name, text, sent_at, reply_to, mentions, \
         search) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, array_to_tsvector($11)) \
         ON CONFLICT (author_id, client_id) DO NOTHING",
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
    .bind(search_terms(&message.text))
    .execute(&mut *connection)
    .await?
    .rows_affected();
    let duplicate = inserted == 0;
    let mut message = if duplicate {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
        ))
        .bind(&message.author.id)
        .bind(&message.client_id)
        .fetch_one(&mut *connection)
        .await?;
        [message_row(&row)?]
    } else {
        for user_id in &message.mentions {
            sqlx::query(
                "INSERT INTO mentions (user_id, room, seq) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(&message.room)
            .bind(to_i64(seq))
            .execute(&mut *connection)
            .await?;
        }
        if let Some((one, other)) = direct_members(&message.room) {
            sqlx::query("UPDATE directs SET last_at = $1 WHERE user_id IN ($2, $3) AND room = $4")
                .bind(&message.sent_at)
                .bind(one)
                .bind(other)
                .bind(&message.room)
                .execute(&mut *connection)
                .await?;
        }
        heads.stored(&message.room, seq);
        [message]
    };
    let room = message[0].room.clone();
    fill_quotes(connection, &room, &mut message).await?;
    let [message] = message;
    Ok(Appended { message, duplicate })
}

/// Keeps `user`'s id and latest name.
async fn remember_user_in(connection: &mut PgConnection, user: &User) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, name) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE users.name <> excluded.name",
    )
    .bind(&user.id)
    .bind(&user.name)
    .execute(&mut *connection)
    .await
    .map(|_| ())
}

/// Creates a direct conversation, as SQLite's store does: its room, its row for each member and
/// their read markers at its start, and both members as users.
async fn open_direct_in(
    connection: &mut PgConnection,
    room: &str,
    one: &User,
    other: &User,
) -> Result<(), sqlx::Error> {
    remember_user_in(connection, one).await?;
    remember_user_in(connection, other).await?;
    create_room_in(connection, room).await?;
    let at = now();
    for (user, peer) in [(&one.id, &other.id), (&other.id, &one.id)] {
        sqlx::query(
            "INSERT INTO directs (user_id, room, peer_id, last_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, room) DO NOTHING",
        )
        .bind(user)
        .bind(room)
        .bind(peer)
        .bind(&at)
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "INSERT INTO read_markers (user_id, room, seq) VALUES ($1, $2, 0) \
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
    connection: &mut PgConnection,
    user_id: &str,
    room: &str,
    seq: u64,
) -> Result<MarkedRead, sqlx::Error> {
    let moved = sqlx::query(
        "INSERT INTO read_markers AS r (user_id, room, seq) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, room) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > r.seq",
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
        sqlx::query_scalar("SELECT seq FROM read_markers WHERE user_id = $1 AND room = $2")
            .bind(user_id)
            .bind(room)
            .fetch_one(&mut *connection)
            .await?;
    Ok(MarkedRead {
        seq: seq_from_i64(stored)?,
        moved,
    })
}

/// Fills the quotes of the replies among `messages` (all of `room`), in one read.
async fn fill_quotes(
    connection: &mut PgConnection,
    room: &str,
    messages: &mut [Message],
) -> Result<(), sqlx::Error> {
    let wanted = rows::quoted_seqs(messages);
    if wanted.is_empty() {
        return Ok(());
    }
    let originals = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND seq = ANY($2)"
    ))
    .bind(room)
    .bind(wanted.into_iter().map(to_i64).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(message_row)
    .collect::<Result<Vec<_>, _>>()?;
    rows::fill_quotes(messages, &originals);
    Ok(())
}

/// Fills the reactions of `messages` (all of `room`), in one read.
async fn fill_reactions(
    connection: &mut PgConnection,
    room: &str,
    messages: &mut [Message],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let reactions = sqlx::query(
        "SELECT target, emoji, user_id, user_name FROM reactions \
         WHERE room = $1 AND target = ANY($2) ORDER BY at, emoji",
    )
    .bind(room)
    .bind(messages.iter().map(|m| to_i64(m.seq)).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(ReactionRow::read)
    .collect::<Result<Vec<_>, _>>()?;
    rows::fill_reactions(messages, reactions);
    Ok(())
}

/// Which way a reaction toggles: `React` if the user had not given it, `Unreact` if they had;
/// `None` when it would be one emoji too many for the message.
async fn toggled_in(
    connection: &mut PgConnection,
    room: &str,
    target: u64,
    emoji: &str,
    user_id: &str,
) -> Result<Option<ChangeKind>, sqlx::Error> {
    let target = to_i64(target);
    let (given, emoji_known, kinds): (bool, bool, i64) = sqlx::query_as(
        "SELECT \
         EXISTS (SELECT 1 FROM reactions WHERE room = $1 AND target = $2 AND emoji = $3 \
                 AND user_id = $4), \
         EXISTS (SELECT 1 FROM reactions WHERE room = $1 AND target = $2 AND emoji = $3), \
         (SELECT COUNT(*) FROM (SELECT DISTINCT emoji FROM reactions \
                 WHERE room = $1 AND target = $2 LIMIT $5) AS kinds)",
    )
    .bind(room)
    .bind(target)
    .bind(emoji)
    .bind(user_id)
    .bind(causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE as i64)
    .fetch_one(&mut *connection)
    .await?;
    Ok(if given {
        Some(ChangeKind::Unreact)
    } else if !emoji_known && kinds >= causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE as i64 {
        None
    } else {
        Some(ChangeKind::React)
    })
}

/// Stores an edit, a deletion or a reaction inside the writer's transaction, after checking it
/// against the message as committed (by any node: the room is locked).
async fn change_in(
    connection: &mut PgConnection,
    heads: &mut Heads,
    new: NewChange,
) -> Result<Changed, sqlx::Error> {
    let asked = new.clone();
    let earlier = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM changes WHERE author_id = $1 AND client_id = $2"
    ))
    .bind(&new.author.id)
    .bind(&new.client_id)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = earlier {
        let change = change_row(&row)?;
        if !rows::is_retry(&change, &new) {
            return Ok(Changed::Refused(ChangeRefusal::IdReused));
        }
        return Ok(Changed::Stored {
            change: Box::new(change),
            duplicate: true,
        });
    }
    let target: Option<(String, String, bool)> = sqlx::query_as(
        "SELECT author_id, sent_at, deleted FROM messages WHERE room = $1 AND seq = $2",
    )
    .bind(&new.room)
    .bind(to_i64(new.target))
    .fetch_optional(&mut *connection)
    .await?;
    let Some((author_id, sent_at, deleted)) = target else {
        return Ok(Changed::Refused(ChangeRefusal::NotFound));
    };
    if deleted {
        return Ok(Changed::Refused(ChangeRefusal::NotFound));
    }
    let reaction = matches!(new.action, ChangeAction::React { .. });
    if !reaction && author_id != new.author.id {
        return Ok(Changed::Refused(ChangeRefusal::Forbidden));
    }
    if new.action.kind() == ChangeKind::Edit && rows::past_edit_window(&sent_at, new.edit_window) {
        return Ok(Changed::Refused(ChangeRefusal::TooLate));
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
    let seq = heads.next(connection, &new.room).await?;
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
        at: now(),
    };
    // Another node may have stored a change under the same key since the check above (for
    // another room, whose lock did not hold it back): then this is a retry, or a reused id.
    let inserted = sqlx::query(&format!(
        "INSERT INTO changes ({CHANGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (author_id, client_id) DO NOTHING"
    ))
    .bind(&change.id)
    .bind(&change.client_id)
    .bind(&change.room)
    .bind(to_i64(seq))
    .bind(&change.author.id)
    .bind(&change.author.name)
    .bind(change.kind.as_str())
    .bind(to_i64(change.target))
    .bind(change.text.as_ref().or(change.emoji.as_ref()))
    .bind(&change.at)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted == 0 {
        let row = sqlx::query(&format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE author_id = $1 AND client_id = $2"
        ))
        .bind(&change.author.id)
        .bind(&change.client_id)
        .fetch_one(&mut *connection)
        .await?;
        let stored = change_row(&row)?;
        return Ok(if rows::is_retry(&stored, &asked) {
            Changed::Stored {
                change: Box::new(stored),
                duplicate: true,
            }
        } else {
            Changed::Refused(ChangeRefusal::IdReused)
        });
    }
    let target = to_i64(change.target);
    match (change.kind, &change.text, &change.emoji) {
        (ChangeKind::React, _, Some(emoji)) => {
            sqlx::query(
                "INSERT INTO reactions (room, target, emoji, user_id, user_name, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
                "DELETE FROM reactions \
                 WHERE room = $1 AND target = $2 AND emoji = $3 AND user_id = $4",
            )
            .bind(&change.room)
            .bind(target)
            .bind(emoji)
            .bind(&change.author.id)
            .execute(&mut *connection)
            .await?;
        }
        (_, Some(text), _) => {
            sqlx::query(
                "UPDATE messages SET text = $1, edited_at = $2, search = array_to_tsvector($3) \
                 WHERE room = $4 AND seq = $5",
            )
            .bind(text)
            .bind(&change.at)
            .bind(search_terms(text))
            .bind(&change.room)
            .bind(target)
            .execute(&mut *connection)
            .await?;
        }
        // A deletion: its text, its earlier edits' texts, its words in the index, its
        // reactions and who it named are gone. PostgreSQL keeps the old row versions until
        // VACUUM reclaims them (autovacuum does, in time); the README says so.
        _ => {
            sqlx::query("DELETE FROM reactions WHERE room = $1 AND target = $2")
                .bind(&change.room)
                .bind(target)
                .execute(&mut *connection)
                .await?;
            sqlx::query("DELETE FROM mentions WHERE room = $1 AND seq = $2")
                .bind(&change.room)
                .bind(target)
                .execute(&mut *connection)
                .await?;
            sqlx::query(
                "UPDATE messages SET text = '', deleted = true, mentions = NULL, search = NULL \
                 WHERE room = $1 AND seq = $2",
            )
            .bind(&change.room)
            .bind(target)
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE changes SET text = NULL WHERE room = $1 AND target = $2 AND kind = 'edit'",
            )
            .bind(&change.room)
            .bind(target)
            .execute(&mut *connection)
            .await?;
        }
    }
    heads.stored(&change.room, seq);
    Ok(Changed::Stored {
        change: Box::new(change),
        duplicate: false,
    })
}

#[cfg(test)]
mod tests {
    use super::search_terms;

    #[test]
    fn search_terms_fold_case_and_diacritics_and_split_on_anything_else() {
        assert_eq!(
            search_terms("Élan, CAFÉ-crème & naïve's 42nd"),
            ["elan", "cafe", "creme", "naive", "s", "42nd"]
        );
        assert_eq!(search_terms("日本語 テスト"), ["日本語", "テスト"]);
        assert!(search_terms("' & | ! :* <->").is_empty());
        let long = "a".repeat(5000);
        assert_eq!(search_terms(&long)[0].len(), super::MAX_TERM_CHARS);
    }
}

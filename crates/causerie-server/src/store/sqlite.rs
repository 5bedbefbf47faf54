//! The SQLite store: one file in WAL mode with `synchronous = FULL`, one writer, a pool of readers.
//!
//! Every write goes through a single writer task that owns the only writing connection. It takes
//! all the requests waiting in its queue (up to [`MAX_BATCH`]) and commits them in one transaction:
//! group commit, so that concurrent senders share one fsync instead of queueing for one each. Being
//! the only writer also makes seq assignment simple: it keeps each room's next seq in memory.
//! A second task checkpoints the WAL in the background, so no commit waits for a checkpoint.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use causerie_protocol::{Message, User};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Appended, HistoryQuery, HistorySlice, NewMessage, Store, StoreError};

/// Most writes committed together; bounds the latency one commit adds to the first of them.
const MAX_BATCH: usize = 1024;
/// Writes waiting for the writer; senders wait (back-pressure) beyond this.
const QUEUE_DEPTH: usize = 8192;
const READERS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

const SENT_AT_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

const MESSAGE_COLUMNS: &str = "id, client_id, room, seq, author_id, author_name, text, sent_at";

enum WriteRequest {
    Append(NewMessage, oneshot::Sender<Result<Appended, StoreError>>),
    CreateRoom(String, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
}

/// Messages and rooms in a SQLite file.
pub struct SqliteStore {
    writes: mpsc::Sender<WriteRequest>,
    reads: SqlitePool,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpoints: JoinHandle<()>,
    commits: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations, and makes sure the
    /// default room exists.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // Checkpoints (copying the WAL back into the database file, with an fsync) run beside the
        // writer rather than inside the commit that crosses the threshold, which would make every
        // message queued behind that commit wait for them.
        let mut writer =
            SqliteConnection::connect_with(&options.clone().pragma("wal_autocheckpoint", "0"))
                .await?;
        // `run_direct`, not `run`: `run` over `&mut SqliteConnection` makes this future not `Send`.
        MIGRATOR.run_direct(&mut writer).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.clone().read_only(true))
            .await?;

        let checkpoints = tokio::spawn(checkpoint_loop(
            SqliteConnection::connect_with(&options).await?,
        ));

        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write_loop(writer, queue, commits.clone()));
        let store = Self {
            writes,
            reads,
            writer: Mutex::new(Some(writer)),
            checkpoints,
            commits,
        };
        store.create_room(causerie_protocol::DEFAULT_ROOM).await?;
        Ok(store)
    }

    /// Transactions committed since the store opened: fewer than the writes when they were grouped.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn write<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteRequest,
    ) -> Result<T, StoreError> {
        let (reply, response) = oneshot::channel();
        self.writes
            .send(request(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        self.write(|reply| WriteRequest::Append(message, reply))
            .await
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> Result<HistorySlice, StoreError> {
        let fetch = i64::from(query.limit) + 1;
        let after = query.after.map(to_i64);
        let before = query.before.map(to_i64).unwrap_or(i64::MAX);
        // With `after` the page starts at the oldest match, else it ends at the newest.
        let (sql, ascending) = match after {
            Some(_) => (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?"
                ),
                true,
            ),
            None => (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?"
                ),
                false,
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(room)
            .bind(after.unwrap_or(0))
            .bind(before)
            .bind(fetch)
            .fetch_all(&self.reads)
            .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = messages.len() > query.limit as usize;
        messages.truncate(query.limit as usize);
        if !ascending {
            messages.reverse();
        }
        Ok(HistorySlice { messages, has_more })
    }

    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        let room = room.to_owned();
        self.write(|reply| WriteRequest::CreateRoom(room, reply))
            .await
    }

    async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM rooms ORDER BY name")
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|row| row.try_get("name").map_err(StoreError::from))
            .collect()
    }

    async fn close(&self) {
        let Some(writer) = self.writer.lock().await.take() else {
            return;
        };
        let (done, closed) = oneshot::channel();
        if self.writes.send(WriteRequest::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let _ = writer.await;
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
async fn checkpoint_loop(mut connection: SqliteConnection) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut connection)
            .await
        {
            tracing::warn!(error = %e, "a WAL checkpoint failed");
        }
    }
}

/// The writer task: batches what is queued, commits it once, then answers each request.
async fn write_loop(
    mut connection: SqliteConnection,
    mut queue: mpsc::Receiver<WriteRequest>,
    commits: Arc<AtomicU64>,
) {
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() && queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Some(at) = batch
            .iter()
            .position(|r| matches!(r, WriteRequest::Close(_)))
        {
            // Requests queued after Close are refused below, never half-done.
            for late in batch.drain(at + 1..) {
                late.fail(|| StoreError::Closed);
            }
            if let Some(WriteRequest::Close(done)) = batch.pop() {
                closing = Some(done);
            }
            queue.close();
        }
        if !batch.is_empty() {
            commit_batch(&mut connection, &mut next_seq, batch.drain(..)).await;
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
    while let Ok(late) = queue.try_recv() {
        late.fail(|| StoreError::Closed);
    }
    if let Err(e) = connection.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer failed");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

impl WriteRequest {
    /// Answers the request with an error (a `Close` is simply acknowledged).
    fn fail(self, error: impl FnOnce() -> StoreError) {
        match self {
            Self::Append(_, reply) => {
                let _ = reply.send(Err(error()));
            }
            Self::CreateRoom(_, reply) => {
                let _ = reply.send(Err(error()));
            }
            Self::Close(done) => {
                let _ = done.send(());
            }
        }
    }
}

enum Pending {
    Append(
        Result<Appended, StoreError>,
        oneshot::Sender<Result<Appended, StoreError>>,
    ),
    CreateRoom(
        Result<(), StoreError>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
}

impl Pending {
    /// Sends the write's result, or `NotCommitted` when its transaction failed to commit.
    fn answer(self, not_committed: Option<&str>) {
        let failed = || StoreError::NotCommitted(not_committed.unwrap_or_default().to_owned());
        match self {
            Self::Append(result, reply) => {
                let _ = reply.send(if not_committed.is_some() {
                    Err(failed())
                } else {
                    result
                });
            }
            Self::CreateRoom(result, reply) => {
                let _ = reply.send(if not_committed.is_some() {
                    Err(failed())
                } else {
                    result
                });
            }
        }
    }
}

async fn commit_batch(
    connection: &mut SqliteConnection,
    next_seq: &mut HashMap<String, u64>,
    batch: impl Iterator<Item = WriteRequest>,
) {
    let batch: Vec<WriteRequest> = batch.collect();
    let mut transaction = match connection.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            let reason = e.to_string();
            for request in batch {
                request.fail(|| StoreError::NotCommitted(reason.clone()));
            }
            return;
        }
    };
    let mut pending = Vec::with_capacity(batch.len());
    // Seqs handed out in this transaction, applied to `next_seq` only once it commits.
    let mut assigned: HashMap<String, u64> = HashMap::new();
    for request in batch {
        match request {
            WriteRequest::Append(message, reply) => {
                let result = append_in(&mut transaction, next_seq, &mut assigned, message).await;
                pending.push(Pending::Append(result, reply));
            }
            WriteRequest::CreateRoom(room, reply) => {
                let result = sqlx::query(
                    "INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&room)
                .bind(now())
                .execute(&mut *transaction)
                .await
                .map(drop)
                .map_err(StoreError::from);
                pending.push(Pending::CreateRoom(result, reply));
            }
            WriteRequest::Close(done) => {
                let _ = done.send(());
            }
        }
    }
    match transaction.commit().await {
        Ok(()) => {
            next_seq.extend(assigned);
            for item in pending {
                item.answer(None);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a write transaction failed to commit");
            // What the database holds is unknown here: read the seqs from it again next time.
            next_seq.clear();
            let reason = e.to_string();
            for item in pending {
                item.answer(Some(&reason));
            }
        }
    }
}

async fn append_in(
    connection: &mut SqliteConnection,
    next_seq: &HashMap<String, u64>,
    assigned: &mut HashMap<String, u64>,
    new: NewMessage,
) -> Result<Appended, StoreError> {
    let seq = match assigned.get(&new.room).or_else(|| next_seq.get(&new.room)) {
        Some(last) => last + 1,
        None => {
            let last: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?")
                    .bind(&new.room)
                    .fetch_one(&mut *connection)
                    .await?;
            u64::try_from(last).unwrap_or(0) + 1
        }
    };
    let message = Message {
        id: uuid::Uuid::now_v7().to_string(),
        client_id: new.client_id,
        room: new.room,
        seq,
        author: new.author,
        text: new.text,
        sent_at: now(),
    };
    let inserted = sqlx::query(
        "INSERT INTO messages (id, client_id, room, seq, author_id, author_name, text, sent_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (author_id, client_id) DO NOTHING",
    )
    .bind(&message.id)
    .bind(&message.client_id)
    .bind(&message.room)
    .bind(to_i64(seq))
    .bind(&message.author.id)
    .bind(&message.author.name)
    .bind(&message.text)
    .bind(&message.sent_at)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted == 1 {
        assigned.insert(message.room.clone(), seq);
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
    Ok(Appended {
        message: message_from_row(&row)?,
        duplicate: true,
    })
}

fn message_from_row(row: &SqliteRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        room: row.try_get("room")?,
        seq: u64::try_from(row.try_get::<i64, _>("seq")?).unwrap_or(0),
        author: User {
            id: row.try_get("author_id")?,
            name: row.try_get("author_name")?,
        },
        text: row.try_get("text")?,
        sent_at: row.try_get("sent_at")?,
    })
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(SENT_AT_FORMAT)
        .unwrap_or_default()
}

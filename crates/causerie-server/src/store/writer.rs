//! The writer task both stores share: one task owns the writing connection, takes all the writes
//! waiting in its queue (up to the store's most per batch) and commits them in one transaction (group commit:
//! concurrent senders share one commit instead of queueing for one each), then answers each. While
//! writes fail it probes every [`PROBE_EVERY`] when idle, so that it notices recovery by itself.
//! What a batch does inside its transaction is each database's own ([`Batches`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use causerie_protocol::User;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Appended, Changed, MarkedRead, NewChange, NewMessage, StoreError, WriteHealth};

/// Writes waiting for the writer; senders wait (back-pressure) beyond this.
const QUEUE_DEPTH: usize = 8192;
/// How often an idle writer retries while writes fail.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A write for the writer task, and where its answer goes.
pub(super) struct Write {
    pub operation: Operation,
    pub reply: WriteReply,
}

/// Where a write's answer goes.
pub(super) type WriteReply = oneshot::Sender<Result<Written, StoreError>>;

/// What a write does.
#[derive(Debug, Clone)]
pub(super) enum Operation {
    Append(NewMessage),
    Change(NewChange),
    CreateRoom(String),
    MarkRead {
        user_id: String,
        room: String,
        seq: u64,
    },
    ForgetRead {
        user_id: String,
        room: String,
    },
    RememberUser(User),
    OpenDirect {
        room: String,
        one: User,
        other: User,
    },
}

impl Operation {
    /// The room whose log it adds an entry to, if it does.
    pub(super) fn logged_room(&self) -> Option<&str> {
        match self {
            Self::Append(message) => Some(&message.room),
            Self::Change(change) => Some(&change.room),
            _ => None,
        }
    }
}

/// What a committed write did.
pub(super) enum Written {
    Appended(Box<Appended>),
    Changed(Changed),
    RoomCreated,
    MarkedRead(MarkedRead),
    ForgotRead,
    RememberedUser,
    OpenedDirect,
}

/// A store's writer task, the queue to it, and what it reports.
pub(super) struct WriterTask {
    writes: mpsc::Sender<Write>,
    /// Until `close`: the task, and the signal that tells it to finish.
    task: Mutex<Option<(JoinHandle<()>, oneshot::Sender<()>)>>,
    health: watch::Receiver<WriteHealth>,
    commits: Arc<AtomicU64>,
}

impl WriterTask {
    /// Starts the writer over the [`Batches`] that `batches` makes, given where to report its
    /// health and to count its commits.
    /// Each transaction holds up to `max_batch` writes: it bounds the latency one commit adds to
    /// the first of them.
    pub(super) fn spawn<B: Batches>(
        max_batch: usize,
        batches: impl FnOnce(watch::Sender<WriteHealth>, Arc<AtomicU64>) -> B,
    ) -> Self {
        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        let (health_sender, health) = watch::channel(WriteHealth::Writable);
        let batches = batches(health_sender, commits.clone());
        let (close, closing) = oneshot::channel();
        let task = tokio::spawn(run(batches, max_batch, health.clone(), queue, closing));
        Self {
            writes,
            task: Mutex::new(Some((task, close))),
            health,
            commits,
        }
    }

    /// Queues `operation` and waits until it is committed (or not).
    async fn submit(&self, operation: Operation) -> Result<Written, StoreError> {
        let (reply, response) = oneshot::channel();
        self.writes
            .send(Write { operation, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        match self.submit(Operation::Append(message)).await? {
            Written::Appended(appended) => Ok(*appended),
            _ => unreachable!("the writer answers an append with the message"),
        }
    }

    pub(super) async fn change(&self, change: NewChange) -> Result<Changed, StoreError> {
        match self.submit(Operation::Change(change)).await? {
            Written::Changed(changed) => Ok(changed),
            _ => unreachable!("the writer answers a change with what it did"),
        }
    }

    pub(super) async fn mark_read(
        &self,
        user_id: &str,
        room: &str,
        seq: u64,
    ) -> Result<MarkedRead, StoreError> {
        let operation = Operation::MarkRead {
            user_id: user_id.to_owned(),
            room: room.to_owned(),
            seq,
        };
        match self.submit(operation).await? {
            Written::MarkedRead(marked) => Ok(marked),
            _ => unreachable!("the writer answers a read marker with the marker"),
        }
    }

    pub(super) async fn forget_read(&self, user_id: &str, room: &str) -> Result<(), StoreError> {
        let operation = Operation::ForgetRead {
            user_id: user_id.to_owned(),
            room: room.to_owned(),
        };
        self.submit(operation).await.map(|_| ())
    }

    pub(super) async fn remember_user(&self, user: &User) -> Result<(), StoreError> {
        self.submit(Operation::RememberUser(user.clone()))
            .await
            .map(|_| ())
    }

    pub(super) async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        self.submit(Operation::CreateRoom(room.to_owned()))
            .await
            .map(|_| ())
    }

    pub(super) async fn open_direct(
        &self,
        room: &str,
        one: &User,
        other: &User,
    ) -> Result<(), StoreError> {
        let operation = Operation::OpenDirect {
            room: room.to_owned(),
            one: one.clone(),
            other: other.clone(),
        };
        self.submit(operation).await.map(|_| ())
    }

    pub(super) fn health(&self) -> WriteHealth {
        *self.health.borrow()
    }

    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops taking writes, commits those already queued and waits for the task to end;
    /// `false` if it was closed before.
    pub(super) async fn close(&self) -> bool {
        let Some((task, close)) = self.task.lock().await.take() else {
            return false;
        };
        let _ = close.send(());
        let _ = task.await;
        true
    }
}

/// A database's side of the writer.
#[async_trait]
pub(super) trait Batches: Send + 'static {
    /// Commits `batch` in one transaction, or none of it, then answers each write alike: `Ok`
    /// only once the commit returned success.
    async fn commit_batch(&mut self, batch: Vec<Write>);
    /// Writes one row while writes fail, to find out when they work again.
    async fn probe(&mut self);
    /// Closes the writing connection, once every write is answered.
    async fn close(&mut self);
}

/// Batches what is queued, commits it once, then answers each write; probes while failing.
/// Told to close, it takes no more writes, commits those already queued, and ends.
async fn run(
    mut database: impl Batches,
    max_batch: usize,
    health: watch::Receiver<WriteHealth>,
    mut queue: mpsc::Receiver<Write>,
    mut closing: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut closed = false;
    loop {
        let failing = *health.borrow() != WriteHealth::Writable;
        tokio::select! {
            received = queue.recv_many(&mut batch, max_batch) => if received == 0 { break },
            _ = &mut closing, if !closed => {
                // Senders are refused from now on; what is queued still comes out above.
                queue.close();
                closed = true;
                continue;
            }
            () = tokio::time::sleep(PROBE_EVERY), if failing && !closed => {
                database.probe().await;
                continue;
            }
        }
        database.commit_batch(std::mem::take(&mut batch)).await;
    }
    database.close().await;
}

/// Records how writing goes, logging only changes: a full disk fails every batch.
pub(super) fn set_health(sender: &watch::Sender<WriteHealth>, health: WriteHealth, reason: &str) {
    let previous = sender.send_replace(health);
    if previous == health {
        return;
    }
    match health {
        WriteHealth::Failing(failure) => tracing::error!(
            %failure, reason,
            "writes fail: new messages are refused (internal) until they work again"
        ),
        WriteHealth::Writable => tracing::info!("writes work again"),
    }
}

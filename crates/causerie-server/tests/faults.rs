//! Durability under real faults: a full filesystem, a failing statement inside a batch, and
//! another process holding the database's write lock. Every message acked `ok` must be in the
//! SQLite file exactly once afterwards, and nothing refused may be stored.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causerie_protocol::{Message, User};
use causerie_server::store::{NewMessage, SqliteStore, Store, StoreError};
use serde_json::json;
use sqlx::{Connection, Row, SqliteConnection};
use support::{LockHolder, PATIENCE, SmallDisk, TestClient, TestServer, auth, http, request_on};

/// A message as the SQLite file holds it: `(id, room, seq)`.
type StoredRow = (String, String, u64);

/// What the SQLite file holds, read with a connection of its own after the server stopped.
struct Stored {
    /// `(author id, client id)` to the rows stored under it (one, or it is a duplicate).
    by_client_id: BTreeMap<(String, String), Vec<StoredRow>>,
    /// Each room's seqs, in order.
    seqs: BTreeMap<String, Vec<u64>>,
}

async fn read_database(path: &Path) -> Stored {
    let mut connection = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opens the database file");
    let rows =
        sqlx::query("SELECT author_id, client_id, id, room, seq FROM messages ORDER BY room, seq")
            .fetch_all(&mut connection)
            .await
            .expect("reads messages");
    let mut stored = Stored {
        by_client_id: BTreeMap::new(),
        seqs: BTreeMap::new(),
    };
    for row in rows {
        let room: String = row.get("room");
        let seq = u64::try_from(row.get::<i64, _>("seq")).expect("a positive seq");
        stored
            .by_client_id
            .entry((row.get("author_id"), row.get("client_id")))
            .or_default()
            .push((row.get("id"), room.clone(), seq));
        stored.seqs.entry(room).or_default().push(seq);
    }
    stored
}

impl Stored {
    /// Asserts that each acked message is stored exactly once, as acked; that no refused
    /// message is stored; and that each room's seqs run 1, 2, 3... without a gap.
    fn assert_holds(&self, acked: &[Message], refused: &[(String, String)]) {
        for message in acked {
            let key = (message.author.id.clone(), message.client_id.clone());
            assert_eq!(
                self.by_client_id.get(&key),
                Some(&vec![(
                    message.id.clone(),
                    message.room.clone(),
                    message.seq
                )]),
                "acked ok but not in the file exactly once as acked: {} (seq {})",
                message.client_id,
                message.seq
            );
        }
        for key in refused {
            assert!(
                !self.by_client_id.contains_key(key),
                "refused but stored: {key:?}"
            );
        }
        for (room, seqs) in &self.seqs {
            let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, &expected, "seqs of {room} are unique and gap-free");
        }
    }
}

/// Sends `text` as `id` and returns the ack.
async fn send(client: &TestClient, id: &str, text: &str) -> serde_json::Value {
    client
        .request("message", json!({"id": id, "text": text}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_acks_what_it_did_not_store_and_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount(3 * 1024 * 1024) else {
        return;
    };
    let mut server = TestServer::start_in(disk.path(), causerie_server::testing::on_sqlite).await;
    let text = "x".repeat(4000);
    let refusals = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..10 {
        let (client, welcome) = TestClient::join(&server.url(), auth(&format!("s{sender}"))).await;
        let refusals = refusals.clone();
        let text = text.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = Vec::new();
            for n in 0.. {
                if refusals.load(Ordering::SeqCst) >= 100 {
                    break;
                }
                let id = format!("s{sender}-{n}");
                let ack = send(&client, &id, &text).await;
                if ack["ok"] == true {
                    acked.push(
                        serde_json::from_value::<Message>(ack["message"].clone())
                            .expect("a message"),
                    );
                } else {
                    assert_eq!(ack["error"]["code"], "internal", "{ack}");
                    refusals.fetch_add(1, Ordering::SeqCst);
                    refused.push((welcome.user.id.clone(), id));
                }
            }
            (client, welcome.user, acked, refused)
        }));
    }
    let mut clients = Vec::new();
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for sender in senders {
        let (client, user, mut ok, mut not) = sender.await.expect("sender runs");
        clients.push((client, user));
        acked.append(&mut ok);
        refused.append(&mut not);
    }
    eprintln!(
        "disk full: {} messages acked ok, {} refused",
        acked.len(),
        refused.len()
    );
    assert!(refused.len() >= 100);
    // Right after a refused write, the health says why. It follows what happened last: now and
    // then a checkpoint frees room in the WAL and a write fits (a small one, such as a read
    // marker, more often), so the check comes at once after a refusal, with nothing in between.
    let (writer, writer_id) = (&clients[0].0, clients[0].1.id.clone());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for n in 0.. {
        let id = format!("health-{n}");
        let ack = send(writer, &id, &text).await;
        if ack["ok"] == true {
            acked.push(
                serde_json::from_value::<Message>(ack["message"].clone()).expect("a message"),
            );
        } else {
            refused.push((writer_id.clone(), id));
            let (status, body) = http(server.address, "GET", "/healthz", b"").await;
            if status == 503 {
                assert_eq!(body.trim(), "degraded: disk full");
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the health never said the disk is full after a refusal"
        );
    }

    disk.resize(64 * 1024 * 1024);
    // Each sender sends 5 more; a send refused while the store notices the space is resent with
    // the same id, as a client does.
    for (sender, (client, _)) in clients.iter().enumerate() {
        for n in 0..5 {
            let id = format!("after-{sender}-{n}");
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let message = loop {
                let ack = send(client, &id, "space is back").await;
                if ack["ok"] == true {
                    break serde_json::from_value::<Message>(ack["message"].clone())
                        .expect("a message");
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {ack}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            acked.push(message);
        }
    }
    let (status, body) = http(server.address, "GET", "/healthz", b"").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let seen_by_another = TestClient::join(&server.url(), auth("late")).await.1;
    assert!(
        seen_by_another
            .history
            .last()
            .is_some_and(|m| m.text == "space is back"),
        "another connection sees the messages stored after the disk was grown"
    );
    for (client, _) in clients {
        client.disconnect().await;
    }
    server.stop().await;

    read_database(&server.database())
        .await
        .assert_holds(&acked, &refused);
    eprintln!(
        "{} acked messages found in the file, once each",
        acked.len()
    );
}

fn new_message(author: &str, client_id: &str, text: &str) -> NewMessage {
    NewMessage {
        client_id: client_id.to_owned(),
        room: "general".to_owned(),
        author: User {
            id: author.to_owned(),
            name: author.to_owned(),
        },
        text: text.to_owned(),
        reply_to: None,
        mentions: Vec::new(),
    }
}

async fn open_store(dir: &Path) -> (Arc<SqliteStore>, PathBuf) {
    let path = dir.join("chat.sqlite3");
    let store = Arc::new(SqliteStore::open(&path).await.expect("opens"));
    (store, path)
}

/// Appends every message at once, so that the writer takes them as one batch.
async fn append_together(
    store: &Arc<SqliteStore>,
    messages: Vec<NewMessage>,
) -> Vec<Result<causerie_server::store::Appended, StoreError>> {
    futures_util::future::join_all(messages.into_iter().map(|m| {
        let store = store.clone();
        async move { store.append(m).await }
    }))
    .await
}

#[tokio::test]
async fn a_statement_failing_inside_a_batch_fails_the_whole_batch_and_stores_none_of_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, path) = open_store(dir.path()).await;
    // The injected fault: SQLite rolls the whole transaction back when it meets this text, as it
    // may on SQLITE_FULL or SQLITE_IOERR.
    let mut saboteur = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opens");
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' \
         BEGIN SELECT RAISE(ROLLBACK, 'injected fault'); END",
    )
    .execute(&mut saboteur)
    .await
    .expect("creates the trigger");

    let batch: Vec<NewMessage> = (0..50)
        .map(|i| {
            let text = if i == 10 { "poison" } else { "fine" };
            new_message(&format!("u{}", i % 5), &format!("c{i}"), text)
        })
        .collect();
    let results = append_together(&store, batch.clone()).await;
    for (i, result) in results.iter().enumerate() {
        assert!(
            matches!(result, Err(StoreError::NotCommitted(_))),
            "request {i} of the failed batch: {result:?}"
        );
    }
    // Resent without the poison (same ids, as clients resend): each is stored now, once.
    let retry: Vec<NewMessage> = batch.into_iter().filter(|m| m.text != "poison").collect();
    let mut acked = Vec::new();
    for result in append_together(&store, retry).await {
        let appended = result.expect("the retry is stored");
        assert!(
            !appended.duplicate,
            "stored by the failed batch after all: {appended:?}"
        );
        acked.push(appended.message);
    }
    store.close().await;
    let stored = read_database(&path).await;
    stored.assert_holds(&acked, &[("u0".to_owned(), "c10".to_owned())]);
    assert_eq!(stored.seqs["general"].len(), 49);
}

#[tokio::test]
async fn failed_commits_in_a_row_never_leave_a_later_ack_uncommitted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, path) = open_store(dir.path()).await;
    // COMMIT itself fails while a row breaks a deferred constraint: the transaction stays open
    // unless the store rolls it back, which is what confused the writer before.
    let mut saboteur = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opens");
    for statement in [
        "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE fault_child (parent INTEGER REFERENCES fault_parent(id) \
         DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER fail_commit AFTER INSERT ON messages WHEN NEW.text = 'fail-commit' \
         BEGIN INSERT INTO fault_child VALUES (42); END",
    ] {
        sqlx::query(statement)
            .execute(&mut saboteur)
            .await
            .expect("prepares the fault");
    }
    saboteur.close().await.expect("closes");

    let mut refused = Vec::new();
    for round in 0..5 {
        let id = format!("bad-{round}");
        let result = store.append(new_message("ada", &id, "fail-commit")).await;
        assert!(
            matches!(result, Err(StoreError::NotCommitted(_))),
            "{result:?}"
        );
        refused.push(("ada".to_owned(), id));
    }
    let mut acked = Vec::new();
    for i in 0..5 {
        let appended = store
            .append(new_message("ada", &format!("good-{i}"), "fine"))
            .await
            .expect("stored");
        acked.push(appended.message);
    }
    assert_eq!(
        acked.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // Read from another connection while the store is still open: committed means visible.
    read_database(&path).await.assert_holds(&acked, &refused);
    store.close().await;
}

#[tokio::test]
async fn nothing_is_acked_while_another_process_holds_the_lock_and_all_of_it_after() {
    let server = TestServer::start_on_sqlite().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let lock = LockHolder::hold(&server.database()).await;
    let sends: Vec<_> = (0..5)
        .map(|i| {
            let client = ada.client.clone();
            tokio::spawn(async move {
                let data = json!({"id": format!("held-{i}"), "text": "wait"});
                let ack = request_on(&client, "message", data, PATIENCE)
                    .await
                    .expect("an ack once the lock is released");
                (ack, tokio::time::Instant::now())
            })
        })
        .collect();
    // The fault lasts 800 ms, well within the store's 5 s busy timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let released_at = tokio::time::Instant::now();
    lock.release().await;
    let mut acked = Vec::new();
    for send in sends {
        let (ack, acked_at) = send.await.expect("sends");
        assert_eq!(ack["ok"], true, "{ack}");
        assert!(
            acked_at >= released_at,
            "acked while another process held the write lock"
        );
        acked.push(serde_json::from_value::<Message>(ack["message"].clone()).expect("a message"));
    }
    read_database(&server.database())
        .await
        .assert_holds(&acked, &[]);
}

#[tokio::test]
async fn a_lock_held_longer_than_the_busy_timeout_refuses_then_recovers_without_a_restart() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        store_busy_timeout: Duration::from_millis(300),
        ..causerie_server::testing::on_sqlite(config)
    })
    .await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let lock = LockHolder::hold(&server.database()).await;
    let ack = send(&ada, "during", "locked out").await;
    assert_eq!(support::error_code(&ack), "internal");
    let (status, body) = http(server.address, "GET", "/healthz", b"").await;
    assert_eq!(
        (status, body.trim()),
        (503, "degraded: database locked by another process")
    );
    let (_, metrics) = http(server.address, "GET", "/metrics", b"").await;
    assert!(metrics.contains("causerie_store_writable 0"), "{metrics}");

    lock.release().await;
    // The store finds out by itself, without a message to write.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while http(server.address, "GET", "/healthz", b"").await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never writable again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resent = send(&ada, "during", "locked out").await;
    assert_eq!(resent["ok"], true, "{resent}");
    let message: Message = serde_json::from_value(resent["message"].clone()).expect("a message");
    read_database(&server.database())
        .await
        .assert_holds(&[message], &[(welcome.user.id, "never-sent".to_owned())]);
}

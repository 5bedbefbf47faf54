//! What only the PostgreSQL store has to prove: the database going away and coming back while
//! clients send, and another session holding a room locked. Every message acked `ok` must be in
//! the database exactly once afterwards, a refused one must not be there at all, and the server
//! must recover without a restart. Reads fail with `internal` while the database is away, and
//! go on while a room is locked.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use causerie_protocol::Message;
use causerie_server::ServerConfig;
use causerie_server::testing::TestPostgres;
use serde_json::json;
use sqlx::{Connection, Row};
use support::{PATIENCE, TestClient, TestServer, auth, http, request_on};

/// `(author id, client id)` to the `(room, seq)` of each row stored under it.
async fn stored(url: &str) -> BTreeMap<(String, String), Vec<(String, u64)>> {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connects");
    let rows =
        sqlx::query("SELECT author_id, client_id, room, seq FROM messages ORDER BY room, seq")
            .fetch_all(&mut connection)
            .await
            .expect("reads messages");
    let mut stored: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for row in rows {
        stored
            .entry((row.get("author_id"), row.get("client_id")))
            .or_default()
            .push((
                row.get("room"),
                u64::try_from(row.get::<i64, _>("seq")).expect("seq"),
            ));
    }
    stored
}

async fn health(server: &TestServer) -> (u16, String) {
    let (status, body) = http(server.address, "GET", "/healthz", b"").await;
    (status, body.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_stream_loses_nothing_acked_and_recovers_without_a_restart() {
    let mut postgres = TestPostgres::start();
    let url = postgres.create_database().await;
    let server = TestServer::start_with(|config| ServerConfig {
        database_url: Some(url.clone()),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;

    // 20 senders, each sending its messages in turn and retrying one until it is acked, as the
    // core client's outbox does.
    let senders: Vec<_> = (0..20)
        .map(|sender| {
            let client = ada.client.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut refusals = 0;
                for i in 0..40 {
                    let data = json!({"id": format!("s{sender}-{i}"), "text": "through it all"});
                    loop {
                        let ack = request_on(&client, "message", data.clone(), PATIENCE).await;
                        match ack {
                            Some(ack) if ack["ok"] == true => {
                                acked.push(
                                    serde_json::from_value::<Message>(ack["message"].clone())
                                        .expect("a message"),
                                );
                                break;
                            }
                            Some(ack) => {
                                assert_eq!(support::error_code(&ack), "internal");
                                refusals += 1;
                            }
                            None => {}
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (acked, refusals)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(200)).await;
    postgres.kill();
    // While it is gone: no ack, reads fail clearly, and the server says why.
    let ack = ada
        .request("message", json!({"id": "while-down", "text": "lost?"}))
        .await;
    assert_eq!(support::error_code(&ack), "internal");
    let history = ada.request("history", json!({"room": "general"})).await;
    assert_eq!(support::error_code(&history), "internal");
    assert_eq!(
        health(&server).await,
        (503, "degraded: database unreachable".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    postgres.resume();

    // It finds out by itself, without a restart.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while health(&server).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never writable again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut acked = Vec::new();
    let mut refusals = 0;
    for sender in senders {
        let (messages, refused) = sender.await.expect("sends");
        acked.extend(messages);
        refusals += refused;
    }
    assert!(
        refusals > 0,
        "the outage refused nothing: it did not happen"
    );
    assert_eq!(acked.len(), 800);

    let stored = stored(&url).await;
    for message in &acked {
        assert_eq!(
            stored.get(&(message.author.id.clone(), message.client_id.clone())),
            Some(&vec![(message.room.clone(), message.seq)]),
            "acked but not stored exactly once as acked: {}",
            message.client_id
        );
    }
    let mut seqs: Vec<u64> = stored.values().flatten().map(|(_, seq)| *seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    // The history reads again, as it was stored.
    let history = ada.request("history", json!({"room": "general"})).await;
    assert_eq!(history["ok"], true, "{history}");
}

/// A room's row held locked by another session: a node frozen mid-batch holds it until the
/// database ends its idle transaction (10 s), an operator's open transaction as long as it
/// lasts. The node's writes wait for it, to every room, while reads and health do not; a
/// message is acked once the lock is released, or refused with `internal` once the batch's
/// attempts are spent (3 × 5 s). Nothing is stored twice or in part, and the resend of a
/// refused one is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_locked_elsewhere_delays_or_refuses_its_messages_and_stores_each_once() {
    let url = TestPostgres::shared().create_database().await;
    let server = TestServer::start_with(|config| ServerConfig {
        database_url: Some(url.clone()),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    // Another connection for what runs beside Ada's pending requests: rust_socketio draws ack
    // ids from 0..999, and two pending requests that share one get each other's answers.
    let (bea, _) = TestClient::join(&server.url(), auth("Bea")).await;
    let joined = bea.request("join", json!({"room": "other"})).await;
    assert_eq!(joined["ok"], true, "{joined}");
    let first = ada.send_ok("first", "general", "before the lock").await;

    // Held for a while: the message waits, and is acked once the room is released.
    let mut lock = RoomLock::hold(&url, "general").await;
    let sending = spawn_message(&ada, json!({"id": "held", "text": "waits for the lock"}));
    lock.until_waited_on().await;
    assert!(!sending.is_finished(), "acked while the room was locked");
    let history = bea.request("history", json!({"room": "general"})).await;
    assert_eq!(history["ok"], true, "reads wait for no lock: {history}");
    assert_eq!(health(&server).await.0, 200, "another's lock is no failure");
    lock.release().await;
    let ack = sending.await.expect("sends").expect("an ack");
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["seq"], first.seq + 1, "{ack}");

    // Held past the batch's attempts: refused, nothing of it stored, and the node not counted
    // unhealthy. A message to another room, sent while the batch waits, waits for the next.
    let mut lock = RoomLock::hold(&url, "general").await;
    let refusing = spawn_message(&ada, json!({"id": "refused", "text": "gives up"}));
    lock.until_waited_on().await;
    let elsewhere = json!({"id": "elsewhere", "room": "other", "text": "not locked"});
    let elsewhere_sent = spawn_message(&bea, elsewhere);
    let ack = refusing.await.expect("sends").expect("an ack");
    assert_eq!(support::error_code(&ack), "internal", "{ack}");
    assert_eq!(health(&server).await.0, 200, "another's lock is no failure");
    let stored_meanwhile = stored(&url).await;
    assert!(
        !stored_meanwhile.keys().any(|(_, id)| id == "refused"),
        "refused but stored"
    );
    lock.release().await;
    let resent = ada.send_ok("refused", "general", "gives up").await;
    assert_eq!(resent.seq, first.seq + 2);
    let ack = elsewhere_sent.await.expect("sends").expect("an ack");
    assert_eq!(ack["ok"], true, "{ack}");

    let mut rows: Vec<(String, u64, String)> = stored(&url)
        .await
        .into_iter()
        .flat_map(|((_, id), rows)| {
            rows.into_iter()
                .map(move |(room, seq)| (room, seq, id.clone()))
        })
        .collect();
    rows.sort();
    let row = |room: &str, seq: u64, id: &str| (room.to_owned(), seq, id.to_owned());
    assert_eq!(
        rows,
        [
            row("general", first.seq, "first"),
            row("general", first.seq + 1, "held"),
            row("general", first.seq + 2, "refused"),
            row("other", 1, "elsewhere"),
        ],
        "each stored once, gap-free"
    );
}

/// Sends a message from `client` in a task of its own, and gives its ack: it may wait for a
/// lock the test holds, up to the batch's three attempts.
fn spawn_message(
    client: &TestClient,
    data: serde_json::Value,
) -> tokio::task::JoinHandle<Option<serde_json::Value>> {
    let client = client.client.clone();
    tokio::spawn(async move { request_on(&client, "message", data, 3 * PATIENCE).await })
}

/// Another session holding a room's row locked (`SELECT ... FOR UPDATE` in an open
/// transaction), as a node frozen mid-batch does, until released or dropped.
struct RoomLock {
    connection: sqlx::PgConnection,
}

impl RoomLock {
    async fn hold(url: &str, room: &str) -> Self {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("connects");
        sqlx::query("BEGIN")
            .execute(&mut connection)
            .await
            .expect("begins");
        sqlx::query("SELECT head FROM rooms WHERE name = $1 FOR UPDATE")
            .bind(room)
            .execute(&mut connection)
            .await
            .expect("locks the room");
        Self { connection }
    }

    /// Waits until another session waits for this lock (the server's batch). Asked of the lock
    /// manager, as `pg_stat_activity` holds still within this session's transaction.
    async fn until_waited_on(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let waited_on: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks \
                 WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))",
            )
            .fetch_one(&mut self.connection)
            .await
            .expect("reads pg_locks");
            if waited_on {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nobody waits for the lock"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.connection)
            .await
            .expect("releases the room");
    }
}

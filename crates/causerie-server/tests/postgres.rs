//! What only the PostgreSQL store has to prove: the database itself going away and coming back
//! while clients send. Every message acked `ok` must be in the database exactly once afterwards,
//! reads must fail with `internal` meanwhile, and the server must recover without a restart.

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

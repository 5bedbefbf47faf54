//! A crash for real: the server binary is killed with SIGKILL three times while 20 core clients
//! send, wait for acks and resend. Every message a client saw confirmed is in the file exactly
//! once afterwards, and every message was stored in the end, once.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use causerie_client::{Backoff, ClientConfig, ClientEvent, LocalId};
use causerie_protocol::Message;
use sqlx::{Connection, Row, SqliteConnection};
use support::ServerProcess;

const CLIENTS: usize = 20;
const MESSAGES_EACH: usize = 60;

/// Starts the server again on the same port, retrying while the old socket lingers.
async fn restart(data_dir: &Path, address: SocketAddr) -> ServerProcess {
    for _ in 0..50 {
        let listener = std::net::TcpListener::bind(address);
        if listener.is_ok() {
            drop(listener);
            return ServerProcess::start(data_dir, &address.to_string(), &[]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {address} never came free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kill_9s_under_20_senders_lose_nothing_acked_and_store_nothing_twice() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(data_dir.path(), "127.0.0.1:0", &[]);
    let url = format!("http://{}", server.address);

    let (confirmed_tx, mut confirmed_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (client, mut events) = causerie_client::connect(ClientConfig {
            name: Some(format!("sender{i}")),
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(300),
            },
            request_timeout: Duration::from_secs(1),
            liveness_interval: Duration::from_millis(300),
            ..ClientConfig::new(url.clone())
        })
        .expect("starts");
        let ids: Vec<LocalId> = (0..MESSAGES_EACH)
            .map(|n| client.send("general", &format!("{i}-{n}")))
            .collect();
        let confirmed_tx = confirmed_tx.clone();
        clients.push(tokio::spawn(async move {
            let mut user = None;
            let mut confirmed: HashMap<LocalId, Message> = HashMap::new();
            while confirmed.len() < ids.len() {
                match tokio::time::timeout(Duration::from_secs(60), events.next()).await {
                    Ok(Some(ClientEvent::Welcome(session))) => user = Some(session.user.id),
                    Ok(Some(ClientEvent::Message {
                        message,
                        confirms: Some(local_id),
                        ..
                    })) => {
                        let _ = confirmed_tx.send(());
                        confirmed.insert(local_id, message);
                    }
                    Ok(Some(ClientEvent::Failed { error, .. })) => panic!("refused: {error:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => panic!("sender {i} stalled at {}", confirmed.len()),
                }
            }
            client.disconnect();
            (user.expect("welcomed"), confirmed)
        }));
    }
    drop(confirmed_tx);

    // Kill after a third, two thirds and most of the messages were confirmed.
    let total = CLIENTS * MESSAGES_EACH;
    let mut seen = 0;
    for kill_at in [total / 4, total / 2, total * 3 / 4] {
        while seen < kill_at {
            confirmed_rx.recv().await.expect("senders run");
            seen += 1;
        }
        server.kill();
        server = restart(data_dir.path(), server.address).await;
    }

    let mut acked: BTreeMap<(String, String), Message> = BTreeMap::new();
    for client in clients {
        let (user, confirmed) = client.await.expect("sender runs");
        for (local_id, message) in confirmed {
            assert_eq!(message.author.id, user);
            assert_eq!(message.client_id, local_id.as_str());
            acked.insert((user.clone(), message.client_id.clone()), message);
        }
    }
    assert_eq!(acked.len(), total, "every message was confirmed in the end");
    server.stop();

    let mut database = SqliteConnection::connect(&format!(
        "sqlite://{}",
        data_dir
            .path()
            .join(causerie_server::DATABASE_FILE)
            .display()
    ))
    .await
    .expect("opens the database file");
    let rows = sqlx::query("SELECT author_id, client_id, id, seq FROM messages ORDER BY seq")
        .fetch_all(&mut database)
        .await
        .expect("reads");
    let seqs: Vec<i64> = rows.iter().map(|row| row.get("seq")).collect();
    assert_eq!(
        seqs,
        (1..=total as i64).collect::<Vec<_>>(),
        "each seq once, no gap"
    );
    let mut stored: BTreeMap<(String, String), (String, i64)> = BTreeMap::new();
    for row in &rows {
        let key = (row.get("author_id"), row.get("client_id"));
        assert!(
            stored
                .insert(key, (row.get("id"), row.get("seq")))
                .is_none(),
            "stored twice"
        );
    }
    for (key, message) in &acked {
        assert_eq!(
            stored.get(key),
            Some(&(message.id.clone(), message.seq as i64)),
            "confirmed but not stored as confirmed: {key:?}"
        );
    }
    eprintln!(
        "{} messages confirmed across 3 kills; {} rows in the file, each once",
        acked.len(),
        rows.len()
    );
}

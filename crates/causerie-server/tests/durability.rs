//! Durable history: what was acked survives restarts and shutdowns.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use causerie_protocol::{HistoryPage, Message};
use serde_json::json;
use support::{TestClient, TestServer, auth};

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_the_history_and_the_seqs() {
    let mut server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let before: Vec<Message> = {
        let mut sent = Vec::new();
        for i in 1..=5 {
            sent.push(
                ada.send_ok(&format!("c-{i}"), "general", &format!("m{i}"))
                    .await,
            );
        }
        sent
    };
    assert_eq!(
        ada.request("join", json!({"room": "kept"})).await["ok"],
        true
    );
    ada.disconnect().await;

    server.restart().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    // A page's messages reflect the room as of its head.
    let expected: Vec<Message> = before
        .into_iter()
        .map(|message| Message {
            as_of: 5,
            ..message
        })
        .collect();
    assert_eq!(welcome.history, expected);
    assert_eq!(welcome.rooms, vec!["general".to_owned(), "kept".to_owned()]);
    assert_eq!(ada.send_ok("c-6", "general", "after").await.seq, 6);
}

#[tokio::test]
async fn a_graceful_shutdown_under_load_loses_no_acked_message() {
    let mut server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(
            TestClient::join(&server.url(), auth(&format!("u{i}")))
                .await
                .0,
        );
    }
    let (stop_after, stopped) = tokio::sync::oneshot::channel::<()>();
    let senders = clients.iter().enumerate().map(|(i, client)| async move {
        let mut acked = Vec::new();
        for n in 0.. {
            let ack = client
                .try_request(
                    "message",
                    json!({"id": format!("{i}-{n}"), "text": "load"}),
                    Duration::from_secs(2),
                )
                .await;
            match ack {
                Some(ack) if ack["ok"] == true => acked.push(
                    serde_json::from_value::<Message>(ack["message"].clone()).expect("a message"),
                ),
                _ => break,
            }
        }
        acked
    });
    let load = futures_util::future::join_all(senders);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.stop().await;
        let _ = stop_after.send(());
    };
    let (acked, ()) = tokio::join!(load, stopper);
    stopped.await.expect("the server stopped");
    let acked: Vec<Message> = acked.into_iter().flatten().collect();
    assert!(
        acked.len() >= 20,
        "too little load to prove anything: {}",
        acked.len()
    );
    eprintln!("{} messages acked before the shutdown", acked.len());

    server.restart().await;
    let (reader, _) = TestClient::join(&server.url(), auth("Reader")).await;
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page: HistoryPage = serde_json::from_value(
            reader
                .request("history", json!({"after": after, "limit": 200}))
                .await,
        )
        .expect("a page");
        after = page.messages.last().map_or(after, |m| m.seq);
        stored.extend(page.messages);
        if !page.has_more {
            break;
        }
    }
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "seqs without gaps"
    );
    let stored_ids: BTreeSet<&str> = stored.iter().map(|m| m.id.as_str()).collect();
    for message in &acked {
        assert!(
            stored_ids.contains(message.id.as_str()),
            "acked but lost: {message:?}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_data_dir_and_its_secret_key_are_readable_by_the_server_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("var").join("causerie");
    let mut server = TestServer::start_in(&dir, causerie_server::testing::on_sqlite).await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.send_ok("c-1", "general", "private").await;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("secret.key")), 0o600);
    assert_eq!(mode(&dir.join(causerie_server::DATABASE_FILE)), 0o600);
    // SQLite gives the WAL the database's mode.
    assert_eq!(
        mode(&dir.join(format!("{}-wal", causerie_server::DATABASE_FILE))),
        0o600
    );
    ada.disconnect().await;
    server.stop().await;
}

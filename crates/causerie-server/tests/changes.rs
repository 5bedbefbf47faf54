//! Edits and deletions: entries of the room's log like messages, authorised, refused with stable
//! codes, delivered in order by catch-up, and the text of a deleted message gone from the file.

mod support;

use std::time::Duration;

use causerie_protocol::{Change, ChangeKind, HistoryPage, Message};
use causerie_server::ServerConfig;
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

async fn edit(client: &TestClient, id: &str, target: u64, text: &str) -> Value {
    let data = json!({"id": id, "room": "general", "target": target, "text": text});
    client.request("edit", data).await
}

async fn delete(client: &TestClient, id: &str, target: u64) -> Value {
    let data = json!({"id": id, "room": "general", "target": target});
    client.request("delete", data).await
}

fn change_of(ack: &Value) -> Change {
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack["change"].clone()).expect("the ack carries the change")
}

async fn page(client: &TestClient, after: u64) -> HistoryPage {
    let ack = client
        .request("history", json!({"room": "general", "after": after}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    serde_json::from_value(ack).expect("a page")
}

#[tokio::test]
async fn an_edit_and_a_deletion_take_the_next_seqs_and_reach_the_room_in_order() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let first = ada.send_ok("m1", "general", "helo").await;
    let second = ada.send_ok("m2", "general", "bye").await;

    let edited = change_of(&edit(&ada, "e1", first.seq, "hello").await);
    assert_eq!(
        (
            edited.seq,
            edited.kind,
            edited.target,
            edited.text.as_deref()
        ),
        (second.seq + 1, ChangeKind::Edit, first.seq, Some("hello"))
    );
    let deleted = change_of(&delete(&ada, "d1", second.seq).await);
    assert_eq!(
        (deleted.seq, deleted.kind, deleted.text.clone()),
        (edited.seq + 1, ChangeKind::Delete, None)
    );
    let third = ada.send_ok("m3", "general", "still here").await;
    assert_eq!(
        third.seq,
        deleted.seq + 1,
        "messages and changes share the seqs"
    );

    // Bob saw it all live, in order.
    assert_eq!(bob.next_message().await.seq, first.seq);
    assert_eq!(bob.next_message().await.seq, second.seq);
    let live: Change = serde_json::from_value(bob.next("change").await).expect("a change");
    assert_eq!(live, edited);
    let live: Change = serde_json::from_value(bob.next("change").await).expect("a change");
    assert_eq!(live, deleted);

    // A client that missed it catches up on the whole log: messages as they are now, and the
    // changes in between, no seq missing.
    let caught_up = page(&bob, 0).await;
    let mut seqs: Vec<u64> = caught_up.messages.iter().map(|m| m.seq).collect();
    seqs.extend(caught_up.changes.iter().map(|c| c.seq));
    seqs.sort_unstable();
    assert_eq!(seqs, (first.seq..=third.seq).collect::<Vec<_>>());
    let now: Vec<(&str, bool, bool)> = caught_up
        .messages
        .iter()
        .map(|m| (m.text.as_str(), m.edited_at.is_some(), m.deleted))
        .collect();
    assert_eq!(
        now,
        [
            ("hello", true, false),
            ("", false, true),
            ("still here", false, false)
        ]
    );
    assert_eq!(caught_up.changes, [edited, deleted]);
}

/// The files that hold `text`, of the database and its WAL.
fn files_holding(database: &std::path::Path, text: &[u8]) -> Vec<&'static str> {
    let wal = database.with_extension("sqlite3-wal");
    [("database", database.to_owned()), ("wal", wal)]
        .into_iter()
        .filter(|(_, path)| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes.windows(text.len()).any(|w| w == text)
        })
        .map(|(name, _)| name)
        .collect()
}

#[tokio::test]
async fn a_deleted_message_and_its_edits_leave_no_text_in_the_files() {
    let mut server = TestServer::start_on_sqlite().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let secret = ada.send_ok("m1", "general", "my secret xylophonic").await;
    change_of(&edit(&ada, "e1", secret.seq, "my secret, edited").await);
    // Written: the WAL holds it (and soon the database file).
    assert!(!files_holding(&server.database(), b"my secret").is_empty());
    change_of(&delete(&ada, "d1", secret.seq).await);
    // Gone from every file by the next checkpoint, while the server runs.
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while !files_holding(&server.database(), b"my secret").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still in {:?}",
            files_holding(&server.database(), b"my secret")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ada.disconnect().await;
    server.stop().await;
    assert!(files_holding(&server.database(), b"my secret").is_empty());
    // Its words are gone from the search index too (the index keeps words, not the text).
    assert!(files_holding(&server.database(), b"xylophonic").is_empty());
}

#[tokio::test]
async fn changes_are_refused_with_stable_codes_and_broadcast_nothing() {
    let server = TestServer::start_with(|config| ServerConfig {
        // No editing at all: the other refusals come first, then `too_late` at once.
        edit_window: Duration::ZERO,
        ..config
    })
    .await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    assert_eq!(welcome.limits.edit_window_secs, Some(0));
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let (mut watcher, _) = TestClient::join(&server.url(), auth("Watcher")).await;
    let adas = ada.send_ok("m1", "general", "Ada's").await;

    assert_eq!(
        error_code(&edit(&bob, "e1", adas.seq, "mine now").await),
        "forbidden"
    );
    assert_eq!(error_code(&delete(&bob, "d1", adas.seq).await), "forbidden");
    assert_eq!(
        error_code(&edit(&ada, "e2", 999, "nothing").await),
        "not_found"
    );
    assert_eq!(
        error_code(&edit(&ada, "e3", adas.seq, "   ").await),
        "empty"
    );
    let long = "x".repeat(4_001);
    assert_eq!(
        error_code(&edit(&ada, "e4", adas.seq, &long).await),
        "too_long"
    );
    let elsewhere = json!({"id": "e5", "room": "side", "target": adas.seq, "text": "hi"});
    assert_eq!(
        error_code(&ada.request("edit", elsewhere).await),
        "not_joined"
    );
    let unknown_field = json!({"id": "e6", "target": adas.seq, "text": "hi", "extra": 1});
    assert_eq!(
        error_code(&ada.request("edit", unknown_field).await),
        "invalid"
    );
    let no_target = json!({"id": "d2"});
    assert_eq!(
        error_code(&ada.request("delete", no_target).await),
        "invalid"
    );
    assert_eq!(
        error_code(&edit(&ada, "e7", adas.seq, "later").await),
        "too_late"
    );
    // Deleting has no time limit; then there is nothing left to change.
    change_of(&delete(&ada, "d3", adas.seq).await);
    assert_eq!(
        error_code(&edit(&ada, "e8", adas.seq, "back").await),
        "not_found"
    );
    assert_eq!(error_code(&delete(&ada, "d4", adas.seq).await), "not_found");
    // The id of that deletion, for another target: no retry, an error.
    let other = ada.send_ok("m2", "general", "another").await;
    assert_eq!(error_code(&delete(&ada, "d3", other.seq).await), "invalid");

    assert_eq!(watcher.next_message().await.seq, adas.seq);
    let only: Change = serde_json::from_value(watcher.next("change").await).expect("a change");
    assert_eq!(
        only.client_id, "d3",
        "the one change allowed, and nothing else"
    );
    watcher.expect_no("change").await;
}

#[tokio::test]
async fn a_retried_change_is_stored_and_broadcast_once() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let message = ada.send_ok("m1", "general", "typo").await;
    let first = change_of(&edit(&ada, "e1", message.seq, "fixed").await);
    let again = change_of(&edit(&ada, "e1", message.seq, "fixed").await);
    assert_eq!(first, again);
    bob.next("change").await;
    bob.expect_no("change").await;
    let next = ada.send_ok("m2", "general", "next").await;
    assert_eq!(next.seq, first.seq + 1, "no seq spent on the retry");
    let (_, metrics) = support::http(server.address, "GET", "/metrics", b"").await;
    assert!(
        metrics.contains("causerie_changes_accepted_total{kind=\"edit\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn seed_clients_see_new_messages_only() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    // In the room once welcomed: a message sent before may not reach it.
    seed.expect_welcome().await;
    let message = ada.send_ok("m1", "general", "hi").await;
    assert_eq!(seed.next("message").await, json!("Ada: hi"));
    change_of(&edit(&ada, "e1", message.seq, "hello").await);
    ada.send_ok("m2", "general", "there").await;
    assert_eq!(seed.next("message").await, json!("Ada: there"));
    seed.expect_no("change").await;
    // And a seed client cannot edit: it has no ids to point at, and no such event.
    let refused = seed
        .try_request(
            "edit",
            json!({"id": "e2", "target": message.seq, "text": "x"}),
            Duration::from_millis(400),
        )
        .await;
    assert!(refused.is_none(), "{refused:?}");
}

#[tokio::test]
async fn the_log_keeps_its_order_across_a_restart() {
    let mut server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let first = ada.send_ok("m1", "general", "one").await;
    let edited = change_of(&edit(&ada, "e1", first.seq, "one, edited").await);
    ada.disconnect().await;
    server.restart().await;

    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    assert_eq!(welcome.head, edited.seq);
    assert_eq!(welcome.changes, std::slice::from_ref(&edited));
    let texts: Vec<&str> = welcome.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one, edited"]);
    let after: Message = ada.send_ok("m2", "general", "two").await;
    assert_eq!(
        after.seq,
        edited.seq + 1,
        "seqs go on after the latest change"
    );
}

#[tokio::test]
async fn a_client_of_another_protocol_version_is_refused_with_its_own_code() {
    let server = TestServer::start().await;
    // 1 knew no edits, 2 no reactions, 4 is not out yet.
    for old in [
        json!({"protocol": 1, "name": "Old"}),
        json!({"protocol": 2, "name": "Less old"}),
        json!({"protocol": 4}),
    ] {
        let mut client = TestClient::connect(&server.url(), old).await;
        let error = client.next("error").await;
        let error = error.as_str().unwrap_or_default().to_owned();
        assert!(error.contains("unsupported_version: "), "{error}");
        client.expect_no("welcome").await;
    }
}

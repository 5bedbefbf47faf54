//! Replies quote the message they answer as it is now (an edit or a deletion of the original
//! shows in its replies), a reply to nothing is refused, and `history {around}` shows a message
//! in its context.

mod support;

use causerie_protocol::{HistoryPage, Message};
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

async fn reply(client: &TestClient, id: &str, room: &str, to: Value, text: &str) -> Value {
    let data = json!({"id": id, "room": room, "text": text, "replyTo": to});
    client.request("message", data).await
}

fn message_of(ack: &Value) -> Message {
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack["message"].clone()).expect("the ack carries the message")
}

async fn page(client: &TestClient, request: Value) -> HistoryPage {
    let ack = client.request("history", request).await;
    assert_eq!(ack["ok"], true, "{ack}");
    serde_json::from_value(ack).expect("a page")
}

#[tokio::test]
async fn a_reply_quotes_the_first_line_of_its_original_as_it_is_now() {
    let mut server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let long_line = "x".repeat(200);
    let original = ada
        .send_ok("q1", "general", &format!("\n{long_line}\nsecond line"))
        .await;
    bob.next_message().await;

    let answer = message_of(&reply(&bob, "r1", "general", json!(original.seq), "agreed").await);
    let quote = answer.reply_to.clone().expect("a quote");
    assert_eq!(quote.seq, original.seq);
    assert_eq!(quote.author.name, "Ada");
    assert_eq!(quote.excerpt, format!("{}…", "x".repeat(140)));
    assert!(!quote.deleted);
    assert_eq!(bob.next_message().await, answer, "broadcast with its quote");

    // Edited, the original shows its new first line in the reply's quote.
    let edited = ada
        .request(
            "edit",
            json!({"id": "e1", "target": original.seq, "text": "short now"}),
        )
        .await;
    assert_eq!(edited["ok"], true, "{edited}");
    let latest = page(&bob, json!({})).await;
    let quoted = latest.messages.iter().find(|m| m.seq == answer.seq);
    let quote = quoted.and_then(|m| m.reply_to.clone()).expect("a quote");
    assert_eq!(quote.excerpt, "short now");

    // Deleted, its text is gone from the quote too, and it stays gone after a restart.
    let deleted = ada
        .request("delete", json!({"id": "d1", "target": original.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    drop((ada, bob));
    server.restart().await;
    let (carol, _) = TestClient::join(&server.url(), auth("Carol")).await;
    let latest = page(&carol, json!({})).await;
    let quoted = latest.messages.iter().find(|m| m.seq == answer.seq);
    let quote = quoted.and_then(|m| m.reply_to.clone()).expect("a quote");
    assert_eq!((quote.excerpt.as_str(), quote.deleted), ("", true));
}

#[tokio::test]
async fn a_reply_to_no_message_is_refused_and_reaches_no_one() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let gone = ada.send_ok("g1", "general", "soon deleted").await;
    let deleted = ada
        .request("delete", json!({"id": "d1", "target": gone.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    bob.next_message().await;

    for (to, why) in [
        (json!(999), "no such message"),
        (json!(gone.seq), "a deleted message"),
        (json!(gone.seq + 10), "past the end"),
        (json!(0), "seq 0"),
    ] {
        let ack = reply(&ada, &format!("r-{why}"), "general", to, "hm").await;
        assert_eq!(error_code(&ack), "not_found", "{why}: {ack}");
    }
    for bad in [json!(-1), json!("1"), json!(1.5)] {
        let ack = reply(&ada, "r-bad", "general", bad.clone(), "hm").await;
        assert_eq!(error_code(&ack), "invalid", "{bad}: {ack}");
    }
    let ack = ada
        .request("message", json!({"id": "r-ok", "text": "fine"}))
        .await;
    assert_eq!(ack["ok"], true);
    // Bob saw the last message, none of the refused replies.
    assert_eq!(bob.next_message().await.text, "fine");
}

#[tokio::test]
async fn history_around_a_seq_shows_it_in_its_context() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    for i in 1..=30 {
        ada.send_ok(&format!("m{i}"), "general", &format!("m{i}"))
            .await;
    }
    let around = page(&ada, json!({"around": 10, "limit": 6})).await;
    let seqs: Vec<u64> = around.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12, 13]);
    assert!(
        around.has_more && around.has_newer,
        "older and newer ones remain"
    );
    let start = page(&ada, json!({"around": 2, "limit": 6})).await;
    let seqs: Vec<u64> = start.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(!start.has_more && start.has_newer);
    let end = page(&ada, json!({"around": 29, "limit": 6})).await;
    let seqs: Vec<u64> = end.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [27, 28, 29, 30]);
    assert!(end.has_more && !end.has_newer, "it reaches the present");
    let one = page(&ada, json!({"around": 10, "limit": 1})).await;
    let seqs: Vec<u64> = one.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [10], "a page of one is that one");
    assert!(one.has_newer);

    for bad in [
        json!({"around": 5, "after": 1}),
        json!({"around": 5, "before": 9}),
        json!({"around": "5"}),
    ] {
        let ack = ada.request("history", bad.clone()).await;
        assert_eq!(error_code(&ack), "invalid", "{bad}: {ack}");
    }
    let ack = ada
        .request("history", json!({"room": "elsewhere", "around": 5}))
        .await;
    assert_eq!(error_code(&ack), "not_joined");
}

#[tokio::test]
async fn a_resent_reply_is_answered_with_what_was_stored_even_once_the_original_is_gone() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let original = ada.send_ok("o1", "general", "soon gone").await;
    let first = message_of(&reply(&bob, "r1", "general", json!(original.seq), "yes").await);
    let deleted = ada
        .request("delete", json!({"id": "d1", "target": original.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    // The ack was lost: Bob sends the same id again.
    let again = message_of(&reply(&bob, "r1", "general", json!(original.seq), "yes").await);
    assert_eq!(
        (again.id.as_str(), again.seq),
        (first.id.as_str(), first.seq)
    );
    let quote = again.reply_to.expect("a quote");
    assert!(quote.deleted && quote.excerpt.is_empty(), "{quote:?}");
}

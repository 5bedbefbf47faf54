//! Reactions: toggled per user as entries of the room's log, shown on the message with counts
//! and who gave them, bounded per message, refused with stable codes, gone with the message.

mod support;

use causerie_protocol::{Change, ChangeKind, HistoryPage, Message, limits};
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

async fn react(client: &TestClient, id: &str, target: u64, emoji: &str) -> Value {
    let data = json!({"id": id, "room": "general", "target": target, "emoji": emoji});
    client.request("react", data).await
}

fn change_of(ack: &Value) -> Change {
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack["change"].clone()).expect("the ack carries the change")
}

async fn message_now(client: &TestClient, seq: u64) -> Message {
    let ack = client
        .request("history", json!({"after": seq - 1, "limit": 1}))
        .await;
    let page: HistoryPage = serde_json::from_value(ack).expect("a page");
    page.messages
        .into_iter()
        .find(|m| m.seq == seq)
        .expect("the message")
}

#[tokio::test]
async fn a_reaction_toggles_and_the_message_shows_who_gave_what() {
    let mut server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let (carol, _) = TestClient::join(&server.url(), auth("Carol")).await;
    let message = ada.send_ok("m1", "general", "lunch?").await;
    ada.next_message().await;

    let added = change_of(&react(&bob, "r1", message.seq, "👍").await);
    assert_eq!(
        (added.kind, added.emoji.as_deref(), added.target, added.seq),
        (ChangeKind::React, Some("👍"), message.seq, message.seq + 1)
    );
    let live: Change = serde_json::from_value(ada.next("change").await).expect("a change");
    assert_eq!(live, added);
    // A retry of the same id toggles nothing more.
    let again = change_of(&react(&bob, "r1", message.seq, "👍").await);
    assert_eq!(again, added);
    change_of(&react(&carol, "r2", message.seq, "👍").await);
    change_of(&react(&carol, "r3", message.seq, "👍🏽").await);

    let now = message_now(&ada, message.seq).await;
    let shown: Vec<(&str, u32, Vec<&str>)> = now
        .reactions
        .iter()
        .map(|r| {
            let names = r.users.iter().map(|u| u.name.as_str()).collect();
            (r.emoji.as_str(), r.count, names)
        })
        .collect();
    assert_eq!(
        shown,
        [("👍", 2, vec!["Bob", "Carol"]), ("👍🏽", 1, vec!["Carol"])]
    );

    // Bob takes his back: a change of its own, in the log.
    let taken = change_of(&react(&bob, "r4", message.seq, "👍").await);
    assert_eq!(taken.kind, ChangeKind::Unreact);
    server.restart().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let now = message_now(&ada, message.seq).await;
    assert_eq!(now.reactions[0].count, 1, "kept across a restart");
    let caught_up = ada.request("history", json!({"after": message.seq})).await;
    let page: HistoryPage = serde_json::from_value(caught_up).expect("a page");
    let kinds: Vec<ChangeKind> = page.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::React,
            ChangeKind::React,
            ChangeKind::React,
            ChangeKind::Unreact
        ]
    );
}

#[tokio::test]
async fn reactions_are_refused_with_codes_bounded_per_message_and_gone_with_it() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let message = ada.send_ok("m1", "general", "react to me").await;
    bob.next_message().await;

    for (emoji, why) in [
        ("a", "a letter"),
        ("", "nothing"),
        ("👍👍", "two emoji"),
        ("👍 ", "an emoji and a space"),
    ] {
        let ack = react(&ada, &format!("bad-{why}"), message.seq, emoji).await;
        assert_eq!(error_code(&ack), "invalid", "{why}: {ack}");
    }
    let ack = react(&ada, "none", 999, "👍").await;
    assert_eq!(error_code(&ack), "not_found");
    let ack = ada
        .request(
            "react",
            json!({"id": "x", "room": "elsewhere", "target": 1, "emoji": "👍"}),
        )
        .await;
    assert_eq!(error_code(&ack), "not_joined");

    let emoji: Vec<&str> = emojis::iter()
        .map(emojis::Emoji::as_str)
        .take(limits::MAX_REACTIONS_PER_MESSAGE + 1)
        .collect();
    for (i, e) in emoji
        .iter()
        .take(limits::MAX_REACTIONS_PER_MESSAGE)
        .enumerate()
    {
        change_of(&react(&ada, &format!("e{i}"), message.seq, e).await);
    }
    let over = react(
        &ada,
        "one-too-many",
        message.seq,
        emoji[limits::MAX_REACTIONS_PER_MESSAGE],
    )
    .await;
    assert_eq!(error_code(&over), "reaction_limit");
    // One of those already given can still be added to.
    change_of(&react(&bob, "b1", message.seq, emoji[0]).await);

    let deleted = ada
        .request("delete", json!({"id": "d1", "target": message.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    assert!(message_now(&ada, message.seq).await.reactions.is_empty());
    let ack = react(&bob, "late", message.seq, "👍").await;
    assert_eq!(error_code(&ack), "not_found");
}

#[tokio::test]
async fn one_emoji_in_two_forms_is_one_reaction_and_a_page_counts_each_once() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let message = ada.send_ok("m1", "general", "love it").await;
    // `❤` without its variation selector, and `❤️` with it: the same reaction, stored once.
    let first = change_of(&react(&ada, "r1", message.seq, "\u{2764}").await);
    assert_eq!(first.emoji.as_deref(), Some("\u{2764}\u{FE0F}"));
    change_of(&react(&bob, "r2", message.seq, "\u{2764}\u{FE0F}").await);
    let now = message_now(&ada, message.seq).await;
    assert_eq!(now.reactions.len(), 1);
    assert_eq!(now.reactions[0].count, 2);

    // A page holds the message as it is now and the changes among its entries: a client that
    // applies those changes to it (as it must for messages it had before) counts nothing twice.
    let ack = bob.request("history", json!({})).await;
    let page: HistoryPage = serde_json::from_value(ack).expect("a page");
    let mut shown = page
        .messages
        .iter()
        .find(|m| m.seq == message.seq)
        .cloned()
        .expect("the message");
    for change in &page.changes {
        shown.apply(change);
    }
    assert_eq!(shown.reactions, now.reactions);

    // A reaction resent after its message was deleted is answered with what was stored.
    let deleted = ada
        .request("delete", json!({"id": "d1", "target": message.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    let again = change_of(&react(&ada, "r1", message.seq, "\u{2764}").await);
    assert_eq!((again.id, again.seq), (first.id, first.seq));
}

//! Full-text search: only the rooms the connection is in, newest first and paged, words as
//! words (no operator reaches the index), edits and deletions followed, bounded and refused
//! with stable codes.

mod support;

use causerie_protocol::SearchPage;
use causerie_server::{EventLimits, Limit, ServerConfig};
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

/// A server whose search quota these tests do not meet (`tests/limits.rs` checks it).
async fn server() -> TestServer {
    TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            search: Limit::per_second(100, 100),
            new_guests_per_address: None,
            room_creation_per_address: None,
            ..EventLimits::default()
        }),
        ..config
    })
    .await
}

async fn search(client: &TestClient, request: Value) -> SearchPage {
    let ack = client.request("search", request).await;
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack).expect("a page of results")
}

fn texts(page: &SearchPage) -> Vec<&str> {
    page.results.iter().map(|m| m.text.as_str()).collect()
}

#[tokio::test]
async fn search_finds_words_in_the_rooms_joined_newest_first_never_elsewhere() {
    let mut server = server().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for (client, room) in [(&ada, "dev"), (&bob, "dev"), (&bob, "secret")] {
        let joined = client.request("join", json!({"room": room})).await;
        assert_eq!(joined["ok"], true, "{joined}");
    }
    bob.send_ok("b1", "general", "Lunch at noon?").await;
    bob.send_ok("b2", "secret", "secret lunch plans").await;
    bob.send_ok("b3", "dev", "the lunch menu is up").await;
    bob.send_ok("b4", "general", "Déjà vu").await;
    let typo = bob.send_ok("b5", "general", "lnuch typo").await;

    let found = search(&ada, json!({"query": "LUNCH"})).await;
    assert_eq!(texts(&found), ["the lunch menu is up", "Lunch at noon?"]);
    assert_eq!(
        search(&ada, json!({"query": "lun"})).await.results.len(),
        2,
        "a prefix"
    );
    assert_eq!(
        texts(&search(&ada, json!({"query": "deja"})).await),
        ["Déjà vu"]
    );
    assert_eq!(
        texts(&search(&ada, json!({"query": "lunch menu"})).await),
        ["the lunch menu is up"],
        "every word"
    );
    let only = search(&ada, json!({"query": "lunch", "room": "general"})).await;
    assert_eq!(texts(&only), ["Lunch at noon?"]);
    // Bob, in #secret, finds it there.
    assert_eq!(
        search(&bob, json!({"query": "secret"})).await.results.len(),
        1
    );

    // A page at a time.
    let first = search(&ada, json!({"query": "lunch", "limit": 1})).await;
    assert_eq!(texts(&first), ["the lunch menu is up"]);
    let next = first.next.clone().expect("more");
    let second = search(&ada, json!({"query": "lunch", "limit": 1, "after": next})).await;
    assert_eq!(texts(&second), ["Lunch at noon?"]);

    // Edits and deletions are followed; and it all outlives a restart.
    let edited = bob
        .request(
            "edit",
            json!({"id": "e1", "target": typo.seq, "text": "lunch fixed"}),
        )
        .await;
    assert_eq!(edited["ok"], true, "{edited}");
    assert!(
        search(&ada, json!({"query": "lnuch"}))
            .await
            .results
            .is_empty()
    );
    let deleted = bob
        .request("delete", json!({"id": "d1", "target": typo.seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    drop((ada, bob));
    server.restart().await;
    let (ada, _) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "name": "Ada", "token": welcome.token}),
    )
    .await;
    assert_eq!(
        texts(&search(&ada, json!({"query": "lunch"})).await),
        ["Lunch at noon?"]
    );
}

#[tokio::test]
async fn a_search_is_words_only_and_bad_ones_are_refused() {
    let server = server().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let joined = bob.request("join", json!({"room": "secret"})).await;
    assert_eq!(joined["ok"], true, "{joined}");
    bob.send_ok("b1", "secret", "the secret").await;
    ada.send_ok("a1", "general", "a \"quoted\" word, and NEAR(this)")
        .await;

    // FTS5 syntax is only words here: no error, and nothing from elsewhere.
    for query in [
        "secret\" OR \"the",
        "NEAR(this",
        "\"",
        "*",
        "room:secret",
        "the OR secret",
    ] {
        let found = search(&ada, json!({"query": query})).await;
        assert!(
            found.results.iter().all(|m| m.room == "general"),
            "{query}: {found:?}"
        );
    }
    assert_eq!(
        search(&ada, json!({"query": "\"quoted\""}))
            .await
            .results
            .len(),
        1
    );

    for bad in [
        json!({"query": ""}),
        json!({"query": "   "}),
        json!({"query": "x".repeat(101)}),
        json!({"query": "ok", "limit": 0}),
        json!({"query": "ok", "limit": 51}),
        json!({"query": "ok", "after": "nope"}),
        json!({"query": "ok", "extra": 1}),
    ] {
        let ack = ada.request("search", bad.clone()).await;
        assert_eq!(error_code(&ack), "invalid", "{bad}: {ack}");
    }
    let ack = ada
        .request("search", json!({"query": "secret", "room": "secret"}))
        .await;
    assert_eq!(error_code(&ack), "not_joined");
}

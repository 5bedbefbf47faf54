//! Clients of the old Flask server (no `protocol` in `auth`, plain-string messages) keep working.

mod support;

use serde_json::{Value, json};
use support::{TestClient, TestServer, auth};

#[tokio::test]
async fn a_seed_client_is_welcomed_as_a_guest() {
    let server = TestServer::start().await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    let welcome = seed.expect_welcome().await;
    assert!(welcome.user.name.starts_with("guest-"));
    assert_eq!(welcome.room, "general");
}

#[tokio::test]
async fn a_seed_clients_welcome_is_lean_yet_causerie_clients_see_it_online() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.send_ok("m-1", "general", "before the seed").await;
    ada.next_message().await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    let welcome = seed.expect_welcome().await;
    // Seed clients ignore the welcome: it carries no history and no one online, which would
    // cost the server O(N) per connection.
    assert!(welcome.history.is_empty(), "{welcome:?}");
    assert!(welcome.online.is_empty(), "{welcome:?}");
    assert_eq!(welcome.rooms, ["general"]);

    let arrived = loop {
        let presence = ada.next("presence").await;
        let joined = presence["joined"].as_array().cloned().unwrap_or_default();
        if joined.iter().any(|u| u["id"] == welcome.user.id.as_str()) {
            break presence;
        }
    };
    assert_eq!(arrived["count"], 2);

    let (_, bob) = TestClient::join(&server.url(), auth("Bob")).await;
    assert_eq!(bob.online_count, 3, "the seed client counts as online");
    let names: Vec<&str> = bob.online.iter().map(|u| u.name.as_str()).collect();
    assert!(names.contains(&welcome.user.name.as_str()), "{names:?}");
}

#[tokio::test]
async fn a_seed_clients_string_reaches_everyone_and_is_stored() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    let guest = seed.expect_welcome().await.user;

    seed.client
        .emit("message", json!("hello from Flutter"))
        .await
        .expect("emits");
    let message = ada.next_message().await;
    assert_eq!(message.text, "hello from Flutter");
    assert_eq!(message.room, "general");
    assert_eq!(message.author, guest);
    assert_eq!(message.seq, 1);
    assert_eq!(
        seed.next("message").await,
        Value::String(format!("{}: hello from Flutter", guest.name)),
        "the sender sees its own line, as with the old server"
    );
    let page = ada.request("history", json!({})).await;
    assert_eq!(page["messages"][0]["text"], "hello from Flutter");
}

#[tokio::test]
async fn a_seed_client_receives_general_as_name_colon_text_and_nothing_else() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    seed.expect_welcome().await;

    assert_eq!(
        ada.request("join", json!({"room": "elsewhere"})).await["ok"],
        true
    );
    ada.send_ok("e-1", "elsewhere", "not for seeds").await;
    ada.send_ok("g-1", "general", "hi seeds").await;
    assert_eq!(seed.next("message").await, json!("Ada: hi seeds"));
    seed.expect_no("message").await;
    seed.expect_no("presence").await;
}

#[tokio::test]
async fn a_seed_clients_bad_input_is_dropped_without_harm() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    seed.expect_welcome().await;
    for bad in [
        json!({"id": "x", "text": "objects are for Causerie clients"}),
        json!(""),
        json!("   "),
    ] {
        seed.client.emit("message", bad).await.expect("emits");
    }
    let next = ada.send_ok("c-1", "general", "only this").await;
    assert_eq!(bob.next_message().await, next);
    assert_eq!(seed.next("message").await, json!("Ada: only this"));
}

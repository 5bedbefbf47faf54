//! Bad input: each refusal has its stable code, nothing is stored or broadcast, the connection and
//! the other clients carry on, and no input brings the server down.

mod support;

use causerie_protocol::{HistoryPage, Message};
use causerie_server::RateLimit;
use rust_socketio::TransportType;
use serde_json::{Value, json};
use std::num::NonZeroU32;
use support::{TestClient, TestServer, auth, error_code, http, polling_path, polling_session};

/// Proves nothing was broadcast or stored since the observer's last message: the next message the
/// observer sees is a fresh one, and the room holds exactly `expected` messages.
async fn nothing_leaked(sender: &TestClient, observer: &mut TestClient, expected: usize) {
    let marker = sender.send_ok("marker", "general", "marker").await;
    assert_eq!(
        observer.next_message().await,
        marker,
        "something else was broadcast first"
    );
    let page: HistoryPage =
        serde_json::from_value(sender.request("history", json!({"limit": 200})).await)
            .expect("a history page");
    assert_eq!(page.messages.len(), expected + 1, "{:?}", page.messages);
}

#[tokio::test]
async fn malformed_messages_are_refused_as_invalid() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for bad in [
        json!({"text": "no id"}),
        json!({"id": "c-1"}),
        json!({"id": 7, "text": "id is a number"}),
        json!({"id": "", "text": "empty id"}),
        json!({"id": "x".repeat(65), "text": "id too long"}),
        json!({"id": "c-1", "text": "unknown field", "html": true}),
        json!("a Causerie client must send an object"),
        json!(42),
        Value::Null,
    ] {
        let ack = ada.request("message", bad.clone()).await;
        assert_eq!(error_code(&ack), "invalid", "for {bad}");
        assert!(
            !ack["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    nothing_leaked(&ada, &mut bob, 0).await;
}

#[tokio::test]
async fn empty_and_too_long_texts_are_refused() {
    let server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let max = welcome.limits.max_message_chars as usize;
    assert_eq!(error_code(&ada.send("c-1", "general", "").await), "empty");
    assert_eq!(
        error_code(&ada.send("c-2", "general", " \n\t ").await),
        "empty"
    );
    assert_eq!(
        error_code(&ada.send("c-3", "general", &"é".repeat(max + 1)).await),
        "too_long"
    );
    let longest = ada.send_ok("c-4", "general", &"é".repeat(max)).await;
    assert_eq!(bob.next_message().await, longest);
    nothing_leaked(&ada, &mut bob, 1).await;
}

#[tokio::test]
async fn unknown_or_unjoined_rooms_are_refused() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    // "secret" exists, but only Bob is in it.
    assert_eq!(
        bob.request("join", json!({"room": "secret"})).await["ok"],
        true
    );
    for room in ["nowhere", "secret", "Not A Room", ""] {
        assert_eq!(
            error_code(&ada.send("c-1", room, "hi").await),
            "not_joined",
            "room {room:?}"
        );
        assert_eq!(
            error_code(&ada.request("history", json!({"room": room})).await),
            "not_joined"
        );
    }
    for room in ["Bad Room", "", "x".repeat(33).as_str(), "émoji"] {
        assert_eq!(
            error_code(&ada.request("join", json!({"room": room})).await),
            "invalid_room",
            "room {room:?}"
        );
    }
    assert_eq!(
        error_code(&ada.request("join", json!({"name": "x"})).await),
        "invalid"
    );
    assert_eq!(
        error_code(&ada.request("leave", json!(["general"])).await),
        "invalid"
    );
    nothing_leaked(&ada, &mut bob, 0).await;
}

#[tokio::test]
async fn bad_history_requests_are_refused() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 201}),
        json!({"after": "one"}),
        json!({"before": -1}),
        json!({"room": "general", "unknown": 1}),
        json!("general"),
    ] {
        assert_eq!(
            error_code(&ada.request("history", bad.clone()).await),
            "invalid",
            "for {bad}"
        );
    }
    assert_eq!(
        ada.request("history", json!({"limit": 200})).await["ok"],
        true
    );
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_the_sender_stays_connected() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        rate_limit: Some(RateLimit {
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::new(3).expect("non-zero"),
        }),
        ..config
    })
    .await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    assert_eq!(welcome.limits.rate_limit_burst, Some(3));
    for i in 0..3 {
        ada.send_ok(&format!("c-{i}"), "general", "burst").await;
    }
    let ack = ada.send("c-3", "general", "one too many").await;
    assert_eq!(error_code(&ack), "rate_limited");
    for _ in 0..3 {
        assert_eq!(bob.next_message().await.text, "burst");
    }
    bob.expect_no("message").await;
    // Another user is not slowed down by Ada's flood.
    let bob_says = bob.send_ok("b-1", "general", "still here").await;
    assert_eq!(bob.next_message().await, bob_says);
}

#[tokio::test]
async fn a_wrong_or_missing_join_code_is_refused_before_any_event() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        join_code: Some("open-sesame".into()),
        ..config
    })
    .await;
    for refused in [
        auth("Ada"),
        json!({"protocol": 3, "name": "Ada", "code": "wrong"}),
    ] {
        let mut client = TestClient::connect(&server.url(), refused).await;
        let error = client.next("error").await;
        let error = error.as_str().unwrap_or_default().to_owned();
        assert!(error.contains("unauthorized: "), "{error}");
        client.expect_no("welcome").await;
    }
    let (_ada, welcome) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "name": "Ada", "code": "open-sesame"}),
    )
    .await;
    assert_eq!(welcome.user.name, "Ada");
}

#[tokio::test]
async fn an_invalid_name_is_refused_at_connect() {
    let server = TestServer::start().await;
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(33)),
        json!("two\nlines"),
        json!(5),
    ] {
        let mut client =
            TestClient::connect(&server.url(), json!({"protocol": 3, "name": name})).await;
        let error = client.next("error").await;
        let error = error.as_str().unwrap_or_default().to_owned();
        assert!(
            error.contains("invalid_name: ") || error.contains("invalid: "),
            "{name}: {error}"
        );
        client.expect_no("welcome").await;
    }
}

/// A server whose text limit is far above the payload limit, so that only the payload limit can
/// refuse a big message, with two clients in it.
async fn server_where_only_the_payload_limit_refuses() -> (TestServer, TestClient, TestClient) {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        max_message_chars: 1_000_000,
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    (server, ada, bob)
}

/// A message whose websocket frame is bigger than the 64 KiB payload limit is refused by dropping
/// that connection; the other clients and the store are unaffected.
#[tokio::test]
async fn an_oversized_packet_over_websocket_is_refused_without_harm() {
    let (server, ada, mut bob) = server_where_only_the_payload_limit_refuses().await;
    let mut mallory =
        TestClient::connect_over(&server.url(), auth("Mallory"), TransportType::Websocket).await;
    mallory.expect_welcome().await;

    // Just under the limit: accepted, which shows what refuses the next one is the size.
    let fits = mallory
        .send_ok("fits", "general", &"x".repeat(60 * 1024))
        .await;
    assert_eq!(bob.next_message().await, fits);

    let huge = "x".repeat(100 * 1024);
    let _ = mallory
        .client
        .emit(
            "message",
            json!({"id": "big", "room": "general", "text": huge}),
        )
        .await;
    bob.expect_no("message").await;
    nothing_leaked(&ada, &mut bob, 1).await;
    let page: HistoryPage =
        serde_json::from_value(ada.request("history", json!({})).await).expect("a page");
    assert!(page.messages.iter().all(|m: &Message| m.client_id != "big"));
}

/// The same over HTTP long-polling, with raw requests: rust_socketio's polling transport cannot
/// carry frames this large, and the point is what the server does with the bytes.
#[tokio::test]
async fn an_oversized_polling_body_is_refused_without_harm() {
    let (server, ada, mut bob) = server_where_only_the_payload_limit_refuses().await;
    let sid = polling_session(server.address, &auth("Mallory")).await;
    let packet = |id: &str, size: usize| {
        format!(
            r#"42["message",{{"id":"{id}","text":"{}"}}]"#,
            "x".repeat(size)
        )
    };

    let (status, _) = http(
        server.address,
        "POST",
        &polling_path(&sid),
        packet("fits", 60 * 1024).as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bob.next_message().await.client_id, "fits");

    let (status, _) = http(
        server.address,
        "POST",
        &polling_path(&sid),
        packet("big", 100 * 1024).as_bytes(),
    )
    .await;
    assert!(
        status >= 400 || status == 0,
        "an oversized body was taken: {status}"
    );
    nothing_leaked(&ada, &mut bob, 1).await;
}

#[tokio::test]
async fn garbage_packets_do_not_hurt_the_server_or_other_clients() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for garbage in [
        "42[\"message\",{\"id\":\"g\",\"text\":",
        "42[\"message\"]",
        "42[]",
        "42{}",
        "4x",
        "\u{0}\u{1}\u{2}",
        "42[\"message\",\"\u{fffd}\"]",
        "43[\"message\",{}]",
        "42[\"history\",{\"limit\":1e999}]",
        "42[\"join\",{\"room\":null}]",
        "42[\"typing\",{\"room\":\"general\",\"typing\":\"yes\"}]",
    ] {
        let sid = polling_session(server.address, &auth("Mallory")).await;
        let _ = http(
            server.address,
            "POST",
            &polling_path(&sid),
            garbage.as_bytes(),
        )
        .await;
    }
    let (status, body) = http(server.address, "GET", "/healthz", b"").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    nothing_leaked(&ada, &mut bob, 0).await;
}

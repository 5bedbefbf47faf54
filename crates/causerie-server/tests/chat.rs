//! The chat as clients see it: welcome, broadcast, acks, seqs, history, rooms, identity.

mod support;

use causerie_protocol::{HistoryPage, Joined, Presence, Typing};
use serde_json::json;
use support::{LockHolder, RawSocket, TestClient, TestServer, auth, error_code};

#[tokio::test]
async fn a_client_is_welcomed_with_identity_rooms_history_and_limits() {
    let server = TestServer::start().await;
    let (_ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    assert_eq!(welcome.user.name, "Ada");
    assert!(!welcome.user.id.is_empty());
    assert!(!welcome.token.is_empty());
    assert_eq!(welcome.room, "general");
    assert_eq!(welcome.rooms, vec!["general".to_owned()]);
    assert_eq!(welcome.online, vec![welcome.user.clone()]);
    assert!(welcome.history.is_empty());
    assert_eq!(welcome.limits.max_message_chars, 4_000);
    assert_eq!(welcome.server.name, "causerie");
}

#[tokio::test]
async fn a_client_without_a_name_gets_a_guest_name() {
    let server = TestServer::start().await;
    let (_client, welcome) = TestClient::join(&server.url(), json!({"protocol": 3})).await;
    assert!(
        welcome.user.name.starts_with("guest-"),
        "{}",
        welcome.user.name
    );
}

#[tokio::test]
async fn a_message_reaches_every_client_in_the_room_sender_included() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    let (mut cy, _) = TestClient::join(&server.url(), auth("Cy")).await;

    let sent = ada.send_ok("c-1", "general", "hello all").await;
    assert_eq!(sent.seq, 1);
    assert_eq!(sent.client_id, "c-1");
    assert_eq!(sent.author.name, "Ada");
    assert_eq!(sent.text, "hello all");
    for client in [&mut ada, &mut bob, &mut cy] {
        assert_eq!(client.next_message().await, sent);
    }
}

#[tokio::test]
async fn seqs_count_up_by_one_per_room_and_sent_at_is_rfc3339_millis() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        let message = ada.send_ok(&format!("c-{i}"), "general", "hi").await;
        seqs.push(message.seq);
        let at = &message.sent_at;
        assert_eq!(at.len(), "2026-11-25T09:00:00.123Z".len(), "{at}");
        assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let joined = ada.request("join", json!({"room": "other"})).await;
    assert_eq!(joined["ok"], true);
    assert_eq!(ada.send_ok("o-1", "other", "first").await.seq, 1);
}

#[tokio::test]
async fn concurrent_senders_get_gap_free_seqs() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(
            TestClient::join(&server.url(), auth(&format!("u{i}")))
                .await
                .0,
        );
    }
    // Clients race each other; each sends in sequence, since rust_socketio draws ack ids at
    // random from 0..999 and many outstanding acks on one client could collide.
    let senders = clients.iter().enumerate().map(|(i, client)| async move {
        let mut seqs = Vec::new();
        for n in 0..10 {
            seqs.push(
                client
                    .send_ok(&format!("{i}-{n}"), "general", "x")
                    .await
                    .seq,
            );
        }
        seqs
    });
    let mut seqs: Vec<u64> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flatten()
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_retried_client_id_is_stored_once_and_not_broadcast_again() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;

    let first = ada.send_ok("same-id", "general", "once").await;
    let again = ada.send_ok("same-id", "general", "once").await;
    assert_eq!(again, first);
    assert_eq!(bob.next_message().await, first);
    bob.expect_no("message").await;

    let page: HistoryPage =
        serde_json::from_value(ada.request("history", json!({})).await).expect("a history page");
    assert_eq!(page.messages, vec![first]);
}

#[tokio::test]
async fn history_pages_before_and_after_a_seq() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    for i in 1..=10 {
        ada.send_ok(&format!("c-{i}"), "general", &format!("m{i}"))
            .await;
    }
    let page = |value: serde_json::Value| -> (Vec<u64>, bool) {
        assert_eq!(value["ok"], true, "{value}");
        let page: HistoryPage = serde_json::from_value(value).expect("a history page");
        (page.messages.iter().map(|m| m.seq).collect(), page.has_more)
    };
    assert_eq!(
        page(ada.request("history", json!({"limit": 3})).await),
        (vec![8, 9, 10], true)
    );
    assert_eq!(
        page(
            ada.request("history", json!({"before": 8, "limit": 3}))
                .await
        ),
        (vec![5, 6, 7], true)
    );
    assert_eq!(
        page(
            ada.request("history", json!({"before": 3, "limit": 3}))
                .await
        ),
        (vec![1, 2], false)
    );
    assert_eq!(
        page(
            ada.request("history", json!({"after": 6, "limit": 3}))
                .await
        ),
        (vec![7, 8, 9], true)
    );
    assert_eq!(
        page(
            ada.request("history", json!({"room": "general", "after": 8}))
                .await
        ),
        (vec![9, 10], false)
    );
    assert_eq!(
        page(
            ada.request("history", json!({"after": 2, "before": 5}))
                .await
        ),
        (vec![3, 4], false)
    );
    let (_late, welcome) = TestClient::join(&server.url(), auth("Late")).await;
    assert_eq!(
        welcome.history.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_welcome_history_holds_the_latest_fifty_oldest_first() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    for i in 1..=60 {
        ada.send_ok(&format!("c-{i}"), "general", "x").await;
    }
    let (_bob, welcome) = TestClient::join(&server.url(), auth("Bob")).await;
    let seqs: Vec<u64> = welcome.history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (11..=60).collect::<Vec<_>>());
}

#[tokio::test]
async fn joining_a_room_creates_it_and_scopes_its_messages() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;

    let joined: Joined =
        serde_json::from_value(ada.request("join", json!({"room": "rust-fr"})).await)
            .expect("a join ack");
    assert_eq!(joined.room, "rust-fr");
    assert_eq!(joined.online.len(), 1);

    let in_room = ada.send_ok("r-1", "rust-fr", "only here").await;
    assert_eq!(ada.next_message().await, in_room);
    bob.expect_no("message").await;

    let (_cy, welcome) = TestClient::join(&server.url(), auth("Cy")).await;
    assert_eq!(
        welcome.rooms,
        vec!["general".to_owned(), "rust-fr".to_owned()]
    );

    assert_eq!(
        error_code(&bob.send("b-1", "rust-fr", "let me in").await),
        "not_joined"
    );
    let left = ada.request("leave", json!({"room": "rust-fr"})).await;
    assert_eq!(left, json!({"ok": true, "room": "rust-fr"}));
    assert_eq!(
        error_code(&ada.send("r-2", "rust-fr", "gone").await),
        "not_joined"
    );
    assert_eq!(
        error_code(&ada.request("leave", json!({"room": "rust-fr"})).await),
        "not_joined"
    );
}

/// The next `presence` that satisfies `matches`, skipping others.
async fn presence_where(client: &mut TestClient, matches: impl Fn(&Presence) -> bool) -> Presence {
    loop {
        let presence: Presence =
            serde_json::from_value(client.next("presence").await).expect("presence");
        if matches(&presence) {
            return presence;
        }
    }
}

#[tokio::test]
async fn presence_tells_a_room_who_arrives_and_who_leaves_with_the_count() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, bob_welcome) = TestClient::join(&server.url(), auth("Bob")).await;
    let bob_user = bob_welcome.user.clone();

    let arrived = presence_where(&mut ada, |p| p.joined.contains(&bob_user)).await;
    assert_eq!(arrived.room, "general");
    assert_eq!(arrived.count, 2);
    assert!(!arrived.truncated);

    bob.disconnect().await;
    let departed = presence_where(&mut ada, |p| p.left.contains(&bob_user)).await;
    assert_eq!(departed.count, 1);
    assert!(departed.joined.is_empty());
}

#[tokio::test]
async fn a_join_still_waiting_when_its_connection_closes_leaves_no_one_online() {
    let server = TestServer::start().await;
    let (mut ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut eve = RawSocket::join(&server, &auth("Eve")).await;
    // A new room must be stored before anyone is in it: with the database locked by another
    // process, the join waits for the store while its connection goes away.
    let lock = LockHolder::hold(&server.database()).await;
    eve.emit(1, "join", &json!({"room": "ghosts"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(eve);
    presence_where(&mut ada, |p| p.left.iter().any(|u| u.name == "Eve")).await;
    lock.release().await;

    // Eve's join has now finished; she must not have arrived in the room after her departure.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let joined: Joined =
        serde_json::from_value(ada.request("join", json!({"room": "ghosts"})).await)
            .expect("joined");
    assert_eq!(joined.online_count, 1, "{:?}", joined.online);
    assert_eq!(joined.online.len(), 1);
}

#[tokio::test]
async fn typing_reaches_the_others_in_the_room_only() {
    let server = TestServer::start().await;
    let (mut ada, ada_welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    ada.client
        .emit("typing", json!({"room": "general", "typing": true}))
        .await
        .expect("emits");
    let typing: Typing = serde_json::from_value(bob.next("typing").await).expect("typing");
    assert_eq!(typing.user, ada_welcome.user);
    assert!(typing.typing);
    ada.expect_no("typing").await;
}

#[tokio::test]
async fn a_ping_is_acked_for_liveness_checks() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    assert_eq!(ada.request("ping", json!({})).await, json!({"ok": true}));
}

#[tokio::test]
async fn a_token_brings_the_same_user_back_and_a_forged_one_does_not() {
    let server = TestServer::start().await;
    let (ada, first) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.disconnect().await;

    let (_again, second) =
        TestClient::join(&server.url(), json!({"protocol": 3, "token": first.token})).await;
    assert_eq!(
        second.user, first.user,
        "same id, and the name the token carries"
    );

    let (_renamed, third) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "token": first.token, "name": "Ada L."}),
    )
    .await;
    assert_eq!(third.user.id, first.user.id);
    assert_eq!(third.user.name, "Ada L.");

    let forged = format!("{}x", first.token);
    let (_stranger, fourth) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "token": forged, "name": "Eve"}),
    )
    .await;
    assert_ne!(fourth.user.id, first.user.id);
}

#[tokio::test]
async fn the_token_survives_a_restart_on_the_same_data_dir() {
    let mut server = TestServer::start().await;
    let (ada, first) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.disconnect().await;
    server.restart().await;
    let (_ada, second) =
        TestClient::join(&server.url(), json!({"protocol": 3, "token": first.token})).await;
    assert_eq!(second.user.id, first.user.id);
}

#[tokio::test]
async fn metrics_count_connections_and_messages() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.send_ok("c-1", "general", "hi").await;
    assert_eq!(error_code(&ada.send("c-2", "general", "  ").await), "empty");
    let body = reqwest_get(&format!("{}/metrics", server.url())).await;
    assert!(body.contains("causerie_connections 1"), "{body}");
    assert!(
        body.contains("causerie_messages_accepted_total 1"),
        "{body}"
    );
    assert!(
        body.contains("causerie_messages_rejected_total{code=\"empty\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("causerie_broadcast_latency_seconds_count 1"),
        "{body}"
    );
    assert_eq!(
        reqwest_get(&format!("{}/healthz", server.url())).await,
        "ok\n"
    );
}

/// A plain HTTP GET over a real socket.
async fn reqwest_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http url");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Many requests in flight at once on one connection, as the core client's outbox and the
/// reads of a reconnection make them: each ack answers its own request. rust_socketio 0.6 drew
/// ack ids at random below 999, and a few dozen outstanding acks collided (one ack answered two
/// requests, and its client's event loop panicked); the vendored copy counts them instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_many_concurrent_requests_on_one_connection_gets_its_own_ack() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        max_requests_in_flight: 1_000,
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let requests = (0..200).map(|i| {
        let client = ada.client.clone();
        tokio::spawn(async move {
            let id = format!("in-flight-{i}");
            let data = json!({"id": id, "text": "hi"});
            let ack = support::request_on(&client, "message", data, support::PATIENCE).await;
            (id, ack)
        })
    });
    for request in futures_util::future::join_all(requests).await {
        let (id, ack) = request.expect("runs");
        let ack = ack.unwrap_or_else(|| panic!("no ack for {id}"));
        assert_eq!(ack["message"]["clientId"], id.as_str(), "{ack}");
    }
}

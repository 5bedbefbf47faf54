//! Every limit a client can hit: the refusal, its stable code, how long to wait, and whether the
//! connection stays (a refused request) or goes (a refused connection, a bound of the transport).

mod support;

use std::time::Duration;

use causerie_protocol::Presence;
use causerie_server::{EventLimits, Limit, ServerConfig};
use serde_json::{Value, json};
use support::{
    LockHolder, PATIENCE, RawSocket, TestClient, TestServer, auth, error_code, http, polling_path,
    polling_session,
};

/// Sends `event` with `data` until it is refused; returns how many passed and the refusal.
async fn until_refused(
    client: &TestClient,
    event: &str,
    data: impl Fn(usize) -> Value,
) -> (usize, Value) {
    for i in 0..1000 {
        let ack = client.request(event, data(i)).await;
        if ack["ok"] == false {
            return (i, ack);
        }
    }
    panic!("{event} was never refused");
}

fn retry_after_ms(ack: &Value) -> u64 {
    ack["error"]["retryAfterMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("a refusal that says when to retry: {ack}"))
}

#[tokio::test]
async fn every_kind_of_request_has_a_quota_and_the_connection_stays() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let defaults = EventLimits::default();
    for (event, data, burst) in [
        ("history", json!({"limit": 1}), defaults.history.burst.get()),
        ("who", json!({"room": "general"}), defaults.who.burst.get()),
        ("rooms", json!({}), defaults.rooms.burst.get()),
        ("ping", json!({}), defaults.ping.burst.get()),
        ("search", json!({"query": "x"}), defaults.search.burst.get()),
    ] {
        let (passed, refused) = until_refused(&ada, event, |_| data.clone()).await;
        assert_eq!(error_code(&refused), "rate_limited", "{event}");
        assert!(retry_after_ms(&refused) > 0);
        // A burst passes (one more may, as the quota refills while the test runs).
        assert!(passed >= burst as usize, "{event}: {passed} passed");
    }
    // Refused requests cost nothing more: the connection carries on.
    assert_eq!(
        ada.send_ok("still-here", "general", "still here")
            .await
            .text,
        "still here"
    );
    let (_, metrics) = http(server.address, "GET", "/metrics", b"").await;
    assert!(
        metrics.contains(r#"causerie_refusals_total{event="ping",code="rate_limited"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flood_of_joins_and_leaves_is_refused() {
    let server = TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            membership: Limit::per_second(1, 6),
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    // Joining and leaving in a loop (each change used to send the whole online list to all).
    let mut passed = 0;
    let refused = loop {
        let event = if passed % 2 == 0 { "join" } else { "leave" };
        let ack = ada.request(event, json!({"room": "loop"})).await;
        if ack["ok"] == false {
            break ack;
        }
        passed += 1;
        assert!(passed < 1000, "never refused");
    };
    assert_eq!(error_code(&refused), "rate_limited");
    assert!(retry_after_ms(&refused) > 0);
    assert!(passed >= 6, "the burst passes: {passed}");
}

#[tokio::test]
async fn rooms_per_connection_per_user_and_on_the_server_are_bounded() {
    let server = TestServer::start_with(|config| ServerConfig {
        max_joined_rooms: 3,
        max_rooms: 5,
        ..config
    })
    .await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    assert_eq!(welcome.limits.max_joined_rooms, 3);
    for room in ["a", "b"] {
        assert_eq!(ada.request("join", json!({"room": room})).await["ok"], true);
    }
    // general, a and b: a connection may be in three rooms.
    let refused = ada.request("join", json!({"room": "c"})).await;
    assert_eq!(error_code(&refused), "room_limit");
    // The same user on another connection is in the same three already.
    let (ada_again, _) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "token": welcome.token}),
    )
    .await;
    assert_eq!(
        error_code(&ada_again.request("join", json!({"room": "c"})).await),
        "room_limit"
    );
    assert_eq!(
        ada_again.request("join", json!({"room": "a"})).await["ok"],
        true
    );
    // The server holds five rooms at most: general, a, b, and two more.
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for room in ["c", "d"] {
        assert_eq!(bob.request("join", json!({"room": room})).await["ok"], true);
        assert_eq!(
            bob.request("leave", json!({"room": room})).await["ok"],
            true
        );
    }
    assert_eq!(
        error_code(&bob.request("join", json!({"room": "e"})).await),
        "room_limit"
    );
    assert_eq!(
        bob.request("join", json!({"room": "a"})).await["ok"],
        true,
        "rooms that exist can still be joined"
    );
    assert_eq!(
        ada.send_ok("after", "general", "still here").await.text,
        "still here"
    );
}

#[tokio::test]
async fn creating_rooms_is_limited_per_user() {
    let server = TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            room_creation: Limit::per_minute(1, 2),
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    for room in ["new-1", "new-2"] {
        assert_eq!(ada.request("join", json!({"room": room})).await["ok"], true);
    }
    let refused = ada.request("join", json!({"room": "new-3"})).await;
    assert_eq!(error_code(&refused), "rate_limited");
    assert!(retry_after_ms(&refused) > 1000);
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    assert_eq!(
        bob.request("join", json!({"room": "new-3"})).await["ok"],
        true
    );
}

#[tokio::test]
async fn creating_rooms_is_limited_per_address_whatever_the_guests() {
    let server = TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            room_creation_per_address: Some(Limit::per_minute(1, 3)),
            new_guests_per_address: None,
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for room in ["a-1", "a-2"] {
        assert_eq!(ada.request("join", json!({"room": room})).await["ok"], true);
    }
    assert_eq!(
        bob.request("join", json!({"room": "b-1"})).await["ok"],
        true
    );
    // Bob is within his own quota (10 at once), not within the address's.
    let refused = bob.request("join", json!({"room": "b-2"})).await;
    assert_eq!(error_code(&refused), "rate_limited", "{refused}");
    assert!(retry_after_ms(&refused) > 1000);
    // Rooms that exist are joined whatever the quota.
    assert_eq!(
        bob.request("join", json!({"room": "a-1"})).await["ok"],
        true
    );
}

#[tokio::test]
async fn a_returning_user_reconnecting_in_a_loop_is_refused_and_new_guests_are_not() {
    let server = TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            connects_per_user: Limit::per_minute(1, 2),
            new_guests_per_address: None,
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (first, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    first.disconnect().await;
    let again = json!({"protocol": 3, "token": welcome.token});
    for _ in 0..2 {
        let (client, back) = TestClient::join(&server.url(), again.clone()).await;
        assert_eq!(back.user.id, welcome.user.id);
        client.disconnect().await;
    }
    let mut looping = TestClient::connect(&server.url(), again).await;
    let error = looping.next("error").await;
    let error = error.as_str().unwrap_or_default();
    assert!(error.contains("rate_limited: "), "{error}");
    assert!(error.contains("retry in "), "{error}");
    looping.expect_no("welcome").await;
    let (_bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
}

#[tokio::test]
async fn typing_is_coalesced_and_a_flood_of_it_costs_the_room_nothing() {
    let server = TestServer::start().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for _ in 0..500 {
        ada.client
            .emit("typing", json!({"room": "general", "typing": true}))
            .await
            .expect("emits");
    }
    let typing = bob.next("typing").await;
    assert_eq!(typing["typing"], true);
    bob.expect_no("typing").await;
    let (_, metrics) = http(server.address, "GET", "/metrics", b"").await;
    assert!(
        metrics.contains(r#"causerie_refusals_total{event="typing",code="rate_limited"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn new_guests_from_one_address_are_limited_and_returning_users_are_not() {
    let server = TestServer::start_with(|config| ServerConfig {
        event_limits: Some(EventLimits {
            new_guests_per_address: Some(Limit::per_minute(1, 2)),
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (_first, welcome) = TestClient::join(&server.url(), auth("First")).await;
    let (_second, _) = TestClient::join(&server.url(), auth("Second")).await;
    let mut third = TestClient::connect(&server.url(), auth("Third")).await;
    let error = third.next("error").await;
    let error = error.as_str().unwrap_or_default();
    assert!(error.contains("rate_limited: "), "{error}");
    assert!(error.contains("retry in "), "{error}");
    third.expect_no("welcome").await;
    let (_back, again) = TestClient::join(
        &server.url(),
        json!({"protocol": 3, "token": welcome.token}),
    )
    .await;
    assert_eq!(again.user.id, welcome.user.id, "a token is no new guest");
}

#[tokio::test]
async fn wrong_join_codes_lock_the_address_out_even_for_the_right_one() {
    let server = TestServer::start_with(|config| ServerConfig {
        join_code: Some("sesame".into()),
        ..config
    })
    .await;
    let wrong = json!({"protocol": 3, "name": "Eve", "code": "guess"});
    for _ in 0..5 {
        let mut guess = TestClient::connect(&server.url(), wrong.clone()).await;
        let error = guess.next("error").await;
        assert!(
            error
                .as_str()
                .unwrap_or_default()
                .contains("unauthorized: ")
        );
    }
    let mut locked =
        TestClient::connect(&server.url(), json!({"protocol": 3, "code": "sesame"})).await;
    let error = locked.next("error").await;
    let error = error.as_str().unwrap_or_default();
    assert!(error.contains("rate_limited: "), "{error}");
    locked.expect_no("welcome").await;
}

#[tokio::test]
async fn connections_per_address_are_bounded() {
    let server = TestServer::start_with(|config| ServerConfig {
        max_connections_per_address: Some(3),
        ..config
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            tokio::net::TcpStream::connect(server.address)
                .await
                .expect("connects"),
        );
    }
    // The fourth is closed as soon as accepted: a request on it gets nothing back.
    let (status, _) = http(server.address, "GET", "/healthz", b"").await;
    assert_eq!(status, 0, "no answer to a connection over the limit");
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, _) = http(server.address, "GET", "/healthz", b"").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_half_sent_request_and_an_idle_connection_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|config| ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..config
    })
    .await;
    let mut half = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connects");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let mut idle = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connects");
    for stream in [&mut half, &mut idle] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "closed by the server in time");
    }
}

#[tokio::test]
async fn a_shutdown_is_not_held_up_by_a_half_sent_request() {
    use tokio::io::AsyncWriteExt;
    let mut server = TestServer::start_with(|config| ServerConfig {
        header_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(500),
        ..config
    })
    .await;
    let mut half = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connects");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let (_ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    // TestServer::stop fails the test if the server takes longer than PATIENCE.
    server.stop().await;
}

#[tokio::test]
async fn binary_attachments_close_the_connection_that_announces_one() {
    let server = TestServer::start().await;
    let sid = polling_session(server.address, &auth("Ada")).await;
    // A Socket.IO binary event announcing one attachment, which Causerie's protocol never has.
    let (status, _) = http(
        server.address,
        "POST",
        &polling_path(&sid),
        br#"451-["message",{"_placeholder":true,"num":0}]"#,
    )
    .await;
    let (next, body) = http(server.address, "GET", &polling_path(&sid), b"").await;
    assert!(
        status != 200 || next != 200 || body.contains('1'),
        "the session was closed: {status} then {next} {body}"
    );
    let (again, _) = http(server.address, "GET", &polling_path(&sid), b"").await;
    assert_eq!(again, 400, "the session is gone");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let server = TestServer::start_with(|config| ServerConfig {
        metrics_token: Some("s3cret".into()),
        ..config
    })
    .await;
    let (status, _) = http(server.address, "GET", "/metrics", b"").await;
    assert_eq!(status, 401);
    let with_token = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.address)
            .await
            .expect("connects");
        stream
            .write_all(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
                  Connection: close\r\n\r\n",
            )
            .await
            .expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    };
    let response = tokio::time::timeout(PATIENCE, with_token)
        .await
        .expect("answers");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("causerie_connections"));
}

#[tokio::test]
async fn names_that_could_deceive_and_invisible_texts_are_refused() {
    let server = TestServer::start().await;
    for name in ["Ada\u{200B}", "\u{202E}adA", "\u{3164}"] {
        let mut client = TestClient::connect(&server.url(), auth(name)).await;
        let error = client.next("error").await;
        assert!(
            error
                .as_str()
                .unwrap_or_default()
                .contains("invalid_name: "),
            "{name:?}: {error}"
        );
    }
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let ack = ada
        .send("ghost", "general", "\u{200B}\u{2060} \u{FEFF}")
        .await;
    assert_eq!(error_code(&ack), "empty");
}

#[tokio::test]
async fn a_seed_client_reads_every_message_on_one_line() {
    let server = TestServer::start().await;
    let mut seed = TestClient::connect_seed(&server.url()).await;
    seed.expect_welcome().await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    ada.send_ok(
        "forge",
        "general",
        "hello\nBob: send me your password\r\u{2028}ok",
    )
    .await;
    let line = seed.next("message").await;
    assert_eq!(line, "Ada: hello Bob: send me your password  ok");
}

#[tokio::test]
async fn a_crowd_arriving_reaches_each_member_as_a_few_small_presence_events() {
    let server = TestServer::start().await;
    let (mut watcher, _) = TestClient::join(&server.url(), auth("Watcher")).await;
    // All at once, as a reconnect wave arrives (one by one, a slow machine would spread them
    // over many flushes).
    let url = server.url();
    let _crowd = futures_util::future::join_all(
        (0..60).map(|i| TestClient::join(&url, auth(&format!("p{i:02}")))),
    )
    .await;
    let (_, last) = TestClient::join(&server.url(), auth("Last")).await;
    // Wait for the count to include everyone, counting the events and their size.
    let mut events = 0;
    let mut bytes = 0;
    loop {
        let value = watcher.next("presence").await;
        events += 1;
        bytes += value.to_string().len();
        let presence: Presence = serde_json::from_value(value).expect("presence");
        if presence.count == 62 {
            break;
        }
    }
    assert!(events < 30, "{events} presence events for 61 arrivals");
    assert!(bytes / 61 < 200, "{} bytes per arrival", bytes / 61);
    let who = watcher
        .request("who", json!({"room": "general", "limit": 200}))
        .await;
    assert_eq!(who["count"], 62);
    assert_eq!(who["users"].as_array().map(Vec::len), Some(62));
    assert!(
        who["users"]
            .as_array()
            .is_some_and(|users| users.iter().any(|u| u["id"] == last.user.id.as_str()))
    );
}

#[tokio::test]
async fn requests_beyond_those_in_flight_are_refused_before_they_run_and_the_connection_stays() {
    let server = TestServer::start_on_sqlite().await;
    let mut flood = RawSocket::join(&server, &auth("Flood")).await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    // While another process holds the write lock, no message can be stored: every message
    // admitted stays in flight, its handler waiting for the store.
    let lock = LockHolder::hold(&server.database()).await;
    let sent = 3 * u64::from(causerie_server::handlers::MAX_IN_FLIGHT);
    for id in 0..sent {
        flood
            .emit(
                id,
                "message",
                &json!({"id": format!("m{id}"), "text": "hi"}),
            )
            .await;
    }
    // A ping is a request too: over the limit, it is refused like the rest.
    flood.emit(sent, "ping", &json!({})).await;
    let over = sent + 1 - u64::from(causerie_server::handlers::MAX_IN_FLIGHT);
    let mut refused = Vec::new();
    for _ in 0..over {
        let (id, ack) = flood.next_ack().await;
        assert_eq!(error_code(&ack), "rate_limited", "{ack}");
        assert_eq!(retry_after_ms(&ack), 100, "{ack}");
        refused.push(id);
    }
    // Refused at once, while the admitted ones still wait: the first MAX_IN_FLIGHT are those.
    refused.sort_unstable();
    let admitted = u64::from(causerie_server::handlers::MAX_IN_FLIGHT);
    assert_eq!(refused, (admitted..=sent).collect::<Vec<_>>());
    lock.release().await;
    let mut stored = Vec::new();
    for _ in 0..admitted {
        let (id, ack) = flood.next_ack().await;
        assert_eq!(ack["ok"], true, "{ack}");
        stored.push(id);
    }
    stored.sort_unstable();
    assert_eq!(stored, (0..admitted).collect::<Vec<_>>());
    // The connection stayed, and answers again; others were never refused.
    flood.emit(sent + 1, "ping", &json!({})).await;
    assert_eq!(flood.next_ack().await, (sent + 1, json!({"ok": true})));
    assert_eq!(ada.request("ping", json!({})).await["ok"], true);
    let metrics = http(server.address, "GET", "/metrics", b"").await.1;
    assert!(
        metrics.contains(&format!(
            "causerie_refusals_total{{event=\"*\",code=\"rate_limited\"}} {over}"
        )),
        "{metrics}"
    );
}

//! Read markers and unread counts: kept per user, so that two connections of one user agree;
//! moved forward only; counted without the user's own messages or deleted ones; kept across a
//! restart; and every refusal with its stable code. The bound of the count: `tests/store.rs`.

mod support;

use causerie_protocol::ReadState;
use causerie_server::{EventLimits, Limit};
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

async fn read(client: &TestClient, room: &str, seq: u64) -> Value {
    client
        .request("read", json!({"room": room, "seq": seq}))
        .await
}

fn state_of(ack: &Value) -> ReadState {
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack.clone()).expect("the ack is a read state")
}

fn returning(name: &str, token: &str) -> Value {
    json!({"protocol": 3, "name": name, "token": token})
}

#[tokio::test]
async fn two_connections_of_one_user_agree_on_what_is_unread() {
    let server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let token = welcome.token.clone();
    assert_eq!(
        welcome.read.as_ref().map(|r| (r.seq, r.unread)),
        Some((0, 0)),
        "an empty room has nothing unread"
    );
    let (mut phone, _) = TestClient::join(&server.url(), returning("Ada", &token)).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;

    let first = bob.send_ok("b1", "general", "one").await;
    ada.send_ok("a1", "general", "mine, never unread").await;
    let second = bob.send_ok("b2", "general", "two").await;
    let third = bob.send_ok("b3", "general", "three").await;

    // Ada reads up to Bob's first: two of Bob's are left, her own is not counted.
    let state = state_of(&read(&ada, "general", first.seq).await);
    assert_eq!(
        state,
        ReadState {
            room: "general".into(),
            seq: first.seq,
            unread: 2,
            mentions: 0,
            head: third.seq,
        }
    );
    // Her other connection is told the same.
    let told: ReadState = serde_json::from_value(phone.next("read").await).expect("a read state");
    assert_eq!(told, state);

    // A marker never moves back, and a repeat tells no one.
    let again = state_of(&read(&ada, "general", 0).await);
    assert_eq!((again.seq, again.unread), (first.seq, 2));
    phone.expect_no("read").await;

    // A deleted message is no longer unread: a new connection counts one.
    let deleted = bob
        .request(
            "delete",
            json!({"id": "d1", "room": "general", "target": second.seq}),
        )
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    let (_, later) = TestClient::join(&server.url(), returning("Ada", &token)).await;
    assert_eq!(
        later.read.map(|r| (r.seq, r.unread, r.head)),
        Some((first.seq, 1, third.seq + 1))
    );

    // A marker past the end stops at the room's latest seq.
    let end = state_of(&read(&phone, "general", 1_000_000).await);
    assert_eq!((end.seq, end.unread), (third.seq + 1, 0));
}

#[tokio::test]
async fn a_marker_survives_a_restart_and_each_joined_room_has_its_own() {
    let mut server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for room in ["dev", "ops"] {
        let joined = bob.request("join", json!({"room": room})).await;
        assert_eq!(joined["ok"], true, "{joined}");
    }
    bob.send_ok("b1", "dev", "before Ada").await;
    bob.send_ok("b2", "dev", "before Ada too").await;
    bob.send_ok("b3", "ops", "ops news").await;

    // A room first joined counts as read up to its latest message: its past is not news. That
    // marker is kept, so that Ada's other devices count from there too.
    let joined = ada.request("join", json!({"room": "dev"})).await;
    let dev: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!((dev.seq, dev.unread, dev.head), (2, 0, 2));
    let news = bob.send_ok("b4", "dev", "news since").await;
    let (phone, _) = TestClient::join(&server.url(), returning("Ada", &welcome.token)).await;
    let joined = phone.request("join", json!({"room": "dev"})).await;
    let dev: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!((dev.seq, dev.unread, dev.head), (2, 1, news.seq));
    phone.disconnect().await;
    state_of(&read(&ada, "dev", news.seq).await);
    bob.send_ok("b5", "dev", "unread at the restart").await;
    ada.disconnect().await;

    server.restart().await;
    let (ada, _) = TestClient::join(&server.url(), returning("Ada", &welcome.token)).await;
    let joined = ada.request("join", json!({"room": "dev"})).await;
    let dev: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!(
        (dev.seq, dev.unread),
        (news.seq, 1),
        "kept across the restart"
    );
    let joined = ada.request("join", json!({"room": "ops"})).await;
    let ops: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!((ops.room.as_str(), ops.seq, ops.unread), ("ops", 1, 0));
}

#[tokio::test]
async fn a_read_marker_is_refused_outside_joined_rooms_malformed_or_too_often() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        event_limits: Some(EventLimits {
            read: Limit::per_minute(1, 7),
            new_guests_per_address: None,
            room_creation_per_address: None,
            ..EventLimits::default()
        }),
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;

    assert_eq!(error_code(&read(&ada, "elsewhere", 1).await), "not_joined");
    for malformed in [
        json!({"room": "general"}),
        json!({"room": "general", "seq": -1}),
        json!({"room": "general", "seq": 1, "extra": true}),
        json!({"room": "general", "seq": 1.5}),
        json!(["general", 1]),
    ] {
        let ack = ada.request("read", malformed.clone()).await;
        assert_eq!(error_code(&ack), "invalid", "{malformed}: {ack}");
    }
    // Refusals count against the quota too: the sixth request uses the burst, the next is over.
    state_of(&read(&ada, "general", 0).await);
    assert_eq!(error_code(&read(&ada, "general", 0).await), "rate_limited");
}

#[tokio::test]
async fn only_the_users_connections_in_the_room_are_told_and_leaving_forgets_the_marker() {
    let server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut elsewhere, _) =
        TestClient::join(&server.url(), returning("Ada", &welcome.token)).await;
    let (mut bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    for client in [&ada, &bob] {
        let joined = client.request("join", json!({"room": "dev"})).await;
        assert_eq!(joined["ok"], true, "{joined}");
    }
    let first = bob.send_ok("b1", "dev", "one").await;
    bob.send_ok("b2", "dev", "two").await;
    let moved = state_of(&read(&ada, "dev", first.seq).await);
    assert_eq!((moved.seq, moved.unread), (first.seq, 1));
    // Ada's other connection is not in #dev, and Bob is someone else: neither hears of it.
    elsewhere.expect_no("read").await;
    bob.expect_no("read").await;

    // Ada leaves #dev (her only connection in it): coming back, what was there is not news.
    let left = ada.request("leave", json!({"room": "dev"})).await;
    assert_eq!(left["ok"], true, "{left}");
    let third = bob.send_ok("b3", "dev", "three").await;
    let joined = ada.request("join", json!({"room": "dev"})).await;
    let dev: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!((dev.seq, dev.unread, dev.head), (third.seq, 0, third.seq));
}

#[tokio::test]
async fn mentions_ride_on_the_message_and_are_counted_apart_in_unread() {
    let server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let ada_id = welcome.user.id.clone();
    let (bob, _) = TestClient::join(&server.url(), auth("Bob")).await;
    state_of(&read(&ada, "general", 0).await);

    let mention = |id: &str, text: &str, mentions: Vec<&str>| json!({"id": id, "room": "general", "text": text, "mentions": mentions});
    let ack = bob
        .request(
            "message",
            mention("b1", "@Ada lunch?", vec![ada_id.as_str(), ada_id.as_str()]),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["mentions"], json!([ada_id]), "each once");
    bob.send_ok("b2", "general", "anyone else?").await;
    let gone = bob
        .request(
            "message",
            mention("b3", "@Ada soon deleted", vec![ada_id.as_str()]),
        )
        .await;
    let gone_seq = gone["message"]["seq"].as_u64().expect("a seq");
    let deleted = bob
        .request("delete", json!({"id": "d1", "target": gone_seq}))
        .await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    // Ada mentioning herself is no news to her, and no one outside the room is reached.
    let own = ada
        .request(
            "message",
            mention("a1", "note to @Ada", vec![ada_id.as_str(), "stranger"]),
        )
        .await;
    assert_eq!(own["ok"], true, "{own}");
    assert_eq!(own["message"].get("mentions"), None, "{own}");

    let (_, later) = TestClient::join(&server.url(), returning("Ada", &welcome.token)).await;
    let read_state = later.read.expect("a read state");
    assert_eq!((read_state.unread, read_state.mentions), (2, 1));
    let first = ack["message"]["seq"].as_u64().expect("a seq");
    let past = state_of(&read(&ada, "general", first).await);
    assert_eq!((past.unread, past.mentions), (1, 0));

    let too_many: Vec<String> = (0..=causerie_protocol::limits::MAX_MENTIONS)
        .map(|i| format!("user-{i}"))
        .collect();
    for (bad, why) in [
        (json!(too_many), "too many"),
        (json!(["has space"]), "not an id"),
        (json!([""]), "empty"),
        (json!("ada"), "not a list"),
    ] {
        let ack = bob
            .request(
                "message",
                json!({"id": format!("bad-{why}"), "text": "hi", "mentions": bad}),
            )
            .await;
        assert_eq!(error_code(&ack), "invalid", "{why}: {ack}");
    }
}

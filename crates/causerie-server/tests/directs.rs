//! Direct conversations: a room only its two members can join, read and search; opened by
//! either, told to the other, listed in each one's `welcome` (most recent first, across a
//! restart), kept out of the server's rooms; and every refusal with its stable code.

mod support;

use causerie_protocol::{Direct, ReadState, SearchPage, User};
use serde_json::{Value, json};
use support::{TestClient, TestServer, auth, error_code};

fn returning(name: &str, token: &str) -> Value {
    json!({"protocol": 3, "name": name, "token": token})
}

async fn open(client: &TestClient, user: &User) -> Direct {
    let ack = client.request("direct", json!({"user": user.id})).await;
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack).expect("the ack is a direct conversation")
}

async fn join(client: &TestClient, room: &str) -> Value {
    client.request("join", json!({"room": room})).await
}

async fn search(client: &TestClient, query: &str) -> SearchPage {
    let ack = client.request("search", json!({"query": query})).await;
    assert_eq!(ack["ok"], true, "refused: {ack}");
    serde_json::from_value(ack).expect("a search page")
}

#[tokio::test]
async fn only_its_two_members_join_read_and_search_a_direct_conversation() {
    let server = TestServer::start().await;
    let (ada, ada_welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut bob, bob_welcome) = TestClient::join(&server.url(), auth("Bob")).await;
    let (mut carol, _) = TestClient::join(&server.url(), auth("Carol")).await;
    let (ada_user, bob_user) = (ada_welcome.user.clone(), bob_welcome.user.clone());

    // Ada opens it; Bob is told, with who opened it.
    let direct = open(&ada, &bob_user).await;
    assert_eq!(direct.peer, bob_user);
    let told: Direct = serde_json::from_value(bob.next("direct").await).expect("a direct");
    assert_eq!(
        told,
        Direct {
            room: direct.room.clone(),
            peer: ada_user.clone()
        }
    );
    carol.expect_no("direct").await;
    // Opening it again, from either side, is the same conversation.
    assert_eq!(open(&bob, &ada_user).await.room, direct.room);

    for client in [&ada, &bob] {
        let joined = join(client, &direct.room).await;
        assert_eq!(joined["ok"], true, "{joined}");
    }
    let sent = ada.send_ok("a1", &direct.room, "a private word").await;
    assert_eq!(bob.next_message().await, sent);
    carol.expect_no("message").await;

    // Carol can do nothing with it: not join, not send, not read, not find it.
    assert_eq!(error_code(&join(&carol, &direct.room).await), "forbidden");
    assert_eq!(
        error_code(&carol.send("c1", &direct.room, "let me in").await),
        "not_joined"
    );
    let history = carol.request("history", json!({"room": direct.room})).await;
    assert_eq!(error_code(&history), "not_joined");
    let around = carol
        .request("history", json!({"room": direct.room, "around": sent.seq}))
        .await;
    assert_eq!(error_code(&around), "not_joined");
    let read = carol
        .request("read", json!({"room": direct.room, "seq": 1}))
        .await;
    assert_eq!(error_code(&read), "not_joined");
    assert!(search(&carol, "private").await.results.is_empty());
    // Bob finds it.
    let found = search(&bob, "private").await;
    assert_eq!(
        found.results.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![sent.seq]
    );

    // It is no room of the server's: not listed, not counted.
    let rooms = ada.request("rooms", json!({})).await;
    assert_eq!(rooms["rooms"], json!(["general"]), "{rooms}");
    let welcome = TestClient::join(&server.url(), auth("Dan")).await.1;
    assert_eq!(welcome.rooms, vec!["general".to_owned()]);
    assert!(welcome.directs.is_empty());
}

#[tokio::test]
async fn each_member_finds_their_conversations_in_welcome_most_recent_first_after_a_restart() {
    let mut server = TestServer::start().await;
    let (ada, welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let token = welcome.token.clone();
    let mut others = Vec::new();
    for name in ["Bob", "Carol", "Dan"] {
        let (client, welcome) = TestClient::join(&server.url(), auth(name)).await;
        let direct = open(&ada, &welcome.user).await;
        assert_eq!(join(&client, &direct.room).await["ok"], true);
        others.push((client, welcome.user, direct));
    }
    let [
        (bob, bob_user, with_bob),
        (_, carol_user, with_carol),
        (dan, dan_user, with_dan),
    ] = <[_; 3]>::try_from(others).ok().expect("three");
    // Opened Bob, Carol, Dan; written in by Dan, then Bob: Bob, Dan, then Carol, who wrote
    // nothing (neither the order they were opened in, nor its reverse).
    dan.send_ok("d1", &with_dan.room, "earlier").await;
    bob.send_ok("b1", &with_bob.room, "later").await;
    bob.send_ok("b2", &with_bob.room, "latest").await;
    ada.disconnect().await;

    server.restart().await;
    let (ada, welcome) = TestClient::join(&server.url(), returning("Ada", &token)).await;
    assert_eq!(
        welcome.directs,
        vec![
            Direct {
                room: with_bob.room.clone(),
                peer: bob_user
            },
            Direct {
                room: with_dan.room.clone(),
                peer: dan_user
            },
            Direct {
                room: with_carol.room.clone(),
                peer: carol_user
            },
        ]
    );
    // Joined, each says what is unread: Ada never read Bob's two.
    let joined = join(&ada, &with_bob.room).await;
    let read: ReadState = serde_json::from_value(joined["read"].clone()).expect("a read state");
    assert_eq!(read.unread, 2, "{joined}");
    assert_eq!(joined["history"].as_array().map(Vec::len), Some(2));

    // Leaving keeps it: it is listed again, with its marker.
    assert_eq!(
        ada.request("leave", json!({"room": with_bob.room})).await["ok"],
        true
    );
    let (again, welcome) = TestClient::join(&server.url(), returning("Ada", &token)).await;
    assert_eq!(welcome.directs.len(), 3);
    let joined = join(&again, &with_bob.room).await;
    assert_eq!(joined["read"]["unread"], 2, "{joined}");
}

#[tokio::test]
async fn a_member_not_in_the_conversation_is_told_of_each_message_and_of_its_opening() {
    let server = TestServer::start().await;
    let (ada, ada_welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (mut laptop, _) =
        TestClient::join(&server.url(), returning("Ada", &ada_welcome.token)).await;
    let (mut bob, bob_welcome) = TestClient::join(&server.url(), auth("Bob")).await;

    // Ada's other connection hears of what she opened.
    let direct = open(&ada, &bob_welcome.user).await;
    let told: Direct = serde_json::from_value(laptop.next("direct").await).expect("a direct");
    assert_eq!(told, direct);
    let told: Direct = serde_json::from_value(bob.next("direct").await).expect("a direct");
    assert_eq!(told.peer, ada_welcome.user);

    // Bob did not join it (or left it): a message there tells him again, and so Ada's laptop,
    // which is not in it either; Ada's own connection in it gets the message only.
    assert_eq!(join(&ada, &direct.room).await["ok"], true);
    ada.send_ok("a1", &direct.room, "are you there?").await;
    let told: Direct = serde_json::from_value(bob.next("direct").await).expect("a direct");
    assert_eq!(
        told,
        Direct {
            room: direct.room.clone(),
            peer: ada_welcome.user.clone()
        }
    );
    let told: Direct = serde_json::from_value(laptop.next("direct").await).expect("a direct");
    assert_eq!(told, direct);
    bob.expect_no("message").await;

    // Once in, a message comes as a message, and tells no one again.
    assert_eq!(join(&bob, &direct.room).await["ok"], true);
    assert_eq!(join(&laptop, &direct.room).await["ok"], true);
    ada.send_ok("a2", &direct.room, "good").await;
    assert_eq!(bob.next_message().await.text, "good");
    bob.expect_no("direct").await;
    laptop.expect_no("direct").await;
}

#[tokio::test]
async fn conversations_have_a_budget_apart_from_rooms() {
    let server = TestServer::start_with(|config| causerie_server::ServerConfig {
        max_joined_rooms: 2,
        ..config
    })
    .await;
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    let mut people = Vec::new();
    for name in ["Bob", "Carol", "Dan"] {
        people.push(TestClient::join(&server.url(), auth(name)).await.1.user);
    }
    // Two conversations fill their budget, not the rooms': `general` and one more still fit.
    for peer in &people[..2] {
        let direct = open(&ada, peer).await;
        assert_eq!(join(&ada, &direct.room).await["ok"], true);
    }
    let third = open(&ada, &people[2]).await;
    assert_eq!(error_code(&join(&ada, &third.room).await), "room_limit");
    assert_eq!(join(&ada, "dev").await["ok"], true);
    assert_eq!(error_code(&join(&ada, "ops").await), "room_limit");
}

#[tokio::test]
async fn direct_refusals_have_stable_codes() {
    let server = TestServer::start().await;
    let (ada, ada_welcome) = TestClient::join(&server.url(), auth("Ada")).await;
    let (bob, bob_welcome) = TestClient::join(&server.url(), auth("Bob")).await;
    let (carol, _) = TestClient::join(&server.url(), auth("Carol")).await;
    let (ada_id, bob_id) = (ada_welcome.user.id.clone(), bob_welcome.user.id.clone());

    let cases = [
        (json!({"user": ada_id}), "invalid"),
        (json!({"user": "no-such-user"}), "not_found"),
        (json!({"user": "not an id"}), "invalid"),
        (json!({"user": "x".repeat(65)}), "invalid"),
        (json!({"user": 7}), "invalid"),
        (json!({"user": bob_id, "extra": 1}), "invalid"),
        (json!("Bob"), "invalid"),
    ];
    for (request, code) in cases {
        let ack = ada.request("direct", request.clone()).await;
        assert_eq!(error_code(&ack), code, "{request} -> {ack}");
    }
    // A seed client's user is no one to open a conversation with: their app has none.
    let mut seed = TestClient::connect_seed(&server.url()).await;
    let seed_user = seed.expect_welcome().await.user;
    let ack = ada.request("direct", json!({"user": seed_user.id})).await;
    assert_eq!(error_code(&ack), "not_found", "{ack}");

    // A conversation is made by `direct`, never by a join, and only in its one form.
    let room = causerie_protocol::limits::direct_room(&ada_id, &bob_id);
    assert_eq!(error_code(&join(&ada, &room).await), "not_found");
    let (first, second) = causerie_protocol::limits::direct_members(&room).expect("a pair");
    let backwards = format!("~{second}+{first}");
    assert_eq!(error_code(&join(&ada, &backwards).await), "invalid_room");
    open(&bob, &ada_welcome.user).await;
    assert_eq!(join(&ada, &room).await["ok"], true);
    let sent = ada.send_ok("a1", &room, "ours").await;

    // Whoever else asks anything of it is refused: it is not theirs to join.
    let target = sent.seq;
    let requests = [
        (
            "react",
            json!({"id": "r1", "room": room, "target": target, "emoji": "👍"}),
        ),
        (
            "edit",
            json!({"id": "e1", "room": room, "target": target, "text": "theirs"}),
        ),
        (
            "delete",
            json!({"id": "x1", "room": room, "target": target}),
        ),
        ("who", json!({"room": room})),
        ("search", json!({"query": "ours", "room": room})),
        ("leave", json!({"room": room})),
    ];
    for (event, request) in requests {
        let ack = carol.request(event, request).await;
        assert_eq!(error_code(&ack), "not_joined", "{event} -> {ack}");
    }
}

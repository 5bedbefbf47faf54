//! Chatting through the client against a real server: messages, confirmations, refusals, rooms.

mod support;

use causerie_client::{ClientConfig, ClientEvent, ConnectionState, DisconnectReason};
use causerie_protocol::ErrorCode;
use causerie_server::{RateLimit, ServerConfig};
use std::num::NonZeroU32;
use std::time::Duration;
use support::{Recorded, TestServer, http, messages, test_config};

#[tokio::test]
async fn two_clients_exchange_messages_each_shown_once() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;

    let hello = ada.client.send("general", "hello Bob");
    ada.until_confirmed(std::slice::from_ref(&hello)).await;
    bob.until_messages("general", 1).await;
    let reply = bob.client.send("general", "hello Ada");
    bob.until_confirmed(std::slice::from_ref(&reply)).await;
    ada.until_messages("general", 2).await;

    for recorded in [&mut ada, &mut bob] {
        recorded.sync().await;
        let texts: Vec<&str> = recorded
            .messages()
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(texts, ["hello Bob", "hello Ada"]);
    }
    assert!(
        ada.log
            .iter()
            .any(|e| matches!(e, ClientEvent::Pending(p) if p.local_id == hello))
    );
    let confirmed_for_bob = bob
        .log
        .iter()
        .any(|e| matches!(e, ClientEvent::Message { confirms: Some(id), .. } if *id == hello));
    assert!(
        !confirmed_for_bob,
        "only the sender's copy confirms its pending message"
    );
}

#[tokio::test]
async fn a_message_the_server_refuses_fails_once_and_is_not_retried() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let blank = ada.client.send("general", "   ");
    let long = ada.client.send("general", &"x".repeat(4_001));
    let elsewhere = ada.client.send("nowhere", "hi");
    let fine = ada.client.send("general", "this one is fine");
    ada.until_confirmed(std::slice::from_ref(&fine)).await;
    ada.sync().await;
    let failures: Vec<_> = ada
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Failed {
                local_id,
                error,
                resendable,
            } => Some((local_id.clone(), error.code, *resendable)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        [
            (blank, ErrorCode::Empty, false),
            (long, ErrorCode::TooLong, false),
            // Worth sending again, once the room is joined.
            (elsewhere, ErrorCode::NotJoined, true)
        ]
    );
    assert_eq!(ada.messages().len(), 1);
    // The blank and the long one were refused by the client, against the server's limits: only
    // the one for a room not joined reached the server.
    let (_, metrics) = http(server.address, "GET", "/metrics", b"").await;
    let rejected: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("causerie_messages_rejected_total{"))
        .collect();
    assert_eq!(
        rejected,
        ["causerie_messages_rejected_total{code=\"not_joined\"} 1"]
    );
}

#[tokio::test]
async fn rate_limited_messages_are_retried_until_sent_in_order() {
    let server = TestServer::start_with(|config| ServerConfig {
        rate_limit: Some(RateLimit {
            per_second: NonZeroU32::new(5).expect("non-zero"),
            burst: NonZeroU32::new(2).expect("non-zero"),
        }),
        ..config
    })
    .await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let ids: Vec<_> = (0..6)
        .map(|i| ada.client.send("general", &format!("m{i}")))
        .collect();
    ada.until_confirmed(&ids).await;
    let texts: Vec<&str> = ada.messages().iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert!(
        !ada.log
            .iter()
            .any(|e| matches!(e, ClientEvent::Failed { .. }))
    );
}

#[tokio::test]
async fn rooms_scope_messages_and_history_pages_arrive_as_events() {
    let server = TestServer::start_with(|config| ServerConfig {
        rate_limit: None,
        ..config
    })
    .await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let joined = |log: &[ClientEvent]| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::Joined { room, .. } if room == "side"))
    };
    ada.client.join("side");
    ada.until("joined", joined).await;
    let ids: Vec<_> = (1..=60)
        .map(|i| ada.client.send("side", &format!("s{i}")))
        .collect();
    ada.until_confirmed(&ids).await;
    bob.sync().await;
    assert!(bob.messages().is_empty(), "Bob is not in side");

    // Bob joins: the latest page comes with the join, the older one when asked for.
    bob.client.join("side");
    bob.until_messages("side", 50).await;
    let oldest = bob.messages().first().map(|m| m.seq).expect("a message");
    assert_eq!(oldest, 11);
    let history = |log: &[ClientEvent]| {
        log.iter()
            .filter_map(|e| match e {
                ClientEvent::History(page) => Some(page.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    bob.client.history("side", Some(oldest));
    bob.until("a history page", |log| !history(log).is_empty())
        .await;
    let page = history(&bob.log).remove(0);
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(!page.has_more);

    // Asked again, or asked for what was delivered live: nothing twice.
    bob.client.history("side", Some(oldest));
    ada.client.history("side", Some(30));
    bob.until("a second page", |log| history(log).len() == 2)
        .await;
    ada.until("Ada's page", |log| !history(log).is_empty())
        .await;
    assert!(history(&bob.log)[1].messages.is_empty());
    assert!(history(&ada.log)[0].messages.is_empty());
}

#[tokio::test]
async fn rejoining_a_room_shows_only_what_is_new() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    for client in [&ada, &bob] {
        client.client.join("side");
    }
    let joined = |log: &[ClientEvent]| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::Joined { room, .. } if room == "side"))
    };
    ada.until("Ada in side", joined).await;
    bob.until("Bob in side", joined).await;
    let before: Vec<_> = (1..=2)
        .map(|i| ada.client.send("side", &format!("s{i}")))
        .collect();
    ada.until_confirmed(&before).await;
    bob.until_messages("side", 2).await;

    bob.client.leave("side");
    bob.until("Bob out of side", |log| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::Left { room } if room == "side"))
    })
    .await;
    let while_away = ada.client.send("side", "s3");
    ada.until_confirmed(std::slice::from_ref(&while_away)).await;
    bob.client.join("side");
    bob.until_messages("side", 3).await;
    bob.sync().await;
    let texts: Vec<&str> = bob
        .messages()
        .iter()
        .filter(|m| m.room == "side")
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(
        texts,
        ["s1", "s2", "s3"],
        "each once, the missed one caught up"
    );
}

#[tokio::test]
async fn a_wrong_join_code_is_a_typed_refusal_not_a_retry_storm() {
    let server = TestServer::start_with(|config| ServerConfig {
        join_code: Some("sesame".into()),
        ..config
    })
    .await;
    let mut refused = Recorded::start(ClientConfig {
        join_code: Some("wrong".into()),
        ..test_config(&server.url(), "Ada")
    });
    refused.until_stopped().await;
    let error = refused.log.iter().find_map(|e| match e {
        ClientEvent::Error(error) => Some(error.clone()),
        _ => None,
    });
    let error = error.expect("an error event");
    assert_eq!(error.code().as_str(), "unauthorized");
    assert!(matches!(
        refused.log.last(),
        Some(ClientEvent::State(ConnectionState::Disconnected { reason: DisconnectReason::Refused(body) }))
            if body.code == ErrorCode::Unauthorized
    ));
    let attempts = refused
        .log
        .iter()
        .filter(|e| matches!(e, ClientEvent::State(ConnectionState::Reconnecting { .. })))
        .count();
    assert_eq!(attempts, 0, "a refusal is not retried");

    let mut admitted = Recorded::start(ClientConfig {
        join_code: Some("sesame".into()),
        ..test_config(&server.url(), "Ada")
    });
    admitted.until_connected().await;
}

#[tokio::test]
async fn a_new_name_reconnects_at_once_and_shows_nothing_twice() {
    let server = TestServer::start_with(|config| ServerConfig {
        join_code: Some("sesame".into()),
        ..config
    })
    .await;
    let with_code = |name: &str| ClientConfig {
        join_code: Some("sesame".into()),
        ..test_config(&server.url(), name)
    };
    let mut ada = Recorded::start(with_code("Ada"));
    ada.until_connected().await;
    let mut bob = Recorded::start(with_code("Bob"));
    bob.until_connected().await;
    ada.client.join("side");
    ada.until("Ada in side", |log| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::Joined { room } if room == "side"))
    })
    .await;
    let sent: Vec<_> = ["one", "two"]
        .iter()
        .map(|text| bob.client.send("general", text))
        .collect();
    bob.until_confirmed(&sent).await;
    ada.until_messages("general", 2).await;
    let user = |log: &[ClientEvent]| {
        log.iter().rev().find_map(|e| match e {
            ClientEvent::Welcome(session) => Some(session.user.clone()),
            _ => None,
        })
    };
    let before = user(&ada.log).expect("a welcome");

    ada.client
        .reconnect_as(Some("Ada Lovelace"), Some("sesame"));
    ada.until("the welcome under the new name", |log| {
        user(log).is_some_and(|user| user.name == "Ada Lovelace")
    })
    .await;
    assert_eq!(
        user(&ada.log).map(|u| u.id),
        Some(before.id),
        "the same user"
    );
    let three = bob.client.send("general", "three");
    bob.until_confirmed(std::slice::from_ref(&three)).await;
    ada.until_messages("general", 3).await;
    // Still in side, by the client's own rejoin.
    ada.until("Ada in side again", |log| {
        log.iter()
            .filter(|e| matches!(e, ClientEvent::Joined { room } if room == "side"))
            .count()
            == 2
    })
    .await;
    let texts: Vec<&str> = ada.messages().iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"], "each once");
    assert!(
        !ada.log.iter().any(|e| matches!(
            e,
            ClientEvent::State(
                ConnectionState::Disconnected { .. } | ConnectionState::Reconnecting { .. }
            )
        )),
        "a deliberate reconnection is no loss, and no countdown"
    );
    bob.until("Ada under her new name in Bob's list", |log| {
        log.iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::Online { room, users, .. } if room == "general" => Some(users),
                _ => None,
            })
            .is_some_and(|users| {
                let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
                names == ["Ada Lovelace", "Bob"]
            })
    })
    .await;

    // A wrong code is refused, and the client stops: the app starts another.
    ada.client.reconnect_as(Some("Ada"), Some("wrong"));
    ada.until_stopped().await;
    assert!(!ada.client.is_running());
    assert!(bob.client.is_running());
}

#[tokio::test]
async fn sending_tells_the_room_the_user_stopped_typing() {
    let server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let typing = |event: &ClientEvent| match event {
        ClientEvent::Typing { room, users } if room == "general" => {
            Some(users.iter().map(|u| u.name.clone()).collect::<Vec<_>>())
        }
        _ => None,
    };
    ada.client.typing("general", true);
    bob.until("Ada typing", |log| {
        log.iter().filter_map(typing).any(|names| names == ["Ada"])
    })
    .await;
    // Only a send: the client says she stopped, as the UI no longer has to.
    let sent = ada.client.send("general", "done");
    ada.until_confirmed(std::slice::from_ref(&sent)).await;
    bob.until_messages("general", 1).await;
    // Bob's client would also end it on her message: the notice came first, from her client.
    let stopped = bob
        .log
        .iter()
        .position(|e| typing(e).is_some_and(|names| names.is_empty()))
        .expect("Ada no longer typing");
    let message = bob
        .log
        .iter()
        .position(|e| matches!(e, ClientEvent::Message { .. }))
        .expect("her message");
    assert!(stopped < message, "{:#?}", bob.log);
}

#[tokio::test]
async fn the_token_from_the_welcome_brings_the_same_user_back() {
    let server = TestServer::start().await;
    let mut first = Recorded::connect(&server.url(), "Ada").await;
    let session = first.log.iter().find_map(|e| match e {
        ClientEvent::Welcome(session) => Some(session.clone()),
        _ => None,
    });
    let session = session.expect("a welcome");
    first.client.disconnect();
    first.until_stopped().await;
    let mut again = Recorded::start(ClientConfig {
        name: None,
        token: Some(session.token.clone()),
        ..test_config(&server.url(), "")
    });
    again.until_connected().await;
    let user = again.log.iter().find_map(|e| match e {
        ClientEvent::Welcome(s) => Some(s.user.clone()),
        _ => None,
    });
    assert_eq!(user, Some(session.user));
    assert!(messages(&again.log).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_a_client_connects_is_shown_once_200_times_in_200() {
    let server = TestServer::start().await;
    let mut sender = Recorded::connect(&server.url(), "Sender").await;
    // How long connecting takes here, so that the sends below sweep across the moment the
    // server subscribes a socket, reads its history and sends its welcome.
    let started = tokio::time::Instant::now();
    let mut probe = Recorded::connect(&server.url(), "Probe").await;
    let connecting = started.elapsed();
    probe.client.disconnect();
    probe.until_stopped().await;

    let mut missed = Vec::new();
    for run in 0..200u32 {
        let mut joining = Recorded::start(test_config(&server.url(), "Joining"));
        tokio::time::sleep(connecting * (120 + run) / 200).await;
        let text = format!("run {run}");
        let id = sender.client.send("general", &text);
        sender.until_confirmed(std::slice::from_ref(&id)).await;
        let shown = tokio::time::timeout(Duration::from_secs(5), async {
            joining
                .until("the message", |log| {
                    messages(log).iter().any(|m| m.text == text)
                })
                .await;
        })
        .await
        .is_ok();
        joining.client.disconnect();
        joining.until_stopped().await;
        let times = messages(&joining.log)
            .iter()
            .filter(|m| m.text == text)
            .count();
        if !shown || times != 1 {
            missed.push((run, times));
        }
    }
    assert!(
        missed.is_empty(),
        "runs that did not show the message exactly once (run, times): {missed:?}"
    );
}

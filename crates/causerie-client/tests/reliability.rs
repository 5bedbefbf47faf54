//! The client's promises under failure: nothing sent is lost, nothing received is shown twice,
//! and it reconnects on its own, patiently.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use causerie_client::{
    Backoff, ClientConfig, ClientError, ClientEvent, ConnectionState, DisconnectReason,
};
use support::{
    Proxy, Recorded, SmallDisk, TestServer, assert_complete_and_ordered, messages, test_config,
};

#[tokio::test]
async fn a_server_restart_in_the_middle_of_200_messages_loses_and_repeats_nothing() {
    let mut server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    let ada_ids: Vec<_> = (0..100)
        .map(|i| ada.client.send("general", &format!("ada {i}")))
        .collect();
    let bob_ids: Vec<_> = (0..100)
        .map(|i| bob.client.send("general", &format!("bob {i}")))
        .collect();

    ada.until_messages("general", 30).await;
    server.stop().await;
    ada.until("the outage to be noticed", |log| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::State(ConnectionState::Disconnected { .. })))
    })
    .await;
    server.resume().await;

    for (client, own) in [(&mut ada, &ada_ids), (&mut bob, &bob_ids)] {
        client.until_confirmed(own).await;
        client.until_messages("general", 200).await;
        client.sync().await;
        assert_complete_and_ordered(&client.messages(), 200);
    }

    let mut reader = Recorded::connect(&server.url(), "Reader").await;
    reader.client.history("general", Some(201));
    reader.client.history("general", Some(151));
    reader.client.history("general", Some(101));
    reader.client.history("general", Some(51));
    reader
        .until("four history pages", |log| {
            log.iter()
                .filter(|e| matches!(e, ClientEvent::History(_)))
                .count()
                == 4
        })
        .await;
    // The latest come with the welcome, the older ones as pages: each message once overall.
    let mut stored: Vec<String> = reader
        .messages()
        .iter()
        .map(|m| m.client_id.clone())
        .collect();
    stored.extend(
        reader
            .log
            .iter()
            .filter_map(|e| match e {
                ClientEvent::History(page) => {
                    Some(page.messages.iter().map(|m| m.client_id.clone()))
                }
                _ => None,
            })
            .flatten(),
    );
    assert_eq!(stored.len(), 200, "each message once");
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), 200, "the store holds every message");
}

#[tokio::test]
async fn a_client_away_while_500_messages_pass_catches_up_on_all_of_them() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.address).await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&proxy.url(), "Bob").await;
    let first = ada.client.send("general", "before");
    ada.until_confirmed(std::slice::from_ref(&first)).await;
    bob.until_messages("general", 1).await;

    proxy.cut();
    bob.until("the cut to be noticed", |log| {
        log.iter()
            .any(|e| matches!(e, ClientEvent::State(ConnectionState::Disconnected { .. })))
    })
    .await;
    let ids: Vec<_> = (0..500)
        .map(|i| ada.client.send("general", &format!("while away {i}")))
        .collect();
    ada.until_confirmed(&ids).await;
    proxy.restore();

    bob.until_messages("general", 501).await;
    bob.sync().await;
    assert_complete_and_ordered(&bob.messages(), 501);
}

#[tokio::test]
async fn a_silently_dead_connection_is_found_by_the_liveness_check() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(server.address).await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    let mut bob = Recorded::connect(&proxy.url(), "Bob").await;

    proxy.stall();
    let ids: Vec<_> = (0..3)
        .map(|i| ada.client.send("general", &format!("m{i}")))
        .collect();
    ada.until_confirmed(&ids).await;
    bob.until("the stall to be noticed", |log| {
        log.iter().any(|e| {
            matches!(
                e,
                ClientEvent::State(ConnectionState::Disconnected {
                    reason: DisconnectReason::Lost(_)
                })
            )
        })
    })
    .await;
    proxy.restore();
    bob.until_messages("general", 3).await;
    assert_complete_and_ordered(&bob.messages(), 3);
}

#[tokio::test]
async fn a_lost_transport_is_noticed_at_once_not_at_the_next_ping() {
    let mut server = TestServer::start().await;
    let proxy = Proxy::start(server.address).await;
    // No liveness ping within the test: only the end of the transport can tell.
    let without_pings = |url: &str, name: &str| ClientConfig {
        liveness_interval: Duration::from_secs(3600),
        ..test_config(url, name)
    };
    let lost = |log: &[ClientEvent]| {
        log.iter().any(|e| {
            matches!(
                e,
                ClientEvent::State(ConnectionState::Disconnected {
                    reason: DisconnectReason::Lost(_)
                })
            )
        })
    };
    let mut ada = Recorded::start(without_pings(&server.url(), "Ada"));
    ada.until_connected().await;
    let mut bob = Recorded::start(without_pings(&proxy.url(), "Bob"));
    bob.until_connected().await;

    // Bob's network drops his connection: no word from the server, the socket just ends.
    proxy.cut();
    bob.until("the cut to be noticed", lost).await;
    // The server shuts down: Ada gets an Engine.IO close, and no Socket.IO disconnect.
    server.stop().await;
    ada.until("the shutdown to be noticed", lost).await;

    proxy.restore();
    server.resume().await;
    ada.until_connected().await;
    bob.until_connected().await;
    let connects = |log: &[ClientEvent]| {
        log.iter()
            .filter(|e| matches!(e, ClientEvent::State(ConnectionState::Connected)))
            .count()
    };
    assert_eq!((connects(&ada.log), connects(&bob.log)), (2, 2));
}

#[tokio::test]
async fn messages_sent_while_disconnected_arrive_after_the_reconnect() {
    let mut server = TestServer::start().await;
    let mut ada = Recorded::connect(&server.url(), "Ada").await;
    server.stop().await;
    let ids: Vec<_> = (0..3)
        .map(|i| ada.client.send("general", &format!("offline {i}")))
        .collect();
    ada.until("three pending messages", |log| {
        log.iter()
            .filter(|e| matches!(e, ClientEvent::Pending(_)))
            .count()
            == 3
    })
    .await;
    server.resume().await;
    ada.until_confirmed(&ids).await;
    let texts: Vec<&str> = ada.messages().iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["offline 0", "offline 1", "offline 2"]);

    let mut bob = Recorded::connect(&server.url(), "Bob").await;
    bob.until_messages("general", 3).await;
}

#[tokio::test]
async fn the_outbox_survives_a_restart_of_the_program() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox_file = dir.path().join("outbox.json");
    let config = ClientConfig {
        outbox_file: Some(outbox_file.clone()),
        ..test_config(&server.url(), "Ada")
    };
    let ids = {
        let mut first_run = Recorded::start(config.clone());
        let ids: Vec<_> = (0..2)
            .map(|i| first_run.client.send("general", &format!("kept {i}")))
            .collect();
        first_run
            .until("two pending messages", |log| {
                log.iter()
                    .filter(|e| matches!(e, ClientEvent::Pending(_)))
                    .count()
                    == 2
            })
            .await;
        first_run.client.disconnect();
        first_run.until_stopped().await;
        ids
    };
    assert!(outbox_file.exists());

    server.resume().await;
    let mut second_run = Recorded::start(config);
    second_run.until_confirmed(&ids).await;
    let restored: Vec<_> = second_run
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Pending(entry) => Some(entry.local_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(restored, ids, "restored in order, with the same ids");
    assert_eq!(messages(&second_run.log).len(), 2);
}

/// The outbox on a filesystem that really fills up (a tmpfs, mounted as root): appends fail half
/// way, and once space returns, the file is whole again and holds every message still pending.
#[tokio::test]
async fn a_full_disk_under_the_outbox_loses_no_pending_message_once_space_returns() {
    let Some(disk) = SmallDisk::mount(64 * 1024) else {
        return;
    };
    // No server: every message stays pending.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", dead.local_addr().expect("an address"));
    drop(dead);
    let config = ClientConfig {
        outbox_file: Some(disk.path().join("outbox.json")),
        ..test_config(&url, "Ada")
    };
    let mut first_run = Recorded::start(config.clone());
    let text = "x".repeat(3_000);
    let mut ids: Vec<_> = (0..60)
        .map(|i| first_run.client.send("general", &format!("{i} {text}")))
        .collect();
    first_run
        .until("the disk to refuse", |log| {
            log.iter()
                .any(|e| matches!(e, ClientEvent::Error(ClientError::Storage { .. })))
        })
        .await;
    disk.resize(1024 * 1024);
    ids.push(
        first_run
            .client
            .send("general", "after the disk had room again"),
    );
    first_run.client.disconnect();
    first_run.until_stopped().await;

    let mut second_run = Recorded::start(config);
    second_run
        .until("the outbox restored", |log| {
            log.iter()
                .any(|e| matches!(e, ClientEvent::State(ConnectionState::Connecting)))
        })
        .await;
    let restored: Vec<_> = second_run
        .log
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Pending(entry) => Some(entry.local_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(restored, ids, "every message, in order, once");
    second_run.client.disconnect();
    second_run.until_stopped().await;
}

/// On tokio's paused clock: each wait is as long as the client says, to the nanosecond, however
/// busy the machine.
#[tokio::test(start_paused = true)]
async fn a_long_outage_keeps_retrying_at_the_capped_interval() {
    // A port with nothing behind it.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", dead.local_addr().expect("an address"));
    drop(dead);
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(80),
    };
    let started = tokio::time::Instant::now();
    let mut client = Recorded::start(ClientConfig {
        backoff,
        ..test_config(&url, "Ada")
    });
    let reconnecting = |log: &[ClientEvent]| -> Vec<(u32, Duration)> {
        log.iter()
            .filter_map(|e| match e {
                ClientEvent::State(ConnectionState::Reconnecting { attempt, delay }) => {
                    Some((*attempt, *delay))
                }
                _ => None,
            })
            .collect()
    };
    client
        .until("20 attempts", |log| reconnecting(log).len() == 20)
        .await;
    let elapsed = started.elapsed();
    client.client.disconnect();
    client.until_stopped().await;

    let delays = reconnecting(&client.log);
    let attempts: Vec<u32> = delays.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        attempts,
        (1..=20).collect::<Vec<_>>(),
        "still trying, counting up"
    );
    for &(attempt, delay) in &delays {
        assert!(
            delay >= backoff.initial && delay <= backoff.ceiling(attempt),
            "attempt {attempt} waits {delay:?}"
        );
    }
    assert_eq!(
        backoff.ceiling(4),
        backoff.max,
        "from the 4th attempt on, capped"
    );
    // The 20th wait has just begun; the 19 before were waited in full.
    let waited: Duration = delays[..19].iter().map(|(_, d)| *d).sum();
    assert!(elapsed >= waited, "{elapsed:?} < {waited:?}: no tight loop");
}

/// The most a TCP socket's send buffer grows to here (`net.ipv4.tcp_wmem`), 4 MiB if unknown.
fn kernel_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|values| values.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_for_5_s_is_closed_and_then_misses_nothing() {
    let server = TestServer::start().await;
    reader_stops_for_5_s(&server, &server).await;
}

/// The same on two nodes of a cluster: the reader on one, the chatters on the other. What
/// reaches a node from another must count towards its readers' backlog as its own broadcasts
/// do, or the one that stops would lose messages in silence rather than be closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_on_another_node_that_stops_reading_is_closed_and_then_misses_nothing() {
    use causerie_server::testing::{TestPostgres, TestRedis};
    let database = TestPostgres::shared().create_database().await;
    let redis = TestRedis::start();
    let (chatting, reading) = (
        TestServer::start_node(&database, &redis.url()).await,
        TestServer::start_node(&database, &redis.url()).await,
    );
    reader_stops_for_5_s(&chatting, &reading).await;
}

/// Behind HAProxy, a client whose node stops comes back through HAProxy on the other node and
/// has every message once, in order: those before, and those sent while it was switching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_switched_to_another_node_catches_up_without_a_gap_or_a_repeat() {
    use causerie_server::testing::{TestHaproxy, TestPostgres, TestRedis, metric};
    let database = TestPostgres::shared().create_database().await;
    let redis = TestRedis::start();
    let mut nodes = [
        TestServer::start_node(&database, &redis.url()).await,
        TestServer::start_node(&database, &redis.url()).await,
    ];
    let addresses = [nodes[0].address, nodes[1].address];
    let haproxy = TestHaproxy::start("127.0.0.1:0".parse().expect("an address"), &addresses);
    let mut reader = Recorded::connect(&haproxy.url(), "Reader").await;
    let connections = |address| metric(address, "causerie_connections");
    let on = usize::from(connections(addresses[0]).await == 0);
    // The writer on the other node, directly: it stays up.
    let mut writer = Recorded::connect(&nodes[1 - on].url(), "Writer").await;
    let before: Vec<_> = (0..5)
        .map(|i| writer.client.send("general", &format!("before {i}")))
        .collect();
    writer.until_confirmed(&before).await;
    reader.until_messages("general", 5).await;

    nodes[on].stop().await;
    let during: Vec<_> = (0..10)
        .map(|i| writer.client.send("general", &format!("during {i}")))
        .collect();
    writer.until_confirmed(&during).await;
    reader.until_messages("general", 15).await;
    assert_eq!(
        connections(addresses[1 - on]).await,
        2,
        "the reader is on the other node"
    );
    let seqs: Vec<u64> = reader
        .messages()
        .iter()
        .filter(|m| m.room == "general")
        .map(|m| m.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=15).collect::<Vec<_>>(),
        "every message once, in order"
    );
}

/// In a cluster, a message sent on one node while Redis is down reaches the client of another
/// node once Redis is back, though nothing is sent after it to show a skipped seq: the nodes tell
/// their rooms their latest seqs (`head`) once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_another_node_while_redis_was_down_arrives_once_it_is_back() {
    use causerie_server::testing::{TestPostgres, TestRedis, until_metric};
    let database = TestPostgres::shared().create_database().await;
    let mut redis = TestRedis::start();
    let (a, b) = (
        TestServer::start_node(&database, &redis.url()).await,
        TestServer::start_node(&database, &redis.url()).await,
    );
    let mut ada = Recorded::connect(&a.url(), "Ada").await;
    let mut bob = Recorded::connect(&b.url(), "Bob").await;
    let first = ada.client.send("general", "before");
    ada.until_confirmed(std::slice::from_ref(&first)).await;
    bob.until_messages("general", 1).await;

    redis.kill();
    // Until both nodes have found Redis gone (their metrics say so): a message then waits for
    // no Redis, and the outage cannot fall between two heartbeats.
    for server in [&a, &b] {
        until_metric(server.address, "causerie_redis_reachable", 0).await;
    }
    let missed = ada.client.send("general", "while Redis is down");
    ada.until_confirmed(std::slice::from_ref(&missed)).await;
    redis.resume();
    bob.until_messages("general", 2).await;
    let texts: Vec<&str> = bob.messages().iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "while Redis is down"]);
}

/// A client connected to `reading` stops reading for 5 s while clients of `chatting` send more
/// than it may have waiting: it is closed, comes back, and has every message once, in order.
async fn reader_stops_for_5_s(chatting: &TestServer, reading: &TestServer) {
    let server = chatting;
    let proxy = Proxy::start(reading.address).await;
    // Its own liveness check would notice the pause and reconnect: here the server must act.
    let mut slow = Recorded::start(ClientConfig {
        request_timeout: Duration::from_secs(60),
        liveness_interval: Duration::from_secs(60),
        ..test_config(&proxy.url(), "Slow")
    });
    slow.until_connected().await;
    let mut chatters = Vec::new();
    for i in 0..4 {
        chatters.push(Recorded::connect(&server.url(), &format!("Chatter{i}")).await);
    }
    let typist = Recorded::connect(&server.url(), "Typist").await;
    let first = chatters[0].client.send("general", "before the pause");
    chatters[0]
        .until_confirmed(std::slice::from_ref(&first))
        .await;
    slow.until_messages("general", 1).await;

    // While it does not read: more than the kernel buffers plus what the server lets a socket
    // have waiting (4 MiB), in long messages, a flood of typing, then the messages that must
    // not be lost.
    proxy.pause_reading();
    let paused_at = tokio::time::Instant::now();
    let long_text = "\u{1F600}".repeat(4000); // 16 KB
    let long_messages = (kernel_send_buffer_max() + (8 << 20)) / long_text.len();
    let mut sent = 1;
    for (i, chatter) in chatters.iter_mut().enumerate() {
        let ids: Vec<_> = (i..long_messages)
            .step_by(4)
            .map(|_| chatter.client.send("general", &long_text))
            .collect();
        sent += ids.len();
        chatter.until_confirmed(&ids).await;
    }
    // Typing notices are volatile: they fill no queue, whatever their number.
    for i in 0..5000 {
        typist.client.typing("general", i % 2 == 0);
    }
    let watcher = &mut chatters[0];
    let during: Vec<_> = (0..5)
        .map(|i| {
            watcher
                .client
                .send("general", &format!("during the pause {i}"))
        })
        .collect();
    sent += during.len();
    watcher.until_confirmed(&during).await;
    tokio::time::sleep_until(paused_at + Duration::from_secs(5)).await;
    proxy.restore();

    slow.until_messages("general", sent).await;
    slow.sync().await;
    assert_complete_and_ordered(&slow.messages(), sent as u64);
    assert!(
        slow.connects() >= 2,
        "the server closed the connection that fell behind, and the client came back"
    );
}

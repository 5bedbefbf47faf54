//! A short run of the harness itself against real servers: connecting, a two-step fan-out
//! ladder, the counts, the CPU readings from `/proc`, and the report and chart written from
//! them. (The full benchmark is not part of CI; `./x bench` runs it.)

use std::sync::Arc;
use std::time::Duration;

use causerie_bench::peer::{Paths, Peer, RunningPeer};
use causerie_bench::report::{self, Machine, Report, Run};
use causerie_bench::scenario::{self, FAN_OUT_P99_LIMIT, Load, Protocol, Settings};
use causerie_bench::stats::Steps;
use causerie_server::testing::TestServer;

const CLIENTS: usize = 20;

#[tokio::test]
async fn a_short_run_against_causerie_counts_every_delivery_and_reports_it() {
    // As people run it: durable history on; flood control off for the sender.
    let server = TestServer::start().await;
    // The server runs in this process: its CPU and memory are this process's.
    let urls = [server.url()];
    let own = smoke(
        Peer::Causerie,
        Protocol::Causerie,
        &urls,
        std::process::id(),
    )
    .await;
    let seed = smoke(Peer::Causerie, Protocol::Seed, &urls, std::process::id()).await;
    write_report(vec![own, seed]).await;
}

/// The several-nodes scenario's way: the clients alternate between two nodes of a cluster, the
/// sender on the first, and every client gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_two_nodes_counts_every_delivery() {
    use causerie_server::testing::{TestPostgres, TestRedis};
    let database = TestPostgres::shared().create_database().await;
    let redis = TestRedis::start();
    let a = TestServer::start_node(&database, &redis.url()).await;
    let b = TestServer::start_node(&database, &redis.url()).await;
    let urls = [a.url(), b.url()];
    smoke(
        Peer::Causerie,
        Protocol::Causerie,
        &urls,
        std::process::id(),
    )
    .await;
}

#[tokio::test]
async fn a_short_run_against_node_socket_io_counts_every_delivery() {
    let paths = Paths::discover().expect("finds the repository");
    // `bench/peers/node/node_modules` comes from `npm ci` there (./x test runs it).
    let peer = RunningPeer::start(Peer::Node, &paths, None)
        .await
        .expect("starts Node's socket.io");
    smoke(
        Peer::Node,
        Protocol::Seed,
        std::slice::from_ref(&peer.url),
        peer.pid,
    )
    .await;
    peer.stop().await;
}

fn settings() -> Settings {
    Settings {
        step: Duration::from_secs(1),
        confirm: Duration::from_secs(1),
        drain: Duration::from_secs(10),
        settle: Duration::from_millis(200),
        connect_concurrency: 10,
        connect_timeout: Duration::from_secs(10),
        min_messages: 5,
        load_cores: 1,
        repeats: 1,
    }
}

/// 20 clients; one sends at 20 then 40 messages a second; every client must get every message,
/// each try counted once per recipient.
async fn smoke(peer: Peer, protocol: Protocol, urls: &[String], pid: u32) -> Run {
    let settings = settings();
    let steps = Arc::new(Steps::new(16, 2));
    let (hold, group) = scenario::hold(urls, pid, CLIENTS, protocol, &steps, &settings).await;
    assert_eq!(hold.connected, CLIENTS, "{hold:?}");
    assert!(
        hold.connects_per_s > 0.0 && hold.welcome_p99_ms > 0.0 && hold.welcome_bytes > 10.0,
        "{hold:?}"
    );
    match protocol {
        // Causerie clients hear of each other: each arrival reaches the members already there
        // (coalesced), so presence costs bytes, but a bounded number per arrival and member.
        Protocol::Causerie => assert!(
            hold.presence_events > 0
                && hold.presence_bytes_per_arrival_member > 0.0
                && hold.presence_bytes_per_arrival_member < 200.0,
            "{hold:?}"
        ),
        Protocol::Seed => assert_eq!(hold.presence_events, 0, "{hold:?}"),
    }

    let load = Load {
        pid,
        senders: &group.senders[..1],
        recipients: CLIENTS,
        steps,
        kind: protocol.into(),
    };
    let ladder = scenario::ladder(&load, &[20.0, 40.0], FAN_OUT_P99_LIMIT, &settings).await;
    drop(group);
    // Whether a step is held depends on the machine's load; the counting does not.
    let first = ladder.steps.first().expect("at least one step");
    assert_eq!(
        (first.sent, first.attempt),
        (20, 1),
        "a second at 20 messages a second: {first:?}"
    );
    for step in &ladder.steps {
        assert_eq!(step.expected, step.sent * CLIENTS as u64, "{step:?}");
        assert_eq!(
            (step.received, step.lost, step.duplicates),
            (step.expected, 0, 0),
            "{step:?}"
        );
        assert!(step.p50_ms > 0.0 && step.p99_ms >= step.p50_ms, "{step:?}");
        assert!(step.server_cpu_us_per_delivery.is_finite(), "{step:?}");
        assert!(step.attempt <= 3, "{step:?}");
    }
    Run {
        repeat: 0,
        peer,
        protocol,
        clients: CLIENTS,
        hold,
        fan_out: Some(ladder),
        storm: None,
    }
}

/// The Markdown and the chart come out of a run's figures.
async fn write_report(runs: Vec<Run>) {
    let report = Report {
        started: "2026-11-25T00:00:00Z".to_owned(),
        machine: Machine {
            cpu: "test".to_owned(),
            cores: 1,
            memory_gib: 1.0,
            os: "test".to_owned(),
            pinning: "no pinning".to_owned(),
            software: Vec::new(),
        },
        settings: settings(),
        runs,
        ingest: Vec::new(),
        abuse: Vec::new(),
        nodes: Vec::new(),
        load_check: None,
    };
    let markdown = report::markdown(&report);
    for row in [
        format!("| {CLIENTS} | Causerie (Causerie clients) | {CLIENTS} |"),
        format!("| {CLIENTS} | Causerie | {CLIENTS} |"),
    ] {
        assert!(markdown.contains(&row), "{row} in {markdown}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path().join("fan-out.svg");
    report::chart(&report, &chart).expect("draws the chart");
    let svg = std::fs::read_to_string(&chart).expect("reads the chart");
    assert!(svg.contains("<svg") && svg.contains("Causerie"), "{svg}");
}

//! A short run of the load against a real Causerie server: every client welcomed, every message
//! delivered to every client, each delivery timed. (The full benchmark is not part of CI.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use causerie_bench::client::{BenchClient, Counting};
use causerie_bench::probe::{self, Probe};
use causerie_bench::schedule::OpenLoop;
use causerie_bench::stats::Steps;
use causerie_server::testing::TestServer;

#[tokio::test]
async fn a_fan_out_run_against_causerie_delivers_and_times_everything() {
    // As people run it: durable history on; flood control off for the sender.
    let server = TestServer::start().await;
    fan_out(&server.url()).await;
}

#[tokio::test]
async fn a_fan_out_run_against_node_socket_io_delivers_and_times_everything() {
    let peer = NodePeer::start().await;
    fan_out(&peer.url).await;
}

/// Node's socket.io running `bench/peers/node/server.js` (installed by `./x test`).
struct NodePeer {
    child: tokio::process::Child,
    url: String,
}

impl NodePeer {
    async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bench/peers/node/server.js"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the peer (npm ci in bench/peers/node first)");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("the peer starts in time")
            .expect("reads stdout")
            .expect("the peer prints its address");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// 20 clients; one sends 25 probes at 50 per second; every client must get every probe.
async fn fan_out(url: &str) {
    let steps = Arc::new(Steps::new(1, 4));
    let clients = 20;
    let mut sender = None;
    let mut listeners = Vec::new();
    for who in 0..clients {
        // No `auth`: the seed protocol, which every peer speaks.
        let client = BenchClient::connect(url, None).await.expect("connects");
        assert!(client.welcome_after > Duration::ZERO);
        if who == 0 {
            sender = Some(client.sender());
        }
        listeners.push(client.listen(who, steps.clone(), Counting::Messages));
    }
    let sender = sender.expect("a sender");
    let tally = steps.get(0).expect("one step");
    let messages = 25;
    let schedule = OpenLoop::new(Instant::now(), 50.0);
    for id in 0..messages {
        let due = schedule.due(id);
        tokio::time::sleep_until(due.into()).await;
        tally.expect(clients as u64);
        let probe = Probe {
            step: 0,
            id,
            intended_nanos: probe::nanos_at(due),
        };
        sender.message(&probe.text()).await.expect("sends");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.counts().lost > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = tally.counts();
    assert_eq!(
        (counts.expected, counts.received, counts.lost),
        (500, 500, 0)
    );
    assert_eq!(tally.latencies().count, 500);
    for listener in listeners {
        listener.abort();
    }
}

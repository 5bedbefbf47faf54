//! The server binary as people run it: a log that nobody reads never holds it up.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use support::{PATIENCE, ServerProcess, TestClient, auth, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_drops_lines_and_never_holds_the_server_up() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    // stderr is a pipe this test never reads: once its 64 KiB are full, every write would wait.
    let server =
        ServerProcess::start_with(data_dir.path(), "127.0.0.1:0", &[], Stdio::piped(), "debug");
    let (ada, _) = TestClient::join(&server.url(), auth("Ada")).await;
    // Each refused message is a debug line (and socketioxide writes more): far more than the
    // pipe and the log's queue hold.
    for i in 0..40_000 {
        ada.client
            .emit("message", json!({"id": format!("bad-{i}"), "text": "   "}))
            .await
            .expect("emits");
    }
    let answered =
        tokio::time::timeout(PATIENCE, http(server.address, "GET", "/healthz", b"")).await;
    assert_eq!(answered.expect("answers while its log is full").0, 200);
    assert_eq!(
        ada.send_ok("after", "general", "still served").await.text,
        "still served"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, metrics) = http(server.address, "GET", "/metrics", b"").await;
        let dropped = metrics
            .lines()
            .find_map(|line| line.strip_prefix("causerie_log_lines_dropped "))
            .and_then(|count| count.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if dropped > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no line was dropped: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

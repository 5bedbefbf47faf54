//! HAProxy in front of a cluster's nodes, as a deployment would have it, from the Debian package's
//! `haproxy` (`./x test` installs it): sticky sessions for Socket.IO's polling transport (a cookie
//! it inserts), WebSockets kept open, and a node that stops answering taken out of the rotation
//! within a second, its clients sent to another.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::PATIENCE;

/// An HAProxy load balancer for tests and local clusters.
pub struct TestHaproxy {
    /// Where clients connect.
    pub address: SocketAddr,
    server: Child,
    _config: tempfile::TempDir,
}

/// The configuration of a load balancer on `address` in front of `nodes`.
pub fn config(address: SocketAddr, nodes: &[SocketAddr]) -> String {
    let mut config = format!(
        "global\n  maxconn 4000\n\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 # A WebSocket stays open as long as its client wants (Socket.IO pings it every 25 s).\n\
         \x20 timeout tunnel 1h\n\
         \x20 # A client stuck to a node that is gone is sent to another.\n\
         \x20 option redispatch\n  retries 2\n\n\
         frontend chat\n  bind {address}\n  default_backend nodes\n\n\
         backend nodes\n  balance roundrobin\n\
         \x20 # Sticky sessions: a polling session lives on one node.\n\
         \x20 cookie SERVERID insert indirect nocache\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        config.push_str(&format!(
            "  server node{i} {node} cookie node{i} check inter 500ms fall 2 rise 2\n"
        ));
    }
    config
}

impl TestHaproxy {
    /// Starts HAProxy on `address` (port 0: a free one) in front of `nodes`, and waits until it
    /// listens. Fails, saying why, when HAProxy is not installed.
    pub fn start(address: SocketAddr, nodes: &[SocketAddr]) -> Self {
        let address = if address.port() == 0 {
            std::net::TcpListener::bind(address)
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
        } else {
            address
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config(address, nodes)).expect("writes the config");
        assert!(
            Command::new("haproxy")
                .arg("-v")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
            "haproxy is not installed: `./x test` installs it (apt-get install haproxy)"
        );
        let mut haproxy = Command::new("haproxy");
        haproxy.arg("-f").arg(&file).arg("-db");
        let mut server = super::watched(&haproxy)
            .stdout(Stdio::null())
            .spawn()
            .expect("starts haproxy");
        let ready = Instant::now();
        while std::net::TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = server.try_wait() {
                panic!("HAProxy stopped ({status}): see its messages above");
            }
            assert!(ready.elapsed() < PATIENCE, "HAProxy did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            address,
            server,
            _config: dir,
        }
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for TestHaproxy {
    fn drop(&mut self) {
        // SIGTERM: the watching shell stops HAProxy, then itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
    }
}

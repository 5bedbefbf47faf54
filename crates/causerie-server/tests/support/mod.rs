//! Shared fixtures: a real server on 127.0.0.1 with a temporary data dir, and a real Socket.IO
//! client (rust_socketio) whose events arrive on a channel the test awaits with a timeout.
#![allow(dead_code, missing_docs, unused_imports)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use causerie_protocol::{Message, Welcome};
pub use causerie_server::testing::{PATIENCE, SmallDisk, TestServer, http};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(400);

/// One event a client received: its name and its first argument.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub data: Value,
}

/// A real Socket.IO client.
pub struct TestClient {
    pub client: Client,
    events: mpsc::UnboundedReceiver<Received>,
}

const EVENTS: [&str; 10] = [
    "welcome", "message", "change", "head", "presence", "typing", "read", "direct", "error",
    "close",
];

/// The `auth` of a Causerie client named `name`.
pub fn auth(name: &str) -> Value {
    json!({"protocol": 3, "name": name})
}

impl TestClient {
    /// Connects with `auth` over the default transports (polling, then upgrade).
    pub async fn connect(url: &str, auth: Value) -> Self {
        Self::connect_over(url, auth, TransportType::Any).await
    }

    pub async fn connect_over(url: &str, auth: Value, transport: TransportType) -> Self {
        Self::connect_with(url, Some(auth), transport).await
    }

    /// Connects like a client of the old server: no `auth` at all.
    pub async fn connect_seed(url: &str) -> Self {
        Self::connect_with(url, None, TransportType::Any).await
    }

    async fn connect_with(url: &str, auth: Option<Value>, transport: TransportType) -> Self {
        Self::try_connect_with(url, auth, transport)
            .await
            .expect("connects")
    }

    /// Like [`TestClient::connect_over`], but `None` when it cannot connect (a node going down).
    pub async fn try_connect_over(
        url: &str,
        auth: Value,
        transport: TransportType,
    ) -> Option<Self> {
        Self::try_connect_with(url, Some(auth), transport).await
    }

    async fn try_connect_with(
        url: &str,
        auth: Option<Value>,
        transport: TransportType,
    ) -> Option<Self> {
        let (sender, events) = mpsc::unbounded_channel();
        let mut builder = ClientBuilder::new(url)
            .transport_type(transport)
            .reconnect(false);
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        for event in EVENTS {
            let sender = sender.clone();
            builder = builder.on(event, move |payload, _| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(Received {
                        event: event.to_owned(),
                        data: first_value(payload),
                    });
                }
                .boxed()
            });
        }
        let client = builder.connect().await.ok()?;
        Some(Self { client, events })
    }

    /// Connects and returns the client with its `welcome`.
    pub async fn join(url: &str, auth: Value) -> (Self, Welcome) {
        let mut client = Self::connect(url, auth).await;
        let welcome = client.expect_welcome().await;
        (client, welcome)
    }

    pub async fn expect_welcome(&mut self) -> Welcome {
        let data = self.next("welcome").await;
        serde_json::from_value(data).expect("welcome has the documented shape")
    }

    /// The next event named `event`, skipping others; panics after [`PATIENCE`].
    pub async fn next(&mut self, event: &str) -> Value {
        self.next_within(event, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no {event:?} event within {PATIENCE:?}"))
    }

    /// The next event named `event` within `within`, skipping others.
    pub async fn next_within(&mut self, event: &str, within: Duration) -> Option<Value> {
        let received = self.next_of(&[event], within).await?;
        Some(received.data)
    }

    /// The next event named one of `events` within `within`, skipping others.
    pub async fn next_of(&mut self, events: &[&str], within: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()?
                .expect("the client is alive");
            if events.contains(&received.event.as_str()) {
                return Some(received);
            }
        }
    }

    /// The next chat message (an object), skipping other events.
    pub async fn next_message(&mut self) -> Message {
        serde_json::from_value(self.next("message").await).expect("a message object")
    }

    /// Asserts that no event named `event` arrives within [`QUIET`].
    pub async fn expect_no(&mut self, event: &str) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(received)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            assert_ne!(
                received.event, event,
                "unexpected {event}: {:?}",
                received.data
            );
        }
    }

    /// Emits `event` with `data` and returns the ack's first argument.
    pub async fn request(&self, event: &str, data: Value) -> Value {
        self.try_request(event, data, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no ack for {event:?} within {PATIENCE:?}"))
    }

    /// Like [`TestClient::request`], but `None` when no ack comes within `wait`.
    pub async fn try_request(&self, event: &str, data: Value, wait: Duration) -> Option<Value> {
        request_on(&self.client, event, data, wait).await
    }

    /// Sends a message and returns the ack.
    pub async fn send(&self, client_id: &str, room: &str, text: &str) -> Value {
        self.request(
            "message",
            json!({"id": client_id, "room": room, "text": text}),
        )
        .await
    }

    /// Sends a message that must be accepted and returns the stored message.
    pub async fn send_ok(&self, client_id: &str, room: &str, text: &str) -> Message {
        let ack = self.send(client_id, room, text).await;
        assert_eq!(ack["ok"], true, "message refused: {ack}");
        serde_json::from_value(ack["message"].clone()).expect("the ack carries the message")
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// Checks `check` every 100 ms until it holds; panics after [`PATIENCE`], saying what never did.
pub async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Emits `event` with `data` on `client` and returns the ack's first argument, or `None` when no
/// ack comes within `wait`. For tasks that share one connection.
pub async fn request_on(
    client: &Client,
    event: &str,
    data: Value,
    wait: Duration,
) -> Option<Value> {
    let (reply, ack) = oneshot::channel();
    let reply = std::sync::Mutex::new(Some(reply));
    client
        .emit_with_ack(event, data, wait, move |payload, _| {
            if let Some(reply) = reply.lock().expect("not poisoned").take() {
                // rust_socketio hands an ack's arguments over as one array.
                let value = match first_value(payload) {
                    Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                    other => other,
                };
                let _ = reply.send(value);
            }
            async {}.boxed()
        })
        .await
        .ok()?;
    tokio::time::timeout(wait, ack).await.ok()?.ok()
}

fn first_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        #[allow(deprecated)]
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::Null,
    }
}

/// The error code of a failed ack.
pub fn error_code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], false, "expected a refusal: {ack}");
    ack["error"]["code"].as_str().expect("a code")
}

/// Opens an Engine.IO polling session and connects it to the default namespace with `auth`;
/// returns the session id.
pub async fn polling_session(address: SocketAddr, auth: &Value) -> String {
    let (status, body) = http(address, "GET", "/socket.io/?EIO=4&transport=polling", b"").await;
    assert_eq!(status, 200, "{body}");
    let open: Value = serde_json::from_str(body.trim_start_matches('0')).expect("an open packet");
    let sid = open["sid"].as_str().expect("a sid").to_owned();
    let connect = format!("40{auth}");
    let (status, body) = http(address, "POST", &polling_path(&sid), connect.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    sid
}

pub fn polling_path(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

/// The `causerie-server` binary, running in its own process.
pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
}

impl ServerProcess {
    /// Starts the binary on `bind` with its data in `data_dir`, without flood control or limits
    /// per address, and logging warnings to this process's stderr.
    pub fn start(data_dir: &Path, bind: &str, extra: &[&str]) -> Self {
        Self::start_with(data_dir, bind, extra, Stdio::inherit(), "warn")
    }

    /// Like [`ServerProcess::start`], with its stderr going to `stderr` at log level `log`.
    pub fn start_with(
        data_dir: &Path,
        bind: &str,
        extra: &[&str],
        stderr: Stdio,
        log: &str,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_causerie-server"))
            .args([
                "--bind",
                bind,
                "--rate-limit",
                "0",
                "--new-guests-per-minute",
                "0",
            ])
            .args(["--max-connections-per-address", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starts the server binary");
        let stdout = child.stdout.take().expect("a stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads its first line");
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Self { child, address }
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// SIGKILL: no shutdown, no final commit, no closing of the database.
    pub fn kill(&mut self) {
        self.child.kill().expect("kills");
        self.child.wait().expect("reaps");
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("waits");
        assert!(status.success(), "the server stopped with {status}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another process (Python's sqlite3) holding the database's write lock until released.
pub struct LockHolder {
    child: std::process::Child,
}

impl LockHolder {
    pub async fn hold(database: &Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\n\
                 db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                 db.execute('BEGIN IMMEDIATE')\n\
                 print('locked', flush=True)\n\
                 sys.stdin.read()\n\
                 db.execute('ROLLBACK')\n",
            ])
            .arg(database)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (./x test installs it)");
        let stdout = child.stdout.take().expect("a stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await
        .expect("reads")
        .expect("reads a line");
        assert_eq!(line.trim(), "locked");
        Self { child }
    }

    pub async fn release(mut self) {
        drop(self.child.stdin.take());
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("waits")
            .expect("exits");
        assert!(status.success());
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A websocket speaking Engine.IO and Socket.IO frames by hand: for what a Socket.IO client
/// library would not do, such as many requests at once (rust_socketio 0.6 draws ack ids from
/// 0..999 and mixes up answers that share one).
pub struct RawSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawSocket {
    /// Connects to `server` with `auth` and waits for its `welcome`.
    pub async fn join(server: &TestServer, auth: &Value) -> Self {
        use futures_util::{SinkExt, StreamExt};
        let url = format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            server.address
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("opens a websocket");
        loop {
            let text = Self::next_text(&mut socket).await;
            if text.starts_with('0') {
                socket
                    .send(tokio_tungstenite::tungstenite::Message::text(format!(
                        "40{auth}"
                    )))
                    .await
                    .expect("sends the connect packet");
            } else if text.starts_with("42[\"welcome\"") {
                return Self { socket };
            }
        }
    }

    async fn next_text(
        socket: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> String {
        use futures_util::{SinkExt, StreamExt};
        loop {
            let frame = tokio::time::timeout(PATIENCE, socket.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .expect("a frame");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                if text.as_str() == "2" {
                    socket
                        .send(tokio_tungstenite::tungstenite::Message::text("3"))
                        .await
                        .expect("answers the ping");
                    continue;
                }
                return text.to_string();
            }
        }
    }

    /// Sends `event` with `data`, asking for an ack under `id`.
    pub async fn emit(&mut self, id: u64, event: &str, data: &Value) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(format!(
                "42{id}{}",
                json!([event, data])
            )))
            .await
            .expect("sends");
    }

    /// The next ack: its id and its first argument (other packets are skipped).
    pub async fn next_ack(&mut self) -> (u64, Value) {
        loop {
            let text = Self::next_text(&mut self.socket).await;
            let Some(body) = text.strip_prefix("43") else {
                continue;
            };
            let digits = body
                .find(|c: char| !c.is_ascii_digit())
                .expect("an ack has arguments");
            let id = body[..digits].parse().expect("an ack id");
            let mut args: Vec<Value> =
                serde_json::from_str(&body[digits..]).expect("ack arguments in JSON");
            return (id, args.swap_remove(0));
        }
    }
}

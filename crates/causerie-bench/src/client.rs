//! One simulated user: a websocket speaking just enough Socket.IO to connect, be welcomed, send
//! events (with or without an ack), receive `message` and `presence`, and answer pings.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::frame::{self, Frame, PONG};
use crate::probe::{self, Probe};
use crate::stats::Steps;

type Socket = WebSocketStream<TcpStream>;

/// Why a client could not connect or carry on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The websocket could not be opened or broke.
    #[error("websocket: {0}")]
    Socket(String),
    /// The server refused the Socket.IO connection, with its explanation.
    #[error("refused: {0}")]
    Refused(String),
    /// The server closed the connection before the handshake ended.
    #[error("closed during the handshake")]
    Closed,
    /// The server did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered a request with an error.
    #[error("request refused: {0}")]
    Rejected(String),
}

/// How a client introduces itself: the protocol it speaks, and where it connects from.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// The Socket.IO `auth` object: none for a seed client, `{"protocol": 3, ...}` for Causerie's.
    pub auth: Option<serde_json::Value>,
    /// The local address to connect from. All of 127.0.0.0/8 reaches loopback, so one process
    /// can be many addresses (the server limits connections and new guests per address).
    pub from: Option<IpAddr>,
    /// An `Origin` header, as a browser's page would send.
    pub origin: Option<String>,
}

impl Handshake {
    /// A seed client: no `auth`, as the old app connected.
    pub fn seed() -> Self {
        Self::default()
    }

    /// A Causerie client named `name` (with the server's join `code`, when it has one).
    pub fn causerie(name: &str, code: Option<&str>) -> Self {
        let mut auth = serde_json::json!({"protocol": 3, "name": name});
        if let Some(code) = code {
            auth["code"] = code.into();
        }
        Self {
            auth: Some(auth),
            ..Self::default()
        }
    }

    /// The same, from local address `from`.
    pub fn from(mut self, from: IpAddr) -> Self {
        self.from = Some(from);
        self
    }
}

/// What a listening client counts: the `message` events it receives (fan-out), or the acks of the
/// messages it sent (ingest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every `message` carrying a probe is a delivery to this client.
    Messages,
    /// Every `"ok":true` ack carrying a probe is a message acknowledged (one recipient: the
    /// sender).
    Acks,
}

/// What a group of clients received, beside the probes: every frame's bytes, `presence` apart,
/// and how many connections the server closed. Shared by the clients of a scenario.
#[derive(Debug, Default)]
pub struct Traffic {
    frames: AtomicU64,
    bytes: AtomicU64,
    presence_events: AtomicU64,
    presence_bytes: AtomicU64,
    typing_events: AtomicU64,
    acks: AtomicU64,
    ack_bytes: AtomicU64,
    closed: AtomicU64,
}

/// A reading of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Text frames received.
    pub frames: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// `presence` events received.
    pub presence_events: u64,
    /// Their payload bytes.
    pub presence_bytes: u64,
    /// `typing` events received.
    pub typing_events: u64,
    /// Acks received.
    pub acks: u64,
    /// Their payload bytes.
    pub ack_bytes: u64,
    /// Connections that ended (closed by the server, or broken).
    pub closed: u64,
}

impl Traffic {
    fn ack(&self, bytes: usize) {
        self.acks.fetch_add(1, Ordering::Relaxed);
        self.ack_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn frame(&self, bytes: usize, event: Option<&str>) {
        let bytes = bytes as u64;
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        match event {
            Some("presence") => {
                self.presence_events.fetch_add(1, Ordering::Relaxed);
                self.presence_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Some("typing") => {
                self.typing_events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            presence_events: self.presence_events.load(Ordering::Relaxed),
            presence_bytes: self.presence_bytes.load(Ordering::Relaxed),
            typing_events: self.typing_events.load(Ordering::Relaxed),
            acks: self.acks.load(Ordering::Relaxed),
            ack_bytes: self.ack_bytes.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Sub for TrafficCounts {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            frames: self.frames.saturating_sub(earlier.frames),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            presence_events: self.presence_events.saturating_sub(earlier.presence_events),
            presence_bytes: self.presence_bytes.saturating_sub(earlier.presence_bytes),
            typing_events: self.typing_events.saturating_sub(earlier.typing_events),
            acks: self.acks.saturating_sub(earlier.acks),
            ack_bytes: self.ack_bytes.saturating_sub(earlier.ack_bytes),
            closed: self.closed.saturating_sub(earlier.closed),
        }
    }
}

/// Where a listening client records what it receives.
#[derive(Clone)]
pub struct Listening {
    /// The client's number among the recipients of a step (its slot in each step's tally).
    pub who: usize,
    /// The tallies, by the step each probe names.
    pub steps: Arc<Steps>,
    /// Deliveries or acks.
    pub counting: Counting,
    /// Bytes and presence, shared by the scenario's clients.
    pub traffic: Arc<Traffic>,
}

/// A connected, welcomed client.
pub struct BenchClient {
    write: Arc<Mutex<SplitSink<Socket, WsMessage>>>,
    read: SplitStream<Socket>,
    next_ack: u64,
    /// From opening the TCP connection to receiving `welcome`.
    pub welcome_after: Duration,
    /// The `welcome` event's payload size, in bytes.
    pub welcome_bytes: usize,
}

/// Opens a websocket to the Engine.IO endpoint of `base` (`http://host:port`), without speaking
/// Socket.IO yet.
pub async fn open_websocket(base: &str, handshake: &Handshake) -> Result<Socket, BenchError> {
    let address = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let mut request = url
        .into_client_request()
        .map_err(|e| BenchError::Socket(e.to_string()))?;
    if let Some(origin) = &handshake.origin {
        let value = HeaderValue::from_str(origin).map_err(|e| BenchError::Socket(e.to_string()))?;
        request.headers_mut().insert("origin", value);
    }
    let stream = connect_tcp(&address, handshake.from).await?;
    // Small buffers: at 10,000 clients tungstenite's 128 KiB default read buffer alone would
    // take over a gigabyte; chat frames are a few hundred bytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| BenchError::Socket(e.to_string()))?;
    Ok(socket)
}

/// A TCP connection to `address` (`host:port`), from local address `from` when given, without
/// Nagle's delay (as socket.io clients set).
pub async fn connect_tcp(address: &str, from: Option<IpAddr>) -> Result<TcpStream, BenchError> {
    let target: std::net::SocketAddr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| BenchError::Socket(e.to_string()))?
        .next()
        .ok_or_else(|| BenchError::Socket(format!("{address} does not resolve")))?;
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| BenchError::Socket(e.to_string()))?;
    if let Some(from) = from {
        socket
            .bind((from, 0).into())
            .map_err(|e| BenchError::Socket(format!("binding {from}: {e}")))?;
    }
    let stream = socket
        .connect(target)
        .await
        .map_err(|e| BenchError::Socket(e.to_string()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| BenchError::Socket(e.to_string()))?;
    Ok(stream)
}

impl BenchClient {
    /// Connects to the server at `base` (`http://host:port`) over websocket, as `handshake`
    /// says, and waits for its `welcome`.
    pub async fn connect(base: &str, handshake: &Handshake) -> Result<Self, BenchError> {
        let started = Instant::now();
        let socket = open_websocket(base, handshake).await?;
        let (mut write, mut read) = socket.split();
        let mut connect_sent = false;
        let welcome_bytes = loop {
            let text = next_text(&mut read).await?.ok_or(BenchError::Closed)?;
            match frame::parse(&text) {
                Frame::Open(_) if !connect_sent => {
                    send(&mut write, frame::connect(handshake.auth.as_ref())).await?;
                    connect_sent = true;
                }
                Frame::Ping => send(&mut write, PONG.to_owned()).await?,
                Frame::ConnectError(why) => return Err(BenchError::Refused(why.to_owned())),
                Frame::Event {
                    name: "welcome", ..
                } => break text.len(),
                Frame::Disconnect => return Err(BenchError::Closed),
                _ => {}
            }
        };
        Ok(Self {
            write: Arc::new(Mutex::new(write)),
            read,
            next_ack: 0,
            welcome_after: started.elapsed(),
            welcome_bytes,
        })
    }

    /// Sends event `name` asking for an ack, and waits up to `timeout` for it; an ack whose
    /// JSON has `"ok":false` is an error. Other frames meanwhile are dropped (pings answered).
    pub async fn request(
        &mut self,
        name: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Result<String, BenchError> {
        let id = self.next_ack;
        self.next_ack += 1;
        send(
            &mut *self.write.lock().await,
            frame::event_with_ack(id, name, data),
        )
        .await?;
        let answer = async {
            loop {
                let text = next_text(&mut self.read).await?.ok_or(BenchError::Closed)?;
                match frame::parse(&text) {
                    Frame::Ack { id: acked, data } if acked == id => {
                        return if data.contains("\"ok\":false") {
                            Err(BenchError::Rejected(data.to_owned()))
                        } else {
                            Ok(data.to_owned())
                        };
                    }
                    Frame::Ping => send(&mut *self.write.lock().await, PONG.to_owned()).await?,
                    Frame::Disconnect => return Err(BenchError::Closed),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| BenchError::Timeout(timeout))?
    }

    /// The next text frame the server sent (pings left unanswered); `None` once the connection
    /// ended.
    pub async fn next_frame(&mut self) -> Option<Utf8Bytes> {
        next_text(&mut self.read).await.ok().flatten()
    }

    /// A handle that sends on this client's socket.
    pub fn sender(&self) -> Sender {
        Sender {
            write: self.write.clone(),
        }
    }

    /// Reads until the connection ends: answers pings, counts every frame into the traffic, and
    /// records each probe it is counting into the tally of the probe's step.
    pub fn listen(self, listening: Listening) -> tokio::task::JoinHandle<()> {
        let Self {
            write, mut read, ..
        } = self;
        let Listening {
            who,
            steps,
            counting,
            traffic,
        } = listening;
        tokio::spawn(async move {
            while let Ok(Some(text)) = next_text(&mut read).await {
                let parsed = frame::parse(&text);
                let event = match parsed {
                    Frame::Event { name, .. } => Some(name),
                    Frame::Ack { .. } => {
                        traffic.ack(text.len());
                        None
                    }
                    _ => None,
                };
                traffic.frame(text.len(), event);
                let (probe_in, slot) = match (parsed, counting) {
                    (
                        Frame::Event {
                            name: "message",
                            data,
                        },
                        Counting::Messages,
                    ) => (data, who),
                    // A refused message is not acknowledged: only `"ok":true` acks count, each
                    // in the one slot of its message (the sender is its only recipient).
                    (Frame::Ack { data, .. }, Counting::Acks) if data.contains("\"ok\":true") => {
                        (data, 0)
                    }
                    (Frame::Ping, _) => {
                        let mut write = write.lock().await;
                        if send(&mut write, PONG.to_owned()).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    (Frame::Disconnect, _) => break,
                    _ => continue,
                };
                if let Some(probe) = Probe::find(probe_in)
                    && let Some(tally) = steps.get(probe.step)
                {
                    tally.receive(slot, probe.id, probe.latency(probe::now_nanos()));
                }
            }
            traffic.closed.fetch_add(1, Ordering::Relaxed);
        })
    }
}

/// Sends on a client's socket.
#[derive(Clone)]
pub struct Sender {
    write: Arc<Mutex<SplitSink<Socket, WsMessage>>>,
}

impl Sender {
    /// Sends a seed-protocol `message`: a plain string.
    pub async fn message(&self, text: &str) -> Result<(), BenchError> {
        let frame = frame::event("message", &serde_json::Value::String(text.to_owned()));
        self.raw(frame).await
    }

    /// Sends event `name` asking for an ack under `ack_id`; the listener counts the ack.
    pub async fn event_with_ack(
        &self,
        ack_id: u64,
        name: &str,
        data: &serde_json::Value,
    ) -> Result<(), BenchError> {
        self.raw(frame::event_with_ack(ack_id, name, data)).await
    }

    /// Sends event `name` without an ack.
    pub async fn event(&self, name: &str, data: &serde_json::Value) -> Result<(), BenchError> {
        self.raw(frame::event(name, data)).await
    }

    /// Sends one text frame as it is (an attacker's frame, for one).
    pub async fn raw(&self, text: String) -> Result<(), BenchError> {
        send(&mut *self.write.lock().await, text).await
    }
}

async fn send(write: &mut SplitSink<Socket, WsMessage>, text: String) -> Result<(), BenchError> {
    write
        .send(WsMessage::text(text))
        .await
        .map_err(|e| BenchError::Socket(e.to_string()))
}

/// The next text frame, without copying it (the load generator reads a million a second);
/// `None` when the socket closes.
async fn next_text(read: &mut SplitStream<Socket>) -> Result<Option<Utf8Bytes>, BenchError> {
    while let Some(message) = read.next().await {
        match message.map_err(|e| BenchError::Socket(e.to_string()))? {
            WsMessage::Text(text) => return Ok(Some(text)),
            WsMessage::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

//! One simulated user: a websocket speaking just enough Socket.IO to connect, be welcomed, send
//! events (with or without an ack), receive `message`, and answer pings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{self, Frame, PONG};
use crate::probe::{self, Probe};
use crate::stats::Steps;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a client could not connect or carry on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The websocket could not be opened or broke.
    #[error("websocket: {0}")]
    Socket(String),
    /// The server refused the Socket.IO connection.
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

/// What a listening client counts: the `message` events it receives (fan-out), or the acks of the
/// messages it sent (ingest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every `message` carrying a probe is a delivery.
    Messages,
    /// Every ack carrying a probe is an acknowledged message.
    Acks,
}

/// A connected, welcomed client.
pub struct BenchClient {
    write: Arc<Mutex<SplitSink<Socket, WsMessage>>>,
    read: SplitStream<Socket>,
    next_ack: u64,
    /// From opening the websocket to receiving `welcome`.
    pub welcome_after: Duration,
}

impl BenchClient {
    /// Connects to the server at `base` (`http://host:port`) over websocket, with an optional
    /// handshake `auth`, and waits for its `welcome`.
    pub async fn connect(base: &str, auth: Option<&serde_json::Value>) -> Result<Self, BenchError> {
        let started = Instant::now();
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.trim_end_matches('/').replacen("http", "ws", 1)
        );
        // Small buffers: at 10,000 clients tungstenite's 128 KiB default read buffer alone would
        // take over a gigabyte; chat frames are a few hundred bytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| BenchError::Socket(e.to_string()))?;
        let (mut write, mut read) = socket.split();
        let mut connect_sent = false;
        loop {
            let text = next_text(&mut read).await?.ok_or(BenchError::Closed)?;
            match frame::parse(&text) {
                Frame::Open(_) if !connect_sent => {
                    send(&mut write, frame::connect(auth)).await?;
                    connect_sent = true;
                }
                Frame::Ping => send(&mut write, PONG.to_owned()).await?,
                Frame::ConnectError(why) => return Err(BenchError::Refused(why.to_owned())),
                Frame::Event {
                    name: "welcome", ..
                } => break,
                Frame::Disconnect => return Err(BenchError::Closed),
                _ => {}
            }
        }
        Ok(Self {
            write: Arc::new(Mutex::new(write)),
            read,
            next_ack: 0,
            welcome_after: started.elapsed(),
        })
    }

    /// Sends event `name` asking for an ack, and waits up to `timeout` for it; an ack whose
    /// JSON has `"ok":false` is an error. Other frames meanwhile are dropped (pings answered).
    pub async fn request(
        &mut self,
        name: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(), BenchError> {
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
                            Ok(())
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

    /// A handle that sends on this client's socket.
    pub fn sender(&self) -> Sender {
        Sender {
            write: self.write.clone(),
        }
    }

    /// Reads until the connection ends: answers pings, and records each probe it is counting
    /// into the tally of the probe's step, under the number `who`.
    pub fn listen(
        self,
        who: usize,
        steps: Arc<Steps>,
        counting: Counting,
    ) -> tokio::task::JoinHandle<()> {
        let Self {
            write, mut read, ..
        } = self;
        tokio::spawn(async move {
            while let Ok(Some(text)) = next_text(&mut read).await {
                let probe_in = match (frame::parse(&text), counting) {
                    (
                        Frame::Event {
                            name: "message",
                            data,
                        },
                        Counting::Messages,
                    ) => data,
                    // A refused message is not acknowledged: only `"ok":true` acks count.
                    (Frame::Ack { data, .. }, Counting::Acks) if data.contains("\"ok\":true") => {
                        data
                    }
                    (Frame::Ping, _) => {
                        let mut write = write.lock().await;
                        if send(&mut write, PONG.to_owned()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    (Frame::Disconnect, _) => return,
                    _ => continue,
                };
                if let Some(probe) = Probe::find(probe_in)
                    && let Some(tally) = steps.get(probe.step)
                {
                    tally.receive(who, probe.latency(probe::now_nanos()));
                }
            }
        })
    }
}

/// Sends messages on a client's socket.
#[derive(Clone)]
pub struct Sender {
    write: Arc<Mutex<SplitSink<Socket, WsMessage>>>,
}

impl Sender {
    /// Sends a seed-protocol `message`: a plain string.
    pub async fn message(&self, text: &str) -> Result<(), BenchError> {
        let frame = frame::event("message", &serde_json::Value::String(text.to_owned()));
        send(&mut *self.write.lock().await, frame).await
    }

    /// Sends event `name` asking for an ack under `ack_id`; the listener counts the ack.
    pub async fn event_with_ack(
        &self,
        ack_id: u64,
        name: &str,
        data: &serde_json::Value,
    ) -> Result<(), BenchError> {
        let frame = frame::event_with_ack(ack_id, name, data);
        send(&mut *self.write.lock().await, frame).await
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

//! One simulated user: a websocket speaking just enough Socket.IO to connect, be welcomed, send
//! and receive `message`, and answer pings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{self, Frame, PONG};
use crate::probe::{self, Probe};
use crate::stats::{Deliveries, LatencyRecorder};

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
}

/// A connected, welcomed client.
pub struct BenchClient {
    write: Arc<Mutex<SplitSink<Socket, WsMessage>>>,
    read: SplitStream<Socket>,
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
        let (socket, _) = tokio_tungstenite::connect_async(url)
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
            welcome_after: started.elapsed(),
        })
    }

    /// A handle that sends on this client's socket.
    pub fn sender(&self) -> Sender {
        Sender {
            write: self.write.clone(),
        }
    }

    /// Reads until the connection ends: answers pings, and records each `message` that carries a
    /// probe as a delivery with its latency, under the number `who`.
    pub fn listen(
        self,
        who: usize,
        latencies: Arc<LatencyRecorder>,
        deliveries: Arc<Deliveries>,
    ) -> tokio::task::JoinHandle<()> {
        let Self {
            write, mut read, ..
        } = self;
        tokio::spawn(async move {
            while let Ok(Some(text)) = next_text(&mut read).await {
                match frame::parse(&text) {
                    Frame::Event {
                        name: "message",
                        data,
                    } => {
                        if let Some(probe) = Probe::find(data) {
                            latencies.record(who, probe.latency(probe::now_nanos()));
                            deliveries.received();
                        }
                    }
                    Frame::Ping => {
                        let mut write = write.lock().await;
                        if send(&mut write, PONG.to_owned()).await.is_err() {
                            return;
                        }
                    }
                    Frame::Disconnect => return,
                    _ => {}
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
}

async fn send(write: &mut SplitSink<Socket, WsMessage>, text: String) -> Result<(), BenchError> {
    write
        .send(WsMessage::text(text))
        .await
        .map_err(|e| BenchError::Socket(e.to_string()))
}

/// The next text frame; `None` when the socket closes.
async fn next_text(read: &mut SplitStream<Socket>) -> Result<Option<String>, BenchError> {
    while let Some(message) = read.next().await {
        match message.map_err(|e| BenchError::Socket(e.to_string()))? {
            WsMessage::Text(text) => return Ok(Some(text.as_str().to_owned())),
            WsMessage::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

//! Shared fixtures: a client with test timings whose events are recorded and awaited with a
//! timeout, and a TCP proxy that can cut or silently stall the network between client and server.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use causerie_client::{Backoff, ChatClient, ClientConfig, ClientEvent, ClientEvents, LocalId};
use causerie_protocol::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// Each test file uses some of them.
#[allow(unused_imports)]
pub use causerie_server::testing::{PATIENCE, SmallDisk, TestServer, http};

/// Timings that make a test's outages short: retry within 50 to 300 ms, ping every 300 ms, give
/// up on an ack after 1 s.
pub fn test_config(url: &str, name: &str) -> ClientConfig {
    ClientConfig {
        name: Some(name.to_owned()),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
        },
        request_timeout: Duration::from_secs(1),
        liveness_interval: Duration::from_millis(300),
        ..ClientConfig::new(url)
    }
}

/// A client and every event it produced so far.
pub struct Recorded {
    pub client: ChatClient,
    events: ClientEvents,
    pub log: Vec<ClientEvent>,
}

impl Recorded {
    pub fn start(config: ClientConfig) -> Self {
        let (client, events) = causerie_client::connect(config).expect("starts");
        Self {
            client,
            events,
            log: Vec::new(),
        }
    }

    pub async fn connect(url: &str, name: &str) -> Self {
        let mut recorded = Self::start(test_config(url, name));
        recorded.until_connected().await;
        recorded
    }

    /// Records events until `done` holds for the log; panics with `what` after [`PATIENCE`].
    pub async fn until(&mut self, what: &str, done: impl Fn(&[ClientEvent]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        while !done(&self.log) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; log: {:#?}",
                self.tail()
            );
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(event)) => self.log.push(event),
                Ok(None) => panic!("the client stopped before {what}; log: {:#?}", self.tail()),
                Err(_) => panic!("timed out waiting for {what}; log: {:#?}", self.tail()),
            }
        }
    }

    /// Records events until the stream ends.
    pub async fn until_stopped(&mut self) {
        loop {
            match tokio::time::timeout(PATIENCE, self.events.next()).await {
                Ok(Some(event)) => self.log.push(event),
                Ok(None) => return,
                Err(_) => panic!("the client did not stop; log: {:#?}", self.tail()),
            }
        }
    }

    /// Records everything the server had sent this client so far: the answer to a `rooms` request
    /// comes back on the same connection after all of it. Proves that the server had nothing more
    /// on its way (no repeat, no second refusal), without waiting for quiet on the real clock; what
    /// the client itself might do later (a resend after a timeout) is for its unit tests. The
    /// answer itself is left out of the log.
    pub async fn sync(&mut self) {
        static SYNCS: AtomicU64 = AtomicU64::new(0);
        let prefix = format!("sync-{}", SYNCS.fetch_add(1, Ordering::Relaxed));
        self.client.find_rooms(&prefix, None);
        let answer = |event: &ClientEvent| matches!(event, ClientEvent::Rooms { prefix: answered, .. } if *answered == prefix);
        self.until("the sync's answer", |log| log.iter().any(answer))
            .await;
        self.log.retain(|event| !answer(event));
    }

    pub async fn until_connected(&mut self) {
        let before = self.connects();
        self.until("a connection", |log| connects(log) > before)
            .await;
    }

    pub fn connects(&self) -> usize {
        connects(&self.log)
    }

    fn tail(&self) -> &[ClientEvent] {
        &self.log[self.log.len().saturating_sub(20)..]
    }

    /// Every message event, in order.
    pub fn messages(&self) -> Vec<&Message> {
        messages(&self.log)
    }

    /// Waits until `count` messages of `room` were delivered.
    pub async fn until_messages(&mut self, room: &str, count: usize) {
        let room = room.to_owned();
        self.until(&format!("{count} messages in {room}"), move |log| {
            messages(log).iter().filter(|m| m.room == room).count() >= count
        })
        .await;
    }

    /// Waits until each of `ids` is confirmed.
    /// Waits until each of `ids` (messages, edits, deletions) is confirmed.
    pub async fn until_confirmed(&mut self, ids: &[LocalId]) {
        let ids = ids.to_vec();
        self.until("confirmations", move |log| {
            ids.iter().all(|id| {
                log.iter().any(|e| match e {
                    ClientEvent::Message { confirms, .. }
                    | ClientEvent::Change { confirms, .. } => confirms.as_ref() == Some(id),
                    _ => false,
                })
            })
        })
        .await;
    }
}

/// Connections welcomed so far (the welcome follows the `Connected` state).
fn connects(log: &[ClientEvent]) -> usize {
    log.iter()
        .filter(|e| matches!(e, ClientEvent::Welcome(_)))
        .count()
}

pub fn messages(log: &[ClientEvent]) -> Vec<&Message> {
    log.iter()
        .filter_map(|e| match e {
            ClientEvent::Message { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// Asserts that `messages` hold each seq from 1 to `count` exactly once, in order.
pub fn assert_complete_and_ordered(messages: &[&Message], count: u64) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=count).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    let ids: std::collections::HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), messages.len(), "no message twice");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    Up,
    /// Connections are closed and new ones refused, as when a phone loses its network.
    Down,
    /// Bytes stop flowing but nothing is closed, as when a NAT forgets a connection: only a
    /// timeout can tell. Stalled connections are closed when the network comes back.
    Stalled,
    /// The client stops reading what the server sends (a busy phone, a frozen tab), with small
    /// socket buffers so that the server's queue fills; reading resumes where it stopped.
    Paused,
}

/// A TCP proxy in front of a server.
pub struct Proxy {
    pub address: SocketAddr,
    network: watch::Sender<Network>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("an address");
        let (network, state) = watch::channel(Network::Up);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *state.borrow() == Network::Down {
                    continue; // dropped: the client sees a reset
                }
                let state = state.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = connect_with_small_buffers(target).await {
                        relay(inbound, outbound, state).await;
                    }
                });
            }
        });
        Self { address, network }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn cut(&self) {
        self.network.send_replace(Network::Down);
    }

    pub fn stall(&self) {
        self.network.send_replace(Network::Stalled);
    }

    /// Stops reading what the server sends, keeping every connection open.
    pub fn pause_reading(&self) {
        self.network.send_replace(Network::Paused);
    }

    pub fn restore(&self) {
        self.network.send_replace(Network::Up);
    }
}

/// Connects to the server with a 4 KiB receive buffer: when the proxy stops reading, the server's
/// writes back up into its own queue at once instead of into megabytes of kernel buffers.
async fn connect_with_small_buffers(target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(target).await
}

async fn relay(inbound: TcpStream, outbound: TcpStream, mut state: watch::Receiver<Network>) {
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    let mut stalled_since_start = false;
    loop {
        let network = *state.borrow();
        match network {
            Network::Down => return,
            Network::Stalled => {
                stalled_since_start = true;
                if state.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Network::Up if stalled_since_start => return,
            Network::Up => {}
            Network::Paused => {
                // Only the client's side still flows: its pings and sends reach the server.
                tokio::select! {
                    read = in_read.read(&mut up) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if out_write.write_all(&up[..n]).await.is_err() { return },
                    },
                    changed = state.changed() => if changed.is_err() { return },
                }
                continue;
            }
        }
        tokio::select! {
            read = in_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if out_write.write_all(&up[..n]).await.is_err() { return },
            },
            read = out_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if in_write.write_all(&down[..n]).await.is_err() { return },
            },
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

//! Everything the server sends to a socket goes through here, so that nothing is ever dropped in
//! silence.
//!
//! socketioxide queues each socket's packets and, when the queue is full, drops the next one and
//! leaves the socket connected: a reader that stopped for a few seconds would have a hole in its
//! stream and not know it. Here every send is checked, and a socket that falls too far behind is
//! closed instead: it gets nothing more (so its stream ends before the first packet it missed),
//! its connection is aborted, and its client reconnects and catches up from history.
//!
//! "Too far behind" is bounded twice, so that one slow reader costs a known amount of memory:
//! - [`MAX_QUEUED_PACKETS`] packets waiting in its queue (socketioxide counts them);
//! - [`MAX_QUEUED_BYTES`] bytes sent to it but not yet taken by the kernel, on a websocket (the
//!   bytes handed to the socket, less those its [`ConnectionHandle`] wrote). Polling sockets are
//!   bounded by the packet count and by the heartbeat, which closes them once they stop polling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use axum::extract::ConnectInfo;
use causerie_protocol::{ErrorBody, Reply};
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError, SocketIo, TransportType};

use crate::chat::Chat;
use crate::connections::{ConnectionHandle, ConnectionInfo};

/// Packets a socket may have waiting to be written. Fan-out at 750,000 deliveries/s showed that
/// clients merely busy for a moment need more than socketioxide's default of 128.
pub const MAX_QUEUED_PACKETS: usize = 4096;

/// Bytes a websocket may have waiting to be written: 4 MiB, about 1,000 of the longest messages
/// or 20,000 ordinary ones. History pages are bounded well below it.
pub const MAX_QUEUED_BYTES: u64 = 4 * 1024 * 1024;

/// Why a socket was closed for falling behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Its queue held [`MAX_QUEUED_PACKETS`] packets.
    Packets,
    /// Its websocket had more than [`MAX_QUEUED_BYTES`] bytes waiting.
    Bytes,
}

impl Overflow {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packets => "packets",
            Self::Bytes => "bytes",
        }
    }
}

/// One socket's outgoing side, kept in its extensions.
#[derive(Debug)]
pub struct Outgoing {
    /// Bytes handed to the socket so far.
    sent: AtomicU64,
    /// Its websocket connection, once it has one.
    websocket: OnceLock<WebsocketMeter>,
    /// Set once the socket fell behind: nothing more is sent to it.
    closing: AtomicBool,
}

/// What a websocket connection had written, and the socket been handed, when it was attached.
#[derive(Debug)]
struct WebsocketMeter {
    connection: Weak<ConnectionHandle>,
    written_at_start: u64,
    sent_at_start: u64,
}

impl Outgoing {
    /// Bytes handed to the socket that its websocket has not written yet; `None` on polling.
    /// An estimate that errs low: frame headers and Engine.IO pings count as written.
    fn waiting_bytes(&self, sent: u64) -> Option<u64> {
        let meter = self.websocket.get()?;
        let written = meter.connection.upgrade()?.written() - meter.written_at_start;
        Some((sent - meter.sent_at_start).saturating_sub(written))
    }

    fn attach_websocket(&self, connection: &Arc<ConnectionHandle>) {
        let _ = self.websocket.set(WebsocketMeter {
            connection: Arc::downgrade(connection),
            written_at_start: connection.written(),
            sent_at_start: self.sent.load(Ordering::Relaxed),
        });
    }
}

/// Sets up `socket`'s outgoing side when it connects.
pub fn attach(socket: &SocketRef, chat: &Chat) {
    let outgoing = Arc::new(Outgoing {
        sent: AtomicU64::new(0),
        websocket: OnceLock::new(),
        closing: AtomicBool::new(false),
    });
    if let Some(connection) = websocket_of(socket, chat) {
        outgoing.attach_websocket(&connection);
    }
    socket.extensions.insert(outgoing);
}

/// The websocket connection carrying `socket`: upgraded from polling (known by its session id),
/// or opened as a websocket from the start (the connection of its first request).
fn websocket_of(socket: &SocketRef, chat: &Chat) -> Option<Arc<ConnectionHandle>> {
    if socket.transport_type() != TransportType::Websocket {
        return None;
    }
    chat.transports
        .websocket(&socket.id.to_string())
        .or_else(|| {
            socket
                .req_parts()
                .extensions
                .get::<ConnectInfo<ConnectionInfo>>()
                .map(|info| info.0.0.clone())
        })
}

/// Serializes a payload once, for sending to many sockets.
pub fn encode(payload: &impl Serialize) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(payload)
        .inspect_err(|e| tracing::error!(error = %e, "cannot encode a payload"))
        .ok()
}

/// Sends `event` to one socket.
pub fn to_socket(socket: &SocketRef, chat: &Chat, event: &str, payload: &impl Serialize) {
    if let Some(payload) = encode(payload) {
        send(socket, chat, event, &payload);
    }
}

/// Sends `event` to every socket of this server in `room_keys`, except `except`.
pub fn to_rooms(
    io: &SocketIo,
    chat: &Chat,
    room_keys: Vec<String>,
    except: Option<Sid>,
    event: &str,
    payload: &RawValue,
) {
    for socket in io.within(room_keys).sockets() {
        if Some(socket.id) != except {
            send(&socket, chat, event, payload);
        }
    }
}

/// Answers a request's ack callback, if the client asked for one.
pub fn reply<T: Serialize>(
    socket: &SocketRef,
    chat: &Chat,
    ack: AckSender,
    result: Result<T, ErrorBody>,
) {
    let Some(outgoing) = socket.extensions.get::<Arc<Outgoing>>() else {
        return;
    };
    if outgoing.closing.load(Ordering::Acquire) {
        return;
    }
    let Some(payload) = encode(&Reply::from(result)) else {
        return;
    };
    let size = payload.get().len() as u64;
    let sent = ack.send(&payload);
    settle(socket, chat, &outgoing, sent, size);
}

fn send(socket: &SocketRef, chat: &Chat, event: &str, payload: &RawValue) {
    let Some(outgoing) = socket.extensions.get::<Arc<Outgoing>>() else {
        return; // not connected yet: it is sent its welcome, with what it needs, when it is
    };
    if outgoing.closing.load(Ordering::Acquire) {
        return;
    }
    let size = (payload.get().len() + event.len()) as u64;
    let sent = socket.emit(event, payload);
    settle(socket, chat, &outgoing, sent, size);
}

/// Counts a send, and closes the socket if it was refused for a full queue or left too many
/// bytes waiting.
fn settle(
    socket: &SocketRef,
    chat: &Chat,
    outgoing: &Outgoing,
    sent: Result<(), SendError>,
    size: u64,
) {
    match sent {
        Ok(()) => {
            let total = outgoing.sent.fetch_add(size, Ordering::Relaxed) + size;
            if outgoing.websocket.get().is_none()
                && let Some(connection) = websocket_of(socket, chat)
            {
                outgoing.attach_websocket(&connection); // upgraded from polling meanwhile
            }
            if outgoing
                .waiting_bytes(total)
                .is_some_and(|waiting| waiting > MAX_QUEUED_BYTES)
            {
                close_behind(socket, chat, outgoing, Overflow::Bytes);
            }
        }
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            close_behind(socket, chat, outgoing, Overflow::Packets);
        }
        Err(SendError::Socket(SocketError::Closed)) => {}
        Err(e) => tracing::error!(error = %e, sid = %socket.id, "cannot send a packet"),
    }
}

/// Closes a socket that fell behind, once: no more packets, its transport ended.
fn close_behind(socket: &SocketRef, chat: &Chat, outgoing: &Outgoing, overflow: Overflow) {
    if outgoing.closing.swap(true, Ordering::AcqRel) {
        return;
    }
    chat.metrics.closed_behind(overflow);
    tracing::warn!(
        sid = %socket.id, cause = overflow.as_str(),
        "closing a connection that fell behind; its client reconnects and catches up"
    );
    let sid = socket.id.to_string();
    let websocket = outgoing
        .websocket
        .get()
        .and_then(|meter| meter.connection.upgrade())
        .or_else(|| chat.transports.websocket(&sid));
    // Refuses its polling requests from now on, and aborts its websocket if registered.
    chat.transports.end(&sid);
    match websocket {
        Some(connection) => connection.abort(),
        None if socket.transport_type() == TransportType::Websocket => {
            // Served without tracked connections (the router nested in another app): disconnect
            // as soon as the queue has room for the packet that says so.
            let socket = socket.clone();
            tokio::spawn(async move {
                for _ in 0..600 {
                    match socket.clone().disconnect() {
                        Err(SocketError::InternalChannelFull) => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        _ => return,
                    }
                }
            });
        }
        None => {}
    }
}

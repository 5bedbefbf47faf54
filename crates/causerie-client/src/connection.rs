//! One Socket.IO connection through rust_socketio 0.6, turned into signals on a channel.
//!
//! rust_socketio speaks through callbacks; each becomes a [`Signal`] tagged with the connection's
//! generation, so that the supervisor can ignore what a connection it already gave up on says
//! late. Its own reconnection is off: it stops waiting after 15 minutes, and a manual disconnect
//! does not stop it, so the supervisor reconnects instead. Its errors are turned into strings
//! here and go no further. Its `close` event also comes when the transport ends without a word
//! (a server shutting down, a dropped connection): our copy carries upstream's fix for that
//! (`vendor/rust_socketio/PATCHED.md`).

use std::time::Duration;

use causerie_protocol::{
    DEFAULT_ROOM, DeleteMessage, DirectRequest, EditMessage, HistoryRequest, PingRequest,
    ReactRequest, ReadRequest, RoomRequest, RoomsRequest, SearchRequest, SendMessage,
    TypingRequest, WhoRequest, event,
};
use futures_util::FutureExt;
use rust_socketio::Payload;
use rust_socketio::TransportType;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::outbox::LocalId;

/// Something to tell the server, in the protocol's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    Send(SendMessage),
    Edit(EditMessage),
    Delete(DeleteMessage),
    React(ReactRequest),
    Join(RoomRequest),
    Leave(RoomRequest),
    /// A page asked for by the user, or one of the pages of a catch-up.
    History {
        request: HistoryRequest,
        catch_up: bool,
    },
    /// A page of the people online: the first (`more` false) or the next.
    Who {
        request: WhoRequest,
        more: bool,
    },
    Rooms(RoomsRequest),
    /// The page around a seq, to show a message in its context (not part of the timeline).
    Around(HistoryRequest),
    Search(SearchRequest),
    /// Opening the direct conversation with someone.
    Direct(DirectRequest),
    /// A liveness check, numbered so that only its own answer counts.
    Ping(u64),
    /// Told without an ack.
    Typing(TypingRequest),
    Read(ReadRequest),
}

impl Outgoing {
    fn event(&self) -> &'static str {
        match self {
            Self::Send(_) => event::MESSAGE,
            Self::Edit(_) => event::EDIT,
            Self::Delete(_) => event::DELETE,
            Self::React(_) => event::REACT,
            Self::Join(_) => event::JOIN,
            Self::Leave(_) => event::LEAVE,
            Self::History { .. } | Self::Around(_) => event::HISTORY,
            Self::Search(_) => event::SEARCH,
            Self::Direct(_) => event::DIRECT,
            Self::Who { .. } => event::WHO,
            Self::Rooms(_) => event::ROOMS,
            Self::Ping(_) => event::PING,
            Self::Typing(_) => event::TYPING,
            Self::Read(_) => event::READ,
        }
    }

    fn payload(&self) -> Value {
        fn value(data: &impl Serialize) -> Value {
            serde_json::to_value(data)
                .expect("protocol payloads are plain structs, always serializable")
        }
        match self {
            Self::Send(data) => value(data),
            Self::Edit(data) => value(data),
            Self::Delete(data) => value(data),
            Self::React(data) => value(data),
            Self::Join(data) | Self::Leave(data) => value(data),
            Self::History { request, .. } | Self::Around(request) => value(request),
            Self::Who { request, .. } => value(request),
            Self::Rooms(data) => value(data),
            Self::Search(data) => value(data),
            Self::Direct(data) => value(data),
            Self::Ping(_) => value(&PingRequest {}),
            Self::Typing(data) => value(data),
            Self::Read(data) => value(data),
        }
    }

    /// What its ack will answer; `None` for what is told without one.
    fn answered_by(&self) -> Option<Request> {
        let room = |room: &Option<String>| room.clone().unwrap_or_else(|| DEFAULT_ROOM.into());
        Some(match self {
            Self::Send(data) => Request::Send(LocalId::from(data.id.as_str())),
            Self::Edit(data) => Request::Send(LocalId::from(data.id.as_str())),
            Self::Delete(data) => Request::Send(LocalId::from(data.id.as_str())),
            Self::React(data) => Request::Send(LocalId::from(data.id.as_str())),
            Self::Join(data) => Request::Join(data.room.clone()),
            Self::Leave(data) => Request::Leave(data.room.clone()),
            Self::History { request, catch_up } => Request::History {
                room: room(&request.room),
                catch_up: *catch_up,
            },
            Self::Who { request, more } => Request::Who {
                room: request.room.clone(),
                more: *more,
            },
            Self::Around(request) => Request::Around {
                room: room(&request.room),
                seq: request.around.unwrap_or_default(),
            },
            Self::Search(data) => Request::Search {
                query: data.query.clone(),
            },
            Self::Rooms(data) => Request::Rooms {
                prefix: data.prefix.clone().unwrap_or_default(),
            },
            Self::Direct(_) => Request::Direct,
            Self::Ping(id) => Request::Ping(*id),
            Self::Read(data) => Request::Read(data.room.clone()),
            Self::Typing(_) => return None,
        })
    }
}

/// What an ack answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// An outbox entry: a message, an edit or a deletion.
    Send(LocalId),
    Join(String),
    Leave(String),
    History {
        room: String,
        catch_up: bool,
    },
    Who {
        room: String,
        more: bool,
    },
    /// The page around `seq`.
    Around {
        room: String,
        seq: u64,
    },
    /// A page of search results for `query`.
    Search {
        query: String,
    },
    /// A page of room names starting with `prefix`.
    Rooms {
        prefix: String,
    },
    /// A direct conversation opened.
    Direct,
    Ping(u64),
    /// The user's read marker of a room.
    Read(String),
}

/// The transport failed under a request: the connection is presumed lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(String);

impl From<String> for TransportError {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// Something a connection said.
#[derive(Debug)]
pub(crate) enum Signal {
    Event {
        name: String,
        data: Value,
    },
    Ack {
        request: Request,
        data: Value,
    },
    /// A transport error, or a refused connection ("Received an ConnectError frame: ...").
    Error(String),
    /// The server closed the Socket.IO session, or the transport ended.
    Closed,
}

/// A signal and the generation of the connection it came from.
#[derive(Debug)]
pub(crate) struct Tagged {
    pub(crate) generation: u64,
    pub(crate) signal: Signal,
}

/// How long a WebSocket may take to open before the client tries polling instead.
const WEBSOCKET_TIMEOUT: Duration = Duration::from_secs(3);

/// The server-to-client events the client listens to.
const EVENTS: [&str; 8] = [
    event::WELCOME,
    event::MESSAGE,
    event::CHANGE,
    event::HEAD,
    event::PRESENCE,
    event::TYPING,
    event::READ,
    event::DIRECT,
];

pub(crate) struct Connection {
    client: Client,
    generation: u64,
    signals: mpsc::UnboundedSender<Tagged>,
}

impl Connection {
    /// Connects to `url` with `auth`; what the connection says arrives on `signals`.
    pub(crate) async fn open(
        url: &str,
        auth: Value,
        tls: Option<native_tls::TlsConnector>,
        generation: u64,
        signals: mpsc::UnboundedSender<Tagged>,
    ) -> Result<Self, TransportError> {
        let forward = |signals: &mpsc::UnboundedSender<Tagged>, make: fn(Payload) -> Signal| {
            let signals = signals.clone();
            move |payload: Payload, _: Client| {
                let _ = signals.send(Tagged {
                    generation,
                    signal: make(payload),
                });
                async {}.boxed()
            }
        };
        let builder = || {
            let mut builder = ClientBuilder::new(url)
                .auth(auth.clone())
                .reconnect(false)
                .on("error", forward(&signals, |p| Signal::Error(text_of(p))))
                .on("close", forward(&signals, |_| Signal::Closed));
            if let Some(tls) = &tls {
                builder = builder.tls_config(tls.clone());
            }
            for name in EVENTS {
                let signals = signals.clone();
                builder = builder.on(name, move |payload, _| {
                    let _ = signals.send(Tagged {
                        generation,
                        signal: Signal::Event {
                            name: name.to_owned(),
                            data: first_value(payload),
                        },
                    });
                    async {}.boxed()
                });
            }
            builder
        };
        // A WebSocket first: one connection from the handshake on, which a load balancer in front
        // of several nodes keeps on one node without the sticky cookie that polling needs (and
        // that this client does not keep). Polling where WebSockets fail or hang (a proxy that
        // swallows the upgrade); polling alone, since upgrading would meet the same proxy.
        let websocket = builder().transport_type(TransportType::Websocket).connect();
        let client = match tokio::time::timeout(WEBSOCKET_TIMEOUT, websocket).await {
            Ok(Ok(client)) => client,
            _ => builder()
                .transport_type(TransportType::Polling)
                .connect()
                .await
                .map_err(|e| TransportError(with_causes(&e)))?,
        };
        Ok(Self {
            client,
            generation,
            signals,
        })
    }

    /// Sends `outgoing`; its ack, if it has one, comes back as [`Signal::Ack`] (dropped after
    /// `timeout`).
    pub(crate) async fn send(
        &self,
        outgoing: &Outgoing,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let (event, data) = (outgoing.event(), outgoing.payload());
        let Some(request) = outgoing.answered_by() else {
            return self
                .client
                .emit(event, data)
                .await
                .map_err(|e| TransportError(e.to_string()));
        };
        let signals = self.signals.clone();
        let generation = self.generation;
        let mut request = Some(request);
        self.client
            .emit_with_ack(event, data, timeout, move |payload, _| {
                if let Some(request) = request.take() {
                    // rust_socketio hands an ack's arguments over as one array.
                    let data = match first_value(payload) {
                        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                        other => other,
                    };
                    let _ = signals.send(Tagged {
                        generation,
                        signal: Signal::Ack { request, data },
                    });
                }
                async {}.boxed()
            })
            .await
            .map_err(|e| TransportError(e.to_string()))
    }

    /// Closes the connection in the background: a dead peer can make a polite close hang.
    pub(crate) fn close(self) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.client.disconnect()).await;
        });
    }
}

/// An error and its causes, one after the other: reqwest's own text leaves out why a request
/// failed ("certificate verify failed", "connection refused").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn first_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        #[allow(deprecated)]
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::Null,
    }
}

fn text_of(payload: Payload) -> String {
    match first_value(payload) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The server's refusal in an error signal, if it is one: rust_socketio reports a refused
/// connection as the text `Received an ConnectError frame: {"message":"<code>: <why>"}`.
pub(crate) fn refusal(error: &str) -> Option<causerie_protocol::ErrorBody> {
    let (_, frame) = error.split_once("ConnectError frame: ")?;
    let frame: Value = serde_json::from_str(frame).ok()?;
    causerie_protocol::ErrorBody::from_connect_error(frame.get("message")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use causerie_protocol::ErrorCode;

    #[test]
    fn a_connect_error_frame_is_read_as_the_servers_refusal() {
        let text = r#"Received an ConnectError frame: {"message":"unauthorized: wrong code"}"#;
        let body = refusal(text).expect("a refusal");
        assert_eq!(body.code, ErrorCode::Unauthorized);
        assert_eq!(body.message, "wrong code");
        assert_eq!(refusal("Network error: connection reset"), None);
    }
}

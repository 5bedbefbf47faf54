//! Socket.IO handlers, one module per event family. [`register`] wires them into a `SocketIo`.
//!
//! Rooms map to socketioxide rooms `room:<name>` for Causerie clients. Seed clients, which speak the
//! old string protocol, sit in `seed:general` instead, so a broadcast can send each kind its own
//! payload. Every request is counted against its quota ([`crate::limiter`]) before anything else.

mod change;
mod connect;
mod direct;
mod history;
mod message;
mod read;
mod rooms;
mod search;
mod typing;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::cluster::Adapter;
use crate::cluster::SocketIo;
use crate::cluster::SocketRef;
use causerie_protocol::{ErrorBody, ErrorCode, User};
use socketioxide::extract::State;
use socketioxide::handler::{ConnectHandler, FromMessageParts, Value};
use socketioxide::socket::Socket;

use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing;
use crate::store::StoreError;

/// Who a socket is, set once when it connects.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user behind the socket.
    pub user: User,
    /// `true` for a seed client of the old server (plain-string messages, `general` only).
    pub seed: bool,
    /// Where it connects from, as quotas per address count it (an IPv6 /64 is one address).
    pub address: Option<IpAddr>,
}

/// Requests of one connection handled at once, at most, by default
/// ([`crate::ServerConfig::max_requests_in_flight`]). socketioxide starts a task for each event
/// as soon as it has read it, whatever the tasks already waiting: a client sending faster than
/// it is answered (150,000 typing notices, a million malformed messages) would fill the server's
/// memory with waiting tasks, and its core with running them. Beyond this, a request is refused
/// before its task starts and before its payload is parsed.
pub const MAX_IN_FLIGHT: u32 = 32;

/// How long a client refused for having too many requests in flight is asked to wait.
const IN_FLIGHT_RETRY: Duration = Duration::from_millis(100);

/// The requests of one socket being handled now, and how many it may have.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    count: Arc<AtomicUsize>,
    max: usize,
}

impl InFlight {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            count: Arc::default(),
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
        }
    }
}

/// A request admitted among its socket's requests in flight: the first argument of every event
/// handler, released when the handler ends.
pub(crate) struct Admitted(InFlight);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request refused for being beyond its socket's requests in flight, answered already: its
/// handler does not run.
#[derive(Debug)]
pub(crate) struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "too many requests in flight")
    }
}

impl std::error::Error for Busy {}

impl FromMessageParts<Adapter> for Admitted {
    type Error = Busy;

    fn from_message_parts(
        socket: &Arc<Socket<Adapter>>,
        value: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Busy> {
        let in_flight = socket.extensions.get::<InFlight>().ok_or(Busy)?;
        if in_flight.count.fetch_add(1, Ordering::AcqRel) < in_flight.max {
            return Ok(Self(in_flight));
        }
        in_flight.count.fetch_sub(1, Ordering::AcqRel);
        // Answered here (a typing notice, with no ack, is dropped): the handler never runs.
        if let Ok(State(chat)) = State::<Arc<Chat>>::from_message_parts(socket, value, ack_id) {
            let Ok(ack) = outgoing::Ack::from_message_parts(socket, value, ack_id);
            let refusal: Result<(), ErrorBody> = Err(ErrorBody::rate_limited(
                "requests at once (wait for their answers)",
                IN_FLIGHT_RETRY,
            ));
            outgoing::reply(
                &SocketRef::from(socket.clone()),
                &chat,
                ANY_EVENT,
                ack,
                refusal,
            );
        }
        Err(Busy)
    }
}

/// The event label of requests refused before their event was read.
const ANY_EVENT: &str = "*";

/// Installs the chat's handlers on the default namespace.
pub async fn register(io: &SocketIo) -> Result<(), crate::ServerError> {
    io.ns("/", connect::on_connect.with(connect::authenticate))
        .await
        .map_err(|e| crate::ServerError::Redis(e.to_string()))
}

/// The socketioxide room of chat room `room`, for Causerie clients.
pub(crate) fn room_key(room: &str) -> String {
    format!("{ROOM_KEY_PREFIX}{room}")
}

const ROOM_KEY_PREFIX: &str = "room:";

/// The socketioxide room of seed clients (they only know `general`).
const SEED_ROOM_KEY: &str = "seed:general";

/// The socketioxide room holding every Causerie connection of user `user_id`, on every node:
/// outside the accounted chat rooms ([`crate::outgoing::join`]), only what concerns the user's
/// devices goes to it ([`crate::outgoing::to_user`]: their read markers, their direct
/// conversations), and it finds the user's connections on this node.
pub(crate) fn user_key(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The socketioxide room holding user `user_id`'s connections in chat room `room`, on every
/// node: where their read marker of it goes. Joined and left with the room itself.
pub(crate) fn member_key(user_id: &str, room: &str) -> String {
    format!("member:{user_id}:{room}")
}

/// The sessions of user `user_id`'s connections on this server, but `socket`'s.
fn other_sessions_of(socket: &SocketRef, user_id: &str) -> impl Iterator<Item = Session> {
    let own = socket.id;
    socket
        .within(user_key(user_id))
        .sockets()
        .into_iter()
        .filter(move |other| other.id != own)
        .filter_map(|other| other.extensions.get::<Session>())
}

/// Whether this socket may read and write `room`.
fn has_joined(socket: &SocketRef, room: &str) -> bool {
    outgoing::is_in(socket, &room_key(room))
}

/// The chat room of a socketioxide room key (`general` for the seed clients' room).
pub(crate) fn room_of_key(key: &str) -> Option<&str> {
    if key == SEED_ROOM_KEY {
        Some(causerie_protocol::DEFAULT_ROOM)
    } else {
        key.strip_prefix(ROOM_KEY_PREFIX)
    }
}

/// Counts a request against its quota, or refuses it with `rate_limited`.
fn within_quota(
    chat: &Chat,
    action: Action,
    socket: &SocketRef,
    session: &Session,
) -> Result<(), ErrorBody> {
    chat.limiter.check(action, socket.id, &session.user.id)?;
    match session.address {
        Some(address) => chat.limiter.check_address(action, address),
        None => Ok(()),
    }
}

/// Parses a request payload, refusing a wrong shape with `invalid`.
fn parse<T: serde::de::DeserializeOwned>(
    data: Result<serde_json::Value, socketioxide::ParserError>,
    what: &str,
) -> Result<T, ErrorBody> {
    // Every request is an object; serde alone would also accept a struct written as an array.
    data.ok()
        .filter(serde_json::Value::is_object)
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::Invalid,
                format!("{what} does not have the documented shape"),
            )
        })
}

/// `not_joined`, for a room this socket has not joined (or that does not exist).
/// Refuses the id a client gives a message or a change (`what`) when it breaks the rules of
/// client ids: with the author, it is the key that makes a retry safe.
fn check_client_id(id: &str, what: &str) -> Result<(), ErrorBody> {
    if causerie_protocol::limits::is_valid_client_id(id) {
        return Ok(());
    }
    Err(ErrorBody::new(
        ErrorCode::Invalid,
        format!(
            "{what} id has 1 to {} characters and no control characters",
            causerie_protocol::limits::MAX_CLIENT_ID_CHARS
        ),
    ))
}

fn not_joined(room: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotJoined,
        format!("join room {room:?} before using it"),
    )
}

/// `internal`, after logging the cause (which is not sent). A write the store could not commit
/// is logged by the store once per change of its health, not once per refused request: a full
/// disk refuses every message until space returns.
fn internal(error: &StoreError) -> ErrorBody {
    match error {
        StoreError::NotCommitted(_) => tracing::debug!(%error, "request failed"),
        _ => tracing::error!(%error, "request failed"),
    }
    ErrorBody::new(ErrorCode::Internal, "the server failed; try again")
}

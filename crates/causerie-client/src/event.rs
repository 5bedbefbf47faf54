//! What the client tells its user, in one ordered stream.

use std::time::Duration;

use causerie_protocol::{
    Change, Direct, ErrorBody, HistoryPage, Limits, Message, Presence, ServerInfo, User,
};

use serde::{Serialize, Serializer};
use ts_rs::TS;

use crate::error::ClientError;
use crate::outbox::{LocalId, OutboxEntry};
use crate::unread::Unread;

/// Where the connection stands. Serialized as `{status: "reconnecting", attempt, delayMs}` etc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum ConnectionState {
    /// Making the first connection.
    Connecting,
    /// Connected and welcomed.
    Connected,
    /// Waiting `delay` before attempt number `attempt` (1 for the first retry).
    Reconnecting {
        /// Which attempt comes next.
        attempt: u32,
        /// How long until it starts.
        #[serde(rename = "delayMs", serialize_with = "as_millis")]
        #[ts(rename = "delayMs", type = "number")]
        delay: Duration,
    },
    /// Not connected, and not trying: the connection was lost (a reconnection follows), refused
    /// (none follows), or closed by [`crate::ChatClient::disconnect`].
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why a connection ended. Serialized as `{kind: "lost", detail}`, `{kind: "refused", detail}`
/// or `{kind: "closed"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", content = "detail", rename_all = "camelCase")]
pub enum DisconnectReason {
    /// The network or the server went away; the client reconnects.
    Lost(String),
    /// The server refused the connection; the client stopped.
    Refused(ErrorBody),
    /// [`crate::ChatClient::disconnect`] was called.
    Closed,
}

/// Who the user is on this server, from its `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The user.
    pub user: User,
    /// Keep it, and pass it as [`crate::ClientConfig::token`] next time.
    pub token: String,
    /// The server's rooms: the first page ([`crate::ChatClient::find_rooms`] asks for more).
    pub rooms: Vec<String>,
    /// Where the next page of rooms starts, if there are more.
    pub rooms_next: Option<String>,
    /// The server's limits.
    pub limits: Limits,
    /// Which server.
    pub server: ServerInfo,
}

/// One thing that happened, in the order it happened. Serialized as `{type: "message", data: {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "type", content = "data", rename_all = "camelCase")]
pub enum ClientEvent {
    /// The connection changed state.
    State(ConnectionState),
    /// The server welcomed this client (after each connect).
    Welcome(Session),
    /// A message entered the outbox: sent by the user, or restored from the outbox file.
    Pending(OutboxEntry),
    /// A message of a joined room, each exactly once and in seq order per room; `confirms` is set
    /// when it is the server's copy of the user's own pending message.
    Message {
        /// The stored message.
        message: Message,
        /// The pending message it confirms, if any.
        confirms: Option<LocalId>,
        /// Whether it came after the user joined the room (since the client started): news,
        /// worth a notification, also when a catch-up after a reconnection brings it; not the
        /// past a room's first page brings.
        fresh: bool,
    },
    /// The server refused a pending message for good; it left the outbox.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// The pending message.
        local_id: LocalId,
        /// Why.
        error: ErrorBody,
        /// Whether sending it again, unchanged, can succeed (see
        /// [`causerie_protocol::ErrorCode::is_resendable`]): worth a Retry button.
        resendable: bool,
    },
    /// A message was edited or deleted by its author, in seq order with the messages (never
    /// before the message it changes). `confirms` is the local id of the user's own pending
    /// edit or deletion this is the server's copy of.
    Change {
        /// The change.
        change: Change,
        /// The pending change it confirms, if any.
        confirms: Option<LocalId>,
    },
    /// The room was joined; who is online follows as [`ClientEvent::Online`], its latest messages
    /// as [`ClientEvent::Message`].
    Joined {
        /// The room.
        room: String,
    },
    /// Who is online in a room changed, as far as this client knows: the server's count, and
    /// the people it lists (everyone in a small room; in a crowd, the first of them by name, up
    /// to 200; [`crate::ChatClient::load_more_online`] lists more).
    Online {
        /// The room.
        room: String,
        /// By name.
        users: Vec<User>,
        /// How many are online, by the server's count.
        count: u32,
    },
    /// A direct conversation of the user's: listed in the welcome, opened by the user
    /// ([`crate::ChatClient::open_direct`]) or by the other person. Its room is joined next
    /// and then delivered as any room's.
    Direct(Direct),
    /// The room was left.
    Left {
        /// The room.
        room: String,
    },
    /// People came or went in a room. Someone listed under another name who comes again under a
    /// new one is no arrival: they are told as [`ClientEvent::Renamed`] just before, and left
    /// out of `joined`.
    Presence(Presence),
    /// How far the user has read a room, and how many messages are unread in it: after it is
    /// joined, as messages come, and when the user reads it (here or on another device).
    Unread(Unread),
    /// Someone in a room changed their name.
    Renamed {
        /// The room.
        room: String,
        /// Who, under the new name.
        user: User,
        /// The name they had.
        from: String,
    },
    /// Who is typing in a room changed (the user never among them): shown until the next
    /// change. The client ends a notice that is not refreshed in time, or when its author sends.
    Typing {
        /// The room.
        room: String,
        /// Who is typing, by name.
        users: Vec<User>,
    },
    /// A page of older messages asked for with [`crate::ChatClient::history`].
    History(HistoryPage),
    /// The messages around a seq, asked for with [`crate::ChatClient::history_around`]: to show
    /// a message in its context. Not part of the room's timeline (nothing in it is delivered
    /// as [`ClientEvent::Message`]); its messages are as they are now.
    Around {
        /// The seq asked for.
        #[ts(type = "number")]
        around: u64,
        /// The page.
        page: HistoryPage,
    },
    /// Messages found with [`crate::ChatClient::search`], newest first, as they are now.
    Search {
        /// The words asked for.
        query: String,
        /// The messages found (without their quotes and reactions).
        results: Vec<Message>,
        /// Where the next page starts, if there may be more.
        next: Option<String>,
    },
    /// Room names asked for with [`crate::ChatClient::find_rooms`].
    Rooms {
        /// The prefix asked for (`""` for all rooms).
        prefix: String,
        /// Room names starting with it, sorted.
        rooms: Vec<String>,
        /// Where the next page starts, if there are more.
        next: Option<String>,
    },
    /// Something failed that the user may want to know about.
    Error(#[ts(type = "ClientErrorBody")] ClientError),
}

fn as_millis<S: Serializer>(delay: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

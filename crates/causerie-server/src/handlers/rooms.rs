//! `join`, `leave`, disconnects, and the `presence` notices they cause.
//!
//! Presence is per user, not per socket: someone with two tabs open "joins" with the first and
//! "leaves" with the last.

use std::sync::Arc;

use causerie_protocol::limits::{DEFAULT_HISTORY_LIMIT, is_valid_room};
use causerie_protocol::{
    DEFAULT_ROOM, ErrorBody, ErrorCode, Joined, Left, Presence, RoomRequest, event,
};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::{SEED_ROOM_KEY, Session, has_joined, internal, not_joined, online, parse, room_key};
use crate::chat::Chat;
use crate::outgoing::{self, Ack};
use crate::store::HistoryQuery;

pub(super) async fn on_join(
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let joined = join(&socket, &io, &chat, session, data).await;
    outgoing::reply(&socket, &chat, ack, joined);
}

async fn join(
    socket: &SocketRef,
    io: &SocketIo,
    chat: &Chat,
    session: Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Joined, ErrorBody> {
    let RoomRequest { room } = parse(data, "a join request")?;
    if !is_valid_room(&room) {
        return Err(invalid_room());
    }
    chat.store
        .create_room(&room)
        .await
        .map_err(|e| internal(&e))?;
    let arriving = !online(io, &room, None)
        .iter()
        .any(|u| u.id == session.user.id);
    outgoing::join(socket, chat, &room_key(&room));
    let online = online(io, &room, None);
    tracing::info!(sid = %socket.id, user = %session.user.id, %room, "joined");
    // Announced as soon as the socket is in the room, so that a join retried after a failed read
    // below does not leave the others without the news.
    if arriving {
        announce(
            io,
            chat,
            socket,
            Presence {
                room: room.clone(),
                online: online.clone(),
                joined: Some(session.user),
                left: None,
            },
        )
        .await;
    }
    // Joined before the history is read: a message stored meanwhile is in the page or reaches
    // the socket live (or both; clients drop repeats by seq), never neither. If the read fails
    // the socket stays joined: the client asks again, and joining twice is harmless.
    let history = chat
        .store
        .history(
            &room,
            HistoryQuery {
                limit: DEFAULT_HISTORY_LIMIT,
                ..HistoryQuery::default()
            },
        )
        .await
        .map_err(|e| internal(&e))?;
    Ok(Joined {
        room,
        online,
        head: super::connect::head_of(&history.messages),
        history: history.messages,
    })
}

pub(super) async fn on_leave(
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let left = leave(&socket, &io, &chat, session, data).await;
    outgoing::reply(&socket, &chat, ack, left);
}

async fn leave(
    socket: &SocketRef,
    io: &SocketIo,
    chat: &Chat,
    session: Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Left, ErrorBody> {
    let RoomRequest { room } = parse(data, "a leave request")?;
    if !is_valid_room(&room) {
        return Err(invalid_room());
    }
    if !has_joined(socket, &room) {
        return Err(not_joined(&room));
    }
    outgoing::leave(socket, &room_key(&room));
    tracing::info!(sid = %socket.id, user = %session.user.id, %room, "left");
    announce_departure(io, chat, socket, &room, session.user, None).await;
    Ok(Left { room })
}

pub(super) async fn on_disconnect(
    socket: SocketRef,
    io: SocketIo,
    reason: DisconnectReason,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
) {
    chat.metrics.disconnected();
    chat.transports.forget(socket.id);
    tracing::info!(
        sid = %socket.id, user = %session.user.id, name = %session.user.name, ?reason,
        "disconnected"
    );
    // The socket is still in its rooms while this runs (unless it was taken out of them for
    // falling behind): leave it out of the online lists.
    for key in outgoing::rooms_of(&socket) {
        let room = if key == SEED_ROOM_KEY {
            DEFAULT_ROOM
        } else if let Some(room) = key.strip_prefix("room:") {
            room
        } else {
            continue;
        };
        announce_departure(
            &io,
            &chat,
            &socket,
            room,
            session.user.clone(),
            Some(socket.id),
        )
        .await;
    }
}

/// Tells a room that `user` left, unless another of their sockets is still there.
async fn announce_departure(
    io: &SocketIo,
    chat: &Chat,
    socket: &SocketRef,
    room: &str,
    user: causerie_protocol::User,
    except: Option<socketioxide::socket::Sid>,
) {
    let online = online(io, room, except);
    if online.iter().any(|u| u.id == user.id) {
        return;
    }
    announce(
        io,
        chat,
        socket,
        Presence {
            room: room.to_owned(),
            online,
            joined: None,
            left: Some(user),
        },
    )
    .await;
}

/// Sends `presence` to the Causerie clients in its room, except `socket`.
pub(super) async fn announce(io: &SocketIo, chat: &Chat, socket: &SocketRef, presence: Presence) {
    let key = room_key(&presence.room);
    outgoing::to_room(io, chat, &key, Some(socket), event::PRESENCE, &presence).await;
}

fn invalid_room() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvalidRoom,
        "a room name has 1 to 32 of a-z, 0-9, - and _",
    )
}

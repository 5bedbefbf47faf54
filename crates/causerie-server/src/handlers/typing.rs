//! `typing`: relay "is typing" to the others in a room. Fire and forget: no ack, no storage.

use std::sync::Arc;

use causerie_protocol::{Typing, TypingRequest, event};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::{Session, has_joined, parse, room_key};
use crate::chat::Chat;
use crate::outgoing;

pub(super) async fn on_typing(
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
) {
    let Ok(request) = parse::<TypingRequest>(data, "a typing notice") else {
        tracing::debug!(sid = %socket.id, "ignored a malformed typing notice");
        return;
    };
    if !has_joined(&socket, &request.room) {
        return;
    }
    let notice = Typing {
        room: request.room,
        user: session.user,
        typing: request.typing,
    };
    if let Some(payload) = outgoing::encode(&notice) {
        outgoing::to_rooms(
            &io,
            &chat,
            vec![room_key(&notice.room)],
            Some(socket.id),
            event::TYPING,
            &payload,
        );
    }
}

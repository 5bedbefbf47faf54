//! `typing`: relay "is typing" to the others in a room. Fire and forget: no ack, no storage, and
//! volatile (a reader that is behind gets only the latest).

use causerie_protocol::{Typing, TypingRequest, event};
use socketioxide::extract::{Extension, SocketRef, TryData};

use super::{Session, has_joined, parse, room_key};
use crate::outgoing;

pub(super) async fn on_typing(
    socket: SocketRef,
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
    let key = room_key(&notice.room);
    outgoing::to_room_volatile(&key, &socket, event::TYPING, &notice).await;
}

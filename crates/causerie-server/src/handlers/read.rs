//! `read`: move the user's read marker of a room, ack the unread count, and tell the user's other
//! connections in that room, so that every device shows the same.
//!
//! Each Causerie socket is in the socketioxide room [`user_key`] of its user, outside the
//! accounted chat rooms ([`crate::outgoing::join`]): nothing is broadcast to it, it only finds the
//! user's sockets, each sent the marker through its own account.

use std::sync::Arc;

use causerie_protocol::{ErrorBody, ReadRequest, ReadState, event};
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::{Session, has_joined, internal, not_joined, parse, room_key, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};

/// The socketioxide room holding every connection of user `user_id`.
pub(super) fn user_key(user_id: &str) -> String {
    format!("user:{user_id}")
}

pub(super) async fn on_read(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let outcome = mark(&socket, &chat, &session, data).await;
    let (state, moved) = match outcome {
        Ok(marked) => marked,
        Err(error) => {
            tracing::debug!(
                sid = %socket.id, user = %session.user.id, code = %error.code,
                "read refused: {}", error.message
            );
            outgoing::reply::<ReadState>(&socket, &chat, event::READ, ack, Err(error));
            return;
        }
    };
    outgoing::reply(&socket, &chat, event::READ, ack, Ok(state.clone()));
    if moved {
        let key = room_key(&state.room);
        for other in socket.within(user_key(&session.user.id)).sockets() {
            if other.id != socket.id && outgoing::is_in(&other, &key) {
                outgoing::to_socket(&other, &chat, event::READ, &state);
            }
        }
    }
}

/// Moves the marker (within the room's log) and counts what is left unread; `true` with it when
/// the marker moved.
async fn mark(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<(ReadState, bool), ErrorBody> {
    within_quota(chat, Action::Read, socket, session)?;
    let request: ReadRequest = parse(data, "a read marker")?;
    if !has_joined(socket, &request.room) {
        return Err(not_joined(&request.room));
    }
    let head = chat
        .store
        .head(&request.room)
        .ok_or_else(|| not_joined(&request.room))?;
    let user = &session.user.id;
    let marked = chat
        .store
        .mark_read(user, &request.room, request.seq.min(head))
        .await
        .map_err(|e| internal(&e))?;
    let state = chat
        .store
        .read_state(user, &request.room, head)
        .await
        .map_err(|e| internal(&e))?;
    Ok((state, marked.moved))
}

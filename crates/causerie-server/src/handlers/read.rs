//! `read`: move the user's read marker of a room, ack the unread count, and tell the user's other
//! connections in that room, so that every device shows the same.
//!
//! Each Causerie socket in a room is in the socketioxide room [`member_key`] of its user and that
//! room, on whichever node it is: the marker goes there, but to the socket it came from
//! ([`outgoing::to_user`]).

use std::sync::Arc;

use crate::cluster::{SocketIo, SocketRef};
use causerie_protocol::{ErrorBody, ErrorCode, ReadRequest, ReadState, event};
use socketioxide::extract::{Extension, State, TryData};

use super::{Session, has_joined, internal, member_key, not_joined, parse, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};
use crate::store::StoreError;

pub(super) async fn on_read(
    _admitted: super::Admitted,
    io: SocketIo,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let outcome = mark(&socket, &chat, &session, data).await;
    let Marked { state, moved } = match outcome {
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
        let key = member_key(&session.user.id, &state.room);
        outgoing::to_user(&io, &chat, &key, Some(&socket), None, event::READ, &state).await;
    }
}

/// The user's read state of a room, for its `welcome` or `join`. A room the user never marked
/// read counts as read up to `head`, and that marker is kept, so that every device of theirs
/// counts from the same place: in the background, as a greeting must not wait on a write (nor
/// fail while writes fail; the next greeting tries again).
pub(super) async fn state_on_arrival(
    chat: &Chat,
    user_id: &str,
    room: &str,
    head: u64,
) -> Result<ReadState, StoreError> {
    if let Some(state) = chat.store.read_state(user_id, room, head).await? {
        return Ok(state);
    }
    let store = chat.store.clone();
    let (user_id, marked_room) = (user_id.to_owned(), room.to_owned());
    tokio::spawn(async move {
        if let Err(error) = store.mark_read(&user_id, &marked_room, head).await {
            tracing::debug!(%error, room = %marked_room, "a first read marker was not kept");
        }
    });
    Ok(ReadState {
        room: room.to_owned(),
        seq: head,
        unread: 0,
        mentions: 0,
        head,
    })
}

/// What a `read` did: the marker now, and whether it moved (only then are the user's other
/// connections told).
struct Marked {
    state: ReadState,
    moved: bool,
}

/// Moves the marker (within the room's log) and counts what is left unread. A marker that would
/// not move costs a read, not a write: clients send the same one again after a reconnect.
async fn mark(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Marked, ErrorBody> {
    within_quota(chat, Action::Read, socket, session)?;
    let request: ReadRequest = parse(data, "a read marker")?;
    if !has_joined(socket, &request.room) {
        return Err(not_joined(&request.room));
    }
    let head = chat
        .store
        .head(&request.room)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| not_joined(&request.room))?;
    let (user, room) = (&session.user.id, &request.room);
    let seq = request.seq.min(head);
    let current = chat
        .store
        .read_state(user, room, head)
        .await
        .map_err(|e| internal(&e))?;
    if let Some(state) = current.filter(|state| state.seq >= seq) {
        return Ok(Marked {
            state,
            moved: false,
        });
    }
    let marked = chat
        .store
        .mark_read(user, room, seq)
        .await
        .map_err(|e| internal(&e))?;
    let state = chat
        .store
        .read_state(user, room, head)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            tracing::error!(%room, "a read marker just written is not there");
            ErrorBody::new(ErrorCode::Internal, "the server failed; try again")
        })?;
    Ok(Marked {
        state,
        moved: marked.moved,
    })
}

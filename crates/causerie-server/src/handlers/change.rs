//! `edit`, `delete` and `react`: validate, store the change as the room's next log entry (durably), ack,
//! then broadcast it as `change` to the room's Causerie clients. Seed clients see new messages
//! only, as the old server sent them.

use std::sync::Arc;

use crate::cluster::SocketIo;
use crate::cluster::SocketRef;
use causerie_protocol::{
    Change, ChangeAccepted, DEFAULT_ROOM, DeleteMessage, EditMessage, ErrorBody, ErrorCode,
    ReactRequest, event,
};
use socketioxide::extract::{Extension, State, TryData};

use super::{
    Session, check_client_id, has_joined, internal, not_joined, parse, room_key, within_quota,
};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack, Reach};
use crate::store::{ChangeAction, ChangeRefusal, Changed, NewChange};

/// A request to change a message, whichever its event.
struct ChangeRequest {
    id: String,
    room: Option<String>,
    target: u64,
    action: ChangeAction,
}

pub(super) async fn on_edit(
    admitted: super::Admitted,
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let request = parse::<EditMessage>(data, "an edit").map(|edit| ChangeRequest {
        id: edit.id,
        room: edit.room,
        target: edit.target,
        action: ChangeAction::Edit { text: edit.text },
    });
    handle(
        admitted,
        &socket,
        &io,
        &chat,
        &session,
        event::EDIT,
        request,
        ack,
    )
    .await;
}

pub(super) async fn on_react(
    admitted: super::Admitted,
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let request = parse::<ReactRequest>(data, "a reaction").map(|react| ChangeRequest {
        id: react.id,
        room: react.room,
        target: react.target,
        action: ChangeAction::React { emoji: react.emoji },
    });
    handle(
        admitted,
        &socket,
        &io,
        &chat,
        &session,
        event::REACT,
        request,
        ack,
    )
    .await;
}

pub(super) async fn on_delete(
    admitted: super::Admitted,
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let request = parse::<DeleteMessage>(data, "a deletion").map(|delete| ChangeRequest {
        id: delete.id,
        room: delete.room,
        target: delete.target,
        action: ChangeAction::Delete,
    });
    handle(
        admitted,
        &socket,
        &io,
        &chat,
        &session,
        event::DELETE,
        request,
        ack,
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    _admitted: super::Admitted,
    socket: &SocketRef,
    io: &SocketIo,
    chat: &Chat,
    session: &Session,
    event: &'static str,
    request: Result<ChangeRequest, ErrorBody>,
    ack: Ack,
) {
    let outcome = match request {
        Ok(request) => accept(socket, chat, session, request).await,
        Err(error) => Err(error),
    };
    let (change, fresh) = match outcome {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::debug!(
                sid = %socket.id, user = %session.user.id, code = %error.code,
                "{event} refused: {}", error.message
            );
            outgoing::reply::<ChangeAccepted>(socket, chat, event, ack, Err(error));
            return;
        }
    };
    let accepted = ChangeAccepted {
        change: change.clone(),
    };
    outgoing::reply(socket, chat, event, ack, Ok(accepted));
    // A retried client id was broadcast the first time: only the ack repeats.
    if fresh {
        let key = room_key(&change.room);
        outgoing::to_room(
            io,
            chat,
            Reach::Everywhere,
            &key,
            None,
            event::CHANGE,
            &change,
        )
        .await;
        chat.metrics.changed(change.kind);
        tracing::debug!(
            sid = %socket.id, user = %change.author.id, room = %change.room,
            seq = change.seq, target = change.target, kind = ?change.kind, "change"
        );
    }
}

/// Checks and stores a change; `Ok((change, true))` when it was stored now, `false` when an
/// earlier request with the same client id stored it.
async fn accept(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    request: ChangeRequest,
) -> Result<(Change, bool), ErrorBody> {
    check_client_id(&request.id, "a change")?;
    let room = request.room.unwrap_or_else(|| DEFAULT_ROOM.to_owned());
    if !has_joined(socket, &room) {
        return Err(not_joined(&room));
    }
    let action = match request.action {
        ChangeAction::Edit { text } => {
            chat.limits.check_message(&text)?;
            ChangeAction::Edit { text }
        }
        // Stored in its one canonical form: `❤` and `❤️` are one reaction.
        ChangeAction::React { emoji } => ChangeAction::React {
            emoji: causerie_protocol::limits::reaction(&emoji)
                .ok_or_else(|| ErrorBody::new(ErrorCode::Invalid, "a reaction is one emoji"))?
                .to_owned(),
        },
        ChangeAction::Delete => ChangeAction::Delete,
    };
    within_quota(chat, Action::Message, socket, session)?;
    let changed = chat
        .store
        .change(NewChange {
            client_id: request.id,
            room,
            author: session.user.clone(),
            action,
            target: request.target,
            edit_window: chat.edit_window,
        })
        .await
        .map_err(|e| internal(&e))?;
    match changed {
        Changed::Stored { change, duplicate } => Ok((*change, !duplicate)),
        Changed::Refused(refusal) => Err(refused(refusal, request.target)),
    }
}

fn refused(refusal: ChangeRefusal, target: u64) -> ErrorBody {
    match refusal {
        ChangeRefusal::NotFound => ErrorBody::new(
            ErrorCode::NotFound,
            format!("no message {target} in this room (or it was deleted)"),
        ),
        ChangeRefusal::Forbidden => {
            ErrorBody::new(ErrorCode::Forbidden, "only its author may change a message")
        }
        ChangeRefusal::TooLate => ErrorBody::new(
            ErrorCode::TooLate,
            "this message is too old to edit (it can still be deleted)",
        ),
        ChangeRefusal::IdReused => ErrorBody::new(
            ErrorCode::Invalid,
            "this id was used for another change: give each change its own",
        ),
        ChangeRefusal::ReactionLimit => ErrorBody::new(
            ErrorCode::ReactionLimit,
            format!(
                "a message has at most {} different reactions: add to one of them",
                causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE
            ),
        ),
    }
}

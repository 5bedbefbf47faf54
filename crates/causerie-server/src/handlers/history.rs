//! `history`: a page of a joined room's messages.

use std::sync::Arc;

use crate::cluster::SocketRef;
use causerie_protocol::limits::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use causerie_protocol::{DEFAULT_ROOM, ErrorBody, ErrorCode, HistoryPage, HistoryRequest, event};
use socketioxide::extract::{Extension, State, TryData};

use super::{Session, has_joined, internal, not_joined, parse, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};
use crate::store::HistoryQuery;

/// One history page built at a time per connection, for `history` and `join` alike. A page is read, encoded and queued whole
/// (up to 256 KiB, held two or three times over while it is built): a client that asks for
/// twenty at once would otherwise hold twenty of them in the server's memory at the same moment.
/// Pages wait their turn in the order asked; their bytes then count against the connection's
/// outgoing bound like any other.
#[derive(Debug, Clone, Default)]
pub(super) struct HistoryTurn(Arc<tokio::sync::Mutex<()>>);

impl HistoryTurn {
    /// Waits until no other page of this connection is being built.
    pub(super) async fn wait(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.lock().await
    }
}

pub(super) async fn on_history(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    Extension(turn): Extension<HistoryTurn>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    // A refusal is answered at once; an admitted page waits its turn, kept until it is queued.
    if let Err(refused) = within_quota(&chat, Action::History, &socket, &session) {
        return outgoing::reply::<HistoryPage>(&socket, &chat, event::HISTORY, ack, Err(refused));
    }
    let _turn = turn.wait().await;
    if !socket.connected() {
        return; // closed while it waited: nobody to read the page
    }
    let page = page(&socket, &chat, data).await;
    outgoing::reply(&socket, &chat, event::HISTORY, ack, page);
}

async fn page(
    socket: &SocketRef,
    chat: &Chat,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<HistoryPage, ErrorBody> {
    let request: HistoryRequest = parse(data, "a history request")?;
    let limit = request.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            format!("limit is 1 to {MAX_HISTORY_LIMIT}"),
        ));
    }
    if request.around.is_some() && (request.after.is_some() || request.before.is_some()) {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            "around goes alone, without after or before",
        ));
    }
    let room = request.room.unwrap_or_else(|| DEFAULT_ROOM.to_owned());
    if !has_joined(socket, &room) {
        return Err(not_joined(&room));
    }
    let slice = chat
        .store
        .history(
            &room,
            HistoryQuery {
                after: request.after,
                before: request.before,
                around: request.around,
                limit,
            },
        )
        .await
        .map_err(|e| internal(&e))?;
    Ok(HistoryPage {
        room,
        messages: slice.messages,
        changes: slice.changes,
        has_more: slice.has_more,
        has_newer: slice.has_newer,
    })
}

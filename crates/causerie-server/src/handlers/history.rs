//! `history`: a page of a joined room's messages.

use std::sync::Arc;

use causerie_protocol::limits::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use causerie_protocol::{DEFAULT_ROOM, ErrorBody, ErrorCode, HistoryPage, HistoryRequest, event};
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::{Session, has_joined, internal, not_joined, parse, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};
use crate::store::HistoryQuery;

pub(super) async fn on_history(
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let page = page(&socket, &chat, &session, data).await;
    outgoing::reply(&socket, &chat, event::HISTORY, ack, page);
}

async fn page(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<HistoryPage, ErrorBody> {
    within_quota(chat, Action::History, socket, session)?;
    let request: HistoryRequest = parse(data, "a history request")?;
    let limit = request.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            format!("limit is 1 to {MAX_HISTORY_LIMIT}"),
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
                limit,
            },
        )
        .await
        .map_err(|e| internal(&e))?;
    Ok(HistoryPage {
        room,
        messages: slice.messages,
        has_more: slice.has_more,
    })
}

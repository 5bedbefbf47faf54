//! `search`: full-text search of the rooms this connection is in (the rooms its user may read
//! now), newest first, a page at a time.

use std::sync::Arc;

use crate::cluster::SocketRef;
use causerie_protocol::limits::{DEFAULT_SEARCH_PAGE, MAX_SEARCH_CHARS, MAX_SEARCH_PAGE};
use causerie_protocol::{ErrorBody, ErrorCode, SearchPage, SearchRequest, event};
use socketioxide::extract::{Extension, State, TryData};

use super::{Session, has_joined, internal, not_joined, parse, room_of_key, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};

/// The most words of a query: each is a term the index looks up.
const MAX_WORDS: usize = 8;

pub(super) async fn on_search(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let page = search(&socket, &chat, &session, data).await;
    outgoing::reply(&socket, &chat, event::SEARCH, ack, page);
}

async fn search(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<SearchPage, ErrorBody> {
    within_quota(chat, Action::Search, socket, session)?;
    let request: SearchRequest = parse(data, "a search")?;
    let limit = request.limit.unwrap_or(DEFAULT_SEARCH_PAGE);
    if !(1..=MAX_SEARCH_PAGE).contains(&limit) {
        return Err(invalid(format!("limit is 1 to {MAX_SEARCH_PAGE}")));
    }
    let words: Vec<String> = request
        .query
        .split_whitespace()
        .take(MAX_WORDS)
        .map(str::to_owned)
        .collect();
    if words.is_empty() || request.query.chars().count() > MAX_SEARCH_CHARS {
        return Err(invalid(format!(
            "a search has 1 to {MAX_SEARCH_CHARS} characters, and a word"
        )));
    }
    let after = match request.after.as_deref() {
        Some(after) => Some(
            after
                .parse::<i64>()
                .map_err(|_| invalid("after is the next of an earlier page".into()))?,
        ),
        None => None,
    };
    // Only where this connection may read now: the rooms it is in.
    let rooms: Vec<String> = match request.room {
        Some(room) if has_joined(socket, &room) => vec![room],
        Some(room) => return Err(not_joined(&room)),
        None => outgoing::keys_of(socket)
            .iter()
            .filter_map(|key| key.strip_prefix("room:").and(room_of_key(key)))
            .map(str::to_owned)
            .collect(),
    };
    let found = chat
        .store
        .search(&rooms, &words, after, limit)
        .await
        .map_err(|e| internal(&e))?;
    Ok(SearchPage {
        results: found.messages,
        next: found.next.map(|next| next.to_string()),
    })
}

fn invalid(explanation: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::Invalid, explanation)
}

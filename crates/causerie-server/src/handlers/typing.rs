//! `typing`: relay "is typing" to the others in a room. Fire and forget: no ack, no storage.
//!
//! Coalesced: a notice is relayed when the user's state in the room changes, or to refresh a
//! "typing" that lasts (every [`REFRESH_EVERY`]); repeats in between cost the room nothing. Over
//! quota, notices are dropped. Relayed notices are volatile ([`crate::outgoing`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::SocketRef;
use causerie_protocol::{Typing, TypingRequest, event};
use socketioxide::extract::{Extension, State, TryData};

use super::{Session, has_joined, parse, room_key, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing;

/// How often a lasting "typing" is told again (clients show it for a few seconds after each).
pub const REFRESH_EVERY: Duration =
    Duration::from_millis(causerie_protocol::limits::TYPING_REFRESH_MS);

/// What a socket last told each of its rooms.
#[derive(Debug, Default, Clone)]
struct Relayed(Arc<Mutex<HashMap<String, (bool, Instant)>>>);

impl Relayed {
    /// Whether `typing` in `room` is news worth relaying now, noting it if so.
    fn is_news(&self, room: &str, typing: bool, now: Instant) -> bool {
        let mut relayed = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let news = match relayed.get(room) {
            Some(&(last, at)) => {
                last != typing || (typing && now.duration_since(at) >= REFRESH_EVERY)
            }
            None => typing,
        };
        if news {
            relayed.insert(room.to_owned(), (typing, now));
        }
        news
    }
}

pub(super) async fn on_typing(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
) {
    if let Err(refused) = within_quota(&chat, Action::Typing, &socket, &session) {
        chat.metrics.refused(event::TYPING, refused.code);
        return;
    }
    let Ok(request) = parse::<TypingRequest>(data, "a typing notice") else {
        tracing::debug!(sid = %socket.id, "ignored a malformed typing notice");
        return;
    };
    if !has_joined(&socket, &request.room) {
        return;
    }
    let relayed = match socket.extensions.get::<Relayed>() {
        Some(relayed) => relayed,
        None => {
            let relayed = Relayed::default();
            socket.extensions.insert(relayed.clone());
            relayed
        }
    };
    if !relayed.is_news(&request.room, request.typing, Instant::now()) {
        return;
    }
    let notice = Typing {
        room: request.room,
        user: session.user,
        typing: request.typing,
    };
    let key = room_key(&notice.room);
    outgoing::to_room_volatile(&chat, &key, &socket, event::TYPING, &notice).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_and_refreshes_are_relayed() {
        let relayed = Relayed::default();
        let start = Instant::now();
        assert!(!relayed.is_news("general", false, start), "never typed");
        assert!(relayed.is_news("general", true, start));
        assert!(!relayed.is_news("general", true, start + Duration::from_secs(1)));
        assert!(relayed.is_news("general", true, start + REFRESH_EVERY));
        assert!(relayed.is_news("general", false, start + REFRESH_EVERY));
        assert!(!relayed.is_news("general", false, start + REFRESH_EVERY * 2));
        assert!(relayed.is_news("rust", true, start), "each room apart");
    }
}

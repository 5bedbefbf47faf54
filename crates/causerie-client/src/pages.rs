//! The requests that bring pages of history (a room's join, a catch-up page), one at a time.
//!
//! A reconnect into many rooms would otherwise ask for all their pages at once, up to 256 KiB
//! each, and a server bounds what a connection may have waiting (4 MiB): on a slow link the
//! client would be closed for falling behind, reconnect, and ask again. One at a time, each with a
//! deadline: an answer that never comes (rust_socketio drops acks that come late, and draws ack
//! ids at random, so two can collide) is asked for again instead of stalling the room.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What a page request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageRequest {
    /// `join`: the room's latest page, and its messages live from then on.
    Join(String),
    /// `history {after}`: the next page after what was delivered.
    CatchUp(String),
    /// `who`: the first page of the people online, again (a presence was truncated).
    Online(String),
    /// `who {after}`: the next page of the people online ("show more").
    MoreOnline(String),
}

impl PageRequest {
    fn room(&self) -> &str {
        match self {
            Self::Join(room)
            | Self::CatchUp(room)
            | Self::Online(room)
            | Self::MoreOnline(room) => room,
        }
    }
}

/// The page requests waiting, and the one out.
#[derive(Debug, Default)]
pub(crate) struct PageQueue {
    waiting: VecDeque<PageRequest>,
    out: Option<(PageRequest, Instant)>,
}

impl PageQueue {
    /// Queues `request`, unless the same one is queued or out already.
    pub(crate) fn push(&mut self, request: PageRequest) {
        let known = self.waiting.contains(&request)
            || self.out.as_ref().is_some_and(|(out, _)| *out == request);
        if !known {
            self.waiting.push_back(request);
        }
    }

    /// The next request to send, if none is out: it is out from now on, until `timeout` passes.
    pub(crate) fn next_to_send(&mut self, now: Instant, timeout: Duration) -> Option<PageRequest> {
        if self.out.is_some() {
            return None;
        }
        let request = self.waiting.pop_front()?;
        self.out = Some((request.clone(), now + timeout));
        Some(request)
    }

    /// An answer to `request` came: the next one may go. `false` if it was not the one out (a
    /// late answer to a request asked again since).
    pub(crate) fn answered(&mut self, request: &PageRequest) -> bool {
        if self.out.as_ref().is_some_and(|(out, _)| out == request) {
            self.out = None;
            return true;
        }
        false
    }

    /// When the request out expires.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.out.as_ref().map(|(_, deadline)| *deadline)
    }

    /// If the request out has expired, puts it first in line again: `true` then.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        match self.out.take() {
            Some((request, deadline)) if now >= deadline => {
                self.waiting.push_front(request);
                true
            }
            out => {
                self.out = out;
                false
            }
        }
    }

    /// Forgets the waiting requests of a room left (one out is answered, and ignored).
    pub(crate) fn forget_room(&mut self, room: &str) {
        self.waiting.retain(|request| request.room() != room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn join(room: &str) -> PageRequest {
        PageRequest::Join(room.into())
    }

    fn catch_up(room: &str) -> PageRequest {
        PageRequest::CatchUp(room.into())
    }

    #[test]
    fn one_request_is_out_at_a_time_in_the_order_asked() {
        let now = Instant::now();
        let mut pages = PageQueue::default();
        pages.push(join("a"));
        pages.push(join("b"));
        assert_eq!(pages.next_to_send(now, TIMEOUT), Some(join("a")));
        assert_eq!(pages.next_to_send(now, TIMEOUT), None, "a is out");
        assert!(pages.answered(&join("a")));
        assert_eq!(pages.next_to_send(now, TIMEOUT), Some(join("b")));
    }

    #[test]
    fn the_same_request_is_not_queued_twice() {
        let now = Instant::now();
        let mut pages = PageQueue::default();
        pages.push(catch_up("a"));
        pages.push(catch_up("a"));
        assert_eq!(pages.next_to_send(now, TIMEOUT), Some(catch_up("a")));
        pages.push(catch_up("a"));
        assert!(pages.answered(&catch_up("a")));
        assert_eq!(pages.next_to_send(now, TIMEOUT), None);
    }

    #[test]
    fn an_unanswered_request_is_asked_again_first() {
        let now = Instant::now();
        let mut pages = PageQueue::default();
        pages.push(join("a"));
        pages.push(join("b"));
        pages.next_to_send(now, TIMEOUT);
        assert_eq!(pages.deadline(), Some(now + TIMEOUT));
        assert!(!pages.expire(now + TIMEOUT / 2));
        assert!(pages.expire(now + TIMEOUT));
        assert_eq!(pages.next_to_send(now + TIMEOUT, TIMEOUT), Some(join("a")));
    }

    #[test]
    fn a_late_answer_to_another_request_frees_nothing() {
        let now = Instant::now();
        let mut pages = PageQueue::default();
        pages.push(join("a"));
        pages.push(catch_up("b"));
        pages.next_to_send(now, TIMEOUT);
        assert!(!pages.answered(&catch_up("b")));
        assert_eq!(pages.next_to_send(now, TIMEOUT), None);
    }

    #[test]
    fn a_left_room_asks_for_nothing_more() {
        let now = Instant::now();
        let mut pages = PageQueue::default();
        pages.push(join("a"));
        pages.push(catch_up("b"));
        pages.push(join("b"));
        pages.forget_room("b");
        assert_eq!(pages.next_to_send(now, TIMEOUT), Some(join("a")));
        assert!(pages.answered(&join("a")));
        assert_eq!(pages.next_to_send(now, TIMEOUT), None);
    }
}

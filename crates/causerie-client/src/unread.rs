//! Read markers and unread counts, per room. The server keeps each user's marker and counts
//! what is unread up to a head (in `welcome`, `join`, the ack of `read`, and `read` from the
//! user's other connections); this adds the others' messages delivered since, and sends the
//! user's own marker, one request per room at a time, the latest seq read winning.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use causerie_protocol::limits::MAX_UNREAD_COUNTED;
use causerie_protocol::{ErrorBody, ErrorCode, ReadRequest, ReadState};
use serde::Serialize;
use tokio::time::Instant;
use ts_rs::TS;

/// How a room stands for the user: told as [`crate::ClientEvent::Unread`] when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    /// The room.
    pub room: String,
    /// The user has read up to this seq: the first message after it by someone else is where
    /// the "new messages" divider goes.
    #[ts(type = "number")]
    pub read: u64,
    /// Messages by others after `read`, not deleted; [`MAX_UNREAD_COUNTED`] means "at least".
    pub count: u32,
}

/// How long a `read` refused for a passing reason waits before it is sent again, when the
/// refusal does not say.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Room {
    /// Read up to here, as far as this client knows: the server's marker, or a later seq the
    /// user read here and the server has not confirmed yet.
    read: u64,
    /// The marker the server confirmed.
    confirmed: u64,
    /// What the server counted unread after `read`, up to `head`.
    counted: u32,
    head: u64,
    /// Others' messages delivered after `head`, not deleted since.
    later: BTreeSet<u64>,
    /// When the `read` request on its way was sent.
    in_flight: Option<Instant>,
    /// When a refused `read` may go again.
    retry_at: Option<Instant>,
}

impl Room {
    fn count(&self) -> u32 {
        let later = self.later.range(self.read + 1..).count();
        let counted = if self.read < self.head {
            self.counted
        } else {
            0
        };
        counted
            .saturating_add(u32::try_from(later).unwrap_or(u32::MAX))
            .min(MAX_UNREAD_COUNTED)
    }

    /// Whether the user's marker still has to reach the server.
    fn unsent(&self) -> bool {
        self.read > self.confirmed
    }
}

/// The read markers of the rooms the client is in.
#[derive(Debug)]
pub(crate) struct ReadMarkers {
    rooms: HashMap<String, Room>,
    /// How long a request may go unanswered before it is sent again.
    timeout: Duration,
}

impl ReadMarkers {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            rooms: HashMap::new(),
            timeout,
        }
    }

    /// The server's marker and count for a room: its head starts the client's own count over.
    /// A marker older than what the user read here (an answer overtaken by a later read, a
    /// welcome before a resend) only confirms what it says.
    pub(crate) fn on_state(&mut self, state: ReadState) -> Option<Unread> {
        let room = self.rooms.entry(state.room.clone()).or_default();
        room.confirmed = room.confirmed.max(state.seq);
        if state.seq >= room.read {
            room.read = state.seq;
            room.counted = state.unread;
            room.head = state.head;
            room.later = room.later.split_off(&(state.head + 1));
        }
        Some(unread(&state.room, room))
    }

    /// A message was delivered: someone else's after the server's count is unread until read.
    pub(crate) fn delivered(
        &mut self,
        room: &str,
        seq: u64,
        by_others: bool,
        deleted: bool,
    ) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        if !by_others || deleted || seq <= state.head || seq <= state.read {
            return None;
        }
        // Beyond the bound nothing changes what is shown: "at least" that many.
        if state.later.len() >= MAX_UNREAD_COUNTED as usize || !state.later.insert(seq) {
            return None;
        }
        Some(unread(room, state))
    }

    /// A message was deleted: it is no longer unread.
    pub(crate) fn deleted(&mut self, room: &str, target: u64) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        state.later.remove(&target).then(|| unread(room, state))
    }

    /// The user read `room` up to `seq`: shown at once, told to the server next.
    pub(crate) fn mark(&mut self, room: &str, seq: u64) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        if seq <= state.read {
            return None;
        }
        state.read = seq;
        Some(unread(room, state))
    }

    /// The next marker to send, of a room that is `joined` now: one per room at a time.
    pub(crate) fn next_request(
        &mut self,
        now: Instant,
        joined: impl Fn(&str) -> bool,
    ) -> Option<ReadRequest> {
        let timeout = self.timeout;
        let (room, state) = self.rooms.iter_mut().find(|(room, state)| {
            state.unsent()
                && state
                    .in_flight
                    .is_none_or(|sent| now.duration_since(sent) >= timeout)
                && state.retry_at.is_none_or(|at| at <= now)
                && joined(room)
        })?;
        state.in_flight = Some(now);
        state.retry_at = None;
        Some(ReadRequest {
            room: room.clone(),
            seq: state.read,
        })
    }

    /// The answer to a `read`: the server's marker, or a refusal. A refusal that may pass
    /// (over quota, the server failing) is tried again later; any other drops what was sent.
    pub(crate) fn answered(
        &mut self,
        room: &str,
        reply: Result<ReadState, ErrorBody>,
        now: Instant,
    ) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        state.in_flight = None;
        match reply {
            Ok(marker) => self.on_state(marker),
            Err(error) if matches!(error.code, ErrorCode::RateLimited | ErrorCode::Internal) => {
                let wait = error
                    .retry_after_ms
                    .map_or(RETRY_AFTER, Duration::from_millis);
                state.retry_at = Some(now + wait);
                None
            }
            Err(error) => {
                tracing::debug!(%room, code = %error.code, "read marker refused");
                state.confirmed = state.read;
                None
            }
        }
    }

    /// The connection is gone: what was on its way goes again on the next one.
    pub(crate) fn disconnected(&mut self) {
        for state in self.rooms.values_mut() {
            state.in_flight = None;
        }
    }

    /// The user left `room`.
    pub(crate) fn left(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// When a request is due again, if any waits.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.rooms
            .values()
            .filter(|state| state.unsent())
            .filter_map(|state| match (state.in_flight, state.retry_at) {
                (Some(sent), _) => Some(sent + self.timeout),
                (None, at) => at,
            })
            .min()
    }
}

fn unread(room: &str, state: &Room) -> Unread {
    Unread {
        room: room.to_owned(),
        read: state.read,
        count: state.count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn state(seq: u64, unread: u32, head: u64) -> ReadState {
        ReadState {
            room: "general".into(),
            seq,
            unread,
            head,
        }
    }

    fn count(unread: Option<Unread>) -> Option<(u64, u32)> {
        unread.map(|u| (u.read, u.count))
    }

    #[test]
    fn others_messages_after_the_servers_count_add_to_it_and_deletions_take_away() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        assert_eq!(count(markers.on_state(state(3, 2, 5))), Some((3, 2)));
        // Up to the head the server counted already; the user's own is never unread.
        assert_eq!(markers.delivered("general", 5, true, false), None);
        assert_eq!(markers.delivered("general", 6, false, false), None);
        assert_eq!(
            count(markers.delivered("general", 7, true, false)),
            Some((3, 3))
        );
        assert_eq!(markers.delivered("general", 7, true, false), None, "once");
        assert_eq!(count(markers.deleted("general", 7)), Some((3, 2)));
        assert_eq!(markers.deleted("general", 7), None);
        // Not a joined room: nothing to count.
        assert_eq!(markers.delivered("elsewhere", 9, true, false), None);
    }

    #[test]
    fn reading_clears_at_once_and_one_request_carries_the_latest_seq() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(3, 2, 5));
        markers.delivered("general", 6, true, false);
        assert_eq!(count(markers.mark("general", 5)), Some((5, 1)));
        assert_eq!(markers.mark("general", 4), None, "never back");
        assert_eq!(markers.next_request(now, |_| false), None, "not joined");
        let sent = markers.next_request(now, |_| true).expect("a request");
        assert_eq!((sent.room.as_str(), sent.seq), ("general", 5));
        // While it is on its way, a later read waits for its answer.
        assert_eq!(count(markers.mark("general", 6)), Some((6, 0)));
        assert_eq!(markers.next_request(now, |_| true), None);
        // The answer to the first is older than what was read since: it only confirms.
        assert_eq!(
            count(markers.answered("general", Ok(state(5, 1, 6)), now)),
            Some((6, 0))
        );
        let sent = markers.next_request(now, |_| true).expect("the latest");
        assert_eq!(sent.seq, 6);
        markers.answered("general", Ok(state(6, 0, 6)), now);
        assert_eq!(markers.next_request(now, |_| true), None, "all told");
        assert_eq!(markers.deadline(), None);
    }

    #[test]
    fn a_refusal_that_may_pass_is_sent_again_later_and_a_lost_one_after_the_timeout() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(0, 4, 4));
        markers.mark("general", 4);
        markers.next_request(now, |_| true).expect("a request");
        let refusal = ErrorBody::rate_limited("read markers", Duration::from_millis(300));
        assert_eq!(markers.answered("general", Err(refusal), now), None);
        assert_eq!(markers.next_request(now, |_| true), None);
        let later = now + Duration::from_millis(300);
        assert_eq!(markers.deadline(), Some(later));
        let again = markers.next_request(later, |_| true).expect("sent again");
        assert_eq!(again.seq, 4);
        // Unanswered: sent again once the timeout passed.
        assert_eq!(markers.next_request(later, |_| true), None);
        assert_eq!(markers.deadline(), Some(later + TIMEOUT));
        assert!(markers.next_request(later + TIMEOUT, |_| true).is_some());
        // A refusal for good is not sent again.
        let refusal = ErrorBody::new(ErrorCode::NotJoined, "join first");
        markers.answered("general", Err(refusal), later + TIMEOUT);
        assert_eq!(markers.next_request(later + TIMEOUT * 3, |_| true), None);
    }

    #[test]
    fn a_read_lost_with_the_connection_goes_again_after_the_welcome() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(2, 3, 5));
        markers.mark("general", 5);
        markers.next_request(now, |_| true).expect("a request");
        markers.disconnected();
        // The new connection's welcome does not know it yet: what was read here stands.
        assert_eq!(count(markers.on_state(state(2, 4, 6))), Some((5, 0)));
        let again = markers.next_request(now, |_| true).expect("sent again");
        assert_eq!(again.seq, 5);
    }

    #[test]
    fn another_device_reading_further_clears_what_it_read() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(1, 0, 1));
        for seq in 2..=4 {
            markers.delivered("general", seq, true, false);
        }
        assert_eq!(count(markers.on_state(state(1, 0, 1))), Some((1, 3)));
        assert_eq!(count(markers.on_state(state(3, 1, 4))), Some((3, 1)));
        assert_eq!(count(markers.on_state(state(4, 0, 4))), Some((4, 0)));
        assert_eq!(markers.next_request(Instant::now(), |_| true), None);
    }
}

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
    /// Of those, the messages that mention the user.
    pub mentions: u32,
}

/// How long a `read` refused for a passing reason waits before it is sent again, when the
/// refusal does not say.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The least time between two `read`s of one room: reading a busy room moves the marker with
/// every message, and the server needs only the latest now and then (each costs it a write).
const READ_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Room {
    /// Read up to here, as far as this client knows: the server's marker, or a later seq the
    /// user read here and the server has not confirmed yet.
    read: u64,
    /// The server has the marker up to here, or refused it for good: nothing to send below it.
    settled: u64,
    /// What the server counted unread after its marker, up to `head`.
    counted: u32,
    /// Of those, the messages that mention the user.
    counted_mentions: u32,
    head: u64,
    /// Others' messages delivered after `read`, not deleted since: those above `head` are
    /// unread beyond the server's count; those at or below it, a deletion takes off the count.
    later: BTreeSet<u64>,
    /// Those of `later` that mention the user.
    later_mentions: BTreeSet<u64>,
    /// The `read` request on its way: when it was sent, and its seq.
    in_flight: Option<(Instant, u64)>,
    /// When the last `read` was sent (see [`READ_EVERY`]).
    last_sent: Option<Instant>,
    /// When a refused `read` may go again.
    retry_at: Option<Instant>,
}

impl Room {
    fn count(&self) -> u32 {
        Self::counted(self.read, self.head, self.counted, &self.later)
    }

    fn mentions(&self) -> u32 {
        Self::counted(
            self.read,
            self.head,
            self.counted_mentions,
            &self.later_mentions,
        )
    }

    /// What the server counted (while the marker is below its head), and what came after it.
    fn counted(read: u64, head: u64, counted: u32, later: &BTreeSet<u64>) -> u32 {
        let after = read.max(head);
        let later = later.range(after + 1..).count();
        let counted = if read < head { counted } else { 0 };
        counted
            .saturating_add(u32::try_from(later).unwrap_or(u32::MAX))
            .min(MAX_UNREAD_COUNTED)
    }

    /// Whether the user's marker still has to reach the server.
    fn unsent(&self) -> bool {
        self.read > self.settled
    }

    /// When a `read` of this room may go, if one waits: at once (`Some(None)`), or not before
    /// an instant (the pace, an answer awaited, a refusal's wait).
    fn due(&self, timeout: Duration) -> Option<Option<Instant>> {
        if !self.unsent() {
            return None;
        }
        let paced = self.last_sent.map(|sent| sent + READ_EVERY);
        let unanswered = self.in_flight.map(|(sent, _)| sent + timeout);
        Some(
            [paced, unanswered, self.retry_at]
                .into_iter()
                .flatten()
                .max(),
        )
    }
}

/// The read markers of the rooms the client is in, on a server that keeps them.
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
    /// A state older than what this client has (an answer overtaken by a later read, the same
    /// marker counted at an older head) only confirms what it says.
    pub(crate) fn on_state(&mut self, state: ReadState) -> Option<Unread> {
        let room = self.rooms.entry(state.room.clone()).or_default();
        room.settled = room.settled.max(state.seq);
        let newer = state.seq > room.read || (state.seq == room.read && state.head >= room.head);
        if newer {
            room.read = state.seq;
            room.counted = state.unread;
            room.counted_mentions = state.mentions;
            room.head = state.head;
            room.later = room.later.split_off(&(state.seq + 1));
            room.later_mentions = room.later_mentions.split_off(&(state.seq + 1));
        }
        Some(unread(&state.room, room))
    }

    /// A message was delivered: someone else's, beyond the server's count, is unread until read.
    pub(crate) fn delivered(&mut self, room: &str, seq: u64, seen: Seen) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        if !seen.by_others || seen.deleted || seq <= state.read {
            return None;
        }
        // Beyond the bound nothing changes what is shown: "at least" that many.
        if state.later.len() >= 2 * MAX_UNREAD_COUNTED as usize || !state.later.insert(seq) {
            return None;
        }
        if seen.mentions_me {
            state.later_mentions.insert(seq);
        }
        (seq > state.head).then(|| unread(room, state))
    }

    /// The message at `target` was deleted by `change_seq`: no longer unread, whether this client
    /// counted it or the server did (before `head`, which a later deletion is not part of).
    pub(crate) fn deleted(&mut self, room: &str, target: u64, change_seq: u64) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        if !state.later.remove(&target) {
            return None;
        }
        let mentioned = state.later_mentions.remove(&target);
        if target <= state.head {
            if change_seq <= state.head || state.read >= state.head {
                return None;
            }
            state.counted = state.counted.saturating_sub(1);
            if mentioned {
                state.counted_mentions = state.counted_mentions.saturating_sub(1);
            }
        }
        Some(unread(room, state))
    }

    /// The user read `room` up to `seq`: shown at once, told to the server next.
    pub(crate) fn mark(&mut self, room: &str, seq: u64) -> Option<Unread> {
        let state = self.rooms.get_mut(room)?;
        if seq <= state.read {
            return None;
        }
        state.read = seq;
        state.later = state.later.split_off(&(seq + 1));
        state.later_mentions = state.later_mentions.split_off(&(seq + 1));
        Some(unread(room, state))
    }

    /// The next marker to send, of a room that is `joined` now: one per room at a time, at most
    /// one per [`READ_EVERY`].
    pub(crate) fn next_request(
        &mut self,
        now: Instant,
        joined: impl Fn(&str) -> bool,
    ) -> Option<ReadRequest> {
        let timeout = self.timeout;
        let (room, state) = self.rooms.iter_mut().find(|(room, state)| {
            state
                .due(timeout)
                .is_some_and(|due| due.is_none_or(|at| at <= now))
                && joined(room)
        })?;
        state.in_flight = Some((now, state.read));
        state.last_sent = Some(now);
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
        let sent = state.in_flight.take().map(|(_, seq)| seq);
        match reply {
            Ok(marker) => {
                // The server stops a marker at its latest seq: what was sent is settled either way.
                state.settled = state.settled.max(sent.unwrap_or_default());
                self.on_state(marker)
            }
            Err(error) if matches!(error.code, ErrorCode::RateLimited | ErrorCode::Internal) => {
                let wait = error
                    .retry_after_ms
                    .map_or(RETRY_AFTER, Duration::from_millis);
                state.retry_at = Some(now + wait);
                None
            }
            Err(error) => {
                tracing::debug!(%room, code = %error.code, "read marker refused");
                state.settled = state.settled.max(sent.unwrap_or(state.read));
                None
            }
        }
    }

    /// The connection is gone: what was on its way goes again on the next one.
    pub(crate) fn disconnected(&mut self) {
        for state in self.rooms.values_mut() {
            state.in_flight = None;
            state.retry_at = None;
        }
    }

    /// The user left `room`.
    pub(crate) fn left(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// When a request of a `joined` room waiting for its time is due, if any (one that may go
    /// at once goes with the next effects).
    pub(crate) fn deadline(&self, joined: impl Fn(&str) -> bool) -> Option<Instant> {
        self.rooms
            .iter()
            .filter(|(room, _)| joined(room))
            .filter_map(|(_, state)| state.due(self.timeout).flatten())
            .min()
    }
}

fn unread(room: &str, state: &Room) -> Unread {
    Unread {
        room: room.to_owned(),
        read: state.read,
        count: state.count(),
        mentions: state.mentions(),
    }
}

/// What a delivered message is to the user.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    /// Someone else's (the user's own are never unread).
    pub(crate) by_others: bool,
    /// Deleted already.
    pub(crate) deleted: bool,
    /// It mentions the user.
    pub(crate) mentions_me: bool,
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
            mentions: 0,
            head,
        }
    }

    fn theirs() -> Seen {
        Seen {
            by_others: true,
            ..Seen::default()
        }
    }

    fn count(unread: Option<Unread>) -> Option<(u64, u32)> {
        unread.map(|u| (u.read, u.count))
    }

    fn joined(_: &str) -> bool {
        true
    }

    #[test]
    fn others_messages_after_the_servers_count_add_to_it_and_deletions_take_away() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        assert_eq!(count(markers.on_state(state(3, 2, 5))), Some((3, 2)));
        // Up to the head the server counted already; the user's own is never unread.
        assert_eq!(markers.delivered("general", 5, theirs()), None);
        assert_eq!(markers.delivered("general", 6, Seen::default()), None);
        assert_eq!(
            count(markers.delivered("general", 7, theirs())),
            Some((3, 3))
        );
        assert_eq!(markers.delivered("general", 7, theirs()), None, "once");
        assert_eq!(count(markers.deleted("general", 7, 8)), Some((3, 2)));
        assert_eq!(markers.deleted("general", 7, 9), None);
        // A message the server counted, deleted since its count: one less.
        assert_eq!(count(markers.deleted("general", 5, 10)), Some((3, 1)));
        // Not a joined room: nothing to count.
        assert_eq!(markers.delivered("elsewhere", 9, theirs()), None);
    }

    #[test]
    fn mentions_of_the_user_are_counted_apart_and_read_with_the_rest() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        let mut counted = state(3, 2, 5);
        counted.mentions = 1;
        let told = markers.on_state(counted).expect("told");
        assert_eq!((told.count, told.mentions), (2, 1));
        let mention = Seen {
            mentions_me: true,
            ..theirs()
        };
        let told = markers.delivered("general", 6, mention).expect("told");
        assert_eq!((told.count, told.mentions), (3, 2));
        let told = markers.deleted("general", 6, 7).expect("told");
        assert_eq!((told.count, told.mentions), (2, 1));
        let told = markers.mark("general", 7).expect("told");
        assert_eq!((told.count, told.mentions), (0, 0));
    }

    #[test]
    fn a_deletion_the_servers_count_knew_of_changes_nothing() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(1, 1, 4));
        // A catch-up page brings the message, then its deletion (seq 4, within the count).
        markers.delivered("general", 2, theirs());
        assert_eq!(markers.deleted("general", 2, 4), None);
        assert_eq!(count(markers.mark("general", 1)), None);
        assert_eq!(count(markers.on_state(state(1, 1, 4))), Some((1, 1)));
    }

    #[test]
    fn reading_clears_at_once_and_one_request_at_a_time_carries_the_latest_seq() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(3, 2, 5));
        markers.delivered("general", 6, theirs());
        assert_eq!(count(markers.mark("general", 6)), Some((6, 0)));
        assert_eq!(markers.mark("general", 4), None, "never back");
        assert_eq!(markers.next_request(now, |_| false), None, "not joined");
        assert_eq!(markers.deadline(|_| false), None, "nothing due there");
        let sent = markers.next_request(now, joined).expect("a request");
        assert_eq!((sent.room.as_str(), sent.seq), ("general", 6));
        // While it is on its way, a later read waits for its answer.
        markers.delivered("general", 7, theirs());
        assert_eq!(count(markers.mark("general", 7)), Some((7, 0)));
        assert_eq!(markers.next_request(now, joined), None);
        // The answer to the first is older than what was read since: it only confirms.
        assert_eq!(
            count(markers.answered("general", Ok(state(6, 0, 7)), now)),
            Some((7, 0))
        );
        // The next goes once a second has passed since the last.
        assert_eq!(markers.next_request(now, joined), None, "paced");
        let later = now + READ_EVERY;
        assert_eq!(markers.deadline(joined), Some(later));
        let sent = markers.next_request(later, joined).expect("the latest");
        assert_eq!(sent.seq, 7);
        markers.answered("general", Ok(state(7, 0, 7)), later);
        assert_eq!(
            markers.next_request(later + TIMEOUT, joined),
            None,
            "all told"
        );
        assert_eq!(markers.deadline(joined), None);
    }

    #[test]
    fn a_marker_past_the_servers_end_is_settled_by_its_answer_not_sent_again() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(2, 0, 2));
        markers.mark("general", 9);
        markers.next_request(now, joined).expect("a request");
        // The server stops it at its latest seq, 5.
        markers.answered("general", Ok(state(5, 0, 5)), now);
        assert_eq!(markers.next_request(now + TIMEOUT, joined), None);
    }

    #[test]
    fn a_refusal_that_may_pass_is_sent_again_later_and_a_lost_one_after_the_timeout() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(0, 4, 4));
        markers.mark("general", 4);
        markers.next_request(now, joined).expect("a request");
        let refusal = ErrorBody::rate_limited("read markers", Duration::from_millis(3_000));
        assert_eq!(markers.answered("general", Err(refusal), now), None);
        assert_eq!(markers.next_request(now + READ_EVERY, joined), None);
        let later = now + Duration::from_millis(3_000);
        assert_eq!(markers.deadline(joined), Some(later));
        let again = markers.next_request(later, joined).expect("sent again");
        assert_eq!(again.seq, 4);
        // Unanswered: sent again once the timeout passed.
        assert_eq!(markers.deadline(joined), Some(later + TIMEOUT));
        assert!(markers.next_request(later + TIMEOUT, joined).is_some());
        // A refusal for good is not sent again.
        let refusal = ErrorBody::new(ErrorCode::NotJoined, "join first");
        markers.answered("general", Err(refusal), later + TIMEOUT);
        assert_eq!(markers.next_request(later + TIMEOUT * 3, joined), None);
        assert_eq!(markers.deadline(joined), None);
    }

    #[test]
    fn a_read_lost_with_the_connection_goes_again_after_the_welcome() {
        let now = Instant::now();
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(2, 3, 5));
        markers.mark("general", 5);
        markers.next_request(now, joined).expect("a request");
        markers.disconnected();
        // The new connection's welcome does not know it yet: what was read here stands.
        assert_eq!(count(markers.on_state(state(2, 4, 6))), Some((5, 0)));
        let again = markers
            .next_request(now + READ_EVERY, joined)
            .expect("sent again");
        assert_eq!(again.seq, 5);
    }

    #[test]
    fn another_device_reading_further_clears_what_it_read_and_an_older_count_loses_nothing() {
        let mut markers = ReadMarkers::new(TIMEOUT);
        markers.on_state(state(1, 0, 1));
        for seq in 2..=4 {
            markers.delivered("general", seq, theirs());
        }
        assert_eq!(count(markers.on_state(state(3, 1, 4))), Some((3, 1)));
        // The same marker counted at an older head (two devices marking at once): ignored.
        assert_eq!(count(markers.on_state(state(3, 0, 3))), Some((3, 1)));
        // A further marker at an older head: what came after it is still counted.
        markers.delivered("general", 5, theirs());
        assert_eq!(count(markers.on_state(state(4, 0, 4))), Some((4, 1)));
        assert_eq!(markers.next_request(Instant::now(), joined), None);
    }
}

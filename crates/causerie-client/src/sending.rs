//! Sending: the user's messages go out in the order they were typed, one at a time, each resent
//! until the server acks it (under the same id, so it is stored once), and paused while the server
//! asks for patience.
//!
//! One at a time because the server stores messages in the order they arrive: two in flight could
//! swap places when the first is lost and resent.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use causerie_protocol::{
    DeleteMessage, EditMessage, ErrorBody, ErrorCode, Limits, ReactRequest, SendMessage,
    TypingRequest,
};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::connection::Outgoing;
use crate::outbox::{LocalId, OutboxAction, OutboxEntry};
use crate::timeline::Entry;

/// The outbox in memory, and where sending stands on the current connection.
#[derive(Debug)]
pub(crate) struct Sending {
    /// Unconfirmed messages, oldest first.
    queue: VecDeque<OutboxEntry>,
    /// The message waiting for its ack, and when to give up waiting.
    in_flight: Option<(LocalId, Instant)>,
    /// Acked on this connection, but not delivered yet (held back in a timeline behind a gap):
    /// not sent again.
    acked: HashSet<LocalId>,
    /// Sending waits until then after `rate_limited` or `internal`.
    paused_until: Option<Instant>,
    /// `internal` refusals in a row, for the backoff before the next resend.
    failed_sends: u32,
    /// Rooms told the user is typing on this connection, and when to tell them again: the
    /// server relays a lasting "typing" only as often as it is told, and others stop showing it
    /// after [`causerie_protocol::limits::TYPING_SHOWN_MS`].
    typing: BTreeMap<String, Instant>,
    backoff: Backoff,
    timeout: Duration,
}

/// What came of an ack.
#[derive(Debug, PartialEq)]
pub(crate) enum Acked {
    /// Stored: the server's copy (a message, or a change), to deliver (and so confirm the entry).
    Stored(Entry),
    /// Refused for good: the entry is gone from the outbox.
    Refused(LocalId, ErrorBody),
    /// Refused for now: sent again after a pause.
    Paused,
    /// Not this request's answer (rust_socketio draws ack ids at random): the timeout resends.
    Ignored,
}

/// What to send next.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Dispatch {
    /// Entries that break the server's limits, taken out of the outbox: refused here as the
    /// server would refuse them, without a round trip.
    pub(crate) refused: Vec<(LocalId, ErrorBody)>,
    pub(crate) send: Option<Outgoing>,
}

impl Sending {
    /// Sending `entries` (restored from the outbox file) first.
    pub(crate) fn new(entries: Vec<OutboxEntry>, backoff: Backoff, timeout: Duration) -> Self {
        Self {
            queue: entries.into(),
            in_flight: None,
            acked: HashSet::new(),
            paused_until: None,
            failed_sends: 0,
            typing: BTreeMap::new(),
            backoff,
            timeout,
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.queue.iter().any(|e| e.local_id.as_str() == id)
    }

    /// Queues a message; if the user was typing in its room, the notice that they stopped.
    pub(crate) fn push(&mut self, entry: OutboxEntry) -> Option<TypingRequest> {
        let room = entry.room.clone();
        self.queue.push_back(entry);
        // Sent, so no longer typing: as every chat app shows it.
        self.typing.remove(&room).map(|_| TypingRequest {
            room,
            typing: false,
        })
    }

    /// Takes an entry out (confirmed, or refused); `false` if it was not there.
    pub(crate) fn remove(&mut self, id: &LocalId) -> bool {
        self.acked.remove(id);
        let before = self.queue.len();
        self.queue.retain(|e| e.local_id != *id);
        self.queue.len() != before
    }

    /// Tells the room the user is typing (and again every refresh, until told they stopped), or
    /// stopped.
    pub(crate) fn typing(&mut self, room: String, typing: bool, now: Instant) -> TypingRequest {
        if typing {
            self.typing.insert(room.clone(), now + TYPING_REFRESH);
        } else {
            self.typing.remove(&room);
        }
        TypingRequest { room, typing }
    }

    /// The "still typing" notices due at `now`.
    pub(crate) fn typing_refreshes(&mut self, now: Instant) -> Vec<TypingRequest> {
        let mut due = Vec::new();
        for (room, at) in &mut self.typing {
            if now >= *at {
                *at = now + TYPING_REFRESH;
                due.push(TypingRequest {
                    room: room.clone(),
                    typing: true,
                });
            }
        }
        due
    }

    /// A new connection: nothing is in flight or acked on it, nothing paused.
    pub(crate) fn connected(&mut self) {
        self.in_flight = None;
        self.acked.clear();
        self.paused_until = None;
        self.typing.clear();
    }

    /// The oldest entry not acked yet, if none is in flight and sending is not paused, and the
    /// entries before it that break `limits`. `ready(room)` says whether a room may be sent to
    /// (`false` while its join is on its way).
    pub(crate) fn next(
        &mut self,
        now: Instant,
        limits: &Limits,
        ready: impl Fn(&str) -> bool,
    ) -> Dispatch {
        let mut dispatch = Dispatch::default();
        if self.in_flight.is_some() || self.paused_until.is_some() {
            return dispatch;
        }
        while let Some(entry) = self
            .queue
            .iter()
            .find(|e| !self.acked.contains(&e.local_id))
        {
            if !ready(&entry.room) {
                break;
            }
            let local_id = entry.local_id.clone();
            let checked = match entry.action {
                // A server of before edits would never answer: refused here instead.
                OutboxAction::Edit { .. } | OutboxAction::Delete { .. }
                    if limits.edit_window_secs.is_none() =>
                {
                    Err(ErrorBody::new(
                        ErrorCode::Invalid,
                        "this server does not take edits or deletions",
                    ))
                }
                // A server of before reactions would never answer: refused here instead. Which
                // emoji are reactions, the server says (its table may be newer than this one's).
                OutboxAction::React { .. } if limits.max_reactions_per_message.is_none() => Err(
                    ErrorBody::new(ErrorCode::Invalid, "this server does not take reactions"),
                ),
                OutboxAction::Send | OutboxAction::Edit { .. } => limits.check_message(&entry.text),
                OutboxAction::Delete { .. } | OutboxAction::React { .. } => Ok(()),
            };
            if let Err(error) = checked {
                self.remove(&local_id);
                dispatch.refused.push((local_id, error));
                continue;
            }
            dispatch.send = Some(request(entry));
            self.in_flight = Some((local_id, now + self.timeout));
            break;
        }
        dispatch
    }

    /// The server's answer to sending `local_id`. `limits` give the wait after `rate_limited`
    /// when the server does not say.
    pub(crate) fn on_ack(
        &mut self,
        local_id: LocalId,
        reply: Result<Entry, ErrorBody>,
        now: Instant,
        limits: &Limits,
    ) -> Acked {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|(id, _)| *id == local_id)
        {
            self.in_flight = None;
        }
        match reply {
            Ok(stored) if stored.client_id() == local_id.as_str() => {
                self.failed_sends = 0;
                if self.contains(local_id.as_str()) {
                    self.acked.insert(local_id);
                }
                Acked::Stored(stored)
            }
            Ok(_) => Acked::Ignored,
            Err(error) if error.code == ErrorCode::RateLimited => {
                let wait = error
                    .retry_after_ms
                    .map_or_else(|| one_token(limits), Duration::from_millis);
                self.paused_until = Some(now + wait);
                Acked::Paused
            }
            // The server could not store it (a full disk, a lock) or another refusal for now:
            // back off, as from an outage, so that a crowd of clients does not resend in
            // lockstep while it recovers.
            Err(error) if error.code.is_retryable() => {
                self.failed_sends = self.failed_sends.saturating_add(1);
                self.paused_until = Some(now + self.backoff.delay(self.failed_sends));
                Acked::Paused
            }
            Err(error) => {
                self.remove(&local_id);
                Acked::Refused(local_id, error)
            }
        }
    }

    /// Ends a pause that is over; `true` when the message in flight went unanswered: it is sent
    /// again (same id, so stored once) and the connection should be checked.
    pub(crate) fn on_timer(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        if self.in_flight.as_ref().is_some_and(|(_, at)| now >= *at) {
            self.in_flight = None;
            return true;
        }
        false
    }

    /// When [`Sending::on_timer`] or [`Sending::typing_refreshes`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let in_flight = self.in_flight.as_ref().map(|(_, at)| *at);
        let refresh = self.typing.values().min().copied();
        in_flight
            .into_iter()
            .chain(self.paused_until)
            .chain(refresh)
            .min()
    }
}

/// The request for an outbox entry.
fn request(entry: &OutboxEntry) -> Outgoing {
    let (id, room, text) = (
        entry.local_id.as_str().to_owned(),
        Some(entry.room.clone()),
        entry.text.clone(),
    );
    match entry.action {
        OutboxAction::Send => Outgoing::Send(SendMessage {
            id,
            room,
            text,
            reply_to: entry.reply_to,
            mentions: entry.mentions.clone(),
        }),
        OutboxAction::Edit { target } => Outgoing::Edit(EditMessage {
            id,
            room,
            target,
            text,
        }),
        OutboxAction::Delete { target } => Outgoing::Delete(DeleteMessage { id, room, target }),
        OutboxAction::React { target } => Outgoing::React(ReactRequest {
            id,
            room,
            target,
            emoji: text,
        }),
    }
}

/// How often a lasting "typing" is told again.
const TYPING_REFRESH: Duration =
    Duration::from_millis(causerie_protocol::limits::TYPING_REFRESH_MS);

/// How long to wait after `rate_limited` when the server does not say: one token of its rate.
fn one_token(limits: &Limits) -> Duration {
    let per_second = limits.rate_limit_per_second.unwrap_or(1).max(1);
    (Duration::from_secs(1) / per_second).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use causerie_protocol::{Message, User};

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn entry(id: &str, text: &str) -> OutboxEntry {
        OutboxEntry {
            local_id: LocalId::from(id),
            room: "general".into(),
            text: text.into(),
            action: OutboxAction::Send,
            reply_to: None,
            mentions: Vec::new(),
        }
    }

    fn sending(entries: &[OutboxEntry]) -> Sending {
        Sending::new(entries.to_vec(), Backoff::default(), TIMEOUT)
    }

    fn stored(id: &str, seq: u64) -> Result<Entry, ErrorBody> {
        Ok(Entry::Message(Message {
            id: format!("m{seq}"),
            seq,
            client_id: id.into(),
            room: "general".into(),
            text: "text".into(),
            author: User {
                id: "u1".into(),
                name: "Ada".into(),
            },
            sent_at: "2026-11-27T00:00:00Z".into(),
            edited_at: None,
            deleted: false,
            as_of: 0,
            mentions: Vec::new(),
            reactions: Vec::new(),
            reply_to: None,
        }))
    }

    fn sent_id(dispatch: &Dispatch) -> Option<&str> {
        match dispatch.send.as_ref()? {
            Outgoing::Send(send) => Some(&send.id),
            Outgoing::Edit(edit) => Some(&edit.id),
            Outgoing::Delete(delete) => Some(&delete.id),
            _ => None,
        }
    }

    fn everywhere(_: &str) -> bool {
        true
    }

    #[test]
    fn messages_go_one_at_a_time_in_the_order_typed() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one"), entry("b", "two")]);
        assert_eq!(sent_id(&sending.next(now, &limits, everywhere)), Some("a"));
        assert_eq!(sending.next(now, &limits, everywhere), Dispatch::default());
        assert!(matches!(
            sending.on_ack("a".into(), stored("a", 1), now, &limits),
            Acked::Stored(_)
        ));
        assert_eq!(sent_id(&sending.next(now, &limits, everywhere)), Some("b"));
    }

    #[test]
    fn an_acked_message_held_behind_a_gap_is_not_sent_again() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one")]);
        sending.next(now, &limits, everywhere);
        sending.on_ack("a".into(), stored("a", 5), now, &limits);
        assert!(sending.contains("a"), "confirmed only once delivered");
        assert_eq!(sending.next(now, &limits, everywhere), Dispatch::default());
        // On the next connection it was never acked: sent again, and stored once by its id.
        sending.connected();
        assert_eq!(sent_id(&sending.next(now, &limits, everywhere)), Some("a"));
    }

    #[test]
    fn an_unanswered_message_is_sent_again_after_the_timeout() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one")]);
        sending.next(now, &limits, everywhere);
        assert_eq!(sending.deadline(), Some(now + TIMEOUT));
        assert!(!sending.on_timer(now + TIMEOUT / 2));
        assert!(sending.on_timer(now + TIMEOUT), "check the connection");
        assert_eq!(
            sent_id(&sending.next(now + TIMEOUT, &limits, everywhere)),
            Some("a")
        );
    }

    #[test]
    fn a_resends_late_ack_after_the_message_was_confirmed_changes_nothing() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one"), entry("b", "two")]);
        sending.next(now, &limits, everywhere);
        sending.on_timer(now + TIMEOUT);
        sending.next(now + TIMEOUT, &limits, everywhere);
        // A catch-up page delivered it meanwhile, which confirmed it.
        assert!(sending.remove(&"a".into()));
        let late = sending.on_ack("a".into(), stored("a", 1), now + TIMEOUT, &limits);
        assert!(matches!(late, Acked::Stored(_)));
        assert!(!sending.contains("a"));
        assert_eq!(
            sent_id(&sending.next(now + TIMEOUT, &limits, everywhere)),
            Some("b")
        );
    }

    #[test]
    fn an_ack_for_another_message_is_ignored_and_the_timeout_resends() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one")]);
        sending.next(now, &limits, everywhere);
        assert_eq!(
            sending.on_ack("a".into(), stored("zzz", 1), now, &limits),
            Acked::Ignored
        );
        assert!(sending.contains("a"));
    }

    #[test]
    fn rate_limited_pauses_for_the_servers_wait_then_sends_again() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one")]);
        sending.next(now, &limits, everywhere);
        let mut error = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        error.retry_after_ms = Some(1_500);
        assert_eq!(
            sending.on_ack("a".into(), Err(error), now, &limits),
            Acked::Paused
        );
        let until = now + Duration::from_millis(1_500);
        assert_eq!(sending.deadline(), Some(until));
        assert_eq!(sending.next(now, &limits, everywhere), Dispatch::default());
        assert!(!sending.on_timer(until));
        assert_eq!(
            sent_id(&sending.next(until, &limits, everywhere)),
            Some("a")
        );
    }

    #[test]
    fn rate_limited_without_a_wait_pauses_one_token_of_the_servers_rate() {
        let now = Instant::now();
        let limits = Limits {
            rate_limit_per_second: Some(4),
            ..Limits::default()
        };
        let mut sending = sending(&[entry("a", "one")]);
        sending.next(now, &limits, everywhere);
        let error = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        sending.on_ack("a".into(), Err(error), now, &limits);
        assert_eq!(sending.deadline(), Some(now + Duration::from_millis(250)));
    }

    #[test]
    fn a_server_failing_to_store_is_backed_off_longer_each_time() {
        let now = Instant::now();
        let limits = Limits::default();
        let backoff = Backoff::default();
        let mut sending = sending(&[entry("a", "one")]);
        for failures in 1..=4 {
            sending.next(now, &limits, everywhere);
            let error = ErrorBody::new(ErrorCode::Internal, "disk full");
            assert_eq!(
                sending.on_ack("a".into(), Err(error), now, &limits),
                Acked::Paused
            );
            let wait = sending.deadline().expect("paused") - now;
            assert!(wait >= backoff.initial && wait <= backoff.ceiling(failures));
            sending.on_timer(now + wait);
        }
        assert!(sending.contains("a"), "kept until stored");
    }

    #[test]
    fn a_refusal_for_good_takes_the_message_out_and_the_next_goes() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one"), entry("b", "two")]);
        sending.next(now, &limits, everywhere);
        let error = ErrorBody::new(ErrorCode::NotJoined, "join first");
        assert_eq!(
            sending.on_ack("a".into(), Err(error.clone()), now, &limits),
            Acked::Refused("a".into(), error)
        );
        assert!(!sending.contains("a"));
        assert_eq!(sent_id(&sending.next(now, &limits, everywhere)), Some("b"));
    }

    #[test]
    fn text_over_the_servers_limit_is_refused_here_and_the_next_goes_at_once() {
        let now = Instant::now();
        let limits = Limits {
            max_message_chars: 5,
            ..Limits::default()
        };
        let mut sending = sending(&[entry("a", "far too long"), entry("b", "ok")]);
        let dispatch = sending.next(now, &limits, everywhere);
        assert_eq!(sent_id(&dispatch), Some("b"));
        assert_eq!(dispatch.refused.len(), 1);
        assert_eq!(dispatch.refused[0].0, LocalId::from("a"));
        assert_eq!(dispatch.refused[0].1.code, ErrorCode::TooLong);
        assert!(!sending.contains("a"));
    }

    #[test]
    fn a_message_waits_for_its_rooms_join() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut sending = sending(&[entry("a", "one")]);
        assert_eq!(sending.next(now, &limits, |_| false), Dispatch::default());
        assert_eq!(sent_id(&sending.next(now, &limits, everywhere)), Some("a"));
    }

    #[test]
    fn sending_where_the_user_was_typing_tells_the_room_they_stopped() {
        let mut sending = sending(&[]);
        sending.typing("general".into(), true, Instant::now());
        let stop = sending.push(entry("a", "one"));
        assert_eq!(
            stop,
            Some(TypingRequest {
                room: "general".into(),
                typing: false
            })
        );
        assert_eq!(sending.push(entry("b", "two")), None, "told once");
    }

    #[test]
    fn a_lasting_typing_is_told_again_every_refresh_until_it_stops() {
        let now = Instant::now();
        let mut sending = sending(&[]);
        sending.typing("general".into(), true, now);
        assert!(
            sending
                .typing_refreshes(now + TYPING_REFRESH / 2)
                .is_empty()
        );
        assert_eq!(sending.deadline(), Some(now + TYPING_REFRESH));
        let again = sending.typing_refreshes(now + TYPING_REFRESH);
        assert_eq!(
            again,
            [TypingRequest {
                room: "general".into(),
                typing: true
            }]
        );
        assert_eq!(sending.deadline(), Some(now + TYPING_REFRESH * 2));
        sending.typing("general".into(), false, now + TYPING_REFRESH);
        assert!(
            sending
                .typing_refreshes(now + TYPING_REFRESH * 3)
                .is_empty()
        );
        assert_eq!(sending.deadline(), None);
    }
}

//! Per-room ordering: every entry of a room's log (a message, or a change to one) once, in seq
//! order, whatever order the network brings them in.
//!
//! Messages reach a client three ways (live broadcasts, acks of its own sends, history pages) and
//! can repeat or overtake each other across reconnects. The server's seqs count up by exactly 1
//! per room, so a message is delivered when its seq is the next one expected; a later one waits
//! until the gap is filled (by a catch-up page), and an earlier one was delivered already.
//!
//! Until the room's first page says where delivery starts, messages wait: a live message can
//! reach the client before the page of the join that subscribed it.

use std::collections::{BTreeMap, BTreeSet};

use causerie_protocol::{Change, Message};

/// Most messages kept waiting behind a gap; past that, the gap is given up on (see `accept`).
const MAX_WAITING: usize = 10_000;

/// Most messages not handed out yet whose changes are kept (see `unseen_changes`).
const MAX_UNSEEN_CHANGES: usize = 1_000;
/// Most changes kept for one such message.
const MAX_CHANGES_PER_MESSAGE: usize = 64;

/// An entry of a room's log: messages and changes share its seqs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Message(Message),
    Change(Change),
}

impl Entry {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Self::Message(message) => message.seq,
            Self::Change(change) => change.seq,
        }
    }

    pub(crate) fn room(&self) -> &str {
        match self {
            Self::Message(message) => &message.room,
            Self::Change(change) => &change.room,
        }
    }

    /// The id its author's client gave it.
    pub(crate) fn client_id(&self) -> &str {
        match self {
            Self::Message(message) => &message.client_id,
            Self::Change(change) => &change.client_id,
        }
    }
}

impl From<Message> for Entry {
    fn from(message: Message) -> Self {
        Self::Message(message)
    }
}

impl From<Change> for Entry {
    fn from(change: Change) -> Self {
        Self::Change(change)
    }
}

/// One room's delivery state.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// The seq to deliver next; `None` until the room's first page sets where this client starts.
    next: Option<u64>,
    waiting: BTreeMap<u64, Entry>,
    /// Where delivery started.
    start: Option<u64>,
    /// Seqs handed out below `start` (older pages, acks of messages stored before it, pages
    /// before the start was known): never handed out twice.
    shown_below: BTreeSet<u64>,
    /// The latest change delivered to each message this client has not handed out (older than
    /// where delivery started): a page of older history read before that change committed
    /// would show the message as it was, so the change is applied to it on the way out.
    unseen_changes: BTreeMap<u64, Vec<Change>>,
}

impl Timeline {
    /// Sets where delivery starts if nothing was delivered yet (the first message a client sees of
    /// a room is the oldest of its first page, not necessarily seq 1), and returns what waited
    /// for it and is now deliverable.
    pub(crate) fn start_at(&mut self, seq: u64) -> Vec<Entry> {
        if self.next.is_some() {
            return Vec::new();
        }
        self.next = Some(seq.max(1));
        self.start = self.next;
        self.waiting.retain(|&waiting, _| waiting >= seq);
        self.drain()
    }

    /// Of a page of older history, the messages not handed out yet, oldest first and each once
    /// (pages overlap what was delivered, repeat, or come back out of order): the user sees each
    /// message once however it came.
    pub(crate) fn older(&mut self, page: Vec<Message>) -> Vec<Message> {
        let mut fresh: BTreeMap<u64, Message> = page
            .into_iter()
            .filter(|message| message.seq > 0 && !self.was_shown(message.seq))
            .map(|message| (message.seq, message))
            .collect();
        for (seq, message) in &mut fresh {
            // In seq order; those its state reflects already change nothing (`asOf`).
            for change in self.unseen_changes.remove(seq).unwrap_or_default() {
                apply(message, &change);
            }
        }
        for &seq in fresh.keys() {
            self.shown(seq);
        }
        fresh.into_values().collect()
    }

    /// Records that `seq` was handed out some other way (a resend's ack for a message stored
    /// before delivery started).
    pub(crate) fn shown(&mut self, seq: u64) {
        if self.start.is_none_or(|start| seq < start) {
            self.shown_below.insert(seq);
        }
    }

    /// The lowest seq from which every message up to the live ones was handed out: where the
    /// next page of older history ends. `None` until delivery starts.
    pub(crate) fn shown_from(&self) -> Option<u64> {
        let mut from = self.start?;
        for &seq in self.shown_below.range(..from).rev() {
            if seq + 1 != from {
                break;
            }
            from = seq;
        }
        Some(from)
    }

    fn was_shown(&self, seq: u64) -> bool {
        let live = match (self.start, self.next) {
            (Some(start), Some(next)) => (start..next).contains(&seq),
            _ => false,
        };
        live || self.shown_below.contains(&seq)
    }

    /// Takes an entry and returns those now deliverable, in seq order (possibly none).
    pub(crate) fn accept(&mut self, entry: impl Into<Entry>) -> Vec<Entry> {
        let entry = entry.into();
        let seq = entry.seq();
        // Seqs start at 1, and one that cannot be followed is no seq a server hands out.
        if seq == 0 || seq == u64::MAX {
            return Vec::new();
        }
        if self.next.is_some_and(|next| seq < next) {
            return Vec::new();
        }
        self.waiting.entry(seq).or_insert(entry);
        if self.waiting.len() > MAX_WAITING {
            // The server's seqs have no gaps, so this means catch-up keeps failing: deliver what
            // is here rather than hold it forever.
            self.next = self.waiting.keys().next().copied();
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<Entry> {
        let Some(mut next) = self.next else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        while let Some(entry) = self.waiting.remove(&next) {
            if let Entry::Change(change) = &entry
                && !self.was_shown(change.target)
            {
                self.remember(change.clone());
            }
            // Handed out as a page before delivery started: not twice.
            if !self.shown_below.remove(&next) {
                ready.push(entry);
            }
            next += 1; // below u64::MAX: `accept` refuses that seq
        }
        self.next = Some(next);
        ready
    }

    fn remember(&mut self, change: Change) {
        let changes = self.unseen_changes.entry(change.target).or_default();
        if changes.last().is_none_or(|last| last.seq < change.seq) {
            changes.push(change);
        }
        // A message with more changes than this (reactions pile up) keeps its latest ones.
        if changes.len() > MAX_CHANGES_PER_MESSAGE {
            changes.remove(0);
        }
        while self.unseen_changes.len() > MAX_UNSEEN_CHANGES {
            self.unseen_changes.pop_first();
        }
    }

    /// Whether messages wait behind a gap that a catch-up page should fill.
    pub(crate) fn has_gap(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Whether `seq` was delivered already.
    pub(crate) fn is_past(&self, seq: u64) -> bool {
        self.next.is_some_and(|next| seq < next)
    }

    /// Whether the room's latest seq (`head`, from a welcome or a join) is beyond what was
    /// delivered: then a catch-up page should fetch the rest.
    pub(crate) fn is_behind(&self, head: u64) -> bool {
        self.last_delivered() < head
    }

    /// The highest seq delivered, 0 when none.
    pub(crate) fn last_delivered(&self) -> u64 {
        self.next.map_or(0, |next| next.saturating_sub(1))
    }
}

/// A message as `change` left it.
fn apply(message: &mut Message, change: &Change) {
    message.apply(change);
}

#[cfg(test)]
mod tests {
    use super::*;
    use causerie_protocol::User;

    fn message(seq: u64) -> Message {
        Message {
            id: format!("m{seq}"),
            client_id: format!("c{seq}"),
            room: "general".into(),
            seq,
            author: User {
                id: "u".into(),
                name: "U".into(),
            },
            text: String::new(),
            sent_at: String::new(),
            edited_at: None,
            deleted: false,
            as_of: 0,
            mentions: Vec::new(),
            reactions: Vec::new(),
            reply_to: None,
        }
    }

    fn seqs<T: Into<Entry>>(entries: Vec<T>) -> Vec<u64> {
        entries.into_iter().map(|e| e.into().seq()).collect()
    }

    #[test]
    fn in_order_messages_pass_straight_through() {
        let mut timeline = Timeline::default();
        timeline.start_at(1);
        assert_eq!(seqs(timeline.accept(message(1))), [1]);
        assert_eq!(seqs(timeline.accept(message(2))), [2]);
        assert_eq!(timeline.last_delivered(), 2);
    }

    fn page(seqs: &[u64]) -> Vec<Message> {
        seqs.iter().copied().map(message).collect()
    }

    #[test]
    fn older_pages_give_each_message_once_whatever_their_order() {
        let mut timeline = Timeline::default();
        timeline.start_at(9);
        assert_eq!(seqs(timeline.accept(message(9))), [9]);
        assert_eq!(timeline.shown_from(), Some(9));
        // A page that overlaps what was delivered, out of order and with a repeat.
        assert_eq!(seqs(timeline.older(page(&[8, 6, 9, 7, 8]))), [6, 7, 8]);
        assert_eq!(timeline.shown_from(), Some(6));
        // The same page again: nothing new.
        assert!(timeline.older(page(&[6, 7, 8])).is_empty());
        // Pages answered out of order lose nothing: an older one first, then the one between.
        assert_eq!(seqs(timeline.older(page(&[1, 2]))), [1, 2]);
        assert_eq!(timeline.shown_from(), Some(6), "3 to 5 still to fetch");
        assert_eq!(seqs(timeline.older(page(&[3, 4, 5]))), [3, 4, 5]);
        assert_eq!(timeline.shown_from(), Some(1));
        // Live delivery goes on above, untouched.
        assert_eq!(seqs(timeline.accept(message(10))), [10]);
    }

    #[test]
    fn a_message_confirmed_by_its_ack_before_the_start_is_not_shown_again_by_a_page() {
        let mut timeline = Timeline::default();
        timeline.start_at(61);
        timeline.shown(40);
        let older = seqs(timeline.older(page(&[38, 39, 40, 41])));
        assert_eq!(older, [38, 39, 41]);
    }

    #[test]
    fn a_page_before_the_start_is_known_is_not_delivered_again_live() {
        let mut timeline = Timeline::default();
        assert_eq!(seqs(timeline.older(page(&[4, 5]))), [4, 5]);
        assert!(timeline.accept(message(5)).is_empty());
        assert!(timeline.start_at(4).is_empty());
        // The catch-up page that fills the gap brings them again: still not twice.
        assert!(timeline.accept(message(4)).is_empty());
        assert_eq!(seqs(timeline.accept(message(6))), [6]);
    }

    #[test]
    fn repeats_are_dropped() {
        let mut timeline = Timeline::default();
        timeline.start_at(1);
        timeline.accept(message(1));
        assert!(timeline.accept(message(1)).is_empty());
        assert!(timeline.is_past(1));
    }

    #[test]
    fn a_message_after_a_gap_waits_until_the_gap_is_filled() {
        let mut timeline = Timeline::default();
        timeline.start_at(1);
        timeline.accept(message(1));
        assert!(timeline.accept(message(4)).is_empty());
        assert!(timeline.has_gap());
        assert_eq!(timeline.last_delivered(), 1);
        assert_eq!(seqs(timeline.accept(message(2))), [2]);
        assert_eq!(seqs(timeline.accept(message(3))), [3, 4]);
        assert!(!timeline.has_gap());
    }

    #[test]
    fn delivery_starts_where_the_first_page_starts() {
        let mut timeline = Timeline::default();
        timeline.start_at(51);
        assert!(timeline.accept(message(50)).is_empty());
        assert_eq!(seqs(timeline.accept(message(51))), [51]);
    }

    #[test]
    fn a_live_message_before_the_first_page_waits_for_it() {
        let mut timeline = Timeline::default();
        assert!(timeline.accept(message(53)).is_empty());
        assert_eq!(timeline.last_delivered(), 0);
        assert_eq!(seqs(timeline.start_at(51)), Vec::<u64>::new());
        assert_eq!(seqs(timeline.accept(message(51))), [51]);
        assert_eq!(seqs(timeline.accept(message(52))), [52, 53]);
    }

    #[test]
    fn messages_older_than_the_start_are_dropped_when_it_is_set() {
        let mut timeline = Timeline::default();
        timeline.accept(message(3));
        timeline.accept(message(7));
        assert_eq!(seqs(timeline.start_at(7)), [7]);
        assert!(!timeline.has_gap());
    }

    #[test]
    fn a_head_beyond_what_was_delivered_means_behind() {
        let mut timeline = Timeline::default();
        timeline.start_at(1);
        timeline.accept(message(1));
        assert!(timeline.is_behind(2));
        assert!(!timeline.is_behind(1));
        assert!(!Timeline::default().is_behind(0));
    }

    #[test]
    fn hostile_seqs_are_ignored_without_panicking() {
        let mut timeline = Timeline::default();
        timeline.start_at(1);
        assert!(timeline.accept(message(0)).is_empty());
        assert!(timeline.accept(message(u64::MAX)).is_empty());
        assert!(timeline.accept(message(u64::MAX - 1)).is_empty());
        assert_eq!(seqs(timeline.accept(message(1))), [1]);
    }

    #[test]
    fn a_change_to_a_message_not_handed_out_yet_is_applied_to_the_older_page_that_brings_it() {
        let mut timeline = Timeline::default();
        timeline.start_at(10);
        timeline.accept(message(10));
        let deleted = Change {
            id: "c11".into(),
            client_id: "d".into(),
            room: "general".into(),
            seq: 11,
            author: User {
                id: "u".into(),
                name: "U".into(),
            },
            kind: causerie_protocol::ChangeKind::Delete,
            target: 4,
            text: None,
            emoji: None,
            at: String::new(),
        };
        assert_eq!(seqs(timeline.accept(deleted)), [11]);
        // A page read before the deletion committed still has the text.
        let mut stale = message(4);
        stale.text = "secret".into();
        let older = timeline.older(vec![stale]);
        assert_eq!((older[0].text.as_str(), older[0].deleted), ("", true));
    }
}

//! Delivery: the rooms the user is in, and everything the server says about them turned into
//! events, each message once and in seq order, however it came (live, in an ack, in a page).
//!
//! Per room, a [`Timeline`] orders messages and an [`OnlineView`] keeps who is online. Per
//! connection, the rooms are joined again and any gap is filled by catch-up pages, asked for one
//! at a time ([`PageQueue`]). Messages come out as [`ClientEvent::Message`] without `confirms`:
//! which pending message each confirms is for the caller, who holds the outbox.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use causerie_protocol::{
    Change, DEFAULT_ROOM, ErrorBody, Head, HistoryPage, HistoryRequest, Joined, Message, Presence,
    RoomRequest, User, Welcome, WhoPage, WhoRequest,
};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::connection::{Outgoing, Request};
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::online::{MAX_KNOWN, OnlineView};
use crate::pages::{PageQueue, PageRequest};
use crate::timeline::{Entry, Timeline};

/// People listed per `who` page: as many as a view keeps.
const MAX_KNOWN_PAGE: u32 = MAX_KNOWN as u32;

/// Messages in one catch-up page: the most the server gives.
const CATCH_UP_PAGE: u32 = causerie_protocol::limits::MAX_HISTORY_LIMIT;

/// Where delivery stands in every room.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The rooms the user is in, joined again after every reconnect.
    rooms: BTreeSet<String>,
    /// Kept after leaving, so that a rejoin delivers only what is new.
    timelines: BTreeMap<String, Timeline>,
    /// Who is online in each room the user is in.
    online: BTreeMap<String, OnlineView>,
    /// Only while welcomed: the rooms the server confirmed on this connection.
    joined: Option<HashSet<String>>,
    /// Joins and pages, asked for one at a time.
    pages: PageQueue,
    /// Rooms whose join the server could not do for now, and when to ask again.
    rejoin_at: BTreeMap<String, Instant>,
    /// Retryable join refusals in a row, per room, for the backoff.
    join_failures: BTreeMap<String, u32>,
    /// Each room's latest seq when the user first joined it (since this client started, or
    /// since they joined it again after leaving): what is above is fresh, also when a
    /// catch-up after a reconnection brings it.
    joined_at: BTreeMap<String, u64>,
    backoff: Backoff,
    timeout: Duration,
    events: Vec<ClientEvent>,
}

impl Delivery {
    /// Delivery into `general` and `rooms`, once connected.
    pub(crate) fn new(rooms: &[String], backoff: Backoff, timeout: Duration) -> Self {
        Self {
            rooms: std::iter::once(DEFAULT_ROOM.to_owned())
                .chain(rooms.iter().cloned())
                .collect(),
            timelines: BTreeMap::new(),
            online: BTreeMap::new(),
            joined: None,
            pages: PageQueue::default(),
            rejoin_at: BTreeMap::new(),
            join_failures: BTreeMap::new(),
            joined_at: BTreeMap::new(),
            backoff,
            timeout,
            events: Vec::new(),
        }
    }

    /// The events so far, in order.
    pub(crate) fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether the user is in `room` (joined, or joining).
    pub(crate) fn is_in(&self, room: &str) -> bool {
        self.rooms.contains(room)
    }

    /// Whether `room` is joined on the current connection (not while its join is on its way).
    pub(crate) fn has_joined(&self, room: &str) -> bool {
        self.joined.as_ref().is_some_and(|j| j.contains(room))
    }

    /// Whether the user's messages to `room` may go: `false` while its join is on its way.
    pub(crate) fn may_send_to(&self, room: &str) -> bool {
        let joined = self.joined.as_ref().is_some_and(|j| j.contains(room));
        joined || !self.rooms.contains(room)
    }

    /// A connection was welcomed: `general` is joined with it, the other rooms are joined again.
    pub(crate) fn welcomed(&mut self, welcome: Welcome) {
        self.joined = Some(HashSet::from([DEFAULT_ROOM.to_owned()]));
        self.pages = PageQueue::default();
        self.rejoin_at.clear();
        self.join_failures.clear();
        self.online_page(
            DEFAULT_ROOM,
            welcome.online,
            welcome.online_count,
            welcome.online_next,
        );
        let page = entries(welcome.history, welcome.changes);
        self.take_page(DEFAULT_ROOM, page, welcome.head);
        let others: Vec<String> = self
            .rooms
            .iter()
            .filter(|room| *room != DEFAULT_ROOM)
            .cloned()
            .collect();
        for room in others {
            self.pages.push(PageRequest::Join(room));
        }
    }

    /// The connection is gone: what was joined on it no longer is.
    pub(crate) fn disconnected(&mut self) {
        self.joined = None;
    }

    /// The user joins `room`: now if connected, else on connecting.
    pub(crate) fn join(&mut self, room: String) {
        self.rooms.insert(room.clone());
        if self.joined.is_some() {
            self.pages.push(PageRequest::Join(room));
        }
    }

    /// The user leaves `room`: the request to send, if connected (else it is left at once).
    pub(crate) fn leave(&mut self, room: String) -> Option<Outgoing> {
        self.rooms.remove(&room);
        self.online.remove(&room);
        self.joined_at.remove(&room);
        self.pages.forget_room(&room);
        self.rejoin_at.remove(&room);
        match &mut self.joined {
            Some(joined) => {
                joined.remove(&room);
                Some(Outgoing::Leave(RoomRequest { room }))
            }
            None => {
                self.events.push(ClientEvent::Left { room });
                None
            }
        }
    }

    /// The server confirmed leaving `room`.
    pub(crate) fn left(&mut self, room: String) {
        self.events.push(ClientEvent::Left { room });
    }

    /// The page of `room`'s messages before `before` the user asked for, below what was handed
    /// out already, so that the page and its `hasMore` are exact.
    pub(crate) fn older_page(&self, room: String, before: Option<u64>) -> Outgoing {
        let shown_from = self.timelines.get(&room).and_then(Timeline::shown_from);
        let before = match (before, shown_from) {
            (Some(before), Some(from)) => Some(before.min(from)),
            (None, from) => from,
            (before, None) => before,
        };
        Outgoing::History {
            request: HistoryRequest {
                room: Some(room),
                after: None,
                before,
                around: None,
                limit: Some(causerie_protocol::limits::DEFAULT_HISTORY_LIMIT),
            },
            catch_up: false,
        }
    }

    /// The user asks to see more of who is online in `room`.
    pub(crate) fn load_more_online(&mut self, room: String) {
        let more = self.online.get(&room).and_then(OnlineView::next).is_some();
        let joined = self.joined.as_ref().is_some_and(|j| j.contains(&room));
        if more && joined {
            self.pages.push(PageRequest::MoreOnline(room));
        }
    }

    /// A message or a change, live or acked.
    pub(crate) fn on_entry(&mut self, entry: impl Into<Entry>) {
        let entry = entry.into();
        let room = entry.room().to_owned();
        self.deliver(entry);
        self.catch_up_if_needed(&room);
    }

    /// A room's latest seq, told after an outage between the server's nodes: a timeline behind
    /// it catches up, as a message with that seq would have made it.
    pub(crate) fn on_head(&mut self, head: &Head) {
        let joined = self.joined.as_ref().is_some_and(|j| j.contains(&head.room));
        let behind = self
            .timelines
            .get(&head.room)
            .is_some_and(|timeline| timeline.is_behind(head.seq));
        if joined && behind {
            self.pages.push(PageRequest::CatchUp(head.room.clone()));
        }
    }

    /// The server stored one of the user's messages or changes. `pending` says whether it still
    /// waits in the outbox.
    pub(crate) fn on_stored(&mut self, entry: Entry, pending: bool) {
        let room = entry.room().to_owned();
        let past = !self.rooms.contains(&room)
            || self
                .timelines
                .get(&room)
                .is_some_and(|t| t.is_past(entry.seq()));
        if !past {
            return self.on_entry(entry);
        }
        // Still pending means its seq went by before this client started (or its room was left):
        // hand it out here, since no timeline will. Not pending means a catch-up page already
        // delivered it (this was a resend's ack).
        if pending {
            if let Some(timeline) = self.timelines.get_mut(&room) {
                timeline.shown(entry.seq());
            }
            self.emit_delivered(vec![entry]);
        }
    }

    /// People came or went. Someone listed under another name who comes under a new one was
    /// renamed: told as such, and not as an arrival.
    pub(crate) fn on_presence(&mut self, mut presence: Presence) {
        let room = presence.room.clone();
        // A room not joined yet: its join's first page will say who is there.
        let Some(view) = self.online.get_mut(&room) else {
            self.events.push(ClientEvent::Presence(presence));
            return;
        };
        let renamed: Vec<(User, String)> = presence
            .joined
            .iter()
            .filter_map(|user| {
                let listed = view.name_of(&user.id)?;
                (listed != user.name).then(|| (user.clone(), listed.to_owned()))
            })
            .collect();
        let refresh = view.apply(&presence);
        presence
            .joined
            .retain(|user| !renamed.iter().any(|(renamed, _)| renamed.id == user.id));
        for (user, from) in renamed {
            let room = room.clone();
            self.events.push(ClientEvent::Renamed { room, user, from });
        }
        self.events.push(ClientEvent::Presence(presence));
        if refresh {
            self.pages.push(PageRequest::Online(room.clone()));
        }
        self.emit_online(&room);
    }

    /// Whether to take the answer to `request`: not a late answer to a join or page asked again
    /// since (the new answer will do). Taking it lets the next page go.
    pub(crate) fn takes_answer_to(&mut self, request: &Request) -> bool {
        let page = match request {
            Request::Join(room) => PageRequest::Join(room.clone()),
            Request::History {
                room,
                catch_up: true,
            } => PageRequest::CatchUp(room.clone()),
            Request::Who { room, more: false } => PageRequest::Online(room.clone()),
            Request::Who { room, more: true } => PageRequest::MoreOnline(room.clone()),
            _ => return true,
        };
        self.pages.answered(&page)
    }

    /// The answer to joining `room`.
    pub(crate) fn on_joined(
        &mut self,
        room: String,
        reply: Result<Joined, ErrorBody>,
        now: Instant,
    ) {
        match reply {
            Ok(joined) => {
                if let Some(confirmed) = &mut self.joined {
                    confirmed.insert(room.clone());
                }
                self.join_failures.remove(&room);
                self.events.push(ClientEvent::Joined { room: room.clone() });
                self.online_page(
                    &room,
                    joined.online,
                    joined.online_count,
                    joined.online_next,
                );
                let page = entries(joined.history, joined.changes);
                self.take_page(&room, page, joined.head);
            }
            // The server could not do it now (its store failing, a limit): the user is still in
            // the room, and it is joined again after a pause.
            Err(error) if error.code.is_retryable() => {
                let failures = self.join_failures.entry(room.clone()).or_insert(0);
                *failures = failures.saturating_add(1);
                let at = now + self.backoff.delay(*failures);
                self.rejoin_at.insert(room, at);
            }
            Err(error) => {
                self.rooms.remove(&room);
                self.joined_at.remove(&room);
                self.events
                    .push(ClientEvent::Error(ClientError::Rejected(error)));
                // Out of the user's rooms: their list, counts and typing notices forget it.
                self.events.push(ClientEvent::Left { room });
            }
        }
    }

    /// A catch-up page of `room`.
    pub(crate) fn on_catch_up(&mut self, room: String, reply: Result<HistoryPage, ErrorBody>) {
        match reply {
            Ok(page) => {
                for entry in entries(page.messages, page.changes) {
                    self.deliver(entry);
                }
                // Seqs have no gaps, so a gap left after the last page would never fill: only
                // `hasMore` asks for another.
                if page.has_more && self.rooms.contains(&room) {
                    self.pages.push(PageRequest::CatchUp(room));
                }
            }
            // Refused (the server failing for now, a limit): asked again later, as after an
            // unanswered request.
            Err(error) if error.code.is_retryable() => {
                self.pages.push(PageRequest::CatchUp(room));
            }
            Err(_) => {}
        }
    }

    /// A page of older history the user asked for: only what was not handed out yet.
    pub(crate) fn on_older_page(&mut self, room: String, reply: Result<HistoryPage, ErrorBody>) {
        match reply {
            Ok(mut page) => {
                let timeline = self.timelines.entry(room).or_default();
                page.messages = timeline.older(std::mem::take(&mut page.messages));
                // Already applied to the page's messages; their seqs count as handed out.
                for change in std::mem::take(&mut page.changes) {
                    timeline.shown(change.seq);
                }
                self.events.push(ClientEvent::History(page));
            }
            Err(error) => self
                .events
                .push(ClientEvent::Error(ClientError::Rejected(error))),
        }
    }

    /// A page of who is online in `room`: the first (`more` false) or the next.
    pub(crate) fn on_who(&mut self, room: &str, more: bool, page: WhoPage) {
        let Some(view) = self.online.get_mut(room) else {
            return;
        };
        if more {
            view.extend(page);
        } else {
            view.reset(page.users, page.count, page.next);
        }
        self.emit_online(room);
    }

    /// Asks again for what is due at `now`; `true` when a request went unanswered, so that the
    /// connection should be checked.
    pub(crate) fn on_timer(&mut self, now: Instant) -> bool {
        let due: Vec<String> = self
            .rejoin_at
            .iter()
            .filter(|&(_, at)| now >= *at)
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            self.rejoin_at.remove(&room);
            if self.rooms.contains(&room) {
                self.pages.push(PageRequest::Join(room));
            }
        }
        self.pages.expire(now)
    }

    /// When [`Delivery::on_timer`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let rejoin = self.rejoin_at.values().min().copied();
        rejoin.into_iter().chain(self.pages.deadline()).min()
    }

    /// The next join or page request, if none is out.
    pub(crate) fn next_request(&mut self, now: Instant) -> Option<Outgoing> {
        self.joined.as_ref()?;
        Some(match self.pages.next_to_send(now, self.timeout)? {
            PageRequest::Join(room) => Outgoing::Join(RoomRequest { room }),
            PageRequest::CatchUp(room) => Outgoing::History {
                request: HistoryRequest {
                    after: Some(
                        self.timelines
                            .get(&room)
                            .map_or(0, Timeline::last_delivered),
                    ),
                    room: Some(room),
                    before: None,
                    around: None,
                    limit: Some(CATCH_UP_PAGE),
                },
                catch_up: true,
            },
            PageRequest::Online(room) => Outgoing::Who {
                request: WhoRequest {
                    room,
                    after: None,
                    limit: Some(MAX_KNOWN_PAGE),
                },
                more: false,
            },
            PageRequest::MoreOnline(room) => Outgoing::Who {
                request: WhoRequest {
                    after: self
                        .online
                        .get(&room)
                        .and_then(OnlineView::next)
                        .map(str::to_owned),
                    room,
                    limit: Some(MAX_KNOWN_PAGE),
                },
                more: true,
            },
        })
    }

    /// Starts a room's view of who is online over from a first page, and tells the user.
    fn online_page(&mut self, room: &str, users: Vec<User>, count: u32, next: Option<String>) {
        self.online
            .entry(room.to_owned())
            .or_default()
            .reset(users, count, next);
        self.emit_online(room);
    }

    fn emit_online(&mut self, room: &str) {
        if let Some(view) = self.online.get(room) {
            self.events.push(ClientEvent::Online {
                room: room.to_owned(),
                users: view.users(),
                count: view.count(),
            });
        }
    }

    /// Passes the latest page of a room just (re)joined through its timeline, which starts there
    /// if it had not started, and catches up if the room's `head` is beyond what was delivered.
    fn take_page(&mut self, room: &str, page: Vec<Entry>, head: u64) {
        if !self.rooms.contains(room) {
            return;
        }
        self.joined_at.entry(room.to_owned()).or_insert(head);
        let start = page.first().map_or(head.saturating_add(1), Entry::seq);
        let timeline = self.timelines.entry(room.to_owned()).or_default();
        let ready = timeline.start_at(start);
        self.emit_delivered(ready);
        for entry in page {
            self.deliver(entry);
        }
        if self.timelines.get(room).is_some_and(|t| t.is_behind(head)) {
            self.pages.push(PageRequest::CatchUp(room.to_owned()));
        }
        self.catch_up_if_needed(room);
    }

    /// Emits what the room's timeline lets through.
    fn deliver(&mut self, entry: Entry) {
        let room = entry.room();
        if !self.rooms.contains(room) {
            return;
        }
        let timeline = self.timelines.entry(room.to_owned()).or_default();
        let ready = timeline.accept(entry);
        self.emit_delivered(ready);
    }

    fn emit_delivered(&mut self, ready: Vec<Entry>) {
        let joined_at = &self.joined_at;
        self.events.extend(ready.into_iter().map(|entry| {
            match entry {
                Entry::Message(message) => ClientEvent::Message {
                    fresh: joined_at
                        .get(&message.room)
                        .is_some_and(|&head| message.seq > head),
                    message,
                    confirms: None,
                },
                Entry::Change(change) => ClientEvent::Change {
                    change,
                    confirms: None,
                },
            }
        }));
    }

    /// Asks for a catch-up page if the room's timeline waits behind a gap.
    fn catch_up_if_needed(&mut self, room: &str) {
        let gap =
            self.rooms.contains(room) && self.timelines.get(room).is_some_and(Timeline::has_gap);
        if gap {
            self.pages.push(PageRequest::CatchUp(room.to_owned()));
        }
    }
}

/// A page's messages and changes as one stretch of the log, in seq order.
fn entries(messages: Vec<Message>, changes: Vec<Change>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = messages.into_iter().map(Entry::Message).collect();
    entries.extend(changes.into_iter().map(Entry::Change));
    entries.sort_by_key(Entry::seq);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use causerie_protocol::{ErrorCode, ServerInfo};

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.into(),
        }
    }

    fn message(room: &str, seq: u64) -> Message {
        Message {
            id: format!("m{seq}"),
            client_id: format!("c{seq}"),
            room: room.into(),
            seq,
            author: user("u-other"),
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

    fn welcomed(rooms: &[&str], history: Vec<Message>, head: u64) -> Delivery {
        let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
        let mut delivery = Delivery::new(&rooms, Backoff::default(), TIMEOUT);
        delivery.welcomed(welcome(history, head));
        delivery
    }

    fn welcome(history: Vec<Message>, head: u64) -> Welcome {
        Welcome {
            user: user("u-me"),
            token: "token".into(),
            room: DEFAULT_ROOM.into(),
            rooms: vec![DEFAULT_ROOM.into()],
            rooms_next: None,
            online: vec![user("u-me")],
            online_count: 1,
            online_next: None,
            history,
            changes: vec![],
            head,
            read: Some(causerie_protocol::ReadState {
                room: DEFAULT_ROOM.into(),
                seq: head,
                unread: 0,
                mentions: 0,
                head,
            }),
            directs: vec![],
            limits: Default::default(),
            server: ServerInfo {
                name: "causerie".into(),
                version: "test".into(),
            },
        }
    }

    fn seqs(events: &[ClientEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Message { message, .. } => Some(message.seq),
                _ => None,
            })
            .collect()
    }

    fn page(room: &str, messages: Vec<Message>, has_more: bool) -> HistoryPage {
        HistoryPage {
            room: room.into(),
            messages,
            changes: vec![],
            has_more,
            has_newer: false,
        }
    }

    #[test]
    fn a_welcome_behind_the_head_catches_up_page_by_page_until_has_more_is_false() {
        let now = Instant::now();
        let mut delivery = welcomed(&[], vec![message("general", 1)], 3);
        assert_eq!(seqs(&delivery.take_events()), [1]);
        let Some(Outgoing::History {
            request,
            catch_up: true,
        }) = delivery.next_request(now)
        else {
            panic!("a catch-up page");
        };
        assert_eq!(request.after, Some(1));
        let catch_up = Request::History {
            room: "general".into(),
            catch_up: true,
        };
        assert!(delivery.takes_answer_to(&catch_up));
        delivery.on_catch_up(
            "general".into(),
            Ok(page("general", vec![message("general", 2)], true)),
        );
        assert_eq!(seqs(&delivery.take_events()), [2]);
        assert!(matches!(
            delivery.next_request(now),
            Some(Outgoing::History { catch_up: true, .. })
        ));
        assert!(delivery.takes_answer_to(&catch_up));
        delivery.on_catch_up(
            "general".into(),
            Ok(page("general", vec![message("general", 3)], false)),
        );
        assert_eq!(seqs(&delivery.take_events()), [3]);
        assert_eq!(delivery.next_request(now), None);
    }

    #[test]
    fn a_catch_up_page_the_server_cannot_give_now_is_asked_for_again() {
        let now = Instant::now();
        let mut delivery = welcomed(&[], vec![], 2);
        delivery.next_request(now);
        delivery.takes_answer_to(&Request::History {
            room: "general".into(),
            catch_up: true,
        });
        let busy = ErrorBody::new(ErrorCode::Internal, "busy");
        delivery.on_catch_up("general".into(), Err(busy));
        assert!(matches!(
            delivery.next_request(now),
            Some(Outgoing::History { catch_up: true, .. })
        ));
    }

    #[test]
    fn the_other_rooms_are_joined_again_one_at_a_time_and_messages_wait_for_their_join() {
        let now = Instant::now();
        let mut delivery = welcomed(&["a", "b"], vec![], 0);
        assert!(!delivery.may_send_to("a"));
        assert!(delivery.may_send_to("general"));
        let join = |room: &str| Outgoing::Join(RoomRequest { room: room.into() });
        assert_eq!(delivery.next_request(now), Some(join("a")));
        assert_eq!(delivery.next_request(now), None, "one at a time");
        assert!(delivery.takes_answer_to(&Request::Join("a".into())));
        let joined = Joined {
            room: "a".into(),
            online: vec![],
            online_count: 0,
            online_next: None,
            history: vec![],
            changes: vec![],
            head: 0,
            read: Some(causerie_protocol::ReadState {
                room: "a".into(),
                ..Default::default()
            }),
        };
        delivery.on_joined("a".into(), Ok(joined), now);
        assert!(delivery.may_send_to("a"));
        assert_eq!(delivery.next_request(now), Some(join("b")));
    }

    #[test]
    fn a_join_refused_for_good_leaves_the_room_and_says_why() {
        let now = Instant::now();
        let mut delivery = welcomed(&["x"], vec![], 0);
        delivery.take_events();
        let refusal = ErrorBody::new(ErrorCode::Invalid, "bad room");
        delivery.on_joined("x".into(), Err(refusal.clone()), now);
        assert_eq!(
            delivery.take_events(),
            [
                ClientEvent::Error(ClientError::Rejected(refusal)),
                ClientEvent::Left { room: "x".into() }
            ]
        );
        delivery.disconnected();
        delivery.welcomed(welcome(vec![], 0));
        assert_eq!(delivery.next_request(now), None, "not joined again");
    }

    #[test]
    fn after_leaving_a_room_its_messages_are_not_delivered_and_nothing_is_asked() {
        let now = Instant::now();
        let mut delivery = welcomed(&["side"], vec![], 0);
        let leave = delivery.leave("side".into());
        assert_eq!(
            leave,
            Some(Outgoing::Leave(RoomRequest {
                room: "side".into()
            }))
        );
        assert_eq!(delivery.next_request(now), None, "its join forgotten");
        delivery.take_events();
        delivery.on_entry(message("side", 1));
        assert_eq!(delivery.take_events(), []);
    }

    #[test]
    fn someone_listed_who_comes_again_under_a_new_name_was_renamed_not_arriving() {
        let mut delivery = welcomed(&[], vec![], 0);
        let presence = |joined: Vec<User>, left: Vec<User>| Presence {
            room: DEFAULT_ROOM.into(),
            joined,
            left,
            count: 2,
            truncated: false,
            online: vec![],
            online_next: None,
        };
        delivery.on_presence(presence(vec![user("u-bob")], vec![]));
        delivery.take_events();
        let bea = User {
            id: "u-bob".into(),
            name: "Bea".into(),
        };
        let carl = user("u-carl");
        delivery.on_presence(presence(vec![bea.clone(), carl.clone()], vec![]));
        let events = delivery.take_events();
        assert_eq!(
            events[..2],
            [
                ClientEvent::Renamed {
                    room: DEFAULT_ROOM.into(),
                    user: bea.clone(),
                    from: "u-bob".into(),
                },
                ClientEvent::Presence(presence(vec![carl], vec![])),
            ]
        );
        let ClientEvent::Online { users, .. } = &events[2] else {
            panic!("the list follows: {events:?}");
        };
        assert!(users.contains(&bea) && !users.contains(&user("u-bob")));
    }

    #[test]
    fn a_truncated_presence_without_a_page_asks_who_is_online() {
        let now = Instant::now();
        let mut delivery = welcomed(&[], vec![], 0);
        delivery.take_events();
        delivery.on_presence(Presence {
            room: DEFAULT_ROOM.into(),
            joined: vec![],
            left: vec![],
            count: 500,
            truncated: true,
            online: vec![],
            online_next: None,
        });
        assert!(matches!(
            delivery.next_request(now),
            Some(Outgoing::Who { more: false, .. })
        ));
    }
}

//! Who is online in each room: kept as connections arrive and go (O(log n) per change), paged by
//! name for `welcome`, `join` and `who`, and told to each room as coalesced deltas.
//!
//! A user is online in a room while at least one of their connections is in it. Each change is
//! recorded for the room and [`Registry::take_changes`] hands them out in one batch: a flush every
//! [`FLUSH_EVERY`] sends each room one `presence` with who arrived, who left and the count. So a
//! crowd arriving costs each member one small event per flush, not the whole list per arrival
//! (which cost O(N) bytes per member per arrival, O(N³) for a crowd). A big room is told less
//! often, so that its presence costs at most [`DELIVERIES_PER_SECOND`] whatever its size (every
//! 200 ms up to 2,000 members, every second at 10,000). Someone who leaves and comes back before
//! the room is told is no change at all. More than [`MAX_LISTED`] changes at once are not listed:
//! the event says `truncated` and carries the room's first page of who is online instead.
//!
//! In a cluster each node still keeps its own connections here, and tells each arrival and
//! departure (a [`Transition`]) to the presence the nodes share in Redis
//! (`cluster::presence`), which tells the rooms what changed across nodes.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cluster::SocketIo;
use causerie_protocol::limits::{DEFAULT_ONLINE_PAGE, is_direct_room as is_direct};
use causerie_protocol::{Presence, User, event};

use crate::chat::Chat;
use crate::outgoing;

/// How often pending changes are told to their rooms, at most.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Presence events a room may cost per second, in deliveries (one per member per event): a room
/// of N members is told at most every N / this seconds.
pub const DELIVERIES_PER_SECOND: u32 = 10_000;

/// How long a room of `members` waits between two presence events.
pub(crate) fn flush_interval(members: usize) -> Duration {
    let members = u32::try_from(members).unwrap_or(u32::MAX);
    FLUSH_EVERY.max(Duration::from_secs(1) * members / DELIVERIES_PER_SECOND)
}

/// Most arrivals and departures listed in one `presence`.
pub const MAX_LISTED: usize = 32;

/// The online people of every room.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Told each arrival and departure, in order, when the nodes of a cluster share presence.
    listener: OnceLock<Listener>,
}

/// What a [`Registry`] tells its listener.
type Listener = Box<dyn Fn(Transition) + Send + Sync>;

/// A user arrived in a room on this node (or is listed there under a new name), or left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Their first connection in the room, or a new name.
    Arrived { room: String, user: User },
    /// Their last connection in the room is gone.
    Left { room: String, user: User },
}

impl Transition {
    /// The room it happened in.
    pub(crate) fn room(&self) -> &str {
        match self {
            Self::Arrived { room, .. } | Self::Left { room, .. } => room,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<String, RoomPresence>,
    /// How many rooms each user is online in, for the per-user room limit (direct conversations
    /// have their own: see `handlers::rooms`).
    rooms_of_user: HashMap<String, u32>,
}

#[derive(Debug, Default)]
struct RoomPresence {
    /// Each online user, and how many of their connections are in the room.
    by_id: HashMap<String, (User, u32)>,
    /// The same users by name, then id: the order of pages.
    by_name: BTreeSet<(String, String)>,
    changes: Changes,
    /// When the room was last told its changes.
    told_at: Option<Instant>,
}

impl RoomPresence {
    /// Up to `limit` people by name, after the cursor `after`.
    fn page(&self, after: Option<(&str, &str)>, limit: usize) -> OnlinePage {
        let start = match after {
            Some((name, id)) => Bound::Excluded((name.to_owned(), id.to_owned())),
            None => Bound::Unbounded,
        };
        let mut keys: Vec<_> = self
            .by_name
            .range((start, Bound::Unbounded))
            .take(limit + 1)
            .collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let users: Vec<User> = keys
            .iter()
            .filter_map(|(_, id)| self.by_id.get(id).map(|(user, _)| user.clone()))
            .collect();
        let next = more
            .then(|| users.last().map(|last| cursor(&last.name, &last.id)))
            .flatten();
        OnlinePage {
            users,
            count: u32::try_from(self.by_id.len()).unwrap_or(u32::MAX),
            next,
        }
    }
}

/// Changes since the last flush, by user id: the latest of each, or only a count when too many.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    joined: HashMap<String, User>,
    left: HashMap<String, User>,
    /// The name the room was last told, for the `joined` entries that are renames of someone
    /// it lists: leaving is then news, and a rename back to that name is none.
    told_names: HashMap<String, String>,
    truncated: bool,
}

impl Changes {
    pub(crate) fn joined(&mut self, user: &User) {
        match self.left.remove(&user.id) {
            // Back within the same flush: no change, unless under a new name.
            Some(told) if told.name != user.name => self.renamed(&told, user),
            Some(_) => {}
            None => self.record(|changes| {
                changes.joined.insert(user.id.clone(), user.clone());
            }),
        }
    }

    /// Told as an arrival under the new name: clients replace the entry with the same id.
    pub(crate) fn renamed(&mut self, before: &User, user: &User) {
        let arrived_untold =
            self.joined.contains_key(&user.id) && !self.told_names.contains_key(&user.id);
        if arrived_untold {
            // The room has not heard of them yet: it hears the latest name.
            self.joined.insert(user.id.clone(), user.clone());
            return;
        }
        let told = self
            .told_names
            .get(&user.id)
            .cloned()
            .unwrap_or_else(|| before.name.clone());
        if told == user.name {
            // Back to the name the room knows: nothing to tell.
            self.joined.remove(&user.id);
            self.told_names.remove(&user.id);
            return;
        }
        self.record(|changes| {
            changes.joined.insert(user.id.clone(), user.clone());
            changes.told_names.insert(user.id.clone(), told);
        });
    }

    pub(crate) fn left(&mut self, user: &User) {
        let was_told = self.told_names.remove(&user.id).is_some();
        if self.joined.remove(&user.id).is_none() || was_told {
            self.record(|changes| {
                changes.left.insert(user.id.clone(), user.clone());
            });
        }
    }

    fn record(&mut self, change: impl FnOnce(&mut Self)) {
        if self.truncated {
            return;
        }
        change(self);
        if self.joined.len() + self.left.len() > MAX_LISTED {
            self.joined.clear();
            self.left.clear();
            self.told_names.clear();
            self.truncated = true;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty() && !self.truncated
    }

    /// Whether there were too many to list: the room is then sent its first page instead.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// Everything may have changed (a node started its presence over): the room is sent its
    /// count and first page, which replace what its members list.
    pub(crate) fn everything(&mut self) {
        self.joined.clear();
        self.left.clear();
        self.told_names.clear();
        self.truncated = true;
    }

    /// The users these changes list, arrivals then departures, to check before telling them.
    pub(crate) fn listed(&self) -> (Vec<String>, Vec<String>) {
        (
            self.joined.keys().cloned().collect(),
            self.left.keys().cloned().collect(),
        )
    }

    /// Keeps only the changes `online` (user id to whether they are online now, where known)
    /// still bears out: another node may have told the opposite since (someone who left one
    /// node and arrived on another, told by each).
    pub(crate) fn still_true(&mut self, online: &HashMap<String, bool>) {
        self.joined.retain(|id, _| online.get(id) != Some(&false));
        self.left.retain(|id, _| online.get(id) != Some(&true));
    }

    /// The `presence` event that tells `room` these changes: `count` online, and `first` (the
    /// first page of who is online) when there were too many to list.
    pub(crate) fn told(
        self,
        room: &str,
        count: u32,
        first: impl FnOnce() -> OnlinePage,
    ) -> Presence {
        let mut joined: Vec<User> = self.joined.into_values().collect();
        let mut left: Vec<User> = self.left.into_values().collect();
        joined.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        left.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        // Too many changes to list: the first page instead, so that no member has to ask `who`
        // (every member of a big room at once).
        let (online, online_next) = if self.truncated {
            let page = first();
            (page.users, page.next)
        } else {
            (Vec::new(), None)
        };
        Presence {
            room: room.to_owned(),
            count,
            joined,
            left,
            truncated: self.truncated,
            online,
            online_next,
        }
    }
}

/// A page of the people online in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlinePage {
    /// By name.
    pub users: Vec<User>,
    /// How many are online in all.
    pub count: u32,
    /// Where the next page starts, if there are more.
    pub next: Option<String>,
}

/// The cursor after `user` in name order: name and id, which never hold a NUL (names hold no
/// control characters, ids are UUIDs). Opaque to clients.
pub(crate) fn cursor(name: &str, id: &str) -> String {
    format!("{name}\u{0}{id}")
}

/// The longest a cursor can be: a name of at most `MAX_NAME_CHARS` characters of up to 4 bytes,
/// a NUL, and an id (a UUID, or a seed client's own).
const MAX_CURSOR_BYTES: usize = 4 * causerie_protocol::limits::MAX_NAME_CHARS + 1 + 64;

/// Reads a cursor from a page's `next`; `None` if it is not one (nor could be: too long).
pub fn parse_cursor(cursor: &str) -> Option<(&str, &str)> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return None;
    }
    cursor.split_once('\u{0}')
}

fn lock(registry: &Registry) -> std::sync::MutexGuard<'_, Inner> {
    // A std mutex: nothing awaits while it is held, and every update completes under it.
    registry
        .inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    /// Has `listener` told each later arrival and departure, in order (once: later calls are
    /// ignored). It is called under the registry's lock, so it must not block.
    pub(crate) fn tell(&self, listener: impl Fn(Transition) + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(listener));
    }

    fn told(&self, transition: impl FnOnce() -> Transition) {
        if let Some(listener) = self.listener.get() {
            listener(transition());
        }
    }

    /// Every room and user online on this node, for a cluster's shared presence to start over
    /// from.
    pub fn snapshot(&self) -> Vec<(String, User)> {
        let inner = lock(self);
        inner
            .rooms
            .iter()
            .flat_map(|(room, presence)| {
                presence
                    .by_id
                    .values()
                    .map(|(user, _)| (room.clone(), user.clone()))
            })
            .collect()
    }

    /// A connection of `user` entered `room`; `true` if it is their first there (they arrived).
    /// Under a new name, the user is listed under it and the room told, as if they arrived.
    pub fn arrive(&self, room: &str, user: &User) -> bool {
        let mut inner = lock(self);
        let arrived = || Transition::Arrived {
            room: room.to_owned(),
            user: user.clone(),
        };
        let presence = inner.rooms.entry(room.to_owned()).or_default();
        if let Some((known, connections)) = presence.by_id.get_mut(&user.id) {
            *connections += 1;
            if known.name != user.name {
                presence
                    .by_name
                    .remove(&(known.name.clone(), known.id.clone()));
                presence
                    .by_name
                    .insert((user.name.clone(), user.id.clone()));
                let before = std::mem::replace(known, user.clone());
                presence.changes.renamed(&before, user);
                self.told(arrived);
            }
            return false;
        }
        presence.by_id.insert(user.id.clone(), (user.clone(), 1));
        presence
            .by_name
            .insert((user.name.clone(), user.id.clone()));
        presence.changes.joined(user);
        self.told(arrived);
        if !is_direct(room) {
            *inner.rooms_of_user.entry(user.id.clone()).or_default() += 1;
        }
        true
    }

    /// A connection of `user` left `room`; `true` if it was their last there (they left).
    pub fn depart(&self, room: &str, user_id: &str) -> bool {
        let mut inner = lock(self);
        let Some(presence) = inner.rooms.get_mut(room) else {
            return false;
        };
        let Some((user, connections)) = presence.by_id.get_mut(user_id) else {
            return false;
        };
        if *connections > 1 {
            *connections -= 1;
            return false;
        }
        let user = user.clone();
        presence.by_id.remove(user_id);
        presence
            .by_name
            .remove(&(user.name.clone(), user.id.clone()));
        presence.changes.left(&user);
        self.told(|| Transition::Left {
            room: room.to_owned(),
            user: user.clone(),
        });
        if is_direct(room) {
            return true;
        }
        if let Some(rooms) = inner.rooms_of_user.get_mut(user_id) {
            *rooms -= 1;
            if *rooms == 0 {
                inner.rooms_of_user.remove(user_id);
            }
        }
        true
    }

    /// The rooms with someone online on this node.
    pub fn rooms(&self) -> Vec<String> {
        lock(self).rooms.keys().cloned().collect()
    }

    /// How many people are online in `room`.
    pub fn count(&self, room: &str) -> u32 {
        lock(self).rooms.get(room).map_or(0, |presence| {
            u32::try_from(presence.by_id.len()).unwrap_or(u32::MAX)
        })
    }

    /// Whether `user_id` is online in `room`.
    pub fn is_online(&self, room: &str, user_id: &str) -> bool {
        lock(self)
            .rooms
            .get(room)
            .is_some_and(|presence| presence.by_id.contains_key(user_id))
    }

    /// How many rooms `user_id` is online in (not counting direct conversations).
    pub fn rooms_of_user(&self, user_id: &str) -> u32 {
        lock(self).rooms_of_user.get(user_id).copied().unwrap_or(0)
    }

    /// Up to `limit` people online in `room` by name, after the cursor `after` (a page's `next`,
    /// read by [`parse_cursor`]).
    pub fn page(&self, room: &str, after: Option<(&str, &str)>, limit: usize) -> OnlinePage {
        let inner = lock(self);
        match inner.rooms.get(room) {
            Some(presence) => presence.page(after, limit),
            None => OnlinePage {
                users: Vec::new(),
                count: 0,
                next: None,
            },
        }
    }

    /// The changes of every room due to be told at `now` (see [`flush_interval`]) since it was
    /// last told, as the `presence` events to send; rooms left empty are forgotten.
    pub fn take_changes(&self, now: Instant) -> Vec<Presence> {
        let mut inner = lock(self);
        let mut events = Vec::new();
        inner.rooms.retain(|room, presence| {
            let due = presence.told_at.is_none_or(|at| {
                now.saturating_duration_since(at) >= flush_interval(presence.by_id.len())
            });
            if due && !presence.changes.is_empty() {
                presence.told_at = Some(now);
                let changes = std::mem::take(&mut presence.changes);
                let count = u32::try_from(presence.by_id.len()).unwrap_or(u32::MAX);
                events.push(changes.told(room, count, || {
                    presence.page(None, DEFAULT_ONLINE_PAGE as usize)
                }));
            }
            // Nobody left to tell: forgotten.
            !presence.by_id.is_empty()
        });
        events
    }
}

/// Tells each room its presence changes every [`FLUSH_EVERY`], until `stop` says the server
/// stopped. Seed clients hear nothing of presence.
pub fn spawn_flush(io: SocketIo, chat: Arc<Chat>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => {
                    if let Some(shared) = &chat.shared_presence {
                        shared.leave().await;
                    }
                    break;
                }
            }
            let now = Instant::now();
            // Taken in a cluster too: it forgets the rooms this node has left.
            let local = chat.presence.take_changes(now);
            let told = match &chat.shared_presence {
                Some(shared) => shared.take_changes(now).await,
                None => local,
            };
            for presence in told {
                let key = crate::handlers::room_key(&presence.room);
                let reach = outgoing::Reach::Everywhere;
                outgoing::to_room(&io, &chat, reach, &key, None, event::PRESENCE, &presence).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> User {
        User {
            id: id.into(),
            name: name.into(),
        }
    }

    fn names(page: &OnlinePage) -> Vec<&str> {
        page.users.iter().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn a_user_arrives_with_the_first_connection_and_leaves_with_the_last() {
        let registry = Registry::default();
        let ada = user("1", "Ada");
        assert!(registry.arrive("general", &ada));
        assert!(!registry.arrive("general", &ada), "a second tab");
        assert_eq!(registry.count("general"), 1);
        assert!(!registry.depart("general", "1"));
        assert!(registry.is_online("general", "1"));
        assert!(registry.depart("general", "1"));
        assert_eq!(registry.count("general"), 0);
        assert!(!registry.depart("general", "1"), "already gone");
    }

    /// Ada and Bob online in general, and the room told so.
    fn ada_and_bob_told() -> (Registry, Instant) {
        let registry = Registry::default();
        registry.arrive("general", &user("1", "Ada"));
        registry.arrive("general", &user("2", "Bob"));
        let start = Instant::now();
        registry.take_changes(start);
        (registry, start)
    }

    #[test]
    fn a_new_name_is_told_as_an_arrival_under_it_whichever_connection_comes_first() {
        let (registry, start) = ada_and_bob_told();

        // The new connection before the old one is gone.
        registry.arrive("general", &user("1", "Ada L"));
        registry.depart("general", "1");
        let events = registry.take_changes(start + FLUSH_EVERY);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].joined, vec![user("1", "Ada L")]);
        assert!(events[0].left.is_empty());
        assert_eq!(events[0].count, 2);
        assert_eq!(names(&registry.page("general", None, 10)), ["Ada L", "Bob"]);

        // The old connection gone first, within the same flush.
        registry.depart("general", "1");
        registry.arrive("general", &user("1", "Ada Lovelace"));
        let events = registry.take_changes(start + FLUSH_EVERY * 2);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].joined, vec![user("1", "Ada Lovelace")]);
        assert!(events[0].left.is_empty());
        assert_eq!(
            names(&registry.page("general", None, 10)),
            ["Ada Lovelace", "Bob"]
        );
    }

    #[test]
    fn leaving_right_after_a_rename_is_told_and_a_rename_back_is_no_change() {
        let (registry, start) = ada_and_bob_told();

        // Renamed, then gone, within one flush (in either order of the two connections).
        registry.arrive("general", &user("1", "Ada L"));
        registry.depart("general", "1");
        registry.depart("general", "1");
        let events = registry.take_changes(start + FLUSH_EVERY);
        assert_eq!(events.len(), 1);
        assert!(events[0].joined.is_empty());
        assert_eq!(events[0].left.len(), 1);
        assert_eq!(events[0].left[0].id, "1", "no ghost left behind");
        assert_eq!(events[0].count, 1);

        registry.arrive("general", &user("1", "Ada"));
        registry.take_changes(start + FLUSH_EVERY * 2);
        registry.depart("general", "1");
        registry.arrive("general", &user("1", "Ada L"));
        registry.depart("general", "1");
        let events = registry.take_changes(start + FLUSH_EVERY * 3);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].left.len(), 1);
        assert!(events[0].joined.is_empty());

        // Renamed and back again before the room is told: nothing to tell.
        registry.arrive("general", &user("1", "Ada"));
        registry.take_changes(start + FLUSH_EVERY * 4);
        registry.arrive("general", &user("1", "Ada L"));
        registry.arrive("general", &user("1", "Ada"));
        assert!(registry.take_changes(start + FLUSH_EVERY * 5).is_empty());
        assert_eq!(names(&registry.page("general", None, 10)), ["Ada", "Bob"]);

        // Someone who arrived under one name and changed it before anyone heard: the latest.
        registry.arrive("general", &user("3", "Cy"));
        registry.arrive("general", &user("3", "Cyrus"));
        let events = registry.take_changes(start + FLUSH_EVERY * 6);
        assert_eq!(events[0].joined, vec![user("3", "Cyrus")]);
    }

    #[test]
    fn changes_reach_the_room_once_per_flush_and_a_quick_return_is_no_change() {
        let registry = Registry::default();
        registry.arrive("general", &user("1", "Ada"));
        registry.arrive("general", &user("2", "Bob"));
        registry.arrive("general", &user("3", "Cy"));
        registry.depart("general", "3");
        let start = Instant::now();
        let events = registry.take_changes(start);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].count, 2);
        assert_eq!(
            events[0].joined,
            vec![user("1", "Ada"), user("2", "Bob")],
            "Cy came and went: nothing to tell"
        );
        assert!(events[0].left.is_empty());
        let later = start + FLUSH_EVERY;
        assert!(registry.take_changes(later).is_empty(), "told once");

        registry.depart("general", "1");
        registry.arrive("general", &user("1", "Ada"));
        assert!(
            registry.take_changes(later + FLUSH_EVERY).is_empty(),
            "back within the flush"
        );
    }

    #[test]
    fn a_big_room_is_told_less_often_so_its_presence_costs_a_bounded_rate() {
        assert_eq!(flush_interval(10), FLUSH_EVERY);
        assert_eq!(flush_interval(2_000), FLUSH_EVERY);
        assert_eq!(flush_interval(10_000), Duration::from_secs(1));
        let registry = Registry::default();
        for i in 0..10_000 {
            registry.arrive("general", &user(&format!("{i:05}"), "u"));
        }
        registry.arrive("small", &user("1", "Ada"));
        let start = Instant::now();
        assert_eq!(registry.take_changes(start).len(), 2);
        registry.depart("general", "00001");
        registry.arrive("small", &user("2", "Bob"));
        let soon = start + FLUSH_EVERY;
        let told: Vec<String> = registry
            .take_changes(soon)
            .into_iter()
            .map(|p| p.room)
            .collect();
        assert_eq!(told, ["small"], "general waits its turn");
        let later = registry.take_changes(start + Duration::from_secs(1));
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].count, later[0].left.len()), (9_999, 1));
    }

    #[test]
    fn a_crowd_is_told_as_a_count_and_the_first_page_of_who_is_online() {
        let registry = Registry::default();
        for i in (0..1000).rev() {
            registry.arrive("general", &user(&format!("{i:04}"), &format!("u{i:04}")));
        }
        let events = registry.take_changes(Instant::now());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].count, 1000);
        assert!(events[0].truncated);
        assert!(events[0].joined.is_empty() && events[0].left.is_empty());
        let first: Vec<&str> = events[0].online.iter().map(|u| u.name.as_str()).collect();
        let expected: Vec<String> = (0..DEFAULT_ONLINE_PAGE)
            .map(|i| format!("u{i:04}"))
            .collect();
        assert_eq!(first, expected);
        let next = events[0].online_next.as_deref().and_then(parse_cursor);
        assert_eq!(
            registry.page("general", next, 1).users[0].name,
            format!("u{DEFAULT_ONLINE_PAGE:04}")
        );
    }

    #[test]
    fn pages_go_by_name_and_continue_where_the_last_ended() {
        let registry = Registry::default();
        for (id, name) in [
            ("1", "Eve"),
            ("2", "Ada"),
            ("3", "Dan"),
            ("4", "Bob"),
            ("5", "Ada"),
        ] {
            registry.arrive("general", &user(id, name));
        }
        let first = registry.page("general", None, 2);
        assert_eq!(names(&first), ["Ada", "Ada"]);
        assert_eq!(first.count, 5);
        let after = |page: &OnlinePage| page.next.clone().expect("more");
        let second = registry.page("general", parse_cursor(&after(&first)), 2);
        assert_eq!(names(&second), ["Bob", "Dan"]);
        let third = registry.page("general", parse_cursor(&after(&second)), 2);
        assert_eq!(names(&third), ["Eve"]);
        assert_eq!(third.next, None);
        // A cursor whose person left still continues in order.
        registry.depart("general", "4");
        let resumed = registry.page("general", parse_cursor(&after(&first)), 10);
        assert_eq!(names(&resumed), ["Dan", "Eve"]);
        assert_eq!(parse_cursor("not a cursor"), None);
    }

    #[test]
    fn changes_another_node_has_since_undone_are_not_told() {
        let mut changes = Changes::default();
        changes.joined(&user("1", "Ada"));
        changes.left(&user("2", "Bob"));
        changes.joined(&user("3", "Cy"));
        // Ada left again on another node, Bob came back on one; Cy's state is not known.
        let online = HashMap::from([("1".to_owned(), false), ("2".to_owned(), true)]);
        changes.still_true(&online);
        let told = changes.told("general", 2, || unreachable!("not truncated"));
        assert_eq!(told.joined, vec![user("3", "Cy")]);
        assert!(told.left.is_empty());

        let mut changes = Changes::default();
        changes.joined(&user("1", "Ada"));
        changes.everything();
        assert!(changes.truncated() && changes.listed() == (vec![], vec![]));
        let page = OnlinePage {
            users: vec![user("2", "Bob")],
            count: 1,
            next: None,
        };
        let told = changes.told("general", 1, || page.clone());
        assert!(told.truncated && told.joined.is_empty());
        assert_eq!(told.online, page.users);
    }

    #[test]
    fn the_rooms_of_a_user_are_counted_across_rooms() {
        let registry = Registry::default();
        let ada = user("1", "Ada");
        registry.arrive("general", &ada);
        registry.arrive("rust", &ada);
        registry.arrive("rust", &ada);
        assert_eq!(registry.rooms_of_user("1"), 2);
        registry.depart("rust", "1");
        assert_eq!(registry.rooms_of_user("1"), 2, "one tab still in rust");
        registry.depart("rust", "1");
        assert_eq!(registry.rooms_of_user("1"), 1);
    }
}

//! Who is typing in each room: the server's notices, each shown for a while
//! ([`TYPING_SHOWN_MS`]) unless refreshed, and ended early by a "stopped" notice, a new message
//! from that person, or their leaving. The server's notices are volatile (a reader that is behind gets only the
//! latest), so a lost "stopped" must not leave someone typing for good.

use std::collections::BTreeMap;
use std::time::Duration;

use causerie_protocol::limits::TYPING_SHOWN_MS;
use causerie_protocol::{Typing, User};
use tokio::time::Instant;

/// How long a notice is shown.
const SHOWN_FOR: Duration = Duration::from_millis(TYPING_SHOWN_MS);

/// Someone typing, until when.
#[derive(Debug)]
struct Typist {
    user: User,
    until: Instant,
}

/// Everyone typing, per room the user is in.
#[derive(Debug, Default)]
pub(crate) struct WhoIsTyping {
    rooms: BTreeMap<String, BTreeMap<String, Typist>>,
}

impl WhoIsTyping {
    /// A notice from the server; `true` when the room's list changed.
    pub(crate) fn on_notice(&mut self, notice: Typing, now: Instant) -> bool {
        if !notice.typing {
            return self.gone(&notice.room, &notice.user.id);
        }
        let room = self.rooms.entry(notice.room).or_default();
        let changed = room
            .get(&notice.user.id)
            .is_none_or(|known| known.user != notice.user);
        let typist = Typist {
            user: notice.user,
            until: now + SHOWN_FOR,
        };
        room.insert(typist.user.id.clone(), typist);
        changed
    }

    /// `user` stopped typing in `room` (said so, sent a message, or left); `true` when the list
    /// changed.
    pub(crate) fn gone(&mut self, room: &str, user: &str) -> bool {
        let Some(typing) = self.rooms.get_mut(room) else {
            return false;
        };
        let removed = typing.remove(user).is_some();
        if typing.is_empty() {
            self.rooms.remove(room);
        }
        removed
    }

    /// Ends what was not refreshed in time; the rooms whose list changed.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Vec<String> {
        let mut changed = Vec::new();
        for (room, typing) in &mut self.rooms {
            let before = typing.len();
            typing.retain(|_, typist| typist.until > now);
            if typing.len() != before {
                changed.push(room.clone());
            }
        }
        self.rooms.retain(|_, typing| !typing.is_empty());
        changed
    }

    /// When [`WhoIsTyping::on_timer`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.rooms
            .values()
            .flat_map(|typing| typing.values().map(|typist| typist.until))
            .min()
    }

    /// Who is typing in `room`, by name.
    pub(crate) fn in_room(&self, room: &str) -> Vec<User> {
        let mut users: Vec<User> = self
            .rooms
            .get(room)
            .map(|typing| typing.values().map(|typist| typist.user.clone()).collect())
            .unwrap_or_default();
        users.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        users
    }

    /// Forgets a room left (no notice of it will come to end them); `true` if anyone typed there.
    pub(crate) fn leave(&mut self, room: &str) -> bool {
        self.rooms.remove(room).is_some()
    }

    /// Forgets everyone, when the connection is lost; the rooms whose list changed.
    pub(crate) fn clear(&mut self) -> Vec<String> {
        std::mem::take(&mut self.rooms).into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: format!("u-{name}"),
            name: name.into(),
        }
    }

    fn notice(name: &str, typing: bool) -> Typing {
        Typing {
            room: "general".into(),
            user: user(name),
            typing,
        }
    }

    fn names(typing: &WhoIsTyping) -> Vec<String> {
        typing
            .in_room("general")
            .into_iter()
            .map(|u| u.name)
            .collect()
    }

    #[test]
    fn a_notice_shows_until_it_is_not_refreshed_in_time() {
        let start = Instant::now();
        let mut typing = WhoIsTyping::default();
        assert!(typing.on_notice(notice("Bob", true), start));
        assert!(
            !typing.on_notice(notice("Bob", true), start + SHOWN_FOR / 2),
            "a refresh"
        );
        assert_eq!(typing.deadline(), Some(start + SHOWN_FOR / 2 + SHOWN_FOR));
        assert!(typing.on_timer(start + SHOWN_FOR).is_empty(), "refreshed");
        assert_eq!(names(&typing), ["Bob"]);
        let changed = typing.on_timer(start + SHOWN_FOR / 2 + SHOWN_FOR);
        assert_eq!(changed, ["general"]);
        assert!(names(&typing).is_empty());
    }

    #[test]
    fn stopping_or_sending_ends_it_at_once() {
        let now = Instant::now();
        let mut typing = WhoIsTyping::default();
        typing.on_notice(notice("Bob", true), now);
        typing.on_notice(notice("Ada", true), now);
        assert_eq!(names(&typing), ["Ada", "Bob"]);
        assert!(typing.on_notice(notice("Bob", false), now));
        assert!(!typing.on_notice(notice("Bob", false), now), "no news");
        assert!(typing.gone("general", "u-Ada"));
        assert!(names(&typing).is_empty());
        assert_eq!(typing.deadline(), None);
    }

    #[test]
    fn a_lost_connection_ends_everyone() {
        let now = Instant::now();
        let mut typing = WhoIsTyping::default();
        typing.on_notice(notice("Bob", true), now);
        assert_eq!(typing.clear(), ["general"]);
        assert!(names(&typing).is_empty());
    }
}

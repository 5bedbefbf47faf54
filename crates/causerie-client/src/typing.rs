//! Who is typing in each room: the server's notices, each shown for a while
//! ([`TYPING_SHOWN_MS`]) unless refreshed, and ended early by a "stopped" notice or by a message
//! from that person. The server's notices are volatile (a reader that is behind gets only the
//! latest), so a lost "stopped" must not leave someone typing for good.

use std::collections::BTreeMap;
use std::time::Duration;

use causerie_protocol::limits::TYPING_SHOWN_MS;
use causerie_protocol::{Typing, User};
use tokio::time::Instant;

/// How long a notice is shown.
const SHOWN_FOR: Duration = Duration::from_millis(TYPING_SHOWN_MS);

/// Everyone typing, per room, until when.
#[derive(Debug, Default)]
pub(crate) struct WhoIsTyping {
    rooms: BTreeMap<String, BTreeMap<String, (User, Instant)>>,
}

impl WhoIsTyping {
    /// A notice from the server; `true` when the room's list changed.
    pub(crate) fn on_notice(&mut self, notice: Typing, now: Instant) -> bool {
        let room = self.rooms.entry(notice.room).or_default();
        if notice.typing {
            let known = room.get(&notice.user.id).map(|(user, _)| user.clone());
            let changed = known.as_ref() != Some(&notice.user);
            room.insert(notice.user.id.clone(), (notice.user, now + SHOWN_FOR));
            changed
        } else {
            room.remove(&notice.user.id).is_some()
        }
    }

    /// `author` said something in `room`, so stopped typing; `true` when the list changed.
    pub(crate) fn on_message(&mut self, room: &str, author: &str) -> bool {
        self.rooms
            .get_mut(room)
            .is_some_and(|typing| typing.remove(author).is_some())
    }

    /// Ends what was not refreshed in time; the rooms whose list changed.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Vec<String> {
        let mut changed = Vec::new();
        for (room, typing) in &mut self.rooms {
            let before = typing.len();
            typing.retain(|_, (_, until)| *until > now);
            if typing.len() != before {
                changed.push(room.clone());
            }
        }
        changed
    }

    /// When [`WhoIsTyping::on_timer`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.rooms
            .values()
            .flat_map(|typing| typing.values().map(|(_, until)| *until))
            .min()
    }

    /// Who is typing in `room`, by name.
    pub(crate) fn in_room(&self, room: &str) -> Vec<User> {
        let mut users: Vec<User> = self
            .rooms
            .get(room)
            .map(|typing| typing.values().map(|(user, _)| user.clone()).collect())
            .unwrap_or_default();
        users.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        users
    }

    /// Forgets a room left, or everyone when the connection is lost (no notice will end them).
    pub(crate) fn forget(&mut self, room: Option<&str>) -> Vec<String> {
        match room {
            Some(room) => self.rooms.remove(room).map(|_| vec![room.to_owned()]),
            None => Some(std::mem::take(&mut self.rooms).into_keys().collect()),
        }
        .unwrap_or_default()
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
        assert!(typing.on_message("general", "u-Ada"));
        assert!(names(&typing).is_empty());
        assert_eq!(typing.deadline(), None);
    }

    #[test]
    fn a_lost_connection_ends_everyone() {
        let now = Instant::now();
        let mut typing = WhoIsTyping::default();
        typing.on_notice(notice("Bob", true), now);
        assert_eq!(typing.forget(None), ["general"]);
        assert!(names(&typing).is_empty());
    }
}

//! Who is online in a room, as far as this client knows: the first page the server gave (at
//! welcome or join), kept up to date by `presence` deltas, at most [`MAX_KNOWN`] people.
//!
//! The count is always the server's. The list holds everyone while the room is small; in a crowd
//! it holds the first page and the arrivals that fit, and says it is partial. A `presence` the
//! server truncated (too many changes to list) carries the first page instead: the view starts
//! over from it, without asking.

use std::collections::BTreeMap;

use causerie_protocol::{Presence, User, WhoPage};

/// Most people a view lists.
pub(crate) const MAX_KNOWN: usize = 200;

/// One room's view of who is online.
#[derive(Debug, Default)]
pub(crate) struct OnlineView {
    /// By name, then id: the order people are shown in.
    known: BTreeMap<(String, String), User>,
    count: u32,
    /// Where the next page starts, for "show more".
    next: Option<String>,
}

fn key(user: &User) -> (String, String) {
    (user.name.clone(), user.id.clone())
}

impl OnlineView {
    /// Starts over from a first page (welcome, join, or `who` without a cursor).
    pub(crate) fn reset(&mut self, users: Vec<User>, count: u32, next: Option<String>) {
        self.known = users
            .into_iter()
            .take(MAX_KNOWN)
            .map(|user| (key(&user), user))
            .collect();
        self.count = count;
        self.next = next;
    }

    /// Adds a further page ("show more").
    pub(crate) fn extend(&mut self, page: WhoPage) {
        for user in page.users {
            if self.known.len() >= MAX_KNOWN {
                break;
            }
            self.known.insert(key(&user), user);
        }
        self.count = page.count;
        self.next = page.next;
    }

    /// Applies a `presence` delta, or the first page a truncated one carries. `true` when the
    /// list may be wrong and the first page must be asked for (a truncated event without a
    /// page, from a server of before pages came with it).
    pub(crate) fn apply(&mut self, presence: &Presence) -> bool {
        if presence.truncated {
            if presence.online.is_empty() && presence.count > 0 {
                self.count = presence.count;
                return true;
            }
            self.reset(
                presence.online.clone(),
                presence.count,
                presence.online_next.clone(),
            );
            return false;
        }
        self.count = presence.count;
        for user in &presence.left {
            self.known.retain(|_, known| known.id != user.id);
        }
        for user in &presence.joined {
            // Someone renamed comes back under a new key: drop the old one.
            self.known.retain(|_, known| known.id != user.id);
            if self.known.len() < MAX_KNOWN {
                self.known.insert(key(user), user.clone());
            }
        }
        false
    }

    /// The people listed, by name.
    pub(crate) fn users(&self) -> Vec<User> {
        self.known.values().cloned().collect()
    }

    /// The name `id` is listed under, if listed.
    pub(crate) fn name_of(&self, id: &str) -> Option<&str> {
        self.known
            .values()
            .find(|user| user.id == id)
            .map(|user| user.name.as_str())
    }

    /// How many are online, by the server's count.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Where "show more" continues, if the server has more.
    pub(crate) fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }
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

    fn presence(count: u32, joined: Vec<User>, left: Vec<User>, truncated: bool) -> Presence {
        Presence {
            room: "general".into(),
            count,
            joined,
            left,
            truncated,
            online: Vec::new(),
            online_next: None,
        }
    }

    fn names(view: &OnlineView) -> Vec<String> {
        view.users().into_iter().map(|u| u.name).collect()
    }

    #[test]
    fn deltas_keep_the_list_and_the_count_by_name() {
        let mut view = OnlineView::default();
        view.reset(vec![user("1", "Cy"), user("2", "Ada")], 2, None);
        assert_eq!(names(&view), ["Ada", "Cy"]);
        view.apply(&presence(
            2,
            vec![user("3", "Bob")],
            vec![user("1", "Cy")],
            false,
        ));
        assert_eq!(names(&view), ["Ada", "Bob"]);
        assert_eq!(view.count(), 2);
    }

    #[test]
    fn a_truncated_delta_replaces_the_list_with_the_first_page_it_carries() {
        let mut view = OnlineView::default();
        view.reset(vec![user("1", "Ada"), user("9", "Zoe")], 2, None);
        let mut truncated = presence(500, Vec::new(), Vec::new(), true);
        truncated.online = vec![user("2", "Bea"), user("1", "Ada")];
        truncated.online_next = Some("next".into());
        view.apply(&truncated);
        assert_eq!(
            names(&view),
            ["Ada", "Bea"],
            "Zoe may have gone: not listed"
        );
        assert_eq!(view.count(), 500, "the count is the server's, always");
        assert_eq!(view.next(), Some("next"));
    }

    #[test]
    fn a_truncated_delta_without_a_page_asks_for_it() {
        let mut view = OnlineView::default();
        view.reset(vec![user("1", "Ada")], 1, None);
        assert!(view.apply(&presence(500, Vec::new(), Vec::new(), true)));
        assert_eq!(view.count(), 500);
    }

    #[test]
    fn a_crowd_is_listed_up_to_the_cap_and_the_rest_counted() {
        let mut view = OnlineView::default();
        let first: Vec<User> = (0..50)
            .map(|i| user(&i.to_string(), &format!("u{i:03}")))
            .collect();
        view.reset(first, 10_000, Some("cursor".into()));
        let crowd: Vec<User> = (50..400)
            .map(|i| user(&i.to_string(), &format!("u{i:03}")))
            .collect();
        view.apply(&presence(10_350, crowd, Vec::new(), false));
        assert_eq!(view.users().len(), MAX_KNOWN);
        assert_eq!(view.count(), 10_350);
        assert_eq!(view.next(), Some("cursor"));
    }

    #[test]
    fn a_rename_replaces_the_old_entry() {
        let mut view = OnlineView::default();
        view.reset(vec![user("1", "Ada")], 1, None);
        view.apply(&presence(1, vec![user("1", "Ada L.")], Vec::new(), false));
        assert_eq!(names(&view), ["Ada L."]);
    }
}

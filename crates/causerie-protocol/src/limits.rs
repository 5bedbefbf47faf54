//! Limits the server enforces, and the validation rules shared by the server and clients, so that a
//! client can refuse bad input before it reaches the network and both sides agree on why.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::ErrorCode;

/// Longest message text by default, in Unicode scalar values (Rust `char`s).
pub const DEFAULT_MAX_MESSAGE_CHARS: u32 = 4_000;
/// Longest display name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 32;
/// Longest client message id, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Messages in a history page when the request names no limit, and in `welcome.history`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// Most messages in one history page.
pub const MAX_HISTORY_LIMIT: u32 = 200;
/// Largest Socket.IO packet the server accepts by default, in bytes, on either transport.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u32 = 64 * 1024;
/// People online in a `who` page, `welcome.online` and a `join` ack's `online`, by default.
pub const DEFAULT_ONLINE_PAGE: u32 = 20;
/// Most people online in one `who` page.
pub const MAX_ONLINE_PAGE: u32 = 200;
/// Rooms in a `rooms` page and in `welcome.rooms`, by default.
pub const DEFAULT_ROOMS_PAGE: u32 = 100;
/// Most rooms in one `rooms` page.
pub const MAX_ROOMS_PAGE: u32 = 500;
/// Rooms one connection, or one user across connections, may be in at once, by default; and
/// direct conversations one connection may be in at once, apart.
pub const DEFAULT_MAX_JOINED_ROOMS: u32 = 100;
/// Messages per second a user may send, sustained, by default: more than people type, less
/// than a script floods.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 5;
/// Messages a user may send at once before the rate applies, by default.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 10;
/// How often the server tells a room again that someone is still typing, in milliseconds.
pub const TYPING_REFRESH_MS: u64 = 3_000;
/// How long after sending a message its author may edit it, by default: a day.
pub const DEFAULT_EDIT_WINDOW_SECS: u32 = 24 * 60 * 60;
/// How long a client shows that someone is typing after the last notice, in milliseconds: two
/// refreshes and some slack, so that one lost or late refresh does not make it flicker, and a
/// lost "stopped" does not leave it on for good.
pub const TYPING_SHOWN_MS: u64 = 2 * TYPING_REFRESH_MS + 1_500;
/// How long after the last key a user counts as no longer typing, in milliseconds.
pub const TYPING_IDLE_MS: u64 = 3_000;
/// The most people one message may mention.
pub const MAX_MENTIONS: usize = 20;

/// The most characters of a search query.
pub const MAX_SEARCH_CHARS: usize = 100;
/// Search results in a page by default, and at most.
pub const DEFAULT_SEARCH_PAGE: u32 = 20;
/// The most search results in a page.
pub const MAX_SEARCH_PAGE: u32 = 50;

/// The most different emoji one message can carry as reactions.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 20;
/// The most people a message's reaction lists by name (its `count` counts them all): a message
/// everyone reacted to stays small.
pub const MAX_REACTORS_LISTED: usize = 20;

/// The reaction `emoji` stands for, in its one canonical form (fully qualified: `❤` and `❤️`
/// are the same reaction), if it is one emoji (any of Unicode's, skin tones included).
pub fn reaction(emoji: &str) -> Option<&'static str> {
    if emoji.len() > 64 {
        return None;
    }
    emojis::get(emoji).map(emojis::Emoji::as_str)
}

/// The most messages after a read marker the server looks at to count the unread ones: a count
/// costs the server a bounded read whatever the backlog, and a client shows "999+" beyond.
pub const MAX_UNREAD_COUNTED: u32 = 1_000;

/// The limits in force on a server, sent in `welcome` so that clients check input the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Longest message text, in Unicode scalar values.
    pub max_message_chars: u32,
    /// Longest display name, in characters.
    pub max_name_chars: u32,
    /// Longest room name, in characters.
    pub max_room_chars: u32,
    /// Longest client message id, in characters.
    pub max_client_id_chars: u32,
    /// Most messages in one history page.
    pub max_history_limit: u32,
    /// Largest Socket.IO packet accepted, in bytes.
    pub max_payload_bytes: u32,
    /// Sustained messages per second allowed per user; `null` when the server sets no limit.
    pub rate_limit_per_second: Option<u32>,
    /// Messages a user may send at once before the sustained rate applies; `null` without a limit.
    pub rate_limit_burst: Option<u32>,
    /// Rooms a connection, or a user across connections, may be in at once (`general` included);
    /// and, apart, direct conversations a connection may be in at once.
    pub max_joined_rooms: u32,
    /// How long after sending a message its author may edit it, in seconds (deleting has no
    /// limit). Absent from a server that takes no edits or deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub edit_window_secs: Option<u32>,
    /// How many different emoji one message can carry as reactions. Absent from a server that
    /// takes no reactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max_reactions_per_message: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            max_name_chars: MAX_NAME_CHARS as u32,
            max_room_chars: MAX_ROOM_CHARS as u32,
            max_client_id_chars: MAX_CLIENT_ID_CHARS as u32,
            max_history_limit: MAX_HISTORY_LIMIT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            rate_limit_per_second: Some(DEFAULT_RATE_LIMIT_PER_SECOND),
            rate_limit_burst: Some(DEFAULT_RATE_LIMIT_BURST),
            max_joined_rooms: DEFAULT_MAX_JOINED_ROOMS,
            edit_window_secs: Some(DEFAULT_EDIT_WINDOW_SECS),
            max_reactions_per_message: Some(MAX_REACTIONS_PER_MESSAGE as u32),
        }
    }
}

impl Limits {
    /// Checks a message text: something visible (not only white space or invisible characters,
    /// see [`is_invisible`]), and no longer than [`Limits::max_message_chars`].
    pub fn check_text(&self, text: &str) -> Result<(), ErrorCode> {
        if text.chars().all(is_invisible) {
            return Err(ErrorCode::Empty);
        }
        if text.chars().count() > self.max_message_chars as usize {
            return Err(ErrorCode::TooLong);
        }
        Ok(())
    }

    /// [`Limits::check_text`] with the refusal a client gets for it, the same from the server
    /// and from a client that refuses before sending.
    pub fn check_message(&self, text: &str) -> Result<(), crate::ErrorBody> {
        self.check_text(text).map_err(|code| {
            let explanation = match code {
                ErrorCode::Empty => "a message needs some text".to_owned(),
                _ => format!(
                    "a message has at most {} characters",
                    self.max_message_chars
                ),
            };
            crate::ErrorBody::new(code, explanation)
        })
    }
}

/// Whether `c` shows nothing by itself: white space, a format character (zero-width spaces and
/// joiners, direction marks and overrides, soft hyphen, byte order mark: general category Cf),
/// a variation selector or the combining grapheme joiner, or one of the blank letters and symbols
/// (Hangul fillers, the braille blank). A text of nothing else is `empty`.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.general_category() == GeneralCategory::Format
        || matches!(c,
            '\u{034F}'                        // combining grapheme joiner
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{2800}'                      // braille pattern blank
            | '\u{FE00}'..='\u{FE0F}'         // variation selectors
            | '\u{E0100}'..='\u{E01EF}') // variation selectors supplement
}

/// Returns the display name trimmed, or `None` when it is empty, longer than [`MAX_NAME_CHARS`],
/// or holds a character that could deceive: a control character (which could forge lines in logs
/// and seed clients' `"name: text"`), a format character (direction overrides that reverse how a
/// name reads, zero-width characters that make two names look alike), or white space other than a
/// plain space. A name of invisible characters only is empty.
pub fn normalize_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let len = name.chars().count();
    let deceiving = |c: char| {
        c.is_control()
            || c.general_category() == GeneralCategory::Format
            || (c.is_whitespace() && c != ' ')
    };
    let valid = (1..=MAX_NAME_CHARS).contains(&len)
        && !name.chars().any(deceiving)
        && !name.chars().all(is_invisible);
    valid.then_some(name)
}

/// Whether `room` is a valid room name: 1 to [`MAX_ROOM_CHARS`] of `a-z`, `0-9`, `-` and `_`.
pub fn is_valid_room(room: &str) -> bool {
    (1..=MAX_ROOM_CHARS).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The most direct conversations listed in `welcome.directs`: the most recent ones. With the
/// rooms a user is in, they stay within [`DEFAULT_MAX_JOINED_ROOMS`].
pub const MAX_DIRECTS_LISTED: usize = 20;

/// Longest user id, in bytes: the server's ids are UUIDs.
pub const MAX_USER_ID_CHARS: usize = 64;

/// What starts the name of a direct conversation's room: a character no room name has, so that
/// no one can create or join one as a room, and that sorts after every room name.
pub const DIRECT_ROOM_PREFIX: char = '~';

/// Whether `id` can be a user id: 1 to [`MAX_USER_ID_CHARS`] of ASCII letters, digits, `-`
/// and `_` (a UUID is).
pub fn is_valid_user_id(id: &str) -> bool {
    (1..=MAX_USER_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The room of the direct conversation between two users: `~` and their ids, sorted, joined by
/// `+`. One name per pair, whoever opens it.
pub fn direct_room(one: &str, other: &str) -> String {
    let (first, second) = if one <= other {
        (one, other)
    } else {
        (other, one)
    };
    format!("{DIRECT_ROOM_PREFIX}{first}+{second}")
}

/// The two members of a direct conversation's room, if `room` is one (in its one valid form).
pub fn direct_members(room: &str) -> Option<(&str, &str)> {
    let (first, second) = room.strip_prefix(DIRECT_ROOM_PREFIX)?.split_once('+')?;
    let valid = is_valid_user_id(first) && is_valid_user_id(second) && first < second;
    valid.then_some((first, second))
}

/// Whether `room` is a direct conversation's (a quick test of a name already checked: no room
/// name starts with [`DIRECT_ROOM_PREFIX`]).
pub fn is_direct_room(room: &str) -> bool {
    room.starts_with(DIRECT_ROOM_PREFIX)
}

/// Whether `room` names a room or a direct conversation.
pub fn is_room_or_direct(room: &str) -> bool {
    is_valid_room(room) || direct_members(room).is_some()
}

/// Whether `id` is a valid client message id: 1 to [`MAX_CLIENT_ID_CHARS`] characters, none of
/// them a control character.
pub fn is_valid_client_id(id: &str) -> bool {
    (1..=MAX_CLIENT_ID_CHARS).contains(&id.chars().count()) && !id.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_room_has_one_name_per_pair_and_is_no_room() {
        let room = direct_room("bob", "ada");
        assert_eq!(room, "~ada+bob");
        assert_eq!(direct_room("ada", "bob"), room);
        assert_eq!(direct_members(&room), Some(("ada", "bob")));
        assert!(!is_valid_room(&room));
        assert!(is_room_or_direct(&room) && is_room_or_direct("general"));
        // Only the one sorted form, of two valid ids, and never one person with themselves.
        for bad in [
            "~bob+ada",
            "~ada+ada",
            "~ada",
            "~+bob",
            "~ada+b+c",
            "ada+bob",
            "~ada+bo b",
        ] {
            assert_eq!(direct_members(bad), None, "{bad}");
        }
        assert!(!is_valid_user_id(&"a".repeat(MAX_USER_ID_CHARS + 1)));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(normalize_name("  Ada  "), Some("Ada"));
        assert_eq!(normalize_name("   "), None);
        assert_eq!(
            normalize_name(&"é".repeat(32)),
            Some("é".repeat(32).as_str())
        );
        assert_eq!(normalize_name(&"é".repeat(33)), None);
        assert_eq!(normalize_name("line\nbreak"), None);
    }

    #[test]
    fn names_that_could_deceive_are_refused() {
        for name in [
            "Ada\u{200B}",         // zero-width space: looks like "Ada"
            "\u{202E}adA",         // right-to-left override: reads "Ada"
            "A\u{2066}da",         // left-to-right isolate
            "Ada\u{00A0}Lovelace", // no-break space
            "Ada\u{2028}Lovelace", // line separator
            "\u{3164}",            // Hangul filler: a blank name
            "\u{FEFF}",
        ] {
            assert_eq!(normalize_name(name), None, "{name:?}");
        }
        assert_eq!(normalize_name("Ada Lovelace"), Some("Ada Lovelace"));
        assert_eq!(normalize_name("Ada 🦀"), Some("Ada 🦀"));
        assert_eq!(normalize_name("Zoë"), Some("Zoë"));
    }

    #[test]
    fn a_text_of_invisible_characters_only_is_empty() {
        let limits = Limits::default();
        for text in [
            "\u{200B}\u{200B}",
            " \u{2060} \n",
            "\u{2800}",
            "\u{3164}\u{FE0F}",
        ] {
            assert_eq!(limits.check_text(text), Err(ErrorCode::Empty), "{text:?}");
        }
        assert_eq!(limits.check_text("hi\u{200B}"), Ok(()));
        assert_eq!(limits.check_text("👍🏽"), Ok(()));
    }

    #[test]
    fn room_names_allow_only_lowercase_digits_dash_and_underscore() {
        assert!(is_valid_room("general"));
        assert!(is_valid_room("rust-fr_2"));
        assert!(!is_valid_room(""));
        assert!(!is_valid_room("General"));
        assert!(!is_valid_room("a b"));
        assert!(!is_valid_room(&"a".repeat(33)));
    }

    #[test]
    fn text_is_checked_for_blankness_and_length_in_chars() {
        let limits = Limits {
            max_message_chars: 3,
            ..Limits::default()
        };
        assert_eq!(limits.check_text(" \n\t"), Err(ErrorCode::Empty));
        assert_eq!(limits.check_text("ééé"), Ok(()));
        assert_eq!(limits.check_text("éééé"), Err(ErrorCode::TooLong));
    }

    #[test]
    fn client_ids_are_bounded() {
        assert!(is_valid_client_id("c-1"));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id(&"x".repeat(65)));
    }
}

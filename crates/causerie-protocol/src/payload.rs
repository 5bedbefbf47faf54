//! The payloads of each event. Field names are camelCase on the wire.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::Limits;

/// The handshake `auth` object a client sends when it connects.
///
/// A client without `protocol` is a seed client of the old server (see `docs/protocol.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeAuth {
    /// [`crate::PROTOCOL_VERSION`] for a Causerie client; absent for a seed client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub protocol: Option<u32>,
    /// Display name, 1 to 32 characters after trimming; absent: the server picks `guest-NNNN`
    /// (or keeps the name the token carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    /// The session token from an earlier `welcome`, to come back as the same user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub token: Option<String>,
    /// The server's join code, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub code: Option<String>,
}

/// A person in the chat.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
pub struct User {
    /// Stable across connections for as long as the user keeps their token.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The server's name and version, in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ServerInfo {
    /// Always `"causerie"` for this server.
    pub name: String,
    /// The server's release, semver.
    pub version: String,
}

/// A stored chat message, as every client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The server's id for the message; unique across rooms.
    pub id: String,
    /// The id the sending client gave the message; unique per author.
    pub client_id: String,
    /// The room the message belongs to.
    pub room: String,
    /// Position in the room: 1 for the first message, then up by exactly 1, with no gaps.
    #[ts(type = "number")]
    pub seq: u64,
    /// Who sent it, with the name they had then.
    pub author: User,
    /// The text, as sent (rendered as text, never as markup).
    pub text: String,
    /// When the server stored it, RFC 3339 UTC with milliseconds (`2026-11-25T09:00:00.123Z`).
    pub sent_at: String,
    /// When its author last edited it, if they did, as `sentAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub edited_at: Option<String>,
    /// Deleted by its author: `text` is empty, and the text is gone from the server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub deleted: bool,
    /// The seq of the room's log its state reflects: its own seq when it is new, the room's head
    /// when it comes in a page. Changes up to it are in its state already (see
    /// [`Message::apply`]); 0 from a server that does not say.
    #[serde(default)]
    #[ts(type = "number")]
    pub as_of: u64,
    /// The ids of the people it mentions, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<String>>")]
    pub mentions: Vec<String>,
    /// Its reactions, each emoji once, in the order they were first given; none once deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<Reaction>>")]
    pub reactions: Vec<Reaction>,
    /// The message this one answers, as it is now (quoted, not copied: an edit or a deletion
    /// of the original shows in its quotes too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reply_to: Option<Box<Quote>>,
}

impl Message {
    /// The message as `change` (one of its own) leaves it: the same rules as the server's, for
    /// clients that keep messages and receive changes. A change the message's state reflects
    /// already (`asOf`) changes nothing: a page brings messages as they are now *and* the
    /// changes among its entries, and a reaction counted twice would show twice.
    pub fn apply(&mut self, change: &Change) {
        if change.seq <= self.as_of {
            return;
        }
        self.as_of = change.seq;
        match change.kind {
            ChangeKind::Edit => {
                if let Some(text) = &change.text {
                    self.text.clone_from(text);
                }
                self.edited_at = Some(change.at.clone());
            }
            ChangeKind::Delete => {
                self.text.clear();
                self.deleted = true;
                self.reactions.clear();
                self.mentions.clear();
            }
            ChangeKind::React => {
                let Some(emoji) = &change.emoji else { return };
                match self.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                    Some(reaction) => {
                        reaction.count = reaction.count.saturating_add(1);
                        if reaction.users.len() < crate::limits::MAX_REACTORS_LISTED {
                            reaction.users.push(change.author.clone());
                        }
                    }
                    None => self.reactions.push(Reaction {
                        emoji: emoji.clone(),
                        count: 1,
                        users: vec![change.author.clone()],
                    }),
                }
            }
            ChangeKind::Unreact => {
                let Some(emoji) = &change.emoji else { return };
                if let Some(reaction) = self.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                    reaction.count = reaction.count.saturating_sub(1);
                    reaction.users.retain(|u| u.id != change.author.id);
                }
                self.reactions.retain(|r| r.count > 0);
            }
            ChangeKind::Unknown => {}
        }
    }
}

/// One emoji given to a message, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// How many people gave it.
    pub count: u32,
    /// Who gave it, the first [`crate::limits::MAX_REACTORS_LISTED`] of them, in order.
    pub users: Vec<User>,
}

/// The message a reply answers, as a reply shows it: who wrote it and its first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// Its seq in the same room: where a click on the quote goes (`history {around}`).
    #[ts(type = "number")]
    pub seq: u64,
    /// Who wrote it, with the name they had then.
    pub author: User,
    /// Its first line with something visible, at most [`Quote::EXCERPT_CHARS`] characters
    /// (with `…` when cut); empty once it is deleted.
    pub excerpt: String,
    /// It was deleted since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub deleted: bool,
}

impl Quote {
    /// The most characters of the original a quote carries.
    pub const EXCERPT_CHARS: usize = 140;

    /// The quote of `message`.
    pub fn of(message: &Message) -> Self {
        // The first line with something to see: a message may start with invisible ones.
        let line = message
            .text
            .lines()
            .find(|l| {
                l.chars()
                    .any(|c| !c.is_whitespace() && !crate::limits::is_invisible(c))
            })
            .unwrap_or("");
        let line = line.trim();
        let excerpt = match line.char_indices().nth(Self::EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", line[..cut].trim_end()),
            None => line.to_owned(),
        };
        Self {
            seq: message.seq,
            author: message.author.clone(),
            excerpt: if message.deleted {
                String::new()
            } else {
                excerpt
            },
            deleted: message.deleted,
        }
    }
}

/// What a [`Change`] does to the message it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// Its text was replaced.
    Edit,
    /// It was deleted.
    Delete,
    /// Someone added a reaction (`emoji`).
    React,
    /// Someone took their reaction (`emoji`) back.
    Unreact,
    /// A kind this build does not know (from a later server): an entry of the log that changes
    /// nothing here, so that a new kind needs no new protocol version.
    #[serde(other)]
    Unknown,
}

impl ChangeKind {
    /// The kind as it appears on the wire (and in the server's store and metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::React => "react",
            Self::Unreact => "unreact",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a kind from its wire form.
    pub fn parse(kind: &str) -> Option<Self> {
        [Self::Edit, Self::Delete, Self::React, Self::Unreact]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }
}

/// A change to a stored message by its author. Every change is an entry of the room's log, as
/// messages are: it has the next seq, so catch-up (`history {after}`) delivers it in order,
/// once, with the messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The server's id for the change.
    pub id: String,
    /// The id the client gave the request; unique per author.
    pub client_id: String,
    /// The room.
    pub room: String,
    /// Position in the room's log, shared with messages.
    #[ts(type = "number")]
    pub seq: u64,
    /// Who changed it: the message's author for an edit or a deletion, anyone in the room for a
    /// reaction.
    pub author: User,
    /// What the change does.
    pub kind: ChangeKind,
    /// The seq of the message changed.
    #[ts(type = "number")]
    pub target: u64,
    /// The new text of an edit. Absent for a deletion, and for an edit of a message deleted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub text: Option<String>,
    /// The emoji of a reaction added or taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub emoji: Option<String>,
    /// When the server stored it, as `Message.sentAt`.
    pub at: String,
}

/// Sent once to each connection: who you are, where you are, and what you missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The connected user.
    pub user: User,
    /// Keep it and send it as `auth.token` next time to stay the same user.
    pub token: String,
    /// The room this connection is in: [`crate::DEFAULT_ROOM`].
    pub room: String,
    /// The server's rooms by name: the first page (`rooms` asks for the next ones).
    pub rooms: Vec<String>,
    /// Where the next page of rooms starts (`rooms {after}`), if there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub rooms_next: Option<String>,
    /// The people online in `room`, one entry per user, by name: the first page.
    pub online: Vec<User>,
    /// How many people are online in `room`.
    #[serde(default)]
    pub online_count: u32,
    /// Where the next page of people starts (`who {room, after}`), if there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub online_next: Option<String>,
    /// The latest messages of `room`, oldest first, as they are now (edited, deleted).
    pub history: Vec<Message>,
    /// The changes among the same latest entries of the room's log, oldest first: their seqs
    /// are part of the page (see [`HistoryPage::changes`]).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The latest seq of `room` when this connection joined it (0 for an empty room): every later
    /// message reaches the connection live, so a client that has seen less catches up with
    /// `history {after}` at once instead of waiting for a later message to show the gap.
    #[serde(default)]
    #[ts(type = "number")]
    pub head: u64,
    /// How far the user has read `room`, and how many messages they have not read up to `head`.
    /// Absent from a server that keeps no read markers (before they came).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub read: Option<ReadState>,
    /// The user's direct conversations, the most recent first: at most
    /// [`crate::limits::MAX_DIRECTS_LISTED`]. Join each to follow it, as a room.
    #[serde(default)]
    pub directs: Vec<Direct>,
    /// The limits the server enforces.
    pub limits: Limits,
    /// Which server this is.
    pub server: ServerInfo,
}

/// Client `message`: send a text to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The client's id for this message, 1 to 64 characters. Sending the same id again is safe: the
    /// server stores the message once and acks the stored one.
    pub id: String,
    /// Defaults to [`crate::DEFAULT_ROOM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// The text, 1 to `limits.maxMessageChars` characters, not blank.
    pub text: String,
    /// The seq of the message in the same room this one answers: it must exist and not be
    /// deleted.
    #[serde(default, rename = "replyTo", skip_serializing_if = "Option::is_none")]
    #[ts(optional, rename = "replyTo", type = "number")]
    pub reply_to: Option<u64>,
    /// The ids of the people the text mentions (`@name`, picked from the room's people), at
    /// most [`crate::limits::MAX_MENTIONS`]: they see it highlighted, and counted apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<String>>")]
    pub mentions: Vec<String>,
}

/// Client `edit`: replace the text of one of your own messages, within
/// `limits.editWindowSecs` of sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The client's id for this change, as for a message: sending it again is safe.
    pub id: String,
    /// Defaults to [`crate::DEFAULT_ROOM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// The seq of the message to edit.
    #[ts(type = "number")]
    pub target: u64,
    /// The new text, under the same rules as a message's.
    pub text: String,
}

/// Client `delete`: delete one of your own messages, at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct DeleteMessage {
    /// The client's id for this change, as for a message: sending it again is safe.
    pub id: String,
    /// Defaults to [`crate::DEFAULT_ROOM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// The seq of the message to delete.
    #[ts(type = "number")]
    pub target: u64,
}

/// Client `react`: toggles the user's reaction `emoji` to a message of a joined room (anyone's,
/// not deleted): added if they had not given it, taken back if they had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ReactRequest {
    /// The client's id for this change, as for a message: sending it again is safe (it toggles
    /// once).
    pub id: String,
    /// Defaults to [`crate::DEFAULT_ROOM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// The seq of the message.
    #[ts(type = "number")]
    pub target: u64,
    /// One emoji.
    pub emoji: String,
}

/// The body of a successful `edit`, `delete` or `react` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChangeAccepted {
    /// The stored change, with its seq.
    pub change: Change,
}

/// The body of a successful `message` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MessageAccepted {
    /// The stored message, with its server id and seq.
    pub message: Message,
}

/// Client `history`: a page of a room's messages.
///
/// With `after`, the oldest messages with a higher seq; with `before`, the latest messages with a
/// lower seq; with both, the oldest messages between them; with neither, the latest messages.
/// With `around` (alone), the entries around that seq: half the page up to it, it included,
/// and the rest after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// Defaults to [`crate::DEFAULT_ROOM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// Only messages with a seq greater than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub after: Option<u64>,
    /// Only messages with a seq less than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub before: Option<u64>,
    /// The entries around this seq (not with `after` or `before`): to show a message in its
    /// context, such as the original of a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub around: Option<u64>,
    /// 1 to 200; defaults to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// The body of a successful `history` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// The room of the page.
    pub room: String,
    /// Oldest first, as they are now (edited, deleted).
    pub messages: Vec<Message>,
    /// The changes among the page's entries, oldest first. With the messages they fill the
    /// page's seqs without gaps. In a page of older history they are already applied to its
    /// messages; in a catch-up page (`after`) they may change messages delivered before.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Whether more messages match the request beyond this page (older for `before`, `around`
    /// or no bound, newer for `after`).
    pub has_more: bool,
    /// For `around`: whether newer entries follow the page (it does not reach the present).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub has_newer: bool,
}

/// Client `join` and `leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct RoomRequest {
    /// 1 to 32 of `a-z`, `0-9`, `-`, `_`. Joining a room that does not exist creates it. Or
    /// the room of one of the user's direct conversations ([`Direct::room`]).
    pub room: String,
}

/// Client `direct`: open the direct conversation with another user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct DirectRequest {
    /// The other user's id (from the people online, or a message's author): someone this
    /// server has seen, and not the user.
    pub user: String,
}

/// A direct conversation between the user and `peer`: a room only the two of them can join,
/// read and search (see [`crate::limits::direct_room`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Direct {
    /// Its room.
    pub room: String,
    /// The other person, under the name they last connected with.
    pub peer: User,
}

/// The body of a successful `join` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The room joined.
    pub room: String,
    /// The people online in it, the joining user included, by name: the first page.
    pub online: Vec<User>,
    /// How many people are online in it.
    #[serde(default)]
    pub online_count: u32,
    /// Where the next page of people starts (`who {room, after}`), if there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub online_next: Option<String>,
    /// Its latest messages, oldest first, as in `welcome.history`.
    pub history: Vec<Message>,
    /// The changes among them, as in `welcome.changes`.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The room's latest seq when this connection joined it, as in `welcome.head`.
    #[serde(default)]
    #[ts(type = "number")]
    pub head: u64,
    /// How far the user has read it, as in `welcome.read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub read: Option<ReadState>,
}

/// Client `search`: the messages with all these words (the last one may be the start of a word),
/// in the rooms this connection is in (or one of them), newest first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The words, 1 to [`crate::limits::MAX_SEARCH_CHARS`] characters. Plain words: no
    /// operators; case and accents do not matter.
    pub query: String,
    /// Only this room (joined); absent: every room the connection is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub room: Option<String>,
    /// The `next` of the previous page; absent for the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub after: Option<String>,
    /// 1 to [`crate::limits::MAX_SEARCH_PAGE`]; defaults to
    /// [`crate::limits::DEFAULT_SEARCH_PAGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// The body of a successful `search` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SearchPage {
    /// The messages found, newest first, as they are now (without their quotes and reactions:
    /// `history {around}` shows one in its context).
    pub results: Vec<Message>,
    /// Where the next (older) page starts, if there may be more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next: Option<String>,
}

/// Client `read`: the user has read a joined room up to `seq` (the latest message they saw).
/// A marker only moves forward; one beyond the room's latest seq stops there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// A room this connection has joined.
    pub room: String,
    /// The seq read up to.
    #[ts(type = "number")]
    pub seq: u64,
}

/// A user's read marker of a room, kept by the server per user (so all their connections agree):
/// in `welcome` and `join`, as the ack of `read`, and sent as `read` to the user's other
/// connections in the room when it moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ReadState {
    /// The room.
    pub room: String,
    /// The user has read up to this seq. A room the user never marked read counts as read up
    /// to its `head` when they first see it: nothing from before is unread.
    #[ts(type = "number")]
    pub seq: u64,
    /// Messages by others, not deleted, after `seq` and up to `head`: counted among the first
    /// [`crate::limits::MAX_UNREAD_COUNTED`] messages after `seq`, so a client shows a count of
    /// that many as "at least".
    pub unread: u32,
    /// Of those, the messages that mention the user.
    #[serde(default)]
    pub mentions: u32,
    /// The room's latest seq when this was counted: a message above it is not in `unread`.
    #[ts(type = "number")]
    pub head: u64,
}

/// The body of a successful `leave` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Left {
    /// The room left.
    pub room: String,
}

/// Server `head`: the latest seq of a room, sent by a node of a cluster once Redis answers again
/// after an outage, during which messages sent on one node may not have reached the clients of
/// another. A client whose last seq of the room is lower catches up (`history` `after`) as if a
/// message with that seq had arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// The room.
    pub room: String,
    /// Its latest seq (message or change).
    pub seq: u64,
}

/// Server `presence`: the people online in a room changed. Changes close together (within about
/// 200 ms) arrive as one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The room whose people changed.
    pub room: String,
    /// How many people are online in the room now.
    pub count: u32,
    /// Who arrived (their first connection in the room), or connected under a new name: an
    /// entry with an id the client lists already replaces it.
    #[serde(default)]
    pub joined: Vec<User>,
    /// Who went away (their last connection left the room).
    #[serde(default)]
    pub left: Vec<User>,
    /// More people arrived or left than are listed: `online` then holds the first page of
    /// who is online now, which replaces what the client knew.
    #[serde(default)]
    pub truncated: bool,
    /// With `truncated`: the first page of the people online, by name (as in `welcome`);
    /// empty otherwise. Sent once to the whole room, so that no member has to ask `who`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<User>>")]
    pub online: Vec<User>,
    /// With `truncated`: where `who {after}` continues, when there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub online_next: Option<String>,
}

/// Client `who`: a page of the people online in a joined room, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct WhoRequest {
    /// A room this connection has joined.
    pub room: String,
    /// The `next` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub after: Option<String>,
    /// 1 to 200; defaults to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// The body of a successful `who` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct WhoPage {
    /// The room.
    pub room: String,
    /// People online, by name.
    pub users: Vec<User>,
    /// How many people are online in the room.
    pub count: u32,
    /// Where the next page starts, if there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next: Option<String>,
}

/// Client `rooms`: a page of the server's rooms by name, all of them or those whose name starts
/// with `prefix` (for "join or create").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct RoomsRequest {
    /// Only rooms whose name starts with this (`a-z`, `0-9`, `-`, `_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub prefix: Option<String>,
    /// The `next` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub after: Option<String>,
    /// 1 to 500; defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// The body of a successful `rooms` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoomsPage {
    /// Room names, sorted.
    pub rooms: Vec<String>,
    /// Where the next page starts, if there are more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next: Option<String>,
}

/// Client `ping`: asks the server to ack at once, to check the connection. Empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PingRequest {}

/// The body of a `ping` ack: nothing beyond `ok: true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Pong {}

/// Client `typing`: the user started or stopped typing in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct TypingRequest {
    /// A room this connection has joined.
    pub room: String,
    /// `true` while typing, `false` when stopped.
    pub typing: bool,
}

/// Server `typing`: someone else in the room started or stopped typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Typing {
    /// The room.
    pub room: String,
    /// Who is typing.
    pub user: User,
    /// `true` while typing, `false` when stopped.
    pub typing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_uses_camel_case_fields() {
        let message = Message {
            id: "m1".into(),
            client_id: "c1".into(),
            room: "general".into(),
            seq: 1,
            author: User {
                id: "u1".into(),
                name: "Ada".into(),
            },
            text: "hi".into(),
            sent_at: "2026-11-25T09:00:00.123Z".into(),
            edited_at: None,
            deleted: false,
            as_of: 1,
            mentions: Vec::new(),
            reactions: Vec::new(),
            reply_to: None,
        };
        assert_eq!(
            serde_json::to_value(&message).expect("serializes"),
            json!({"id": "m1", "clientId": "c1", "room": "general", "seq": 1,
                   "author": {"id": "u1", "name": "Ada"}, "text": "hi",
                   "sentAt": "2026-11-25T09:00:00.123Z", "asOf": 1})
        );
    }

    #[test]
    fn a_quote_is_the_first_line_cut_at_its_bound_and_empty_once_deleted() {
        let mut message: Message = serde_json::from_value(json!({
            "id": "m1", "clientId": "c1", "room": "general", "seq": 3,
            "author": {"id": "u1", "name": "Ada"}, "sentAt": "2026-11-25T09:00:00.123Z",
            "text": format!("\n\u{200B}\n  {}é and more\nsecond line", "a".repeat(139)),
        }))
        .expect("parses");
        let quote = Quote::of(&message);
        assert_eq!(quote.seq, 3);
        assert_eq!(quote.excerpt, format!("{}é…", "a".repeat(139)));
        message.text = "short\nsecond".into();
        assert_eq!(Quote::of(&message).excerpt, "short");
        message.text = String::new();
        message.deleted = true;
        let gone = Quote::of(&message);
        assert_eq!((gone.excerpt.as_str(), gone.deleted), ("", true));
    }

    #[test]
    fn reactions_toggle_per_user_and_go_with_a_deletion() {
        let mut message: Message = serde_json::from_value(json!({
            "id": "m1", "clientId": "c1", "room": "general", "seq": 1, "text": "lunch?",
            "author": {"id": "u1", "name": "Ada"}, "sentAt": "2026-11-25T09:00:00.123Z",
        }))
        .expect("parses");
        let change = |seq: u64, who: &str, kind: &str, emoji: &str| -> Change {
            serde_json::from_value(json!({
                "id": format!("x{seq}"), "clientId": format!("c{seq}"), "room": "general",
                "seq": seq, "author": {"id": who, "name": who}, "kind": kind, "target": 1,
                "emoji": emoji, "at": "2026-11-25T09:00:01.000Z",
            }))
            .expect("parses")
        };
        message.apply(&change(2, "bob", "react", "👍"));
        message.apply(&change(3, "cy", "react", "👍"));
        message.apply(&change(4, "cy", "react", "🎉"));
        let shown = |m: &Message| -> Vec<(String, u32, usize)> {
            m.reactions
                .iter()
                .map(|r| (r.emoji.clone(), r.count, r.users.len()))
                .collect()
        };
        assert_eq!(shown(&message), [("👍".into(), 2, 2), ("🎉".into(), 1, 1)]);
        // Toggled back by one of them: the other's stays; the last one gone takes its emoji.
        message.apply(&change(5, "bob", "unreact", "👍"));
        message.apply(&change(6, "cy", "unreact", "🎉"));
        assert_eq!(shown(&message), [("👍".into(), 1, 1)]);
        assert_eq!(message.reactions[0].users[0].id, "cy");
        // A change the state reflects already (a page's own) changes nothing.
        let before = message.clone();
        message.apply(&change(3, "cy", "react", "👍"));
        assert_eq!(message, before);
        // Nor does a kind this build does not know, though it takes its seq.
        let mut later: Change = change(7, "cy", "react", "👍");
        later.kind = ChangeKind::Unknown;
        message.apply(&later);
        assert_eq!((message.as_of, shown(&message)), (7, shown(&before)));
        let mut delete = change(8, "u1", "delete", "");
        delete.emoji = None;
        message.apply(&delete);
        assert!(message.deleted && message.reactions.is_empty());
    }

    #[test]
    fn a_change_kind_from_a_later_version_is_read_as_unknown() {
        let change: Change = serde_json::from_value(json!({
            "id": "x", "clientId": "c", "room": "general", "seq": 9,
            "author": {"id": "u", "name": "U"}, "kind": "pin", "target": 3, "at": "t",
        }))
        .expect("parses");
        assert_eq!(change.kind, ChangeKind::Unknown);
    }

    #[test]
    fn a_send_without_room_defaults_and_unknown_fields_are_refused() {
        let send: SendMessage =
            serde_json::from_value(json!({"id": "c1", "text": "hi"})).expect("parses");
        assert_eq!(send.room, None);
        assert!(
            serde_json::from_value::<SendMessage>(json!({"id": "c1", "text": "hi", "x": 1}))
                .is_err()
        );
    }
}

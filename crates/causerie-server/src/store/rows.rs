//! What both stores share once a row is read: decoding messages and changes from rows, filling
//! quotes and reactions in, cutting a page of the log, and the formats of times and seqs. Only the
//! SQL differs between SQLite and PostgreSQL; what a row means does not.

use std::collections::HashMap;

use causerie_protocol::{Change, ChangeKind, Message, Quote, Reaction, User};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{ChangeAction, HistorySlice, NewChange};

const SENT_AT_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// The columns of a message, in both stores' `messages` table.
pub(super) const MESSAGE_COLUMNS: &str = "id, client_id, room, seq, author_id, author_name, \
     text, sent_at, edited_at, deleted, reply_to, mentions";

/// The columns of a change, in both stores' `changes` table.
pub(super) const CHANGE_COLUMNS: &str =
    "id, client_id, room, seq, author_id, author_name, kind, target, text, at";

/// A row of either database, read by column name.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A yes/no column: an integer in SQLite, a boolean in PostgreSQL.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty, |$this:ident, $column:ident| $flag:expr) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn maybe_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, $column: &str) -> Result<bool, sqlx::Error> {
                let $this = self;
                $flag
            }
        }
    };
}

columns!(SqliteRow, |row, column| Ok(row
    .try_get::<i64, _>(column)?
    != 0));
columns!(PgRow, |row, column| row.try_get::<bool, _>(column));

/// A message as stored, its quote not yet filled ([`fill_quotes`]) and without reactions.
pub(super) fn message_row(row: &impl Columns) -> Result<Message, sqlx::Error> {
    let seq = seq_from_i64(row.int("seq")?)?;
    Ok(Message {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        room: row.text("room")?,
        seq,
        author: User {
            id: row.text("author_id")?,
            name: row.text("author_name")?,
        },
        text: row.text("text")?,
        sent_at: row.text("sent_at")?,
        edited_at: row.maybe_text("edited_at")?,
        deleted: row.flag("deleted")?,
        // Its own seq until the caller knows better (a page says its head).
        as_of: seq,
        mentions: row
            .maybe_text("mentions")?
            .and_then(|ids| serde_json::from_str(&ids).ok())
            .unwrap_or_default(),
        reactions: Vec::new(),
        reply_to: row
            .maybe_int("reply_to")?
            .map(seq_from_i64)
            .transpose()?
            .map(unfilled),
    })
}

/// A change as stored: a reaction's emoji sits in the `text` column.
pub(super) fn change_row(row: &impl Columns) -> Result<Change, sqlx::Error> {
    let kind = row.text("kind")?;
    let text = row.maybe_text("text")?;
    let reaction = kind == ChangeKind::React.as_str() || kind == ChangeKind::Unreact.as_str();
    Ok(Change {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        room: row.text("room")?,
        seq: seq_from_i64(row.int("seq")?)?,
        author: User {
            id: row.text("author_id")?,
            name: row.text("author_name")?,
        },
        kind: ChangeKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown change kind {kind:?}").into()))?,
        target: seq_from_i64(row.int("target")?)?,
        text: if reaction { None } else { text.clone() },
        emoji: if reaction { text } else { None },
        at: row.text("at")?,
    })
}

/// An entry of a room's log, as a history page reads it.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(super) enum Entry {
    Message(Message),
    Change(Change),
}

/// A row of a page's query, whose `entry` column says which kind it is.
pub(super) fn entry_row(row: &impl Columns) -> Result<Entry, sqlx::Error> {
    Ok(match row.text("entry")?.as_str() {
        "change" => Entry::Change(change_row(row)?),
        _ => Entry::Message(message_row(row)?),
    })
}

/// The messages among `entries`, in order: to fill their quotes and reactions.
pub(super) fn messages_of(entries: &[Entry]) -> Vec<Message> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Message(message) => Some(message.clone()),
            Entry::Change(_) => None,
        })
        .collect()
}

/// Makes a page of `entries`, nearest first (the oldest for a page `after` a seq, else the
/// newest), given their messages `filled` in and the `head` they reflect: cut to `max_bytes`,
/// then oldest first.
pub(super) fn finish_page(
    mut entries: Vec<Entry>,
    filled: Vec<Message>,
    head: u64,
    mut has_more: bool,
    newest_first: bool,
    max_bytes: usize,
) -> HistorySlice {
    let mut filled = filled.into_iter();
    for entry in &mut entries {
        if let Entry::Message(message) = entry
            && let Some(mut full) = filled.next()
        {
            full.as_of = head;
            *message = full;
        }
    }
    has_more |= super::keep_within_page_bytes(&mut entries, max_bytes);
    if newest_first {
        entries.reverse();
    }
    let mut slice = HistorySlice {
        messages: Vec::new(),
        changes: Vec::new(),
        has_more,
        has_newer: false,
    };
    for entry in entries {
        match entry {
            Entry::Message(message) => slice.messages.push(message),
            Entry::Change(change) => slice.changes.push(change),
        }
    }
    slice
}

/// The `mentions` column of a message: its ids as a JSON array, NULL for none.
pub(super) fn mentions_column(mentions: &[String]) -> Option<String> {
    (!mentions.is_empty()).then(|| serde_json::to_string(mentions).unwrap_or_default())
}

/// The quote of the message at `seq`, before [`fill_quotes`] reads the original.
pub(super) fn unfilled(seq: u64) -> Box<Quote> {
    Box::new(Quote {
        seq,
        author: User {
            id: String::new(),
            name: String::new(),
        },
        excerpt: String::new(),
        deleted: false,
    })
}

/// The seqs of the originals that the replies among `messages` quote, each once.
pub(super) fn quoted_seqs(messages: &[Message]) -> Vec<u64> {
    let mut wanted: Vec<u64> = messages
        .iter()
        .filter_map(|m| m.reply_to.as_ref().map(|q| q.seq))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Replaces the quotes of the replies among `messages` with their `originals`, as read: a
/// quote whose original is gone is dropped.
pub(super) fn fill_quotes(messages: &mut [Message], originals: &[Message]) {
    let quotes: HashMap<u64, Box<Quote>> = originals
        .iter()
        .map(|original| (original.seq, Box::new(Quote::of(original))))
        .collect();
    for message in messages {
        message.reply_to = message
            .reply_to
            .take()
            .and_then(|quote| quotes.get(&quote.seq).cloned());
    }
}

/// One person's reaction to a message, as a row of `reactions` says it.
pub(super) struct ReactionRow {
    pub target: u64,
    pub emoji: String,
    pub user: User,
}

impl ReactionRow {
    pub(super) fn read(row: &impl Columns) -> Result<Self, sqlx::Error> {
        Ok(Self {
            target: seq_from_i64(row.int("target")?)?,
            emoji: row.text("emoji")?,
            user: User {
                id: row.text("user_id")?,
                name: row.text("user_name")?,
            },
        })
    }
}

/// Sets the reactions of `messages` from `rows` (in the order they were given), each emoji's
/// people listed up to [`causerie_protocol::limits::MAX_REACTORS_LISTED`].
pub(super) fn fill_reactions(messages: &mut [Message], rows: Vec<ReactionRow>) {
    let mut by_target: HashMap<u64, Vec<Reaction>> = HashMap::new();
    for ReactionRow {
        target,
        emoji,
        user,
    } in rows
    {
        let reactions = by_target.entry(target).or_default();
        let at = match reactions.iter().position(|r| r.emoji == emoji) {
            Some(at) => at,
            None => {
                reactions.push(Reaction {
                    emoji,
                    count: 0,
                    users: Vec::new(),
                });
                reactions.len() - 1
            }
        };
        let reaction = &mut reactions[at];
        reaction.count += 1;
        if reaction.users.len() < causerie_protocol::limits::MAX_REACTORS_LISTED {
            reaction.users.push(user);
        }
    }
    for message in messages {
        if let Some(reactions) = by_target.remove(&message.seq) {
            message.reactions = reactions;
        }
    }
}

/// Whether `change`, stored under the same author and client id as `new`, is the same change
/// (a retry), not a client id reused for another.
pub(super) fn is_retry(change: &Change, new: &NewChange) -> bool {
    let kind_matches = match &new.action {
        ChangeAction::React { emoji } => {
            matches!(change.kind, ChangeKind::React | ChangeKind::Unreact)
                && change.emoji.as_ref().is_none_or(|stored| stored == emoji)
        }
        action => change.kind == action.kind(),
    };
    kind_matches && (change.room.as_str(), change.target) == (new.room.as_str(), new.target)
}

/// Whether a message sent at `sent_at` (as stored) is past an edit window of `window`.
pub(super) fn past_edit_window(sent_at: &str, window: std::time::Duration) -> bool {
    // Both times are in the same fixed format, so they compare as text.
    let oldest = time::OffsetDateTime::now_utc()
        .checked_sub(time::Duration::try_from(window).unwrap_or(time::Duration::MAX));
    // A window longer than time itself has no oldest editable message.
    oldest.is_some_and(|oldest| sent_at < format_time(oldest).as_str())
}

/// A seq read from the database: never negative unless it was damaged.
pub(super) fn seq_from_i64(seq: i64) -> Result<u64, sqlx::Error> {
    u64::try_from(seq).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A seq bound for a query. Seqs never come near `i64::MAX`; a client's larger bound means "no
/// bound", which `i64::MAX` also means.
pub(super) fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Now, as times are stored: UTC with milliseconds, in a fixed format that sorts as text.
pub(super) fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

fn format_time(at: time::OffsetDateTime) -> String {
    at.format(SENT_AT_FORMAT)
        .expect("a UTC time always formats with this fixed description")
}

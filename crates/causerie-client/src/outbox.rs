//! Messages waiting for the server's ack, kept across restarts in an append-only file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::event::ClientEvent;

/// The id a client gives a message before the server has it; sent as the message's `id`, so the
/// server stores a resent message once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(transparent)]
#[ts(type = "string")]
pub struct LocalId(String);

impl LocalId {
    /// A fresh, unique id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LocalId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for LocalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for LocalId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// A message the user sent, or an edit or deletion of one, that the server has not confirmed
/// yet. All go out in the order the user made them, one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Also the client id on the wire.
    pub local_id: LocalId,
    /// The room it goes to.
    pub room: String,
    /// The message's text, or the new text of an edit (empty for a deletion).
    pub text: String,
    /// What it asks for. Defaults to a new message (as every entry of a version 1 outbox is).
    #[serde(default)]
    pub action: OutboxAction,
    /// For a new message: the seq of the message of its room it answers. A field rather than
    /// an action of its own, so that an older app reading the file sends it as a plain message
    /// instead of refusing the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub reply_to: Option<u64>,
    /// For a new message: the ids of the people it mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<String>>")]
    pub mentions: Vec<String>,
}

/// What an [`OutboxEntry`] asks of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum OutboxAction {
    /// A new message.
    #[default]
    Send,
    /// The text replaces that of the user's message at seq `target`.
    Edit {
        /// The message's seq.
        #[ts(type = "number")]
        target: u64,
    },
    /// The user's message at seq `target` is deleted.
    Delete {
        /// The message's seq.
        #[ts(type = "number")]
        target: u64,
    },
    /// The user's reaction (the entry's text: one emoji) to the message at seq `target` is
    /// toggled.
    React {
        /// The message's seq.
        #[ts(type = "number")]
        target: u64,
    },
}

/// A change to the outbox, written in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum OutboxChange {
    /// The user sent a message.
    Add(OutboxEntry),
    /// A message was confirmed or refused.
    Remove(LocalId),
}

/// The first line of an outbox file.
#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
}

/// The file's format: a header line, then one [`OutboxChange`] per line.
const VERSION: u32 = 2;

/// The version 1 file: every entry, rewritten whole on each change.
#[derive(Deserialize)]
struct Version1 {
    entries: Vec<OutboxEntry>,
}

/// Changes past this many, and past twice the entries left, rewrite the file with only those.
const COMPACT_AFTER: usize = 64;

/// The outbox file: an append-only log of changes, so that sending a message costs one short
/// append and one sync, not a rewrite of every waiting message. Rewritten with only the entries
/// left once the log has grown (atomically: a crash leaves the old log or the new one).
///
/// A crash in the middle of an append leaves a torn last line: it is ignored on opening, since
/// that change was never synced. A bad line anywhere else is corruption, and an error.
#[derive(Debug)]
pub(crate) struct OutboxLog {
    path: PathBuf,
    file: std::fs::File,
    /// The entries left, in order.
    entries: Vec<OutboxEntry>,
    /// The changes in the file.
    changes: usize,
    /// An append failed (a full disk): the file may end in part of a line and lack changes, so
    /// nothing is appended to it again until it was rewritten whole.
    damaged: bool,
}

impl OutboxLog {
    /// Opens the outbox kept in `path` (creating it), with the entries it holds, oldest first.
    pub(crate) fn open(path: PathBuf) -> Result<(Self, Vec<OutboxEntry>), ClientError> {
        let (entries, changes, rewrite) = match std::fs::read(&path) {
            Ok(bytes) => read(&bytes).map_err(|e| storage_error(&path, &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0, true),
            Err(e) => return Err(storage_error(&path, &e)),
        };
        let changes = if rewrite {
            write_whole(&path, &entries).map_err(|e| storage_error(&path, &e))?;
            entries.len()
        } else {
            changes
        };
        let log = Self {
            file: open_append(&path).map_err(|e| storage_error(&path, &e))?,
            path,
            entries: entries.clone(),
            changes,
            damaged: false,
        };
        Ok((log, entries))
    }

    /// Appends `changes` and syncs once: durable when this returns.
    pub(crate) fn apply(&mut self, changes: &[OutboxChange]) -> Result<(), ClientError> {
        self.write(changes)
            .map_err(|e| storage_error(&self.path, &e))
    }

    fn write(&mut self, changes: &[OutboxChange]) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for change in changes {
            match change {
                OutboxChange::Add(entry) => self.entries.push(entry.clone()),
                OutboxChange::Remove(id) => self.entries.retain(|e| e.local_id != *id),
            }
            serde_json::to_writer(&mut lines, change)?;
            lines.push(b'\n');
        }
        self.changes += changes.len();
        let grown = self.changes > COMPACT_AFTER && self.changes > 2 * self.entries.len();
        if grown || self.damaged {
            return self.compact();
        }
        let appended = self
            .file
            .write_all(&lines)
            .and_then(|()| self.file.sync_data());
        // Whatever part of it reached the file is at its end, where opening ignores a torn line;
        // the next change rewrites the file whole, with every entry kept in memory.
        self.damaged = appended.is_err();
        appended
    }

    /// Rewrites the file with only the entries left, and appends to the new one from then on.
    fn compact(&mut self) -> std::io::Result<()> {
        self.damaged = true;
        write_whole(&self.path, &self.entries)?;
        self.file = open_append(&self.path)?;
        self.changes = self.entries.len();
        self.damaged = false;
        Ok(())
    }
}

/// Writes an outbox file holding `entries` to a temporary file, syncs it, renames it over the old
/// one and syncs the directory: a crash leaves either the old file or the new one. Only its owner
/// may read it: it holds what the user wrote.
fn write_whole(path: &Path, entries: &[OutboxEntry]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut contents = serde_json::to_vec(&Header { version: VERSION })?;
    contents.push(b'\n');
    for entry in entries {
        serde_json::to_writer(&mut contents, &OutboxChange::Add(entry.clone()))?;
        contents.push(b'\n');
    }
    let mut options = atomic_write_file::AtomicWriteFile::options();
    #[cfg(unix)]
    {
        use atomic_write_file::unix::OpenOptionsExt as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        options.preserve_mode(false).mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(&contents)?;
    file.commit()
}

/// The entries in an outbox file, how many changes it holds, and whether to rewrite it (a
/// version 1 file, or a torn last line).
fn read(bytes: &[u8]) -> std::io::Result<(Vec<OutboxEntry>, usize, bool)> {
    let corrupt = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
    if let Ok(old) = serde_json::from_slice::<Version1>(bytes) {
        return Ok((old.entries, 0, true));
    }
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    let header = lines.next().unwrap_or_default();
    match serde_json::from_slice::<Header>(header) {
        Ok(Header { version: VERSION }) => {}
        Ok(Header { version }) => return Err(corrupt(format!("unknown outbox version {version}"))),
        Err(e) => return Err(e.into()),
    }
    let (mut entries, mut changes, mut torn) = (Vec::<OutboxEntry>::new(), 0, false);
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<OutboxChange>(line) {
            Ok(OutboxChange::Add(entry)) => entries.push(entry),
            Ok(OutboxChange::Remove(id)) => entries.retain(|e| e.local_id != id),
            Err(_) if lines.peek().is_none() => torn = true,
            Err(e) => return Err(corrupt(format!("line {}: {e}", changes + 2))),
        }
        changes += 1;
    }
    // A crash can also cut an append just before its line break: the line reads, but the next
    // append would be glued to it.
    let unterminated = !bytes.ends_with(b"\n");
    Ok((entries, changes, torn || unterminated))
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).open(path)
}

/// Writes outbox changes in order, off the async tasks: each batch on a blocking thread, with one
/// sync for all the changes that queued up meanwhile. A failure is told to the user as an
/// [`ClientEvent::Error`].
#[derive(Debug, Clone)]
pub(crate) struct OutboxWriter {
    changes: mpsc::UnboundedSender<OutboxChange>,
}

impl OutboxWriter {
    /// Starts writing to `log`. Holding `events` open, the writer ends the event stream only
    /// after the last change is written.
    pub(crate) fn spawn(mut log: OutboxLog, events: mpsc::UnboundedSender<ClientEvent>) -> Self {
        let (changes, mut queued) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while queued.recv_many(&mut batch, usize::MAX).await > 0 {
                let changes = std::mem::take(&mut batch);
                let written = tokio::task::spawn_blocking(move || (log.apply(&changes), log)).await;
                match written {
                    Ok((result, returned)) => {
                        log = returned;
                        if let Err(error) = result {
                            let _ = events.send(ClientEvent::Error(error));
                        }
                    }
                    // Only if the runtime shuts down under it: nothing left to write for.
                    Err(_) => return,
                }
            }
        });
        Self { changes }
    }

    /// Queues `change` for writing.
    pub(crate) fn write(&self, change: OutboxChange) {
        // The writer lives as long as this handle.
        let _ = self.changes.send(change);
    }
}

/// Creates `dir` (and its parents) readable by its owner only, where the OS has modes.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn storage_error(path: &Path, error: &dyn std::fmt::Display) -> ClientError {
    ClientError::Storage {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> OutboxEntry {
        OutboxEntry {
            local_id: LocalId::new(),
            room: "general".into(),
            text: text.into(),
            action: OutboxAction::Send,
            reply_to: None,
            mentions: Vec::new(),
        }
    }

    fn open(path: &Path) -> (OutboxLog, Vec<OutboxEntry>) {
        OutboxLog::open(path.to_owned()).expect("opens")
    }

    #[test]
    fn entries_survive_reopening_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let (first, second) = (entry("one"), entry("two"));
        let third = OutboxEntry {
            reply_to: Some(7),
            ..entry("three, a reply")
        };
        {
            let (mut log, _) = open(&path);
            for e in [&first, &second, &third] {
                log.apply(&[OutboxChange::Add(e.clone())]).expect("saves");
            }
            log.apply(&[OutboxChange::Remove(second.local_id.clone())])
                .expect("saves");
        }
        assert_eq!(open(&path).1, [first, third]);
    }

    #[test]
    fn sending_appends_instead_of_rewriting_and_the_log_is_compacted_now_and_then() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let (mut log, _) = open(&path);
        let waiting = entry("waiting");
        log.apply(&[OutboxChange::Add(waiting.clone())])
            .expect("saves");
        let mut sizes = Vec::new();
        for i in 0..200 {
            let sent = entry(&format!("message {i}"));
            log.apply(&[OutboxChange::Add(sent.clone())])
                .expect("saves");
            log.apply(&[OutboxChange::Remove(sent.local_id)])
                .expect("saves");
            sizes.push(std::fs::metadata(&path).expect("exists").len());
        }
        assert!(sizes.windows(2).any(|w| w[1] < w[0]), "compacted");
        let longest = COMPACT_AFTER as u64 * 200;
        assert!(sizes.iter().all(|&size| size < longest), "{sizes:?}");
        assert_eq!(open(&path).1, [waiting]);
    }

    #[test]
    fn a_torn_last_line_from_a_crash_is_ignored_but_corruption_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let kept = entry("kept");
        {
            let (mut log, _) = open(&path);
            log.apply(&[OutboxChange::Add(kept.clone())])
                .expect("saves");
        }
        let whole = std::fs::read(&path).expect("reads");
        std::fs::write(&path, [&whole[..], b"{\"add\":{\"localId\":\"x"].concat()).expect("writes");
        assert_eq!(open(&path).1, std::slice::from_ref(&kept));
        // Reopening rewrote the torn line away: appending goes on from a whole line.
        let (mut log, _) = open(&path);
        let next = entry("next");
        log.apply(&[OutboxChange::Add(next.clone())])
            .expect("saves");
        assert_eq!(open(&path).1, [kept, next]);

        let lines = String::from_utf8(std::fs::read(&path).expect("reads")).expect("text");
        let broken = lines.replacen("\"add\"", "\"odd\"", 1);
        std::fs::write(&path, broken).expect("writes");
        assert!(matches!(
            OutboxLog::open(path),
            Err(ClientError::Storage { .. })
        ));
    }

    #[test]
    fn a_last_line_cut_just_before_its_line_break_is_kept_and_not_glued_to() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let kept = entry("kept");
        {
            let (mut log, _) = open(&path);
            log.apply(&[OutboxChange::Add(kept.clone())])
                .expect("saves");
        }
        let whole = std::fs::read(&path).expect("reads");
        std::fs::write(&path, &whole[..whole.len() - 1]).expect("writes");
        let (mut log, restored) = open(&path);
        assert_eq!(restored, std::slice::from_ref(&kept));
        let next = entry("next");
        log.apply(&[OutboxChange::Add(next.clone())])
            .expect("saves");
        assert_eq!(open(&path).1, [kept, next]);
    }

    #[test]
    fn an_outbox_of_the_previous_version_is_read_and_rewritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let old = entry("from version 1");
        let contents = serde_json::json!({ "version": 1, "entries": [old] });
        std::fs::write(&path, contents.to_string()).expect("writes");
        assert_eq!(open(&path).1, std::slice::from_ref(&old));
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(text.starts_with("{\"version\":2}\n"), "{text}");
        assert_eq!(open(&path).1, [old]);
    }

    #[cfg(unix)]
    #[test]
    fn a_reply_is_a_field_older_apps_ignore_and_older_entries_have_none() {
        let reply = OutboxEntry {
            reply_to: Some(3),
            ..entry("answer")
        };
        let line = serde_json::to_value(&reply).expect("serializes");
        assert_eq!(line["action"], serde_json::json!({"kind": "send"}));
        assert_eq!(line["replyTo"], 3);
        let mut older = line.clone();
        if let Some(fields) = older.as_object_mut() {
            fields.remove("replyTo");
        }
        let older: OutboxEntry = serde_json::from_value(older).expect("parses");
        assert_eq!(older.reply_to, None);
    }

    #[test]
    fn the_outbox_file_and_its_new_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("new").join("outbox.json");
        let (mut log, _) = open(&path);
        log.apply(&[OutboxChange::Add(entry("secret"))])
            .expect("saves");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(
            std::fs::read_dir(dir.path().join("new"))
                .expect("lists")
                .count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn a_corrupt_outbox_file_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        std::fs::write(&path, b"{not json").expect("writes");
        assert!(matches!(
            OutboxLog::open(path),
            Err(ClientError::Storage { .. })
        ));
    }
}

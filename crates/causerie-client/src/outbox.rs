//! Messages waiting for the server's ack, kept in order and, when given a file, across restarts.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::ClientError;

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

/// A message the user sent that the server has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Also the message's client id on the wire.
    pub local_id: LocalId,
    /// The room it goes to.
    pub room: String,
    /// Its text.
    pub text: String,
}

#[derive(Serialize, Deserialize)]
struct OutboxFile {
    version: u32,
    entries: Vec<OutboxEntry>,
}

/// The outbox: entries in the order the user sent them.
#[derive(Debug)]
pub(crate) struct Outbox {
    entries: VecDeque<OutboxEntry>,
    file: Option<PathBuf>,
}

impl Outbox {
    /// Opens the outbox kept in `file` (empty if the file does not exist), or one in memory.
    pub(crate) fn open(file: Option<PathBuf>) -> Result<Self, ClientError> {
        let entries = match &file {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice::<OutboxFile>(&bytes)
                    .map_err(|e| storage_error(path, &e))?
                    .entries
                    .into(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => VecDeque::new(),
                Err(e) => return Err(storage_error(path, &e)),
            },
            None => VecDeque::new(),
        };
        Ok(Self { entries, file })
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter()
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.local_id.as_str() == id)
    }

    /// Adds an entry at the end, and saves.
    pub(crate) fn push(&mut self, entry: OutboxEntry) -> Result<(), ClientError> {
        self.entries.push_back(entry);
        self.save()
    }

    /// Removes an entry, and saves if it was there.
    pub(crate) fn remove(&mut self, id: &str) -> Result<Option<OutboxEntry>, ClientError> {
        let Some(index) = self.entries.iter().position(|e| e.local_id.as_str() == id) else {
            return Ok(None);
        };
        let entry = self.entries.remove(index);
        self.save()?;
        Ok(entry)
    }

    /// Writes the whole outbox to a temporary file, syncs it, renames it over the old one and
    /// syncs the directory, so that a crash leaves either the old or the new outbox, never half
    /// of one. Only its owner may read it: it holds what the user wrote.
    fn save(&self) -> Result<(), ClientError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let contents = OutboxFile {
            version: 1,
            entries: self.entries.iter().cloned().collect(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let mut options = atomic_write_file::AtomicWriteFile::options();
            #[cfg(unix)]
            {
                use atomic_write_file::unix::OpenOptionsExt as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                options.preserve_mode(false).mode(0o600);
            }
            let mut file = options.open(path)?;
            file.write_all(&serde_json::to_vec(&contents)?)?;
            file.commit()
        };
        write().map_err(|e| storage_error(path, &e))
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
        }
    }

    #[test]
    fn entries_survive_reopening_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("outbox.json");
        let (first, second, third) = (entry("one"), entry("two"), entry("three"));
        {
            let mut outbox = Outbox::open(Some(path.clone())).expect("opens");
            for e in [&first, &second, &third] {
                outbox.push(e.clone()).expect("saves");
            }
            outbox.remove(second.local_id.as_str()).expect("saves");
        }
        let outbox = Outbox::open(Some(path)).expect("reopens");
        assert_eq!(
            outbox.entries().cloned().collect::<Vec<_>>(),
            [first, third]
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_outbox_file_and_its_new_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("new").join("outbox.json");
        let mut outbox = Outbox::open(Some(path.clone())).expect("opens");
        outbox.push(entry("secret")).expect("saves");
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
            Outbox::open(Some(path)),
            Err(ClientError::Storage { .. })
        ));
    }
}

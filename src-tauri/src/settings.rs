//! What the user chose, kept in `settings.json` in the app's data dir, and the command-line
//! options that override it for one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::AppError;

/// Port of a chat hosted for the local network, unless the user picks another.
pub const DEFAULT_LAN_PORT: u16 = 3000;

/// Where the chat lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// This device runs the server (embedded) and joins it. The default: works alone, first time.
    #[default]
    Host,
    /// Join the server at [`Settings::server_url`].
    Join,
}

/// What of a room's messages the system notifies while the window is in the background.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum AlertLevel {
    /// Every message of someone else.
    All,
    /// Those that mention the user; in a direct conversation, every message. The default.
    #[default]
    Mentions,
    /// None: the room is muted.
    None,
}

/// The user's choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Host or join.
    pub mode: Mode,
    /// The server to join in [`Mode::Join`].
    pub server_url: Option<String>,
    /// In [`Mode::Host`], listen on every interface on [`Settings::port`] so that others on the
    /// local network can join; otherwise only this device can reach the chat.
    pub host_on_lan: bool,
    /// The port of a chat hosted for the local network.
    pub port: u16,
    /// The join code: required of others when hosting, sent when joining.
    pub join_code: Option<String>,
    /// Display name; `None` until chosen (the first-run screen asks).
    pub name: Option<String>,
    /// Session tokens by server, so that each server knows the user again. The app's: the UI
    /// may leave it out.
    #[ts(optional, as = "Option<BTreeMap<String, String>>")]
    pub tokens: BTreeMap<String, String>,
    /// Rooms joined beside `general`, by server (the same keys as `tokens`): joined again when
    /// the chat starts, after a restart of the app or a change of settings. The app's: the UI
    /// may leave it out.
    #[ts(optional, as = "Option<BTreeMap<String, Vec<String>>>")]
    pub rooms: BTreeMap<String, Vec<String>>,
    /// Notification levels of rooms that are not at the default, by server (the keys of
    /// `tokens`), then room. The app's: the UI may leave it out.
    #[ts(
        optional,
        as = "Option<BTreeMap<String, BTreeMap<String, AlertLevel>>>"
    )]
    pub alerts: BTreeMap<String, BTreeMap<String, AlertLevel>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Host,
            server_url: None,
            host_on_lan: false,
            port: DEFAULT_LAN_PORT,
            join_code: None,
            name: None,
            tokens: BTreeMap::new(),
            rooms: BTreeMap::new(),
            alerts: BTreeMap::new(),
        }
    }
}

/// Something the app did by itself that the user should know about, shown once at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Notice {
    /// What happened, for the UI to branch on.
    pub code: NoticeCode,
    /// What happened and what was done, for people.
    pub message: String,
}

/// The stable codes of [`Notice`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCode {
    /// The settings file could not be read; it was set aside and the defaults are used.
    SettingsUnreadable,
}

impl Settings {
    /// Reads the settings file: the defaults when there is none yet. A file that cannot be read
    /// as settings (emptied by a crash, damaged, edited by hand) is set aside under a new name
    /// and the defaults are used, with a [`Notice`] saying so, rather than refusing to start.
    pub fn load(path: &Path) -> Result<(Self, Option<Notice>), AppError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Self::default(), None));
            }
            Err(e) => return Err(AppError::storage(path, &e)),
        };
        let why = match serde_json::from_slice(&bytes) {
            Ok(settings) => return Ok((settings, None)),
            Err(e) if bytes.iter().all(u8::is_ascii_whitespace) => {
                format!("the file was empty ({e})")
            }
            Err(e) => e.to_string(),
        };
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        // A name not taken yet: an earlier unreadable file is kept too.
        let aside = (0..)
            .map(|n| match n {
                0 => path.with_file_name(format!("settings-unreadable-{seconds}.json")),
                n => path.with_file_name(format!("settings-unreadable-{seconds}-{n}.json")),
            })
            .find(|candidate| !candidate.exists())
            .expect("some name is free");
        std::fs::rename(path, &aside).map_err(|e| AppError::storage(path, &e))?;
        tracing::warn!(%why, aside = %aside.display(), "unreadable settings set aside");
        let notice = Notice {
            code: NoticeCode::SettingsUnreadable,
            message: format!(
                "Your settings could not be read, so Causerie started with the defaults. The \
                 unreadable file was kept as {} in the app's data folder.",
                aside.file_name().map_or_else(
                    || aside.display().to_string(),
                    |f| f.to_string_lossy().into_owned()
                )
            ),
        };
        Ok((Self::default(), Some(notice)))
    }

    /// Writes the settings file whole or not at all (a temporary file, synced, renamed over the
    /// old one, the folder synced), readable by the user only: it holds tokens and join codes.
    pub fn save(&self, path: &Path) -> Result<(), AppError> {
        write_private_json(path, self)
    }
}

/// The settings in memory and in their file. A change is made in memory at once, under a lock
/// that no I/O is done under; the file is written after, off the async threads, one write at a
/// time and each of the latest settings, so that it never goes back to older ones.
#[derive(Debug)]
pub struct StoredSettings {
    value: std::sync::Mutex<Settings>,
    path: PathBuf,
    writing: tokio::sync::Mutex<()>,
}

impl StoredSettings {
    /// Settings kept in the file at `path`.
    pub fn new(value: Settings, path: PathBuf) -> Self {
        Self {
            value: std::sync::Mutex::new(value),
            path,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The settings now.
    pub fn get(&self) -> Settings {
        self.lock().clone()
    }

    /// Changes the settings in memory; `true` if they changed. [`StoredSettings::persist`]
    /// writes them.
    pub fn change(&self, change: impl FnOnce(&mut Settings)) -> bool {
        let mut settings = self.lock();
        let before = settings.clone();
        change(&mut settings);
        *settings != before
    }

    /// Writes the latest settings to their file.
    pub async fn persist(&self) -> Result<(), AppError> {
        let _writing = self.writing.lock().await;
        let latest = self.get();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || latest.save(&path))
            .await
            .map_err(|e| AppError::storage(&self.path, &e))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes `value` as JSON to `path` whole or not at all (a temporary file, synced, renamed over
/// the old one, the folder synced), readable by the user only.
pub fn write_private_json(path: &Path, value: &impl Serialize) -> Result<(), AppError> {
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
        std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(value)?)?;
        file.commit()
    };
    write().map_err(|e| AppError::storage(path, &e))
}

/// Creates the app's data folder (and its parents) for the user only, and narrows an existing
/// one, which is the app's own: it holds tokens, join codes, unsent messages and a hosted chat's
/// database. Where modes cannot be set (a folder on exFAT or a network share, one owned by
/// someone else), the app still starts, with a warning.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data folder private");
        }
    }
    Ok(())
}

/// Command-line options (for scripts and tests): they win over the settings for this run only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Join this server instead of what the settings say.
    pub server: Option<String>,
    /// Use this display name.
    pub name: Option<String>,
    /// Use this join code.
    pub code: Option<String>,
    /// Keep settings, outbox and the embedded database here.
    pub data_dir: Option<PathBuf>,
}

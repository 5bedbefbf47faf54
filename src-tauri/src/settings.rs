//! What the user chose, kept in `settings.json` in the app's data dir, and the command-line
//! options that override it for one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Port of a chat hosted for the local network, unless the user picks another.
pub const DEFAULT_LAN_PORT: u16 = 3000;

/// Where the chat lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// This device runs the server (embedded) and joins it. The default: works alone, first time.
    #[default]
    Host,
    /// Join the server at [`Settings::server_url`].
    Join,
}

/// The user's choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Session tokens by server, so that each server knows the user again.
    pub tokens: BTreeMap<String, String>,
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
        }
    }
}

impl Settings {
    /// Reads the settings file; the defaults when there is none yet.
    pub fn load(path: &Path) -> Result<Self, AppError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AppError::storage(path, &e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(AppError::storage(path, &e)),
        }
    }

    /// Writes the settings file (through a temporary file, so a crash never leaves half of it).
    pub fn save(&self, path: &Path) -> Result<(), AppError> {
        let temporary = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&temporary, serde_json::to_vec_pretty(self)?)?;
            std::fs::rename(&temporary, path)
        };
        write().map_err(|e| AppError::storage(path, &e))
    }
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

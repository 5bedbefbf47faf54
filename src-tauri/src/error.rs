//! Errors of the app's commands, as they cross to the UI: `{code, message}` with stable codes.

use std::path::Path;

use causerie_client::ClientError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A settings or data file could not be read or written.
    #[error("cannot use {path}: {reason}")]
    Storage {
        /// The file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The embedded server could not start (for example, its port is taken).
    #[error("cannot host the chat: {0}")]
    Hosting(String),
    /// The settings cannot work (for example, joining without a server URL).
    #[error("{0}")]
    InvalidSettings(String),
    /// The chat has not been started yet.
    #[error("the chat is not started")]
    NotStarted,
    /// The core client refused.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl AppError {
    pub(crate) fn storage(path: &Path, error: &dyn std::fmt::Display) -> Self {
        Self::Storage {
            path: path.display().to_string(),
            reason: error.to_string(),
        }
    }

    /// The stable code the UI branches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Storage { .. } => "storage",
            Self::Hosting(_) => "hosting",
            Self::InvalidSettings(_) => "invalid_settings",
            Self::NotStarted => "not_started",
            Self::Client(error) => error.code(),
        }
    }
}

/// An [`AppError`] as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[ts(rename = "AppError")]
pub struct AppErrorBody {
    /// Stable: see [`AppError::code`].
    pub code: String,
    /// For people.
    pub message: String,
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AppErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
        .serialize(serializer)
    }
}

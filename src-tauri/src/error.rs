//! Errors of the app's commands, as they cross to the UI: `{code, message}` with stable codes.

use std::path::Path;

use causerie_client::{ClientError, ClientErrorCode};
use serde::Serialize;
use ts_rs::TS;

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
    /// The system would not show a notification.
    #[error("cannot notify: {0}")]
    Notification(String),
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
    pub fn code(&self) -> AppErrorCode {
        let own = AppErrorCode::App;
        match self {
            Self::Storage { .. } => own(OwnErrorCode::Storage),
            Self::Hosting(_) => own(OwnErrorCode::Hosting),
            Self::InvalidSettings(_) => own(OwnErrorCode::InvalidSettings),
            Self::NotStarted => own(OwnErrorCode::NotStarted),
            Self::Notification(_) => own(OwnErrorCode::Notification),
            Self::Client(error) => AppErrorCode::Client(error.code()),
        }
    }
}

/// The codes of the app's own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OwnErrorCode {
    /// See [`AppError::Storage`].
    Storage,
    /// See [`AppError::Hosting`].
    Hosting,
    /// See [`AppError::InvalidSettings`].
    InvalidSettings,
    /// See [`AppError::NotStarted`].
    NotStarted,
    /// See [`AppError::Notification`].
    Notification,
}

/// An [`AppError`]'s stable code: the app's own or the core client's, serialized bare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(untagged)]
pub enum AppErrorCode {
    /// The app's.
    App(OwnErrorCode),
    /// The core client's (the server's included).
    Client(ClientErrorCode),
}

impl AppErrorCode {
    /// The code as the UI receives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App(code) => match code {
                OwnErrorCode::Storage => "storage",
                OwnErrorCode::Hosting => "hosting",
                OwnErrorCode::InvalidSettings => "invalid_settings",
                OwnErrorCode::NotStarted => "not_started",
                OwnErrorCode::Notification => "notification",
            },
            Self::Client(code) => code.as_str(),
        }
    }
}

/// An [`AppError`] as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(rename = "AppError")]
pub struct AppErrorBody {
    /// Stable: see [`AppError::code`].
    pub code: AppErrorCode,
    /// For people.
    pub message: String,
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AppErrorBody {
            code: self.code(),
            message: self.to_string(),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_serializes_as_the_string_it_names() {
        let own = [
            OwnErrorCode::Storage,
            OwnErrorCode::Hosting,
            OwnErrorCode::InvalidSettings,
            OwnErrorCode::NotStarted,
            OwnErrorCode::Notification,
        ]
        .map(AppErrorCode::App);
        let client = AppErrorCode::Client(ClientError::NotConnected.code());
        for code in own.into_iter().chain([client]) {
            let serialized = serde_json::to_value(code).expect("serializes");
            assert_eq!(serialized, code.as_str(), "{code:?}");
        }
    }
}

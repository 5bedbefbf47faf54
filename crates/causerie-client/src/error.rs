//! What can go wrong for the client, each with a stable code for user interfaces.

use std::path::PathBuf;

use causerie_protocol::{ErrorBody, ErrorCode};
use serde::Serialize;
use ts_rs::TS;

/// A client error. [`ClientError::code`] is stable; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused the connection (wrong join code, invalid name); the client stops rather
    /// than retry, since retrying cannot help.
    #[error("the server refused the connection: {0}")]
    Refused(ErrorBody),
    /// The server refused a request (a join, a history page).
    #[error("the server refused the request: {0}")]
    Rejected(ErrorBody),
    /// The request needs a connection and there is none right now.
    #[error("not connected to the server")]
    NotConnected,
    /// The server URL cannot be used.
    #[error("cannot use the server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No TLS connector could be made with the trusted roots given.
    #[error("cannot set up TLS: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
    /// The outbox file could not be read or written.
    #[error("cannot keep the outbox in {path}: {reason}")]
    Storage {
        /// The outbox file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
}

/// The codes of the errors the client finds by itself; the others are the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LocalErrorCode {
    /// See [`ClientError::NotConnected`].
    NotConnected,
    /// See [`ClientError::InvalidUrl`].
    InvalidUrl,
    /// See [`ClientError::Tls`].
    Tls,
    /// See [`ClientError::Storage`].
    Storage,
}

impl LocalErrorCode {
    /// The code as sent to user interfaces.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::InvalidUrl => "invalid_url",
            Self::Tls => "tls",
            Self::Storage => "storage",
        }
    }
}

/// A [`ClientError`]'s stable code: the server's, or one of the client's own. Serialized as the
/// bare code, e.g. `"not_joined"` or `"not_connected"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(untagged)]
pub enum ClientErrorCode {
    /// The server refused.
    Server(ErrorCode),
    /// The client found it.
    Local(LocalErrorCode),
}

impl ClientErrorCode {
    /// The code as sent to user interfaces.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server(code) => code.as_str(),
            Self::Local(code) => code.as_str(),
        }
    }
}

impl std::fmt::Display for ClientErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`ClientError`] as user interfaces receive it, like the server's errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ClientErrorBody {
    /// Stable, to branch on.
    pub code: ClientErrorCode,
    /// For people.
    pub message: String,
}

impl serde::Serialize for ClientError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ClientErrorBody {
            code: self.code(),
            message: self.to_string(),
        }
        .serialize(serializer)
    }
}

impl ClientError {
    /// The stable code.
    pub fn code(&self) -> ClientErrorCode {
        match self {
            Self::Refused(body) | Self::Rejected(body) => ClientErrorCode::Server(body.code),
            Self::NotConnected => ClientErrorCode::Local(LocalErrorCode::NotConnected),
            Self::InvalidUrl { .. } => ClientErrorCode::Local(LocalErrorCode::InvalidUrl),
            Self::Tls { .. } => ClientErrorCode::Local(LocalErrorCode::Tls),
            Self::Storage { .. } => ClientErrorCode::Local(LocalErrorCode::Storage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_serializes_as_the_string_it_names() {
        let codes = [
            LocalErrorCode::NotConnected,
            LocalErrorCode::InvalidUrl,
            LocalErrorCode::Tls,
            LocalErrorCode::Storage,
        ]
        .map(ClientErrorCode::Local)
        .into_iter()
        .chain([ClientErrorCode::Server(ErrorCode::NotJoined)]);
        for code in codes {
            let serialized = serde_json::to_value(code).expect("serializes");
            assert_eq!(serialized, code.as_str(), "{code:?}");
        }
    }
}

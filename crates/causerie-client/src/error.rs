//! What can go wrong for the client, each with a stable code for user interfaces.

use std::path::PathBuf;

use causerie_protocol::ErrorBody;

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

/// Crosses to user interfaces as `{code, message}`, like the server's errors.
impl serde::Serialize for ClientError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut body = serializer.serialize_struct("ClientError", 2)?;
        body.serialize_field("code", self.code())?;
        body.serialize_field("message", &self.to_string())?;
        body.end()
    }
}

impl ClientError {
    /// A stable code: the server's error code for refusals, else one of `not_connected`,
    /// `invalid_url`, `tls`, `storage`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(body) | Self::Rejected(body) => body.code.as_str(),
            Self::NotConnected => "not_connected",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::Tls { .. } => "tls",
            Self::Storage { .. } => "storage",
        }
    }
}

//! Error codes: stable strings that clients branch on. Messages are for people and may change.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Why the server refused a request or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload does not have the documented shape.
    Invalid,
    /// The message text is empty or only white space.
    Empty,
    /// The message text is longer than [`crate::Limits::max_message_chars`].
    TooLong,
    /// The user sends faster than the server's rate limit allows; retry later.
    RateLimited,
    /// The room does not exist or this connection has not joined it.
    NotJoined,
    /// The room name breaks the rules in [`crate::limits`].
    InvalidRoom,
    /// The join code is missing or wrong (connect error).
    Unauthorized,
    /// The display name breaks the rules in [`crate::limits`] (connect error).
    InvalidName,
    /// The server failed; the request may be retried as it is.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ErrorCode; 9] = [
        Self::Invalid,
        Self::Empty,
        Self::TooLong,
        Self::RateLimited,
        Self::NotJoined,
        Self::InvalidRoom,
        Self::Unauthorized,
        Self::InvalidName,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::RateLimited => "rate_limited",
            Self::NotJoined => "not_joined",
            Self::InvalidRoom => "invalid_room",
            Self::Unauthorized => "unauthorized",
            Self::InvalidName => "invalid_name",
            Self::Internal => "internal",
        }
    }

    /// Parses a code from its wire form.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether sending the same request again, unchanged, can succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Internal)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` of a failed reply: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorBody {
    /// An error with its code and explanation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The connect-error message form `"<code>: <explanation>"`: Socket.IO carries only a message
    /// string in a refused connection.
    pub fn to_connect_error(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }

    /// Parses the `"<code>: <explanation>"` form of a connect error.
    pub fn from_connect_error(message: &str) -> Option<Self> {
        let (code, explanation) = message.split_once(": ")?;
        Some(Self::new(ErrorCode::parse(code)?, explanation))
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_form() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn a_connect_error_message_parses_back_to_its_code() {
        let body = ErrorBody::new(ErrorCode::Unauthorized, "wrong join code");
        let text = body.to_connect_error();
        assert_eq!(text, "unauthorized: wrong join code");
        assert_eq!(ErrorBody::from_connect_error(&text), Some(body));
        assert_eq!(ErrorBody::from_connect_error("nonsense"), None);
    }
}

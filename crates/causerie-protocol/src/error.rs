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
    /// The client speaks another version of this protocol than
    /// [`crate::PROTOCOL_VERSION`] (connect error): it must be updated.
    UnsupportedVersion,
    /// A limit on rooms was reached: the rooms this connection or user is in, or the rooms the
    /// server holds.
    RoomLimit,
    /// The message to edit or delete does not exist in that room, or was deleted.
    NotFound,
    /// The message to edit or delete is someone else's.
    Forbidden,
    /// The message is older than [`crate::Limits::edit_window_secs`]: it can be deleted, not edited.
    TooLate,
    /// The message has [`crate::limits::MAX_REACTIONS_PER_MESSAGE`] different reactions already:
    /// one of them can be added to, not a new one.
    ReactionLimit,
    /// The server failed; the request may be retried as it is.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ErrorCode; 15] = [
        Self::Invalid,
        Self::Empty,
        Self::TooLong,
        Self::RateLimited,
        Self::NotJoined,
        Self::InvalidRoom,
        Self::Unauthorized,
        Self::InvalidName,
        Self::UnsupportedVersion,
        Self::RoomLimit,
        Self::NotFound,
        Self::Forbidden,
        Self::TooLate,
        Self::ReactionLimit,
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
            Self::UnsupportedVersion => "unsupported_version",
            Self::RoomLimit => "room_limit",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::TooLate => "too_late",
            Self::ReactionLimit => "reaction_limit",
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

    /// Whether a message refused with this code can be accepted, unchanged, once the user has
    /// done something about it (joined the room again): worth offering to send it again. Other
    /// refusals are final for this text.
    pub const fn is_resendable(self) -> bool {
        matches!(self, Self::NotJoined)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` of a failed reply: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// With `rate_limited`: how long to wait before asking again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// An error with its code and explanation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `rate_limited`, saying when to ask again.
    pub fn rate_limited(what: &str, retry_after: std::time::Duration) -> Self {
        let millis = u64::try_from(retry_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            code: ErrorCode::RateLimited,
            message: format!("too many {what}: retry in {millis} ms"),
            retry_after_ms: Some(millis),
        }
    }

    /// The connect-error message form `"<code>: <explanation>"`: Socket.IO carries only a message
    /// string in a refused connection.
    pub fn to_connect_error(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }

    /// Parses the `"<code>: <explanation>"` form of a connect error. For `rate_limited`, the
    /// wait is read back from the explanation ("... retry in N ms").
    pub fn from_connect_error(message: &str) -> Option<Self> {
        let (code, explanation) = message.split_once(": ")?;
        let mut body = Self::new(ErrorCode::parse(code)?, explanation);
        if body.code == ErrorCode::RateLimited {
            body.retry_after_ms = explanation
                .rsplit_once("retry in ")
                .and_then(|(_, rest)| rest.strip_suffix(" ms"))
                .and_then(|millis| millis.parse().ok());
        }
        Some(body)
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

    #[test]
    fn rate_limited_says_when_to_retry_also_through_a_connect_error() {
        let body = ErrorBody::rate_limited("guests", std::time::Duration::from_millis(1500));
        assert_eq!(body.retry_after_ms, Some(1500));
        assert_eq!(
            serde_json::to_value(&body).expect("serializes")["retryAfterMs"],
            1500
        );
        let parsed = ErrorBody::from_connect_error(&body.to_connect_error()).expect("parses");
        assert_eq!(parsed, body);
    }
}

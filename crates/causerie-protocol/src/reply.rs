//! The acknowledgement envelope: `{ok: true, ...body}` on success, `{ok: false, error}` on failure.
//!
//! Serde cannot derive a tag that is a boolean, so the two shapes are written by hand here, once,
//! and the TypeScript declaration of `Reply<T>` is part of [`crate::bindings`]' prelude.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ErrorBody;

/// An ack: the body of a success, or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// `{ok: true, ...body}`: the body's fields sit beside `ok`.
    Ok(T),
    /// `{ok: false, error: {code, message}}`.
    Err(ErrorBody),
}

impl<T> From<Result<T, ErrorBody>> for Reply<T> {
    fn from(result: Result<T, ErrorBody>) -> Self {
        match result {
            Ok(body) => Self::Ok(body),
            Err(error) => Self::Err(error),
        }
    }
}

impl<T> From<Reply<T>> for Result<T, ErrorBody> {
    fn from(reply: Reply<T>) -> Self {
        match reply {
            Reply::Ok(body) => Ok(body),
            Reply::Err(error) => Err(error),
        }
    }
}

#[derive(Serialize)]
struct SuccessRepr<'a, T> {
    ok: bool,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct FailureRepr<'a> {
    ok: bool,
    error: &'a ErrorBody,
}

impl<T: Serialize> Serialize for Reply<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Ok(body) => SuccessRepr { ok: true, body }.serialize(serializer),
            Self::Err(error) => FailureRepr { ok: false, error }.serialize(serializer),
        }
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct AnyRepr<T> {
    ok: bool,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(flatten)]
    body: Option<T>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Reply<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = AnyRepr::<T>::deserialize(deserializer)?;
        match (repr.ok, repr.body, repr.error) {
            (true, Some(body), _) => Ok(Self::Ok(body)),
            (false, _, Some(error)) => Ok(Self::Err(error)),
            (true, None, _) => Err(D::Error::custom("a reply with ok: true lacks its body")),
            (false, _, None) => Err(D::Error::custom("a reply with ok: false lacks its error")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, Left};
    use serde_json::json;

    #[test]
    fn a_success_puts_the_body_beside_ok() {
        let reply = Reply::Ok(Left {
            room: "general".into(),
        });
        let value = serde_json::to_value(&reply).expect("serializes");
        assert_eq!(value, json!({"ok": true, "room": "general"}));
        assert_eq!(
            serde_json::from_value::<Reply<Left>>(value).expect("parses"),
            reply
        );
    }

    #[test]
    fn a_failure_carries_code_and_message() {
        let reply: Reply<Left> = Reply::Err(ErrorBody::new(ErrorCode::TooLong, "too long"));
        let value = serde_json::to_value(&reply).expect("serializes");
        assert_eq!(
            value,
            json!({"ok": false, "error": {"code": "too_long", "message": "too long"}})
        );
        assert_eq!(
            serde_json::from_value::<Reply<Left>>(value).expect("parses"),
            reply
        );
    }

    #[test]
    fn a_reply_without_its_part_is_refused() {
        assert!(serde_json::from_value::<Reply<Left>>(json!({"ok": true})).is_err());
        assert!(serde_json::from_value::<Reply<Left>>(json!({"ok": false})).is_err());
    }
}

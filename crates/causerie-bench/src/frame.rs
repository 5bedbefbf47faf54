//! Engine.IO v4 packets carrying Socket.IO v5 packets, in their text form: `0{...}` open, `2` ping,
//! `3` pong, `4` message; inside a message `0` connect, `1` disconnect, `2` event, `3` ack,
//! `4` connect error. So `42["message","hi"]` is an event and `40{"sid":"..."}` a connect.

/// A packet received from the server, as far as a load client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The Engine.IO handshake, with its JSON.
    Open(&'a str),
    /// The server's heartbeat: answer with [`PONG`].
    Ping,
    /// The namespace accepted the connection.
    Connected,
    /// The namespace refused the connection, with the server's JSON.
    ConnectError(&'a str),
    /// An event: its name and the raw JSON of its first argument (or `""` without one).
    Event {
        /// The event's name.
        name: &'a str,
        /// The first argument, as JSON text.
        data: &'a str,
    },
    /// The answer to an event sent with an ack id: the id and the raw JSON of its first argument.
    Ack {
        /// The id the event was sent with.
        id: u64,
        /// The first argument, as JSON text.
        data: &'a str,
    },
    /// The server closed the Socket.IO session.
    Disconnect,
    /// Anything else (acks, binary, upgrades): not needed by the load.
    Other,
}

/// The answer to a [`Frame::Ping`].
pub const PONG: &str = "3";

/// Reads one text frame. Events are split without a JSON parser: the load only needs the event
/// name and the raw payload, and parsing every payload of 10,000 clients would cost more than the
/// server under test.
pub fn parse(text: &str) -> Frame<'_> {
    match text.as_bytes() {
        [b'0', ..] => Frame::Open(&text[1..]),
        [b'2'] => Frame::Ping,
        [b'4', b'0', ..] => Frame::Connected,
        [b'4', b'1', ..] => Frame::Disconnect,
        [b'4', b'4', ..] => Frame::ConnectError(&text[2..]),
        [b'4', b'2', ..] => parse_event(&text[2..]).unwrap_or(Frame::Other),
        [b'4', b'3', ..] => parse_ack(&text[2..]).unwrap_or(Frame::Other),
        _ => Frame::Other,
    }
}

/// `["name",data]` (an ack id may precede it) into name and data.
fn parse_event(body: &str) -> Option<Frame<'_>> {
    let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = body.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    let (name, rest) = (&rest[..end], &rest[end + 1..]);
    let data = rest
        .strip_prefix(',')
        .and_then(|d| d.strip_suffix(']'))
        .unwrap_or("");
    Some(Frame::Event { name, data })
}

/// `<id>[data]` into id and data.
fn parse_ack(body: &str) -> Option<Frame<'_>> {
    let digits = body.find(|c: char| !c.is_ascii_digit())?;
    let id = body[..digits].parse().ok()?;
    let data = body[digits..].strip_prefix('[')?.strip_suffix(']')?;
    Some(Frame::Ack { id, data })
}

/// The frame that connects to the default namespace, with an optional `auth` JSON object.
pub fn connect(auth: Option<&serde_json::Value>) -> String {
    match auth {
        Some(auth) => format!("40{auth}"),
        None => "40".to_owned(),
    }
}

/// The frame of an event `name` with one argument.
pub fn event(name: &str, data: &serde_json::Value) -> String {
    format!("42{}", serde_json::json!([name, data]))
}

/// The frame of an event `name` with one argument, asking for an ack under `id`.
pub fn event_with_ack(id: u64, name: &str, data: &serde_json::Value) -> String {
    format!("42{id}{}", serde_json::json!([name, data]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_are_recognized() {
        assert_eq!(parse(r#"0{"sid":"x"}"#), Frame::Open(r#"{"sid":"x"}"#));
        assert_eq!(parse("2"), Frame::Ping);
        assert_eq!(parse(r#"40{"sid":"y"}"#), Frame::Connected);
        assert_eq!(
            parse(r#"44{"message":"unauthorized: no"}"#),
            Frame::ConnectError(r#"{"message":"unauthorized: no"}"#)
        );
        assert_eq!(parse("41"), Frame::Disconnect);
        assert_eq!(parse("6"), Frame::Other);
    }

    #[test]
    fn events_split_into_name_and_raw_data() {
        assert_eq!(
            parse(r#"42["message","guest-1: b:7:123"]"#),
            Frame::Event {
                name: "message",
                data: r#""guest-1: b:7:123""#
            }
        );
        assert_eq!(
            parse(r#"42["welcome",{"user":{"id":"1"}}]"#),
            Frame::Event {
                name: "welcome",
                data: r#"{"user":{"id":"1"}}"#
            }
        );
        assert_eq!(
            parse(r#"4212["ping"]"#),
            Frame::Event {
                name: "ping",
                data: ""
            }
        );
        assert_eq!(parse("42garbage"), Frame::Other);
    }

    #[test]
    fn acks_split_into_id_and_raw_data() {
        assert_eq!(
            parse(r#"4317[{"ok":true,"message":{"text":"b:1:2:3"}}]"#),
            Frame::Ack {
                id: 17,
                data: r#"{"ok":true,"message":{"text":"b:1:2:3"}}"#
            }
        );
        assert_eq!(parse("43[{}]"), Frame::Other);
        assert_eq!(parse("43x"), Frame::Other);
    }

    #[test]
    fn frames_are_written_as_servers_expect() {
        assert_eq!(connect(None), "40");
        assert_eq!(
            connect(Some(&json!({"protocol": 3}))),
            r#"40{"protocol":3}"#
        );
        assert_eq!(event("message", &json!("hi")), r#"42["message","hi"]"#);
        assert_eq!(
            event_with_ack(7, "join", &json!({"room": "a"})),
            r#"427["join",{"room":"a"}]"#
        );
    }
}

//! Causerie's wire contract: the events, payloads, limits and error codes that every client and the
//! server agree on. `docs/protocol.md` explains them; this crate is their single definition.
//!
//! - [`event`]: the Socket.IO event names, defined once.
//! - [`payload`]: what travels in each event, client to server and back.
//! - [`reply`]: the acknowledgement envelope `{ok: true, ...}` / `{ok: false, error}`.
//! - [`error`]: the stable error codes a client branches on.
//! - [`limits`]: sizes and rates the server enforces, and the rules for names.
//! - [`bindings`]: the TypeScript declarations generated from these types for the web UI.
//!
//! This crate depends on serde and ts-rs only, so that any client (the core client, the app, a bot)
//! can use it without pulling in a runtime.
#![warn(missing_docs)]

pub mod bindings;
pub mod error;
pub mod event;
pub mod limits;
pub mod payload;
pub mod reply;

pub use error::{ErrorBody, ErrorCode};
pub use limits::Limits;
pub use payload::*;
pub use reply::Reply;

/// The protocol version a Causerie client announces in its handshake `auth.protocol`. Version 2
/// added edits and deletions, whose entries share the room's seqs: a version 1 client would wait
/// forever on them, so the server refuses it (`unsupported_version`).
pub const PROTOCOL_VERSION: u32 = 3;

/// The room every client is in after connecting, and the only room seed (legacy) clients know.
pub const DEFAULT_ROOM: &str = "general";

/// The Socket.IO path the server listens on.
pub const SOCKET_IO_PATH: &str = "/socket.io/";

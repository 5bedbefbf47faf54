//! Socket.IO event names. Each name is used in both directions unless its doc says otherwise.

/// Server to client, once per connection: [`crate::Welcome`].
pub const WELCOME: &str = "welcome";
/// Client to server: [`crate::SendMessage`] with an ack of [`crate::Reply`]`<`[`crate::MessageAccepted`]`>`.
/// Server to client: [`crate::Message`] (or a plain string for seed clients).
pub const MESSAGE: &str = "message";
/// Client to server: [`crate::EditMessage`], acked with [`crate::Reply`]`<`[`crate::ChangeAccepted`]`>`.
pub const EDIT: &str = "edit";
/// Client to server: [`crate::DeleteMessage`], acked with [`crate::Reply`]`<`[`crate::ChangeAccepted`]`>`.
pub const DELETE: &str = "delete";
/// Client to server: [`crate::ReactRequest`], acked with [`crate::Reply`]`<`[`crate::ChangeAccepted`]`>`:
/// toggles the user's reaction to a message.
pub const REACT: &str = "react";
/// Server to client: [`crate::Change`], an edit or a deletion in a room the connection is in (not
/// to seed clients).
pub const CHANGE: &str = "change";
/// Client to server: [`crate::HistoryRequest`], acked with [`crate::Reply`]`<`[`crate::HistoryPage`]`>`.
pub const HISTORY: &str = "history";
/// Client to server: [`crate::RoomRequest`], acked with [`crate::Reply`]`<`[`crate::Joined`]`>`.
pub const JOIN: &str = "join";
/// Client to server: [`crate::RoomRequest`], acked with [`crate::Reply`]`<`[`crate::Left`]`>`.
pub const LEAVE: &str = "leave";
/// Server to client: [`crate::Presence`], when the people in a room change.
pub const PRESENCE: &str = "presence";
/// Server to client: [`crate::Head`], a room's latest seq, after an outage between the nodes of
/// a cluster may have kept messages from a client.
pub const HEAD: &str = "head";
/// Client to server: [`crate::TypingRequest`]. Server to client: [`crate::Typing`].
pub const TYPING: &str = "typing";
/// Client to server, any payload, acked with [`crate::Reply`]`<`[`crate::Pong`]`>`: a liveness check
/// for client libraries that do not notice a dead connection by themselves.
pub const PING: &str = "ping";
/// Client to server: [`crate::WhoRequest`], acked with [`crate::Reply`]`<`[`crate::WhoPage`]`>`: a
/// page of the people online in a joined room.
pub const WHO: &str = "who";
/// Client to server: [`crate::ReadRequest`], acked with [`crate::Reply`]`<`[`crate::ReadState`]`>`: the
/// user has read a room up to a seq. Server to client: [`crate::ReadState`], when the user's
/// read marker of a room the connection is in moved on another of their connections.
pub const READ: &str = "read";
/// Client to server: [`crate::SearchRequest`], acked with [`crate::Reply`]`<`[`crate::SearchPage`]`>`:
/// full-text search of the messages of the rooms the connection is in, newest first.
pub const SEARCH: &str = "search";
/// Client to server: [`crate::DirectRequest`], acked with [`crate::Reply`]`<`[`crate::Direct`]`>`:
/// opens (creating it the first time) the direct conversation with another user; join its room
/// next. Server to client: [`crate::Direct`], to the other user's connections, when someone
/// opens a conversation with them.
pub const DIRECT: &str = "direct";
/// Client to server: [`crate::RoomsRequest`], acked with [`crate::Reply`]`<`[`crate::RoomsPage`]`>`:
/// a page of the server's rooms, by name or by prefix.
pub const ROOMS: &str = "rooms";

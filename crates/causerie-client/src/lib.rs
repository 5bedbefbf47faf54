//! Causerie's core chat client: it holds the connection, the user's identity, the joined rooms and
//! the outbox, and hands its user one ordered stream of typed events. Every reliability rule of the
//! chat lives here, once: nothing sent is lost, nothing received is shown twice.
//!
//! - [`ChatClient`]: the handle: send, join, leave, ask for history, disconnect. Cheap to clone;
//!   no call waits on the network.
//! - [`ClientEvents`]: the events, in order: connection state, welcome, messages, failures, presence.
//! - [`ClientConfig`]: server URL, name, token, join code, outbox file, timings.
//! - [`Backoff`]: reconnection delays (exponential, full jitter, capped).
//! - [`TrustedRoots`]: the certificate authorities trusted for `https://` servers.
//! - [`ClientError`]: what can fail, with stable codes.
//! - [`bindings`]: the events as TypeScript, for the app's UI.
//!
//! Inside, every decision is made without I/O, in small state machines that tests drive
//! directly: `state` composes `delivery` (rooms; each room's messages ordered by seq in a
//! `timeline`, who is `online`, catch-up `pages`), `sending` (the outbox order, one in flight,
//! pauses), `liveness` (pings) and `typing` (who is typing, for how long); `reconnect` decides the
//! waits between connections. One task, the `supervisor`, does the I/O: it talks to the server
//! through rust_socketio (`connection`), and writes the `outbox` file on a blocking thread.
//!
//! ```no_run
//! use causerie_client::{ChatClient, ClientConfig, ClientEvent};
//!
//! # async fn demo() -> Result<(), causerie_client::ClientError> {
//! let (client, mut events) = causerie_client::connect(ClientConfig {
//!     name: Some("Ada".into()),
//!     ..ClientConfig::new("http://127.0.0.1:3000")
//! })?;
//! client.send("general", "Hello!");
//! while let Some(event) = events.next().await {
//!     if let ClientEvent::Message { message, .. } = event {
//!         println!("{}: {}", message.author.name, message.text);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod backoff;
pub mod bindings;
mod config;
mod connection;
mod delivery;
mod error;
mod event;
mod liveness;
mod online;
mod outbox;
mod pages;
mod reconnect;
mod sending;
mod state;
mod supervisor;
mod timeline;
mod tls;
mod typing;
mod unread;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

pub use backoff::Backoff;
pub use config::ClientConfig;
pub use error::{ClientError, ClientErrorBody, ClientErrorCode, LocalErrorCode};
pub use event::{ClientEvent, ConnectionState, DisconnectReason, Session};
pub use outbox::{LocalId, OutboxAction, OutboxEntry};
pub use tls::TrustedRoots;
pub use unread::Unread;

use outbox::{OutboxLog, OutboxWriter};
use state::{ChatState, Command};
use supervisor::Supervisor;

/// Starts a client: checks the URL, opens the outbox, and connects in the background, retrying
/// until connected. Must be called inside a Tokio runtime.
pub fn connect(config: ClientConfig) -> Result<(ChatClient, ClientEvents), ClientError> {
    let url = socket_io_url(&config.server_url)?;
    // Only for https: loading a certificate store costs tens of milliseconds per client.
    let tls = if url.starts_with("https:") {
        Some(tls::connector(&config.trusted_roots)?)
    } else {
        None
    };
    let (event_sender, events) = mpsc::unbounded_channel();
    let (outbox, restored) = match &config.outbox_file {
        Some(path) => {
            let (log, restored) = OutboxLog::open(path.clone())?;
            (
                Some(OutboxWriter::spawn(log, event_sender.clone())),
                restored,
            )
        }
        None => (None, Vec::new()),
    };
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let state = ChatState::new(config.clone(), restored);
    let supervisor = Supervisor::new(
        state,
        &config,
        url,
        tls,
        outbox,
        command_receiver,
        event_sender,
    );
    tokio::spawn(supervisor.run());
    Ok((ChatClient { commands }, ClientEvents { events }))
}

/// Accepts `http`, `https`, `ws` and `wss` URLs, and gives the `http(s)` form rust_socketio wants.
fn socket_io_url(server_url: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: server_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = url::Url::parse(server_url).map_err(|e| invalid(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => return Err(invalid("use http://, https://, ws:// or wss://")),
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    url.set_scheme(scheme)
        .map_err(|()| invalid("cannot use this scheme"))?;
    Ok(url.to_string())
}

/// The handle to a running client. Every method returns at once; results arrive as events.
#[derive(Debug, Clone)]
pub struct ChatClient {
    commands: mpsc::UnboundedSender<Command>,
}

impl ChatClient {
    fn command(&self, command: Command) {
        // After `disconnect` the supervisor is gone and commands have nowhere to go.
        let _ = self.commands.send(command);
    }

    /// Queues `text` for `room` and returns its local id. The message is sent when connected,
    /// resent until the server acks it, and confirmed by a [`ClientEvent::Message`] whose
    /// `confirms` is this id (or refused by a [`ClientEvent::Failed`]: by the client itself when
    /// it breaks the server's limits). A room told the user is typing is told they stopped.
    pub fn send(&self, room: &str, text: &str) -> LocalId {
        self.queue(room, text, OutboxAction::Send)
    }

    /// Queues an edit of the user's message at seq `target` in `room`, in order with their
    /// messages, and returns its local id: confirmed by a [`ClientEvent::Change`] whose
    /// `confirms` is this id, or refused by a [`ClientEvent::Failed`] (`too_late` past the
    /// server's edit window, `forbidden` for someone else's message, `not_found`).
    pub fn edit(&self, room: &str, target: u64, text: &str) -> LocalId {
        self.queue(room, text, OutboxAction::Edit { target })
    }

    /// Queues the deletion of the user's message at seq `target` in `room`, as [`ChatClient::edit`].
    pub fn delete(&self, room: &str, target: u64) -> LocalId {
        self.queue(room, "", OutboxAction::Delete { target })
    }

    fn queue(&self, room: &str, text: &str, action: OutboxAction) -> LocalId {
        self.queue_entry(OutboxEntry {
            local_id: LocalId::new(),
            room: room.to_owned(),
            text: text.to_owned(),
            action,
            reply_to: None,
            mentions: Vec::new(),
        })
    }

    fn queue_entry(&self, entry: OutboxEntry) -> LocalId {
        let local_id = entry.local_id.clone();
        self.command(Command::Send(entry));
        local_id
    }

    /// Asks for the page of `room`'s messages before seq `before` (the latest without it); it
    /// arrives as [`ClientEvent::History`], holding only messages older than any handed out
    /// before, each once.
    pub fn history(&self, room: &str, before: Option<u64>) {
        self.command(Command::History {
            room: room.to_owned(),
            before,
        });
    }

    /// Joins `room` (creating it), now and after every reconnect.
    pub fn join(&self, room: &str) {
        self.command(Command::Join(room.to_owned()));
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.command(Command::Leave(room.to_owned()));
    }

    /// Tells the others in `room` that the user is typing, or stopped.
    pub fn typing(&self, room: &str, typing: bool) {
        self.command(Command::Typing {
            room: room.to_owned(),
            typing,
        });
    }

    /// Searches the messages of the user's rooms for `query`'s words, newest first, after `after`
    /// (the `next` of an earlier answer); they arrive as [`ClientEvent::Search`].
    pub fn search(&self, query: &str, after: Option<&str>) {
        self.command(Command::Search(causerie_protocol::SearchRequest {
            query: query.to_owned(),
            room: None,
            after: after.map(str::to_owned),
            limit: None,
        }));
    }

    /// Opens the direct conversation with user `user_id` (someone online, or a message's
    /// author): it comes as [`ClientEvent::Direct`], then is joined as a room.
    pub fn open_direct(&self, user_id: &str) {
        self.command(Command::OpenDirect(user_id.to_owned()));
    }

    /// Asks for the messages around `seq` in `room` (the original of a reply, a search result),
    /// to show it in its context; they arrive as [`ClientEvent::Around`].
    pub fn history_around(&self, room: &str, seq: u64) {
        self.command(Command::Around {
            room: room.to_owned(),
            seq,
        });
    }

    /// Toggles the user's reaction `emoji` (one emoji) to the message at seq `target` of
    /// `room`: confirmed by a [`ClientEvent::Change`] of kind `react` or `unreact`.
    pub fn react(&self, room: &str, target: u64, emoji: &str) -> LocalId {
        self.queue(room, emoji, OutboxAction::React { target })
    }

    /// Sends `text` to `room` as an answer to the message at seq `target`; as [`Self::send`].
    pub fn reply(&self, room: &str, target: u64, text: &str) -> LocalId {
        self.send_with(room, text, Some(target), Vec::new())
    }

    /// Sends `text` to `room`, answering the message at seq `reply_to` if given, and mentioning
    /// the people whose ids are `mentions` (the `@name`s the user picked); as [`Self::send`].
    pub fn send_with(
        &self,
        room: &str,
        text: &str,
        reply_to: Option<u64>,
        mentions: Vec<String>,
    ) -> LocalId {
        self.queue_entry(OutboxEntry {
            local_id: LocalId::new(),
            room: room.to_owned(),
            text: text.to_owned(),
            action: OutboxAction::Send,
            reply_to,
            mentions,
        })
    }

    /// The user has read `room` up to `seq` (the latest message they saw): its unread count
    /// goes down at once, and the server, which keeps the marker for all the user's devices,
    /// is told. A marker only moves forward.
    pub fn mark_read(&self, room: &str, seq: u64) {
        self.command(Command::MarkRead {
            room: room.to_owned(),
            seq,
        });
    }

    /// Lists more of the people online in `room` (a crowd is listed 200 at a time); they arrive
    /// in the next [`ClientEvent::Online`].
    pub fn load_more_online(&self, room: &str) {
        self.command(Command::LoadMoreOnline(room.to_owned()));
    }

    /// Asks for the server's rooms whose name starts with `prefix` (`""` for all), after `after`
    /// (the `next` of an earlier answer); they arrive as [`ClientEvent::Rooms`].
    pub fn find_rooms(&self, prefix: &str, after: Option<&str>) {
        self.command(Command::FindRooms {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
        });
    }

    /// Checks the connection now instead of at the next scheduled ping, or ends a reconnection
    /// wait early: for when the app returns to the foreground or the network changes.
    pub fn check_connection(&self) {
        self.command(Command::CheckNow);
    }

    /// Connects again at once under a new name or join code (they are sent only when
    /// connecting), keeping the outbox, the rooms and what was delivered: what the user sees
    /// goes on, with nothing shown twice. A client that was refused has stopped: start another.
    pub fn reconnect_as(&self, name: Option<&str>, join_code: Option<&str>) {
        self.command(Command::ReconnectAs {
            name: name.map(str::to_owned),
            join_code: join_code.map(str::to_owned),
        });
    }

    /// Whether the client still runs: `false` once it was refused, or told to disconnect.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Closes the connection for good; the event stream ends after a final
    /// [`ConnectionState::Disconnected`]. Unsent messages stay in the outbox file, if any.
    pub fn disconnect(&self) {
        self.command(Command::Disconnect);
    }
}

/// The client's events, in order. Ends after the client stops.
#[derive(Debug)]
pub struct ClientEvents {
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl ClientEvents {
    /// The next event; `None` once the client has stopped.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }
}

impl futures_util::Stream for ClientEvents {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.events.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_become_http_urls() {
        assert_eq!(
            socket_io_url("ws://10.0.2.2:3000").expect("valid"),
            "http://10.0.2.2:3000/"
        );
        assert_eq!(
            socket_io_url("wss://chat.example.org").expect("valid"),
            "https://chat.example.org/"
        );
        assert_eq!(
            socket_io_url("http://127.0.0.1:3000/").expect("valid"),
            "http://127.0.0.1:3000/"
        );
    }

    #[test]
    fn unusable_urls_are_refused_with_a_code() {
        for url in ["", "127.0.0.1:3000", "ftp://x", "http://"] {
            let error = socket_io_url(url).expect_err(url);
            assert_eq!(error.code().as_str(), "invalid_url");
        }
    }
}

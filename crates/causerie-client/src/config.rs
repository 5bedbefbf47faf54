//! What a client needs to know to connect.

use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::tls::TrustedRoots;

/// How to reach a server and who to be there. Build it with struct update syntax over
/// [`ClientConfig::new`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://`, `https://`, `ws://` or `wss://`, host and port, e.g. `http://192.168.1.20:3000`.
    pub server_url: String,
    /// Display name. Defaults to `None`: the name the token carries, else a guest name.
    pub name: Option<String>,
    /// The token from an earlier [`crate::ClientEvent::Welcome`], to come back as the same user.
    /// Defaults to `None`.
    pub token: Option<String>,
    /// The server's join code. Defaults to `None`.
    pub join_code: Option<String>,
    /// Where to keep unsent messages across restarts. Defaults to `None`: in memory only.
    pub outbox_file: Option<PathBuf>,
    /// Rooms to be in besides `general`, joined on every connect. Defaults to none.
    pub rooms: Vec<String>,
    /// Delays between reconnection attempts. Defaults to 0.5 s doubling up to 30 s, with jitter.
    pub backoff: Backoff,
    /// How long an ack may take before the request is retried or the connection presumed dead.
    /// Defaults to 10 s.
    pub request_timeout: Duration,
    /// How often an idle connection is checked with a `ping`. Defaults to 15 s.
    pub liveness_interval: Duration,
    /// Who may vouch for an `https://` server. Defaults to the platform's store (Mozilla's
    /// roots on Android).
    pub trusted_roots: TrustedRoots,
}

impl ClientConfig {
    /// The defaults, for the server at `server_url`.
    pub fn new(server_url: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            name: None,
            token: None,
            join_code: None,
            outbox_file: None,
            rooms: Vec::new(),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            liveness_interval: Duration::from_secs(15),
            trusted_roots: TrustedRoots::default(),
        }
    }
}

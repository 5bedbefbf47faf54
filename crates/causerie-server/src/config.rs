//! Server configuration: what the binary's flags and the embedding app set.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use causerie_protocol::limits::{
    DEFAULT_MAX_JOINED_ROOMS, DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_MAX_PAYLOAD_BYTES,
};

/// How fast one user may send messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: NonZeroU32,
    /// Messages allowed at once before the sustained rate applies.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    /// The protocol's defaults (5 messages per second with bursts of 10).
    fn default() -> Self {
        use causerie_protocol::limits::{DEFAULT_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_PER_SECOND};
        Self {
            per_second: NonZeroU32::new(DEFAULT_RATE_LIMIT_PER_SECOND).expect("a default above 0"),
            burst: NonZeroU32::new(DEFAULT_RATE_LIMIT_BURST).expect("a default above 0"),
        }
    }
}

/// A quota: one request every `every`, sustained, and `burst` at once (see
/// [`crate::limiter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The sustained rate, as the time one request takes to come back.
    pub every: Duration,
    /// Requests allowed at once.
    pub burst: NonZeroU32,
}

/// How often each kind of request is allowed, beside messages ([`RateLimit`]). A request over
/// quota is refused with `rate_limited` and how long to wait; a typing notice is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLimits {
    /// `join` and `leave`, per connection. Defaults to 5 a second, with bursts of 100 so that
    /// a reconnect can rejoin every room at once.
    pub membership: Limit,
    /// `history`, per connection. Defaults to 10 a second, bursts of 20.
    pub history: Limit,
    /// `who`, per connection. Defaults to 5 a second, bursts of 20.
    pub who: Limit,
    /// `rooms`, per connection. Defaults to 5 a second, bursts of 20.
    pub rooms: Limit,
    /// `ping`, per connection. Defaults to 2 a second, bursts of 10.
    pub ping: Limit,
    /// `typing`, per connection. Defaults to 4 a second, bursts of 8.
    pub typing: Limit,
    /// `read`, per connection. Defaults to 5 a second, bursts of 20 (the core client sends one
    /// per room at most every second, and a reconnect only those not told yet).
    pub read: Limit,
    /// `search`, per connection. Defaults to 2 a second, bursts of 10 (a search reads the
    /// index, and a search field asks as the user types).
    pub search: Limit,
    /// Rooms a user creates. Defaults to 1 a minute, bursts of 10.
    pub room_creation: Limit,
    /// Rooms created from one client address, whoever the users (guests are cheap, rooms are
    /// kept for good). Defaults to 5 a minute, bursts of 30; `None`: no limit (behind a reverse
    /// proxy, where every client has its address, or tests from one address).
    pub room_creation_per_address: Option<Limit>,
    /// Connections of one user with a token (a reconnect loop reads a welcome's pages each
    /// time). Defaults to 30 a minute, bursts of 30.
    pub connects_per_user: Limit,
    /// New guest identities (connections without a valid token) per client address. Defaults to
    /// 30 a minute, bursts of 60; `None`: no limit (load tests from one address).
    pub new_guests_per_address: Option<Limit>,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            membership: Limit::per_second(5, 100),
            history: Limit::per_second(10, 20),
            who: Limit::per_second(5, 20),
            rooms: Limit::per_second(5, 20),
            ping: Limit::per_second(2, 10),
            typing: Limit::per_second(4, 8),
            read: Limit::per_second(5, 20),
            search: Limit::per_second(2, 10),
            room_creation: Limit::per_minute(1, 10),
            room_creation_per_address: Some(Limit::per_minute(5, 30)),
            connects_per_user: Limit::per_minute(30, 30),
            new_guests_per_address: Some(Limit::per_minute(30, 60)),
        }
    }
}

/// How many log lines were dropped so far: the binary writes logs through a lossy buffer that
/// never blocks the server, and reports its drops through this.
#[derive(Clone)]
pub struct DroppedLogLines(pub std::sync::Arc<dyn Fn() -> u64 + Send + Sync>);

impl DroppedLogLines {
    /// The count now.
    pub fn get(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for DroppedLogLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DroppedLogLines").field(&self.get()).finish()
    }
}

/// Which browser origins may call the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin, as the Flask server allowed (`cors_allowed_origins="*"`).
    #[default]
    Any,
    /// Only these origins, e.g. `https://chat.example.org`.
    List(Vec<String>),
}

/// Everything a server instance needs to know. Build it with struct update syntax over
/// [`ServerConfig::new`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database and the generated secret key live. Created if missing.
    pub data_dir: PathBuf,
    /// Key that signs session tokens. Defaults to `None`: a key is generated once and kept in
    /// `data_dir/secret.key` (mode 0600), so tokens survive restarts.
    pub secret_key: Option<String>,
    /// A PostgreSQL database (`postgres://user:password@host/database`) to keep history in,
    /// shared by every node of a cluster. Defaults to `None`: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// A Redis server (`redis://host:port`) through which this node's broadcasts reach the
    /// other nodes of a cluster, and theirs reach it. Defaults to `None`: a server on its own.
    pub redis_url: Option<String>,
    /// Code every client must present in `auth.code`. Defaults to `None`: anyone may connect.
    pub join_code: Option<String>,
    /// Allowed browser origins, for CORS and for every Socket.IO request (a websocket is not
    /// covered by CORS): a request with another `Origin` header is refused. Requests without one
    /// (native clients) are not browsers' and pass. Defaults to any origin.
    pub cors_origins: CorsOrigins,
    /// Per-user flood limit. Defaults to 5 messages per second, bursts of 10; `None` turns it off
    /// (benchmarks).
    pub rate_limit: Option<RateLimit>,
    /// Quotas of every other kind of request. Defaults to [`EventLimits::default`]; `None`
    /// turns them off (benchmarks).
    pub event_limits: Option<EventLimits>,
    /// Rooms the server holds at most; joining a new room beyond is refused with `room_limit`.
    /// Defaults to 10,000. Direct conversations are counted apart: 100 times as many.
    pub max_rooms: u32,
    /// Rooms a connection, or a user across connections, may be in at once (`general`
    /// included). Defaults to 100.
    pub max_joined_rooms: u32,
    /// Open connections per client address; more are closed as soon as accepted. Defaults to
    /// 256; `None`: no limit (behind a reverse proxy, where every client has its address, or a
    /// load test).
    pub max_connections_per_address: Option<u32>,
    /// Requests one connection may have in flight at once; beyond, a request is refused with
    /// `rate_limited` before it is read. Defaults to [`crate::handlers::MAX_IN_FLIGHT`] (32):
    /// far above what a client within its quotas reaches, since a message is in flight only
    /// until it is committed. A load test with flood control off, whose one sender outpaces
    /// the disk's commits, raises it.
    pub max_requests_in_flight: u32,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`. Defaults to `None`:
    /// open, for a Prometheus on the same host or network.
    pub metrics_token: Option<String>,
    /// How long a connection may take to send a request's headers, or stay idle between
    /// requests, before it is closed (websockets, once open, are kept alive by their heartbeat).
    /// Defaults to 10 s.
    pub header_timeout: Duration,
    /// How long a shutdown waits for connections to finish before it closes them. Defaults to
    /// 5 s.
    pub shutdown_timeout: Duration,
    /// Where `/metrics` reads how many log lines were dropped. Defaults to `None` (the library
    /// writes no logs of its own; the binary sets it).
    pub dropped_log_lines: Option<DroppedLogLines>,
    /// Longest message text in characters. Defaults to 4,000.
    pub max_message_chars: u32,
    /// How long after sending a message its author may edit it (deleting has no limit). Defaults
    /// to a day.
    pub edit_window: Duration,
    /// Largest Socket.IO packet, in bytes, on both transports. Defaults to 64 KiB.
    pub max_payload_bytes: u32,
    /// Name announced in `welcome.server.name`. Defaults to `"causerie"`.
    pub server_name: String,
    /// How long a write waits for another process holding the database's lock (a backup, the
    /// `sqlite3` shell) before it fails and the message is refused with `internal`. Defaults to
    /// 5 s.
    pub store_busy_timeout: Duration,
}

impl ServerConfig {
    /// The defaults, keeping data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            secret_key: None,
            database_url: None,
            redis_url: None,
            join_code: None,
            cors_origins: CorsOrigins::Any,
            rate_limit: Some(RateLimit::default()),
            event_limits: Some(EventLimits::default()),
            max_rooms: 10_000,
            max_joined_rooms: DEFAULT_MAX_JOINED_ROOMS,
            max_connections_per_address: Some(256),
            max_requests_in_flight: crate::handlers::MAX_IN_FLIGHT,
            metrics_token: None,
            header_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            dropped_log_lines: None,
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            edit_window: Duration::from_secs(u64::from(
                causerie_protocol::limits::DEFAULT_EDIT_WINDOW_SECS,
            )),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            server_name: "causerie".to_owned(),
            store_busy_timeout: crate::store::DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// The limits announced to clients in `welcome`.
    pub fn limits(&self) -> causerie_protocol::Limits {
        causerie_protocol::Limits {
            max_message_chars: self.max_message_chars,
            max_payload_bytes: self.max_payload_bytes,
            rate_limit_per_second: self.rate_limit.map(|r| r.per_second.get()),
            rate_limit_burst: self.rate_limit.map(|r| r.burst.get()),
            max_joined_rooms: self.max_joined_rooms,
            edit_window_secs: Some(u32::try_from(self.edit_window.as_secs()).unwrap_or(u32::MAX)),
            max_reactions_per_message: Some(
                causerie_protocol::limits::MAX_REACTIONS_PER_MESSAGE as u32,
            ),
            ..causerie_protocol::Limits::default()
        }
    }
}

//! Server configuration: what the binary's flags and the embedding app set.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use causerie_protocol::limits::{DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_MAX_PAYLOAD_BYTES};

/// How fast one user may send messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: NonZeroU32,
    /// Messages allowed at once before the sustained rate applies.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    /// 5 messages per second with bursts of 10: more than people type, less than a script floods.
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        }
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
    /// Code every client must present in `auth.code`. Defaults to `None`: anyone may connect.
    pub join_code: Option<String>,
    /// Allowed browser origins. Defaults to any origin.
    pub cors_origins: CorsOrigins,
    /// Per-user flood limit. Defaults to 5 messages per second, bursts of 10; `None` turns it off
    /// (benchmarks).
    pub rate_limit: Option<RateLimit>,
    /// Longest message text in characters. Defaults to 4,000.
    pub max_message_chars: u32,
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
            join_code: None,
            cors_origins: CorsOrigins::Any,
            rate_limit: Some(RateLimit::default()),
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
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
            ..causerie_protocol::Limits::default()
        }
    }
}

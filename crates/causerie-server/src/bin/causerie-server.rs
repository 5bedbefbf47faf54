//! `causerie-server`: parses flags, sets up logging, and runs the library's server.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::Context;
use causerie_server::config::DroppedLogLines;
use causerie_server::{CorsOrigins, EventLimits, Limit, RateLimit, ServerConfig};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Causerie's chat server. Every flag also reads the environment variable named beside it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "CAUSERIE_BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
    /// Directory for the database and the generated secret key.
    #[arg(long, env = "CAUSERIE_DATA_DIR", default_value = "causerie-data")]
    data_dir: PathBuf,
    /// PostgreSQL database to keep history in, shared by every node of a cluster
    /// (postgres://user:password@host/database) [default: SQLite, in DATA_DIR].
    #[arg(long, env = "CAUSERIE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis through which the nodes of a cluster reach each other's clients
    /// (redis://[user:password@]host[:port]) [default: none, a server on its own].
    #[arg(long, env = "CAUSERIE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Key that signs session tokens [default: generated once into DATA_DIR/secret.key].
    #[arg(long, env = "CAUSERIE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Code clients must send to connect [default: none, anyone may connect].
    #[arg(long, env = "CAUSERIE_JOIN_CODE", hide_env_values = true)]
    join_code: Option<String>,
    /// Allowed browser origins, comma-separated [default: any origin].
    #[arg(long, env = "CAUSERIE_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Messages per second allowed per user; 0 turns flood control off.
    #[arg(long, env = "CAUSERIE_RATE_LIMIT", default_value_t = causerie_protocol::limits::DEFAULT_RATE_LIMIT_PER_SECOND)]
    rate_limit: u32,
    /// Messages a user may send at once before the rate limit applies.
    #[arg(long, env = "CAUSERIE_RATE_BURST", default_value_t = causerie_protocol::limits::DEFAULT_RATE_LIMIT_BURST)]
    rate_burst: u32,
    /// Longest message text, in characters.
    #[arg(long, env = "CAUSERIE_MAX_MESSAGE_CHARS", default_value_t = causerie_protocol::limits::DEFAULT_MAX_MESSAGE_CHARS)]
    max_message_chars: u32,
    /// How long after sending a message its author may edit it, in seconds.
    #[arg(long, env = "CAUSERIE_EDIT_WINDOW_SECS", default_value_t = causerie_protocol::limits::DEFAULT_EDIT_WINDOW_SECS)]
    edit_window_secs: u32,
    /// Largest Socket.IO packet, in bytes, on both transports.
    #[arg(long, env = "CAUSERIE_MAX_PAYLOAD_BYTES", default_value_t = causerie_protocol::limits::DEFAULT_MAX_PAYLOAD_BYTES)]
    max_payload_bytes: u32,
    /// Rooms the server holds at most.
    #[arg(long, env = "CAUSERIE_MAX_ROOMS", default_value_t = 10_000)]
    max_rooms: u32,
    /// Rooms a connection, or a user across connections, may be in at once.
    #[arg(long, env = "CAUSERIE_MAX_JOINED_ROOMS", default_value_t = causerie_protocol::limits::DEFAULT_MAX_JOINED_ROOMS)]
    max_joined_rooms: u32,
    /// Open connections per client address; 0 for no limit (behind a reverse proxy, where all
    /// clients share its address, limit at the proxy instead).
    #[arg(
        long,
        env = "CAUSERIE_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    max_connections_per_address: u32,
    /// New guest identities (connections without a token) per client address and minute, in
    /// bursts of twice as many; 0 for no limit.
    #[arg(long, env = "CAUSERIE_NEW_GUESTS_PER_MINUTE", default_value_t = 30)]
    new_guests_per_minute: u32,
    /// New rooms per client address and minute, in bursts of six times as many; 0 for no limit
    /// (behind a reverse proxy, where all clients share its address).
    #[arg(
        long,
        env = "CAUSERIE_NEW_ROOMS_PER_ADDRESS_PER_MINUTE",
        default_value_t = 5
    )]
    new_rooms_per_address_per_minute: u32,
    /// Requests one connection may have in flight at once (a load test with flood control off
    /// raises it).
    #[arg(long, env = "CAUSERIE_MAX_REQUESTS_IN_FLIGHT", default_value_t = causerie_server::handlers::MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests_in_flight: u32,
    /// Token that `GET /metrics` requires as `Authorization: Bearer <token>` [default: none,
    /// metrics are open].
    #[arg(long, env = "CAUSERIE_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Verbose logs (debug level for Causerie); RUST_LOG overrides.
    #[arg(long, env = "CAUSERIE_DEV")]
    dev: bool,
}

impl Cli {
    fn config(self, dropped_log_lines: DroppedLogLines) -> ServerConfig {
        let rate_limit = NonZeroU32::new(self.rate_limit).map(|per_second| RateLimit {
            per_second,
            burst: NonZeroU32::new(self.rate_burst).unwrap_or(per_second),
        });
        ServerConfig {
            secret_key: self.secret_key,
            database_url: self.database_url,
            redis_url: self.redis_url,
            join_code: self.join_code,
            cors_origins: if self.cors_origin.is_empty() {
                CorsOrigins::Any
            } else {
                CorsOrigins::List(self.cors_origin)
            },
            rate_limit,
            event_limits: Some(EventLimits {
                new_guests_per_address: (self.new_guests_per_minute > 0).then(|| {
                    Limit::per_minute(
                        self.new_guests_per_minute,
                        self.new_guests_per_minute.saturating_mul(2),
                    )
                }),
                room_creation_per_address: (self.new_rooms_per_address_per_minute > 0).then(|| {
                    Limit::per_minute(
                        self.new_rooms_per_address_per_minute,
                        self.new_rooms_per_address_per_minute.saturating_mul(6),
                    )
                }),
                ..EventLimits::default()
            }),
            max_rooms: self.max_rooms,
            max_joined_rooms: self.max_joined_rooms,
            max_connections_per_address: Some(self.max_connections_per_address)
                .filter(|max| *max > 0),
            max_requests_in_flight: self.max_requests_in_flight,
            metrics_token: self.metrics_token,
            max_message_chars: self.max_message_chars,
            edit_window: std::time::Duration::from_secs(u64::from(self.edit_window_secs)),
            max_payload_bytes: self.max_payload_bytes,
            dropped_log_lines: Some(dropped_log_lines),
            ..ServerConfig::new(self.data_dir)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = if cli.dev {
        format!(
            "{},causerie_server=debug,socketioxide=debug",
            causerie_server::LOG_FILTER
        )
    } else {
        causerie_server::LOG_FILTER.to_owned()
    };
    // Lines are written by a background thread, in batches (it flushes the buffer once it has
    // drained what is queued): a write(2) per line on the socket tasks' thread cost about a
    // fifth of the connections per second (causerie-bench, hold). Lossy: when the log's reader
    // does not keep up (a stderr nobody reads), lines are dropped and counted in /metrics, and
    // the server never waits for it.
    let (log_writer, _flush_logs_on_exit) =
        tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .finish(std::io::BufWriter::new(std::io::stderr()));
    let log_drops = log_writer.error_counter();
    let dropped_log_lines = DroppedLogLines(std::sync::Arc::new(move || {
        u64::try_from(log_drops.dropped_lines()).unwrap_or(u64::MAX)
    }));
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&default_filter)),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(cli.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cli.bind))?;
    let address = listener.local_addr()?;
    let data_dir = cli.data_dir.clone();
    // On stdout, alone, so that scripts and tests started with port 0 learn the address.
    println!("listening on http://{address}");
    tracing::info!(%address, data_dir = %data_dir.display(), "serving chat");
    causerie_server::run(listener, cli.config(dropped_log_lines), shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the limit on open files to the most the system allows: each connection is one, and the
/// usual soft limit of 1,024 would refuse connections long before the server is busy.
fn raise_open_file_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

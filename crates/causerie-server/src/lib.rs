//! Causerie's chat server: Socket.IO over axum, with durable history. A library first, so that
//! tests and the desktop app embed the very server the `causerie-server` binary runs.
//!
//! - [`config`]: what can be configured, with defaults.
//! - [`handlers`]: the Socket.IO events (`connect`, `message`, `history`, `join`, ...).
//! - [`store`]: durable history behind the [`store::Store`] trait, with group commit: SQLite, or
//!   PostgreSQL shared by several nodes.
//! - [`identity`]: the secret key, signed session tokens, guest names.
//! - [`chat`]: the state the handlers share.
//! - [`cluster`]: the other nodes, reached through Redis (or none).
//! - [`http`]: the router: Socket.IO, `/healthz`, `/metrics`, CORS.
//! - [`outgoing`]: every packet sent to a socket; sockets that fall behind are closed.
//! - [`connections`]: the TCP connections, tracked so that the server can end one.
//! - [`metrics`]: Prometheus counters.
//! - [`error`]: why a server could not start.
//! - `testing` (feature `testing`): a server on a free port for tests, and a PostgreSQL of their own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), causerie_server::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
//! let config = causerie_server::ServerConfig::new("./chat-data");
//! causerie_server::run(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![warn(missing_docs)]

pub mod chat;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod error;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod limiter;
pub mod metrics;
pub mod outgoing;
pub mod presence;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::sync::Arc;

use crate::cluster::SocketIo;
use axum::Router;
use tokio::net::TcpListener;

pub use config::{CorsOrigins, EventLimits, Limit, RateLimit, ServerConfig};
pub use error::ServerError;

use chat::Chat;
use connections::TrackedListener;
use identity::TokenSigner;
use store::{PostgresStore, SqliteStore, Store};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "causerie.sqlite3";

/// The log filter a host of the server starts from (`RUST_LOG` replaces it). socketioxide logs an
/// error for each request a handler's extractor refuses; the only extractor that refuses is the
/// limit on requests in flight ([`handlers::MAX_IN_FLIGHT`]), counted in `/metrics` instead: a
/// line each would be a flood's worth of lines.
pub const LOG_FILTER: &str = "info,socketioxide::handler::message=off";

/// A server ready to serve: its router, and the handles needed to stop it cleanly.
pub struct App {
    router: Router,
    io: SocketIo,
    chat: Arc<Chat>,
    timeouts: http::Timeouts,
    max_connections_per_address: Option<u32>,
    /// Tells the background tasks (the sweep of slow readers, housekeeping) that it stopped.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Opens the data directory and the store, and builds the router.
    pub async fn new(config: &ServerConfig) -> Result<Self, ServerError> {
        create_data_dir(&config.data_dir)?;
        let tokens = TokenSigner::load_or_create(config.secret_key.as_deref(), &config.data_dir)?;
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(PostgresStore::connect(url).await?),
            None => Arc::new(
                SqliteStore::open_with_busy_timeout(
                    &config.data_dir.join(DATABASE_FILE),
                    config.store_busy_timeout,
                )
                .await?,
            ),
        };
        let nodes = match &config.redis_url {
            Some(url) => cluster::Nodes::Redis(
                cluster::RedisNodes::connect(url)
                    .await
                    .map_err(|e| ServerError::Redis(e.to_string()))?,
            ),
            None => cluster::Nodes::Alone,
        };
        let chat = Arc::new(Chat::new(config, store, tokens, &nodes));
        let counted = Arc::downgrade(&chat);
        nodes.count_arrivals(move |room, size| {
            if let Some(chat) = counted.upgrade() {
                chat.traffic.arrived(room, size);
            }
        });
        let (stopped, stop) = tokio::sync::watch::channel(false);
        chat::spawn_housekeeping(&chat, stop.clone());
        let reconnections = nodes.reconnections();
        let (router, io) = http::router(config, chat.clone(), nodes).await?;
        if let Some(reconnections) = reconnections {
            cluster::spawn_heads(io.clone(), chat.clone(), reconnections, stop.clone());
        }
        outgoing::spawn_sweep(io.clone(), chat.clone(), stop.clone());
        presence::spawn_flush(io.clone(), chat.clone(), stop);
        Ok(Self {
            router,
            io,
            chat,
            stopped,
            timeouts: http::Timeouts {
                header: config.header_timeout,
                shutdown: config.shutdown_timeout,
            },
            max_connections_per_address: config.max_connections_per_address,
        })
    }

    /// The axum router: serve it, or nest it into a larger app.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Disconnects every socket, then finishes pending writes and closes the store, and stops
    /// the background tasks.
    pub async fn shutdown(&self) {
        close_sockets(&self.io, &self.chat).await;
        self.chat.store.close().await;
        self.stopped.send_replace(true);
    }

    /// Serves chat on `listener` until `shutdown` completes, then stops within the shutdown
    /// timeout (5 s by default): sockets are closed, connections still open after it are
    /// aborted, writes already queued are committed, and the database is closed. A message is
    /// acked only once committed, so no acked message is lost.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (io, chat) = (self.io.clone(), self.chat.clone());
        let listener = TrackedListener::new(listener, self.max_connections_per_address);
        let closing = async move {
            tracing::info!("shutting down");
            close_sockets(&io, &chat).await;
        };
        http::serve(listener, self.router(), shutdown, closing, self.timeouts).await;
        self.shutdown().await;
        Ok(())
    }
}

/// How long a stopping node waits for Redis to hear that it stops.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes every socket; a node of a cluster first tells the others that it stops, so that they
/// tell its rooms its users left (its own departures would reach no one: it tells nothing more).
async fn close_sockets(io: &cluster::SocketIo, chat: &Chat) {
    if let Some(shared) = &chat.shared_presence {
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, shared.leave()).await;
    }
    io.close().await;
}

/// Creates the data directory readable by the server's user only: it holds every message and the
/// key that signs tokens. One that exists already keeps its mode, with a warning if others may
/// read it (an operator may have chosen that, say for a backup user).
fn create_data_dir(dir: &std::path::Path) -> Result<(), ServerError> {
    let failed = |source| ServerError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).map_err(failed)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
                "the data directory can be read by other users; 0700 keeps messages private"
            );
        }
    }
    Ok(())
}

/// Opens the store and serves chat on `listener` until `shutdown` completes; see [`App::serve`].
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    App::new(&config).await?.serve(listener, shutdown).await
}

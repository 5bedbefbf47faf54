//! Causerie's chat server: Socket.IO over axum, with durable history. A library first, so that
//! tests and the desktop app embed the very server the `causerie-server` binary runs.
//!
//! - [`config`]: what can be configured, with defaults.
//! - [`handlers`]: the Socket.IO events (`connect`, `message`, `history`, `join`, ...).
//! - [`store`]: durable history behind the [`store::Store`] trait; SQLite with group commit.
//! - [`identity`]: the secret key, signed session tokens, guest names.
//! - [`chat`]: the state the handlers share.
//! - [`http`]: the router: Socket.IO, `/healthz`, `/metrics`, CORS.
//! - [`metrics`]: Prometheus counters.
//! - [`error`]: why a server could not start.
//! - `testing` (feature `testing`): a server on a free port for tests.
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
pub mod config;
pub mod error;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use socketioxide::SocketIo;
use tokio::net::TcpListener;

pub use config::{CorsOrigins, RateLimit, ServerConfig};
pub use error::ServerError;

use chat::Chat;
use identity::TokenSigner;
use store::{SqliteStore, Store};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "causerie.sqlite3";

/// A server ready to serve: its router, and the handles needed to stop it cleanly.
pub struct App {
    router: Router,
    io: SocketIo,
    chat: Arc<Chat>,
}

impl App {
    /// Opens the data directory and the store, and builds the router.
    pub async fn new(config: &ServerConfig) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let tokens = TokenSigner::load_or_create(config.secret_key.as_deref(), &config.data_dir)?;
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&config.data_dir.join(DATABASE_FILE)).await?);
        let chat = Arc::new(Chat::new(config, store, tokens));
        chat::spawn_housekeeping(&chat);
        let (router, io) = http::router(config, chat.clone());
        Ok(Self { router, io, chat })
    }

    /// The axum router: serve it, or nest it into a larger app.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Disconnects every socket, then finishes pending writes and closes the store.
    pub async fn shutdown(&self) {
        self.io.close().await;
        self.chat.store.close().await;
    }

    /// Serves chat on `listener` until `shutdown` completes, then stops gracefully: sockets are
    /// closed, writes already queued are committed, and the database is closed. A message is
    /// acked only once committed, so no acked message is lost.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let io = self.io.clone();
        // Chat frames are small and written back to back (the handshake, then `welcome`): with
        // Nagle's algorithm on, the second waits for the client's delayed ACK, about 40 ms.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down");
                // Open sockets would hold the HTTP server up: close them as shutdown starts.
                io.close().await;
            })
            .await;
        self.shutdown().await;
        served.map_err(ServerError::Serve)
    }
}

/// Opens the store and serves chat on `listener` until `shutdown` completes; see [`App::serve`].
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    App::new(&config).await?.serve(listener, shutdown).await
}

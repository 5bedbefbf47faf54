//! Errors of starting and running a server. Request errors cross the wire as
//! [`causerie_protocol::ErrorBody`] and never use these types.

use std::path::PathBuf;

/// Why a server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or the secret key file could not be read or written.
    #[error("cannot use {path}: {source}")]
    DataDir {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The secret key file exists but does not hold a key.
    #[error("{0} does not hold a secret key (64 hex digits)")]
    BadSecretKeyFile(PathBuf),
    /// The database could not be opened or migrated.
    #[error("cannot open the message store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Redis (`--redis-url`) could not be reached, or the adapter not subscribed through it.
    #[error("cannot reach the other nodes through Redis: {0}")]
    Redis(String),
    /// The HTTP server failed while serving.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

//! The demo's errors: what can stop a service process or the demo itself,
//! each saying what the user can do about it.

use std::path::PathBuf;

/// Why a service process or the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The address for Cairn is taken by another process.
    #[error("cannot listen on {address}: {source} (is another Cairn running? pick another address with --listen)")]
    AddressInUse {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command-line value is wrong.
    #[error("{0}")]
    InvalidArgument(String),
    /// The data directory cannot be made or written.
    #[error("cannot use the data directory {path}: {source}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A child process cannot be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which process.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Cairn did not come up, or a step of setting it up failed.
    #[error("Cairn: {0}")]
    Cairn(String),
    /// The card provider cannot listen.
    #[error("cannot start the card provider: {0}")]
    Provider(std::io::Error),
    /// A call to Cairn failed.
    #[error(transparent)]
    Client(#[from] cairn_client::ClientError),
    /// A service's SQLite database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The outbox refused a fact.
    #[error(transparent)]
    Outbox(#[from] cairn_sql::OutboxError),
    /// A part of a service failed.
    #[error(transparent)]
    Service(#[from] cairn_client::ServiceError),
    /// The resilient client could not be built.
    #[error("resilient client: {0}")]
    Resilient(#[from] cairn_resilient::BuildError),
    /// Signals cannot be watched.
    #[error("cannot watch signals: {0}")]
    Signals(std::io::Error),
    /// The run was interrupted (SIGINT or SIGTERM).
    #[error("interrupted by {0}; every process the demo started is stopped")]
    Interrupted(&'static str),
}

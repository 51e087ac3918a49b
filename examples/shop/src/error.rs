//! [`ServiceError`]: why a service could not start or stopped with an
//! error. Failures while running (a charge declined, Cairn unreachable for
//! a while) are not here: they are logged and retried.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a service failed to start or to stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The service's own SQLite database failed.
    #[error("the service's database failed")]
    Database(#[from] sqlx::Error),
    /// The client of Cairn could not be built.
    #[error("cannot build the client of Cairn")]
    Cairn(#[from] cairn_client::ClientError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The resilient HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[from] cairn_resilient::BuildError),
    /// The signal handlers could not be installed.
    #[error("cannot listen for SIGINT and SIGTERM")]
    Signals(#[source] std::io::Error),
    /// A part of the service (a subscriber, the HTTP server, the outbox
    /// relay) failed, and the others were stopped.
    #[error(transparent)]
    Running(#[from] cairn_client::ServiceError),
}

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
    /// A call to Cairn failed in a way retrying does not fix.
    #[error("a call to Cairn failed")]
    Cairn(#[from] cairn_client::ClientError),
    /// A subscription of that name exists with another definition.
    #[error(
        "the subscription {name:?} exists with another definition; \
         delete it (`cairn subs delete {name}`) to let the service create its own"
    )]
    SubscriptionConflict {
        /// The subscription's name.
        name: String,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The resilient HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[from] cairn_resilient::BuildError),
    /// The outbox relay stopped on an outbox it cannot publish, or could
    /// not say what it left at shutdown.
    #[error("the outbox relay failed")]
    Relay(#[from] cairn_sql::DrainError),
    /// The signal handlers could not be installed.
    #[error("cannot listen for SIGINT and SIGTERM")]
    Signals(#[source] std::io::Error),
    /// A task of the service panicked.
    #[error("a task of the service failed")]
    Task(#[from] tokio::task::JoinError),
}

/// An error with its chain of causes on one line, for logs and for the
/// error text a nack carries into a dead letter.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! How PostgreSQL errors map onto the store's errors: an unreachable or
//! overloaded database is `Unavailable` (the server answers 503 and
//! recovers when it returns); anything else is a storage failure.

use crate::error::{ReadError, WriteError};

/// Why the PostgreSQL store could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {message}")]
    Url {
        /// What is wrong with it, quoting the driver's error if there is one.
        message: String,
        /// The driver's error, if it found the fault.
        #[source]
        source: Option<sqlx::Error>,
    },
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// None of the URL's hosts accepts writes (all down, or standbys).
    #[error("no writable PostgreSQL primary among {hosts}: {reasons}")]
    NoPrimary {
        /// The hosts tried, in order.
        hosts: String,
        /// Why each was passed over.
        reasons: String,
    },
    /// A schema migration failed.
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database acknowledges commits before they are durable.
    #[error("refusing a database that may lose acknowledged commits ({0}); set synchronous_commit and fsync to on")]
    NotDurable(String),
}

impl PostgresError {
    /// Whether trying again later may succeed: the database cannot be
    /// reached yet, or none of the hosts accepts writes yet (a failover
    /// under way). A bad URL, a refused certificate or login, a failed
    /// migration and an unsafe setting stay as they are until someone
    /// changes them.
    pub fn is_transient(&self) -> bool {
        match self {
            PostgresError::NoPrimary { .. } => true,
            PostgresError::Connect(error) => match error {
                // A refused TLS handshake (the certificate) surfaces as
                // invalid data; it stays refused.
                sqlx::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
                sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => false,
                other => is_unavailable(other),
            },
            PostgresError::Url { .. }
            | PostgresError::Migrate(_)
            | PostgresError::NotDurable(_) => false,
        }
    }
}

/// Whether the error means the database is unreachable, shutting down,
/// overloaded or too slow, rather than a problem with the statement.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutdown or recovery;
            // 53: insufficient resources; 57014: statement timeout;
            // 40001/40P01: serialization failure, deadlock (retry).
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "57014"
                || code == "40001"
                || code == "40P01"
                || code == "25006" // read-only transaction: a replica after failover
        }),
        _ => false,
    }
}

/// A read failure as the store reports it.
pub(crate) fn read_error(error: sqlx::Error) -> ReadError {
    if is_unavailable(&error) {
        ReadError::Unavailable {
            message: error.to_string(),
            source: Some(error.into()),
        }
    } else {
        ReadError::storage_caused_by(error.to_string(), error)
    }
}

/// A write failure as the store reports it.
pub(crate) fn write_error(error: sqlx::Error) -> WriteError {
    if is_unavailable(&error) {
        WriteError::Unavailable {
            message: error.to_string(),
            source: Some(error.into()),
        }
    } else {
        WriteError::storage_caused_by(error.to_string(), error)
    }
}

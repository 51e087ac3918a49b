//! Opens a service's own SQLite database: one file in its data directory,
//! in WAL mode with full syncs (a committed order or charge survives a
//! power cut), with Cairn's outbox and inbox tables created.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::ServiceError;
use crate::limits::{SQLITE_BUSY_TIMEOUT, SQLITE_CONNECTIONS_MAX};

/// Opens (creating if needed) `data_dir/file_name` and runs
/// [`cairn_sql::migrate`] on it.
pub async fn open_database(data_dir: &Path, file_name: &str) -> Result<SqlitePool, ServiceError> {
    std::fs::create_dir_all(data_dir).map_err(|source| ServiceError::DataDirectory {
        path: data_dir.to_owned(),
        source,
    })?;
    let options = SqliteConnectOptions::new()
        .filename(data_dir.join(file_name))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS_MAX)
        .connect_with(options)
        .await?;
    cairn_sql::migrate(&pool).await?;
    Ok(pool)
}

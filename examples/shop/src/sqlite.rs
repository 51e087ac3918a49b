//! A service's own SQLite database: one file in its data directory, in WAL
//! mode with full syncs (a committed order or charge survives a power
//! cut), with Cairn's outbox and inbox tables; and the relay that publishes
//! its outbox to Cairn.

use std::path::Path;
use std::sync::Arc;

use cairn_client::Client;
use cairn_sql::{DrainError, OutboxRelay, RelayTask};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::ServiceError;
use crate::limits::{
    RELAY_DRAIN_TIMEOUT, RELAY_POLL_INTERVAL, SQLITE_BUSY_TIMEOUT, SQLITE_CONNECTIONS_MAX,
};

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

/// Starts the relay that publishes the outbox of `pool` through `client`.
pub fn start_relay(pool: &SqlitePool, client: &Client) -> RelayTask {
    OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .poll_interval(RELAY_POLL_INTERVAL)
        .spawn()
}

/// Publishes what is committed in the outbox for at most
/// [`RELAY_DRAIN_TIMEOUT`], then stops the relay (which logs what it
/// left). Call it once nothing enqueues any more; what is left is
/// published at the next start.
pub async fn drain_relay(relay: RelayTask) -> Result<(), DrainError> {
    relay.drain_and_stop(RELAY_DRAIN_TIMEOUT).await.map(drop)
}

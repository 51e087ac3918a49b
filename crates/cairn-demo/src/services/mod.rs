//! The café's services (two of them cooks), each run as its own OS process
//! (`cairn demo-service NAME`), each written only against the public SDK:
//! typed facts, subscribers, request/reply, the outbox and inbox of
//! `cairn-sql` in its own SQLite file, and resilient calls.
//!
//! What they share lives here: the options every service gets, its SQLite
//! database with the outbox relay, the shape of a subscription, and the
//! stop signal (SIGINT, SIGTERM, or the demo closing the service's
//! standard input — so a service never outlives the demo).

pub mod fulfilment;
pub mod kitchen;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod stock;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_client::{
    AccessToken, BackoffDefinition, Client, ClientOptions, Delivery, HandlerError, Start,
    Subscriber, SubscriptionDefinition,
};
use cairn_sql::{OutboxRelay, RelayTask};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::error::DemoError;
use crate::limits::{
    BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, LEASE_MS, RELAY_DRAIN_TIMEOUT, RELAY_POLL_INTERVAL,
    SQLITE_BUSY_TIMEOUT, SQLITE_CONNECTIONS_MAX, SUBSCRIBER_CONCURRENCY, SUBSCRIBER_DRAIN_TIMEOUT,
    SUBSCRIBER_WAIT_MS,
};

/// What every service is started with.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Cairn's base URL.
    pub cairn_url: String,
    /// The service's own directory (its SQLite file).
    pub data_dir: PathBuf,
    /// The card provider's base URL (payments only).
    pub provider_url: String,
    /// The service's own access token (least privilege).
    pub access_token: Option<AccessToken>,
    /// Croissants in stock at the start, and again at the restock (stock
    /// only).
    pub croissants: i64,
    /// When the croissant delivery comes, in ms since the Unix epoch: the
    /// instant of stock's durable restock timer (stock only).
    pub restock_at_ms: u64,
}

impl ServiceOptions {
    /// A client of Cairn with the service's token.
    pub fn client(&self) -> Result<Client, DemoError> {
        Ok(Client::remote(ClientOptions {
            access_token: self.access_token.clone(),
            ..ClientOptions::new([self.cairn_url.as_str()])
        })?)
    }
}

/// Runs the service `name` until `stop` completes.
pub async fn run(
    name: &str,
    options: ServiceOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    match name {
        "orders" => orders::run(options, stop).await,
        "payments" => payments::run(options, stop).await,
        "stock" => stock::run(options, stop).await,
        "kitchen-1" => kitchen::run(kitchen::WORKERS[0], options, stop).await,
        "kitchen-2" => kitchen::run(kitchen::WORKERS[1], options, stop).await,
        "notifications" => notifications::run(options, stop).await,
        other => Err(DemoError::InvalidArgument(format!(
            "no service named {other:?} (one of: {})",
            crate::schedule::SERVICES.join(", ")
        ))),
    }
}

/// Opens (creating if needed) `data_dir/<name>.db`, WAL with full syncs,
/// with the outbox and inbox tables.
pub async fn open_database(data_dir: &Path, name: &str) -> Result<SqlitePool, DemoError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DemoError::DataDirectory {
        path: data_dir.to_owned(),
        source,
    })?;
    let options = SqliteConnectOptions::new()
        .filename(data_dir.join(format!("{name}.db")))
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

/// Starts the relay that publishes the outbox of `pool` to Cairn.
pub fn start_relay(pool: &SqlitePool, client: &Client) -> RelayTask {
    OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .poll_interval(RELAY_POLL_INTERVAL)
        .spawn()
}

/// Publishes what is committed for a bounded time, then stops the relay;
/// what is left goes out at the next start.
pub async fn drain_relay(relay: RelayTask) -> Result<(), cairn_sql::DrainError> {
    relay.drain_and_stop(RELAY_DRAIN_TIMEOUT).await.map(drop)
}

/// A subscription over `type_name` from the beginning of the log, with
/// `attempts_max` deliveries and the demo's lease and backoff.
pub fn definition(type_name: &str, attempts_max: u32) -> SubscriptionDefinition {
    SubscriptionDefinition {
        start: Some(Start::Beginning),
        lease_ms: Some(LEASE_MS),
        max_attempts: Some(attempts_max),
        backoff: Some(BackoffDefinition {
            initial_ms: Some(BACKOFF_INITIAL_MS),
            max_ms: Some(BACKOFF_MAX_MS),
        }),
        ..SubscriptionDefinition::new(type_name)
    }
}

/// A subscriber of `name` with this definition and the demo's
/// concurrency, long-poll and drain timeout.
pub fn subscriber<H, F>(
    client: &Client,
    name: &str,
    definition: SubscriptionDefinition,
    handler: H,
) -> Subscriber<H>
where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Subscriber::new(client.clone(), name, handler)
        .definition(definition)
        .concurrency(SUBSCRIBER_CONCURRENCY)
        .wait_ms(SUBSCRIBER_WAIT_MS)
        .drain_timeout(SUBSCRIBER_DRAIN_TIMEOUT)
}

/// Completes at SIGINT, SIGTERM, or when standard input closes (the demo
/// gives each service a pipe and closes it to stop it; if the demo itself
/// dies, the pipe closes too). Installed before it returns.
pub fn stop_signal() -> Result<impl Future<Output = ()>, DemoError> {
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DemoError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DemoError::Signals)?;
    Ok(async move {
        let stdin_closed = async {
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0u8; 64];
            // Bounded by the pipe: it ends at end of file or an error.
            while matches!(stdin.read(&mut buffer).await, Ok(read) if read > 0) {}
        };
        let reason = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            () = stdin_closed => "standard input closed",
        };
        tracing::info!("{reason}: stopping");
    })
}

/// A handler error from any error.
pub fn handler_error(error: impl std::fmt::Display) -> HandlerError {
    HandlerError::new(error.to_string())
}

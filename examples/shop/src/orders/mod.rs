//! The `orders` service: an HTTP API over its own SQLite database, an
//! outbox relay that publishes its `Shop.OrderPlaced` facts to Cairn, and
//! two subscribers that apply payment facts to orders.
//!
//! Shutdown order: stop taking requests, drain the subscribers, then let
//! the relay publish what the last requests enqueued.

pub mod payments;
pub mod routes;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_client::{Client, ClientOptions};
use cairn_sql::{Outbox, OutboxRelay};
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::limits::{RELAY_DRAIN_TIMEOUT, RELAY_POLL_INTERVAL};
use crate::sqlite::open_database;
use payments::PaymentKind;
use routes::AppState;

/// The file of the service's database in its data directory.
pub const DATABASE_FILE: &str = "orders.db";

/// How to run `orders`.
#[derive(Clone, Debug)]
pub struct OrdersOptions {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Cairn's base URL.
    pub cairn_url: String,
    /// Where the SQLite database lives.
    pub data_dir: PathBuf,
}

/// Runs `orders` until `shutdown`, then stops cleanly.
pub async fn run(options: OrdersOptions, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let pool = open_database(&options.data_dir, DATABASE_FILE).await?;
    store::create_tables(&pool).await?;
    let client = Client::remote(ClientOptions::new([options.cairn_url.as_str()]))?;
    let relay = OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .poll_interval(RELAY_POLL_INTERVAL)
        .spawn();

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            address: options.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(ServiceError::Serve)?;
    tracing::info!(%address, cairn = %options.cairn_url, data = %options.data_dir.display(), "orders listening");

    let listeners: Vec<_> = [PaymentKind::Succeeded, PaymentKind::Failed]
        .into_iter()
        .map(|kind| {
            let listening = payments::listen(client.clone(), pool.clone(), kind, shutdown.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let result = listening.await;
                // A service that cannot learn payments must not go on
                // taking orders as if it could.
                if result.is_err() {
                    shutdown.cancel();
                }
                result
            })
        })
        .collect();

    let state = AppState {
        pool: pool.clone(),
        outbox: Outbox::new(),
        relay: relay.handle(),
    };
    let served = axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(ServiceError::Serve);
    // Whatever stopped the server, stop the rest too.
    shutdown.cancel();
    tracing::info!("HTTP server stopped; draining subscribers");
    let mut first_error = served.err();
    for listener in listeners {
        if let Err(error) = listener
            .await
            .map_err(ServiceError::from)
            .and_then(|result| result)
        {
            first_error.get_or_insert(error);
        }
    }
    if let Err(error) = relay.drain_and_stop(RELAY_DRAIN_TIMEOUT).await {
        first_error.get_or_insert(error.into());
    }
    pool.close().await;
    match first_error {
        Some(error) => Err(error),
        None => {
            tracing::info!("orders stopped cleanly");
            Ok(())
        }
    }
}

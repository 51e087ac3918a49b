//! The `orders` service: an HTTP API over its own SQLite database, an
//! outbox relay that publishes its `Shop.OrderPlaced` facts to Cairn, and
//! two subscribers that apply payment facts to orders, run together as one
//! [`Service`].
//!
//! Shutdown order: drain the subscribers, stop taking requests, then let
//! the relay publish what the last requests enqueued.

pub mod payments;
pub mod routes;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_client::{AccessToken, Client, ClientOptions, PartError, Service};

use crate::error::ServiceError;
use crate::facts::{PaymentFailed, PaymentSucceeded};
use crate::sqlite::{drain_relay, open_database, start_relay};
use payments::subscriber_of;
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
    /// The service's own access token, for a Cairn started with `--auth`
    /// (the binary reads it from `CAIRN_TOKEN`); every call to Cairn — the
    /// outbox relay's writes and the subscribers' pulls and acks — carries
    /// it.
    pub access_token: Option<AccessToken>,
}

/// Runs `orders` until `stop` completes, then stops cleanly.
pub async fn run(
    options: OrdersOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let pool = open_database(&options.data_dir, DATABASE_FILE).await?;
    store::create_tables(&pool).await?;
    let client = Client::remote(ClientOptions {
        access_token: options.access_token.clone(),
        ..ClientOptions::new([options.cairn_url.as_str()])
    })?;
    let listen_error = |source| ServiceError::Listen {
        address: options.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(listen_error)?;
    let address = listener.local_addr().map_err(listen_error)?;
    tracing::info!(%address, cairn = %options.cairn_url, access_token = options.access_token.is_some(), data = %options.data_dir.display(), "orders listening");

    let relay = start_relay(&pool, &client);
    let router = routes::router(AppState {
        pool: pool.clone(),
        relay: relay.handle(),
    });
    let report = Service::new("orders")
        .subscriber(subscriber_of::<PaymentSucceeded>(
            client.clone(),
            pool.clone(),
        ))
        .subscriber(subscriber_of::<PaymentFailed>(client, pool.clone()))
        .task("HTTP API and outbox relay", |shutdown| async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            // After the server, so that the relay publishes the last
            // orders too.
            let drained = drain_relay(relay).await;
            served?;
            drained?;
            Ok::<(), PartError>(())
        })
        .run_until(stop)
        .await?;
    pool.close().await;
    tracing::info!(?report, "orders stopped cleanly");
    Ok(())
}

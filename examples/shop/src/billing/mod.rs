//! The `billing` service: a subscriber on the durable subscription
//! `billing` (created at start with a few attempts and a short backoff)
//! that charges each order once, an outbox relay for its payment facts,
//! and a resilient HTTP client for its notices to `orders`.
//!
//! Shutdown order: drain the subscriber, then let the relay publish what
//! the last charges enqueued.

pub mod charges;
pub mod gateway;
pub mod notice;

use std::path::PathBuf;
use std::sync::Arc;

use cairn_client::{Client, ClientOptions, Delivery, TypedFact};
use cairn_sql::{Inbox, Outbox, OutboxRelay};
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::facts::OrderPlaced;
use crate::limits::{
    BILLING_ATTEMPTS_MAX, BILLING_BACKOFF_INITIAL_MS, BILLING_BACKOFF_MAX_MS, BILLING_LEASE_MS,
    BILLING_SUBSCRIPTION, RELAY_DRAIN_TIMEOUT, RELAY_POLL_INTERVAL,
};
use crate::sqlite::open_database;
use crate::subscriptions::{definition, ensure_subscription, run_subscriber};
use charges::Billing;
use notice::NoticeSender;

/// The file of the service's database in its data directory.
pub const DATABASE_FILE: &str = "billing.db";

/// How to run `billing`.
#[derive(Clone, Debug)]
pub struct BillingOptions {
    /// Cairn's base URL.
    pub cairn_url: String,
    /// The `orders` service's base URL, for payment notices.
    pub orders_url: String,
    /// Where the SQLite database lives.
    pub data_dir: PathBuf,
}

/// Runs `billing` until `shutdown`, then stops cleanly.
pub async fn run(options: BillingOptions, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let pool = open_database(&options.data_dir, DATABASE_FILE).await?;
    charges::create_tables(&pool).await?;
    let client = Client::remote(ClientOptions::new([options.cairn_url.as_str()]))?;
    let notices = NoticeSender::new(&options.orders_url)?;
    let relay = OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .poll_interval(RELAY_POLL_INTERVAL)
        .spawn();
    tracing::info!(cairn = %options.cairn_url, orders = %options.orders_url, data = %options.data_dir.display(), "billing started");

    let definition = definition(
        OrderPlaced::TYPE_NAME,
        BILLING_LEASE_MS,
        BILLING_ATTEMPTS_MAX,
        BILLING_BACKOFF_INITIAL_MS,
        BILLING_BACKOFF_MAX_MS,
    );
    let subscribed =
        match ensure_subscription(&client, BILLING_SUBSCRIPTION, &definition, &shutdown).await {
            Ok(Some(view)) => {
                let billing = Billing {
                    pool: pool.clone(),
                    inbox: Inbox::new(charges::INBOX_CONSUMER),
                    outbox: Outbox::new(),
                    relay: relay.handle(),
                    notices,
                    attempts_max: view.definition.max_attempts.unwrap_or(BILLING_ATTEMPTS_MAX),
                };
                let handler = move |delivery: Delivery| {
                    let billing = billing.clone();
                    async move { billing.handle(delivery).await }
                };
                run_subscriber(client, BILLING_SUBSCRIPTION, handler, shutdown).await
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
    let drained = relay.drain_and_stop(RELAY_DRAIN_TIMEOUT).await;
    pool.close().await;
    subscribed?;
    drained?;
    tracing::info!("billing stopped cleanly");
    Ok(())
}

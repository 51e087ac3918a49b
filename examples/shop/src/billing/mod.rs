//! The `billing` service: a subscriber on the durable subscription
//! `billing` (defined in code with a few attempts and a short backoff)
//! that charges each order once through its inbox, an outbox relay for its
//! payment facts, and a resilient HTTP client for its notices to `orders`,
//! run together as one [`Service`].
//!
//! Shutdown order: drain the subscriber, then let the relay publish what
//! the last charges enqueued.

pub mod charges;
pub mod gateway;
pub mod notice;

use std::future::Future;
use std::path::PathBuf;

use cairn_client::{AccessToken, Client, ClientOptions, Delivery, Service, TypedFact};
use cairn_sql::with_inbox;

use crate::error::ServiceError;
use crate::facts::OrderPlaced;
use crate::limits::{
    BILLING_ATTEMPTS_MAX, BILLING_BACKOFF_INITIAL_MS, BILLING_BACKOFF_MAX_MS, BILLING_LEASE_MS,
    BILLING_SUBSCRIPTION,
};
use crate::sqlite::{drain_relay, open_database, start_relay};
use crate::subscriptions::{definition, subscriber};
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
    /// The service's own access token, for a Cairn started with `--auth`
    /// (the binary reads it from `CAIRN_TOKEN`); every call to Cairn — the
    /// outbox relay's writes and the subscribers' pulls and acks — carries
    /// it.
    pub access_token: Option<AccessToken>,
}

/// Runs `billing` until `stop` completes, then stops cleanly.
pub async fn run(
    options: BillingOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let pool = open_database(&options.data_dir, DATABASE_FILE).await?;
    charges::create_tables(&pool).await?;
    let client = Client::remote(ClientOptions {
        access_token: options.access_token.clone(),
        ..ClientOptions::new([options.cairn_url.as_str()])
    })?;
    let notices = NoticeSender::new(&options.orders_url)?;
    let relay = start_relay(&pool, &client);
    let billing = Billing {
        pool: pool.clone(),
        relay: relay.handle(),
        notices,
    };
    let charge_once = with_inbox(pool.clone(), |delivery, transaction| {
        Box::pin(charges::charge(delivery, transaction))
    });
    let handler = move |delivery: Delivery| {
        let charging = charge_once(delivery.clone());
        billing.clone().handle(delivery, charging)
    };
    let definition = definition(
        OrderPlaced::TYPE_NAME,
        BILLING_LEASE_MS,
        BILLING_ATTEMPTS_MAX,
        BILLING_BACKOFF_INITIAL_MS,
        BILLING_BACKOFF_MAX_MS,
    );
    tracing::info!(cairn = %options.cairn_url, access_token = options.access_token.is_some(), orders = %options.orders_url, data = %options.data_dir.display(), "billing started");
    let report = Service::new("billing")
        .subscriber(subscriber(
            client,
            BILLING_SUBSCRIPTION,
            definition,
            handler,
        ))
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    pool.close().await;
    tracing::info!(?report, "billing stopped cleanly");
    Ok(())
}

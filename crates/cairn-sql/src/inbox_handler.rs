//! [`with_inbox`]: a subscriber handler made idempotent through the inbox
//! in one line. The handler runs inside the inbox's transaction: its writes
//! (business rows, outbox entries) commit together with the record of the
//! message, so a redelivered message finds the record and has no second
//! effect, and a failed or crashed handling leaves nothing behind.

use cairn_client::{Delivery, HandlerError, HandlerFuture};
use futures_util::future::BoxFuture;
use sqlx::{Pool, Transaction};

use crate::database::CairnDatabase;
use crate::inbox::{Inbox, InboxError};

/// Wraps `handler` for a [`cairn_client::Subscriber`]: each delivery is
/// processed once per subscription (the inbox's consumer name is the
/// subscription's), with `handler`'s writes in the same transaction.
///
/// ```
/// # use cairn_client::{Client, Delivery, Subscriber, SubscriptionDefinition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let data = tempfile::tempdir()?;
/// # let client = cairn_client::Client::embedded(data.path()).await?;
/// # let pool = sqlx::sqlite::SqlitePoolOptions::new()
/// #     .max_connections(1)
/// #     .connect("sqlite::memory:")
/// #     .await?;
/// # cairn_sql::migrate(&pool).await?;
/// # sqlx::query("CREATE TABLE seen (hash TEXT)").execute(&pool).await?;
/// # let shutdown = tokio_util::sync::CancellationToken::new();
/// # shutdown.cancel();
/// use cairn_sql::with_inbox;
///
/// let handler = with_inbox(pool, |delivery: Delivery, transaction| {
///     Box::pin(async move {
///         sqlx::query("INSERT INTO seen (hash) VALUES ($1)")
///             .bind(delivery.hash().to_hex())
///             .execute(&mut **transaction)
///             .await?;
///         Ok(())
///     })
/// });
/// Subscriber::new(client.clone(), "audit", handler)
///     .definition(SubscriptionDefinition::new("Shop.Order"))
///     .run(shutdown)
///     .await?;
/// # client.close().await;
/// # Ok(()) }
/// ```
///
/// A function rather than a method on the handler: Rust infers the
/// closure's higher-ranked signature (the transaction borrowed for the
/// future's lifetime) only from a function argument's bound.
pub fn with_inbox<DB, H>(
    pool: Pool<DB>,
    handler: H,
) -> impl Fn(Delivery) -> HandlerFuture + Send + Sync + 'static
where
    DB: CairnDatabase,
    H: for<'t> Fn(
            Delivery,
            &'t mut Transaction<'static, DB>,
        ) -> BoxFuture<'t, Result<(), HandlerError>>
        + Send
        + Sync
        + 'static,
{
    let handler = std::sync::Arc::new(handler);
    move |delivery: Delivery| {
        let pool = pool.clone();
        let handler = std::sync::Arc::clone(&handler);
        Box::pin(async move {
            let inbox = Inbox::new(delivery.subscription());
            let hash = delivery.hash();
            let processed = inbox
                .process(&pool, &hash, move |transaction| {
                    handler(delivery, transaction)
                })
                .await;
            match processed {
                Ok(_) => Ok(()),
                Err(InboxError::Handler(error)) => Err(error),
                Err(InboxError::Database(error)) => Err(HandlerError::new(error)),
                Err(InboxError::Injected(fault)) => Err(HandlerError::new(fault)),
            }
        })
    }
}

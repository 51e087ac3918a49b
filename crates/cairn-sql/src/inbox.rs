//! [`Inbox`]: the idempotent consumer. It records each processed message's
//! hash in `cairn_inbox` in the same transaction as the handler's own
//! writes, so that a redelivered message finds its record and has no second
//! effect, and a message whose handling failed or crashed leaves no record
//! and is processed in full when it comes again.

use cairn_fact::Hash;
use futures_util::future::BoxFuture;
use sqlx::{Pool, Transaction};

use crate::database::{unix_time_ms, CairnDatabase};
use crate::fault::{reach, FaultInjector, InjectedFault, Step};

/// Processes each message at most once per consumer name, atomically with
/// the handler's own database writes.
///
/// The handler receives the transaction as `&mut Transaction` and returns a
/// boxed future (`Box::pin(async move { … })`), the same shape as sqlx's own
/// `Connection::transaction`: a closure cannot otherwise return a future
/// that borrows its argument. Run statements on `&mut **transaction`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let pool = sqlx::sqlite::SqlitePoolOptions::new()
/// #     .max_connections(1)
/// #     .connect("sqlite::memory:")
/// #     .await?;
/// # cairn_sql::migrate(&pool).await?;
/// # sqlx::query("CREATE TABLE accounts (id TEXT, balance INTEGER)").execute(&pool).await?;
/// # sqlx::query("INSERT INTO accounts VALUES ('a-1', 100)").execute(&pool).await?;
/// # let message_hash = cairn_fact::Hash::of_bytes(b"a message");
/// use cairn_sql::{Inbox, Processed};
///
/// let inbox = Inbox::new("billing");
/// let outcome = inbox
///     .process(&pool, &message_hash, |transaction| {
///         Box::pin(async move {
///             sqlx::query("UPDATE accounts SET balance = balance - 10 WHERE id = $1")
///                 .bind("a-1")
///                 .execute(&mut **transaction)
///                 .await?;
///             Ok::<_, sqlx::Error>(())
///         })
///     })
///     .await?;
/// if let Processed::Duplicate = outcome {
///     // Already processed earlier: acknowledge the message and do nothing.
/// }
/// # assert_eq!(outcome, Processed::First(()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Inbox {
    consumer: String,
    fault_injector: Option<FaultInjector>,
}

/// What [`Inbox::process`] did with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Processed<T> {
    /// First time: the handler ran and its writes are committed together
    /// with the record of the message. Holds the handler's result.
    First(T),
    /// The message was processed before: nothing ran, nothing changed.
    Duplicate,
}

/// Why a message was not processed. In every case nothing was committed:
/// the message should be left unacknowledged (or negatively acknowledged)
/// so that it is delivered again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError<E> {
    /// The database failed to begin, record, commit or roll back.
    #[error("the inbox's database failed")]
    Database(#[from] sqlx::Error),
    /// The handler returned an error; its writes were rolled back.
    #[error("the message handler failed")]
    Handler(#[source] E),
    /// A test injected a crash.
    #[error(transparent)]
    Injected(InjectedFault),
}

impl Inbox {
    /// An inbox for the consumer `consumer`: each consumer name processes
    /// each message once, independently of other names.
    pub fn new(consumer: impl Into<String>) -> Inbox {
        Inbox {
            consumer: consumer.into(),
            fault_injector: None,
        }
    }

    /// For crash tests only: calls `injector` at
    /// [`Step::InboxAfterInsertBeforeHandler`],
    /// [`Step::InboxAfterHandlerBeforeCommit`] and [`Step::InboxAfterCommit`];
    /// an injected fault makes [`Inbox::process`] return
    /// [`InboxError::Injected`] (rolling back if not yet committed).
    pub fn with_fault_injector(mut self, injector: FaultInjector) -> Inbox {
        self.fault_injector = Some(injector);
        self
    }

    /// The consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Processes the message `message_hash` with `handler`, once.
    ///
    /// Begins a transaction and records `(consumer, message_hash)`. If the
    /// record exists, rolls back and returns [`Processed::Duplicate`].
    /// Otherwise runs `handler` on the same transaction and commits, so that
    /// the record and the handler's writes become durable together; returns
    /// [`Processed::First`] with the handler's result. A handler error rolls
    /// both back ([`InboxError::Handler`]).
    ///
    /// Concurrent deliveries of the same message are safe: on PostgreSQL the
    /// second insert waits for the first transaction and then sees its
    /// record; on SQLite writers are serialized.
    pub async fn process<DB, T, E, F>(
        &self,
        pool: &Pool<DB>,
        message_hash: &Hash,
        handler: F,
    ) -> Result<Processed<T>, InboxError<E>>
    where
        DB: CairnDatabase,
        F: for<'t> FnOnce(&'t mut Transaction<'static, DB>) -> BoxFuture<'t, Result<T, E>>,
    {
        let injector = self.fault_injector.as_ref();
        let mut transaction = pool.begin().await?;
        let recorded_now = DB::insert_inbox_row(
            &mut *transaction,
            &self.consumer,
            &message_hash.to_hex(),
            unix_time_ms(),
        )
        .await?;
        if !recorded_now {
            transaction.rollback().await?;
            return Ok(Processed::Duplicate);
        }
        reach(injector, Step::InboxAfterInsertBeforeHandler).map_err(InboxError::Injected)?;
        let value = match handler(&mut transaction).await {
            Ok(value) => value,
            Err(error) => {
                if let Err(rollback_error) = transaction.rollback().await {
                    // The handler's error matters more; the connection is
                    // discarded by the pool, which rolls back anyway.
                    tracing::warn!(error = %rollback_error, "rollback after a handler error failed");
                }
                return Err(InboxError::Handler(error));
            }
        };
        reach(injector, Step::InboxAfterHandlerBeforeCommit).map_err(InboxError::Injected)?;
        transaction.commit().await?;
        reach(injector, Step::InboxAfterCommit).map_err(InboxError::Injected)?;
        Ok(Processed::First(value))
    }
}

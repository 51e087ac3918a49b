//! [`Outbox`]: writes facts to publish into the `cairn_outbox` table inside
//! the caller's own transaction, so that they are committed (or rolled back)
//! together with the service's business data. [`crate::OutboxRelay`] then
//! publishes them.

use cairn_fact::CanonicalFact;
use sqlx::{Pool, Transaction};

use crate::database::{unix_time_ms, CairnDatabase};
use crate::fault::{reach, FaultInjector, InjectedFault, Step};

/// Enqueues facts for publication in the service's transaction.
///
/// ```no_run
/// # async fn example(
/// #     pool: sqlx::SqlitePool,
/// #     relay: cairn_sql::RelayHandle,
/// #     order: cairn_fact::CanonicalFact,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// let outbox = cairn_sql::Outbox::new();
/// let mut transaction = pool.begin().await?;
/// sqlx::query("INSERT INTO orders (id) VALUES ($1)")
///     .bind("o-1")
///     .execute(&mut *transaction)
///     .await?;
/// outbox.enqueue(&mut transaction, &[order]).await?;
/// transaction.commit().await?;
/// // Optional: wake the relay now rather than at its next poll.
/// relay.notify();
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Outbox {
    fault_injector: Option<FaultInjector>,
}

/// Why enqueuing failed. The caller's transaction must then be rolled back
/// (dropping it does that).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database refused or failed a statement.
    #[error("cannot write to the outbox")]
    Database(#[from] sqlx::Error),
    /// A test injected a crash.
    #[error(transparent)]
    Injected(#[from] InjectedFault),
}

impl Outbox {
    /// An outbox on the `cairn_outbox` table (see [`crate::migrate`]).
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// For crash tests only: calls `injector` at
    /// [`Step::OutboxAfterInsertBeforeCommit`].
    pub fn with_fault_injector(mut self, injector: FaultInjector) -> Outbox {
        self.fault_injector = Some(injector);
        self
    }

    /// Inserts `facts` into the outbox within `transaction`, in order (the
    /// relay publishes in insertion order, so enqueue a fact's predecessors
    /// before it, here or in an earlier transaction). A fact whose hash is
    /// already in the outbox is skipped: enqueuing is idempotent.
    ///
    /// Nothing is published unless the caller commits `transaction`.
    /// Returns the number of facts newly inserted.
    pub async fn enqueue<DB: CairnDatabase>(
        &self,
        transaction: &mut Transaction<'_, DB>,
        facts: &[CanonicalFact],
    ) -> Result<usize, OutboxError> {
        let created_at_ms = unix_time_ms();
        let mut n_inserted = 0;
        for fact in facts {
            let hash = fact.hash.to_hex();
            if DB::insert_outbox_row(&mut **transaction, &hash, &fact.canonical, created_at_ms)
                .await?
            {
                n_inserted += 1;
            }
        }
        reach(
            self.fault_injector.as_ref(),
            Step::OutboxAfterInsertBeforeCommit,
        )?;
        Ok(n_inserted)
    }

    /// Number of facts enqueued and committed but not yet published: the
    /// relay's backlog, for metrics and tests.
    pub async fn unsent_count<DB: CairnDatabase>(pool: &Pool<DB>) -> Result<u64, sqlx::Error> {
        DB::count_unsent(pool).await
    }
}

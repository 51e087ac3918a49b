//! [`Outbox`]: writes facts to publish into the `cairn_outbox` table inside
//! the caller's own transaction, so that they are committed (or rolled back)
//! together with the service's business data. [`crate::OutboxRelay`] then
//! publishes them. Also the operator's tools for the rows the relay set
//! aside: list, count, retry and discard outbox dead letters.

use cairn_client::{to_canonical_fact, TypedFact};
use cairn_fact::{CanonicalFact, Hash, HashParseError};
use sqlx::{Pool, Transaction};

use crate::database::{unix_time_ms, CairnDatabase};
use crate::dead_letter::OutboxDeadLetter;
use crate::fault::{reach, FaultInjector, InjectedFault, Step};
use crate::limits::DEAD_LETTERS_LISTED_MAX;

/// Enqueues facts for publication in the service's transaction.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let data = tempfile::tempdir()?;
/// # let client = cairn_client::Client::embedded(data.path()).await?;
/// # let pool = sqlx::sqlite::SqlitePoolOptions::new()
/// #     .max_connections(1)
/// #     .connect("sqlite::memory:")
/// #     .await?;
/// # cairn_sql::migrate(&pool).await?;
/// # sqlx::query("CREATE TABLE orders (id TEXT)").execute(&pool).await?;
/// # let relay = cairn_sql::OutboxRelay::new(pool.clone(), std::sync::Arc::new(client.clone())).spawn();
/// # let order = cairn_fact::CanonicalFact::from_json(
/// #     br#"{"type":"Shop.Order","fields":{"id":"o-1"},"predecessors":{}}"#, 1 << 20)?;
/// # let order_hash = order.hash;
/// let outbox = cairn_sql::Outbox::new();
/// let mut transaction = pool.begin().await?;
/// sqlx::query("INSERT INTO orders (id) VALUES ($1)")
///     .bind("o-1")
///     .execute(&mut *transaction)
///     .await?;
/// outbox.enqueue(&mut transaction, &[order]).await?;
/// transaction.commit().await?;
/// // Optional: wake the relay now rather than at its next poll.
/// relay.handle().notify();
/// # relay.drain_and_stop(std::time::Duration::from_secs(10)).await?;
/// # assert!(client.get_fact(&order_hash).await?.is_some());
/// # client.close().await;
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
    /// A typed value could not be made into a fact.
    #[error("cannot build the fact to enqueue")]
    Fact(#[from] cairn_client::ClientError),
    /// A test injected a crash.
    #[error(transparent)]
    Injected(#[from] InjectedFault),
}

/// Why the dead letters could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The database refused or failed the statement.
    #[error("cannot read the outbox's dead letters")]
    Database(#[from] sqlx::Error),
    /// A dead letter's hash column is not a hash: the table was changed by
    /// something other than this crate.
    #[error("outbox row {id} has a corrupt hash")]
    CorruptHash {
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        #[source]
        source: HashParseError,
    },
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

    /// Enqueues one typed value as a fact (see [`Outbox::enqueue`]) and
    /// returns the fact's hash, known before Cairn has it.
    pub async fn enqueue_value<DB: CairnDatabase, T: TypedFact>(
        &self,
        transaction: &mut Transaction<'_, DB>,
        value: &T,
    ) -> Result<Hash, OutboxError> {
        let fact = to_canonical_fact(value)?;
        let hash = fact.hash;
        self.enqueue(transaction, &[fact]).await?;
        Ok(hash)
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

    /// Number of facts enqueued and committed but not yet published, dead
    /// letters excepted: the relay's backlog, for metrics and tests. Both
    /// this and [`Outbox::dead_letter_count`] are 0 when everything
    /// committed is in Cairn.
    pub async fn unsent_count<DB: CairnDatabase>(pool: &Pool<DB>) -> Result<u64, sqlx::Error> {
        DB::count_pending(pool).await
    }

    /// Number of outbox dead letters: rows the relay set aside because
    /// Cairn refused them or a predecessor of theirs is a dead letter.
    pub async fn dead_letter_count<DB: CairnDatabase>(pool: &Pool<DB>) -> Result<u64, sqlx::Error> {
        DB::count_dead_letters(pool).await
    }

    /// The first `limit` dead letters (at most
    /// [`DEAD_LETTERS_LISTED_MAX`]) in outbox order, each with the error
    /// that set it aside. A dead letter whose predecessor is a dead letter
    /// comes after it; retry or discard the first ones to see further.
    pub async fn dead_letters<DB: CairnDatabase>(
        pool: &Pool<DB>,
        limit: usize,
    ) -> Result<Vec<OutboxDeadLetter>, DeadLetterError> {
        let rows = DB::select_dead_letters(pool, limit.min(DEAD_LETTERS_LISTED_MAX)).await?;
        rows.into_iter()
            .map(|row| {
                let id = row.id;
                Ok(OutboxDeadLetter {
                    id,
                    hash: Hash::from_hex(&row.hash)
                        .map_err(|source| DeadLetterError::CorruptHash { id, source })?,
                    canonical: row.canonical,
                    error: row.failure,
                    failed_at_ms: row.failed_at_ms,
                    attempts: u64::try_from(row.failed_attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Puts the dead letter `hash` back for the relay; returns whether there
    /// was such a dead letter. Call [`crate::RelayHandle::notify`] to have
    /// it published now rather than at the relay's next poll.
    ///
    /// Order: the row keeps its place (its `id`) in the outbox, so the relay
    /// publishes it before every row still pending that was enqueued after
    /// it, and dead letters retried together (see
    /// [`Outbox::retry_dead_letters`]) are published in their original
    /// order: retry a dead letter before (or with) the dead letters that
    /// were set aside because of it, which are set aside again otherwise. Rows enqueued after it that were published meanwhile stay
    /// published; none of them depends on it, since those were set aside.
    /// Fix the cause first (for `missing_predecessors`, publish the missing
    /// predecessor, for example by enqueuing it): a retried row that Cairn
    /// refuses again is set aside again, its `attempts` one higher.
    pub async fn retry_dead_letter<DB: CairnDatabase>(
        pool: &Pool<DB>,
        hash: &Hash,
    ) -> Result<bool, sqlx::Error> {
        Ok(Self::retry_dead_letters(pool, std::slice::from_ref(hash)).await? == 1)
    }

    /// Puts the dead letters among `hashes` back for the relay in one
    /// transaction, so that the relay sees all of them or none, and
    /// publishes them in their outbox order whatever the order of
    /// `hashes`; returns how many were dead letters. This is how to retry
    /// a dead letter together with those set aside because of it.
    pub async fn retry_dead_letters<DB: CairnDatabase>(
        pool: &Pool<DB>,
        hashes: &[Hash],
    ) -> Result<u64, sqlx::Error> {
        let hashes: Vec<String> = hashes.iter().map(Hash::to_hex).collect();
        DB::retry_dead_letters(pool, &hashes).await
    }

    /// Deletes the dead letter `hash`: its fact is never published (unless
    /// enqueued again, which then makes a new row at the end of the
    /// outbox). Returns whether there was such a dead letter. Dead letters
    /// set aside because of it stay, and are set aside again if retried.
    pub async fn discard_dead_letter<DB: CairnDatabase>(
        pool: &Pool<DB>,
        hash: &Hash,
    ) -> Result<bool, sqlx::Error> {
        DB::discard_dead_letter(pool, &hash.to_hex()).await
    }
}

//! The PostgreSQL backend: many stateless Cairn servers over one database.
//!
//! Facts live in `cairn_facts`, their predecessor edges in
//! `cairn_predecessors`; a batch is written by one call of the
//! `cairn_put_facts` function (one round trip, one transaction). Since
//! migration 13 (`migrations/0013_log_tickets.sql`, where the full argument
//! is) batches insert concurrently and only publishing is serialized:
//!
//! 1. under a short session advisory lock, the writer takes the next
//!    ticket (a sequence) and a block of provisional seqs (another
//!    sequence), and locks its ticket (a transaction advisory lock);
//! 2. it inserts its facts with the provisional seqs, concurrently with
//!    other writers (a fact a concurrent writer committed first is skipped
//!    and gets that writer's seq);
//! 3. it waits for the previous ticket's transaction to end, takes the
//!    `cairn_log_head` row (held until commit, as before migration 13) and
//!    numbers what it inserted head + 1 .. head + m — usually the
//!    provisional seqs themselves; after a skipped fact or an unused block
//!    (a writer that aborted or found everything stored) it renumbers its
//!    own, still invisible rows;
//! 4. it moves the head, notifies and commits.
//!
//! Seqs become final only under the head's row lock, from the head
//! upwards, and that lock is held until commit: the log is dense and
//! gap-free whatever happens to reserved blocks, every snapshot sees a
//! prefix of it, and a reader paging by seq never skips a fact that commits
//! later. Commits follow ticket order. A writer waiting for a concurrent
//! writer of the same fact (possibly a later ticket waiting for it) gives
//! way after a bounded wait: it rolls its inserts back, waits for its
//! previous ticket, and fails with serialization_failure, which
//! [`Store::put_facts_by`] retries (and other callers report as
//! unavailable, to be retried). A crash at any step leaves nothing of an
//! uncommitted batch; its block stays unused and is never a gap.
//! Durability is PostgreSQL's: a batch is
//! acknowledged after its commit returns, with `synchronous_commit` at least
//! `on` (the store refuses to run with it `off`).
//!
//! Every server LISTENs on the `cairn_facts` channel, which the writing
//! transaction notifies on commit, so long-polling readers on any server
//! wake up when any server writes; a periodic read of the head covers
//! notifications lost while the listening connection was down.
//!
//! Claims and their releases go through the store's claim batcher
//! (`claim_batcher.rs`), which decides all of a server's waiting claims in
//! one transaction, so they share the log head's lock and one commit.
//!
//! Delivery state lives in shared tables too (`delivery.rs`), coordinated
//! by row locks (`FOR UPDATE SKIP LOCKED`), never by the servers. So do
//! identities, tokens, the audit trail and authorship (`identity.rs`); a
//! batch written by an identity goes through `cairn_put_facts_by`, which
//! records its authorship in the same call and transaction.

pub(crate) mod blobs;
mod claim_batcher;
mod coordination;
pub mod delivery;
mod digests;
mod errors;
mod hosts;
mod identity;
mod links;
mod primary;
#[cfg(feature = "private-cluster")]
pub mod private_cluster;
mod replication;
mod schema;
mod successor_types;
#[cfg(feature = "test-support")]
pub mod testing;
mod timers;
pub(crate) mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_fact::{CanonicalFact, Hash};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool, Row};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{ReadError, WriteError};
use crate::store::{
    cumulative_buckets, Page, PutOutcome, Store, StoreStats, StoredFact, SuccessorsQuery,
};

pub use claim_batcher::ClaimBatcherOptions;
pub use errors::PostgresError;
pub use replication::ReplicationStats;
pub use schema::SCHEMA_VERSION;

use claim_batcher::{ClaimBatcher, ClaimBatcherHandle, ClaimBatcherParts};
use errors::{read_error, write_error};
use hosts::HostList;
use primary::PrimaryTracker;
use replication::ReplicationWatch;

/// The channel `cairn_put_facts` notifies with the new head of the log.
const FACTS_CHANNEL: &str = "cairn_facts";
/// Added to the acquire and statement timeouts to bound one operation.
const OPERATION_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);
/// How often the head of the log is read even without notifications.
const HEAD_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bounds of the query latency histogram, in seconds.
const QUERY_SECONDS_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Settings of the connection pool.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections this server opens at most.
    pub pool_max: u32,
    /// How long a request waits for a free connection before it fails.
    pub acquire_timeout: Duration,
    /// Statements running longer are cancelled by PostgreSQL.
    pub statement_timeout: Duration,
    /// How claims are batched (see `claim_batcher.rs`).
    pub claims: ClaimBatcherOptions,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_max: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            claims: ClaimBatcherOptions::default(),
        }
    }
}

/// Counters shared with the background listener.
#[derive(Default)]
struct Counters {
    facts_inserted: AtomicU64,
    bytes_inserted: AtomicU64,
    commits: AtomicU64,
    commit_nanos: AtomicU64,
    facts_per_commit: [AtomicU64; 7],
    query_nanos: AtomicU64,
    query_buckets: [AtomicU64; QUERY_SECONDS_BUCKETS.len() + 1],
    disk_bytes: AtomicU64,
}

/// Upper bounds of the facts-per-commit histogram (the last bucket is +Inf).
const FACTS_PER_COMMIT_BUCKETS: [u64; 6] = [1, 10, 100, 1_000, 10_000, 100_000];

impl Counters {
    fn observe_query(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = QUERY_SECONDS_BUCKETS
            .iter()
            .position(|&upper| seconds <= upper)
            .unwrap_or(QUERY_SECONDS_BUCKETS.len());
        self.query_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.query_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The PostgreSQL store; see the module documentation.
pub struct PostgresStore {
    pool: PgPool,
    /// How long one operation may take, waiting for a connection included;
    /// see [`PostgresStore::timed`].
    operation_timeout: Duration,
    last_seq: watch::Sender<u64>,
    counters: Arc<Counters>,
    /// With several hosts: which one is the writable primary (see
    /// `primary.rs`).
    primary: Option<Arc<PrimaryTracker>>,
    /// Whether commits wait for a synchronous standby (`replication.rs`).
    replication: Arc<ReplicationWatch>,
    /// The tasks that follow the log's head, the primary and the
    /// replication state, aborted at close.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Audit entries kept at most (see [`PostgresStore::with_audit_entries_max`]).
    audit_entries_max: u64,
    /// The deployment's identity (see [`crate::CoordinationStore::deployment`]).
    deployment: String,
    /// Claims and releases go through the claim batcher.
    claims: ClaimBatcherHandle,
    /// Stops the claim batcher (at [`Store::close`]).
    claim_batcher_shutdown: CancellationToken,
    /// Whether the database's collation sorts type names as bytes do
    /// (see `successor_types.rs`).
    type_names_sort_as_bytes: bool,
}

impl PostgresStore {
    /// Connects, applies missing migrations and starts listening for other
    /// servers' writes. Must run inside a tokio runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, PostgresError> {
        let (pool, primary) = connect_pool(url, &options).await?;
        check_durability(&pool).await?;
        let applied = schema::migrate(&pool).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database schema migrated");
        }
        let head = read_head(&pool).await.map_err(PostgresError::Connect)?;
        let deployment: String = sqlx::query_scalar("SELECT id FROM cairn_deployment")
            .fetch_one(&pool)
            .await
            .map_err(PostgresError::Connect)?;
        let type_names_sort_as_bytes = successor_types::sorts_type_names_as_bytes(&pool)
            .await
            .map_err(PostgresError::Connect)?;
        if !type_names_sort_as_bytes {
            tracing::info!(
                "the database's collation does not sort type names by bytes; \
                 listing a fact's successor types reads all of its types"
            );
        }
        let (last_seq, _) = watch::channel(head);
        let counters = Arc::new(Counters::default());
        let operation_timeout =
            options.acquire_timeout + options.statement_timeout + OPERATION_TIMEOUT_MARGIN;
        let (claim_batcher, claims) = ClaimBatcher::build(
            options.claims.clone(),
            ClaimBatcherParts {
                pool: pool.clone(),
                deployment: deployment.clone(),
                operation_timeout,
                last_seq: last_seq.clone(),
                counters: Arc::clone(&counters),
            },
        );
        let claim_batcher_shutdown = CancellationToken::new();
        tokio::spawn(claim_batcher.run(claim_batcher_shutdown.clone()));
        let mut background = vec![tokio::spawn(follow_head(
            pool.clone(),
            last_seq.clone(),
            Arc::clone(&counters),
        ))];
        let replication = Arc::new(ReplicationWatch::new(primary.is_some()));
        let (watch, watched_pool) = (Arc::clone(&replication), pool.clone());
        let timeout = options.acquire_timeout;
        background.push(tokio::spawn(async move {
            watch.follow(watched_pool, timeout).await
        }));
        if let Some(primary) = &primary {
            let (primary, pool) = (Arc::clone(primary), pool.clone());
            background.push(tokio::spawn(
                async move { primary.follow(pool, timeout).await },
            ));
        }
        let store = PostgresStore {
            pool,
            operation_timeout,
            last_seq,
            counters,
            primary,
            replication,
            background: Mutex::new(background),
            audit_entries_max: crate::AUDIT_ENTRIES_MAX,
            deployment,
            claims,
            claim_batcher_shutdown,
            type_names_sort_as_bytes,
        };
        tracing::info!(last_seq = head, "connected to PostgreSQL");
        Ok(store)
    }

    /// Applies missing migrations (for `cairn migrate`) and returns the
    /// versions applied.
    pub async fn migrate(url: &str) -> Result<Vec<i64>, PostgresError> {
        let (pool, _) = connect_pool(url, &PostgresOptions::default()).await?;
        let applied = schema::migrate(&pool).await?;
        pool.close().await;
        Ok(applied)
    }

    /// Keeps at most `entries_max` audit entries instead of
    /// [`crate::AUDIT_ENTRIES_MAX`], so that tests see the oldest go.
    #[cfg(feature = "test-support")]
    pub fn with_audit_entries_max(mut self, entries_max: u64) -> Self {
        self.audit_entries_max = entries_max;
        self
    }

    /// The connection pool (for the delivery engine's transactions).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one query (waiting for a connection included) within the
    /// operation timeout, and times it for the latency histogram. A database
    /// that stops answering (a network partition: PostgreSQL's statement
    /// timeout cannot reach us) fails the query as unavailable instead of
    /// holding the request; the pool then discards that connection.
    async fn timed<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.operation_timeout, query)
            .await
            .unwrap_or_else(|_| Err(self.no_answer()));
        self.counters.observe_query(started.elapsed());
        result
    }

    /// A page of the rows of a table keyed by `name`: `columns` of the
    /// rows named after `after`, in name order, at most `limit`. Names
    /// compare byte by byte, as on the embedded store.
    async fn rows_by_name(
        &self,
        table: &str,
        columns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<sqlx::postgres::PgRow>, ReadError> {
        self.timed(
            sqlx::query(&format!(
                "SELECT {columns} FROM {table}
                 WHERE $1::text IS NULL OR name COLLATE \"C\" > $1::text COLLATE \"C\"
                 ORDER BY name COLLATE \"C\" LIMIT $2"
            ))
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool()),
        )
        .await
        .map_err(read_error)
    }

    /// [`PostgresStore::timed`] for a transaction of several statements.
    async fn timed_transaction<T>(
        &self,
        transaction: impl std::future::Future<Output = Result<T, WriteError>>,
    ) -> Result<T, WriteError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.operation_timeout, transaction)
            .await
            .unwrap_or_else(|_| Err(write_error(self.no_answer())));
        self.counters.observe_query(started.elapsed());
        result
    }

    fn no_answer(&self) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from the database within {} ms",
                self.operation_timeout.as_millis()
            ),
        ))
    }

    fn advance_head(&self, seq: u64) {
        advance_head(&self.last_seq, seq);
    }

    fn fact_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredFact, ReadError> {
        let seq: i64 = row.try_get("seq").map_err(read_error)?;
        let hash: Vec<u8> = row.try_get("hash").map_err(read_error)?;
        let canonical: Vec<u8> = row.try_get("canonical").map_err(read_error)?;
        let hash = Hash(hash.try_into().map_err(|_| {
            ReadError::corrupt(format!("fact with seq {seq} has a malformed hash"))
        })?);
        if Hash::of_bytes(&canonical) != hash {
            return Err(ReadError::corrupt(format!(
                "fact with seq {seq} does not match its hash {hash}"
            )));
        }
        Ok(StoredFact {
            hash,
            seq: seq as u64,
            canonical,
        })
    }

    /// Pool use: (connections open, of which idle, most allowed).
    fn pool_use(&self) -> (u32, u32, u32) {
        (
            self.pool.size(),
            self.pool.num_idle() as u32,
            self.pool.options().get_max_connections(),
        )
    }
}

/// Opens the pool. With one host and no `target_session_attrs` it is the
/// URL's host, as it always was; otherwise the first writable host of the
/// list, followed by the returned tracker (see `primary.rs`).
async fn connect_pool(
    url: &str,
    options: &PostgresOptions,
) -> Result<(PgPool, Option<Arc<PrimaryTracker>>), PostgresError> {
    let statement_timeout_ms = options.statement_timeout.as_millis().to_string();
    let hosts = HostList::parse(url)?.map_options(|connect| {
        connect
            .options([("statement_timeout", statement_timeout_ms.as_str())])
            .application_name("cairn")
            .log_statements(tracing::log::LevelFilter::Trace)
    });
    let pool_options = PgPoolOptions::new()
        .max_connections(options.pool_max)
        .acquire_timeout(options.acquire_timeout);
    if !hosts.primary_required {
        let connect = hosts.hosts[0].options.clone();
        let pool = pool_options
            .connect_with(connect)
            .await
            .map_err(PostgresError::Connect)?;
        return Ok((pool, None));
    }
    let first = hosts
        .select_primary(options.acquire_timeout)
        .await
        .map_err(|reasons| PostgresError::NoPrimary {
            hosts: hosts.names(),
            reasons,
        })?;
    let tracker = Arc::new(PrimaryTracker::new(hosts, first));
    let keeps = Arc::clone(&tracker);
    let pool = pool_options
        .after_connect(|connection, _| {
            Box::pin(async move {
                match hosts::role_of(connection).await? {
                    hosts::HostRole::Primary => Ok(()),
                    hosts::HostRole::ReadOnly => Err(sqlx::Error::Io(std::io::Error::other(
                        "the host is now a standby or read-only; looking for the primary",
                    ))),
                }
            })
        })
        .before_acquire(move |_, metadata| {
            let keep = keeps.keeps(&metadata);
            Box::pin(async move { Ok(keep) })
        })
        .connect_with(tracker.current_options())
        .await
        .map_err(PostgresError::Connect)?;
    Ok((pool, Some(tracker)))
}

/// Refuses a database that acknowledges commits before they are durable.
async fn check_durability(pool: &PgPool) -> Result<(), PostgresError> {
    let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(pool)
        .await
        .map_err(PostgresError::Connect)?;
    let fsync: String = sqlx::query_scalar("SELECT current_setting('fsync')")
        .fetch_one(pool)
        .await
        .map_err(PostgresError::Connect)?;
    if setting == "off" || fsync == "off" {
        return Err(PostgresError::NotDurable(format!(
            "synchronous_commit = {setting}, fsync = {fsync}"
        )));
    }
    Ok(())
}

/// How many times a batch is written when `cairn_put_facts` gives way to
/// a concurrent writer of the same fact (migration 13).
const GAVE_WAY_ATTEMPTS_MAX: u32 = 4;

/// Whether `cairn_put_facts` gave way to a concurrent writer of the same
/// fact (serialization_failure), having written nothing.
fn gave_way(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database)
        if database.code().as_deref() == Some("40001")
            && database.message().starts_with("cairn_put_facts"))
}

/// What one `cairn_put_facts` call answered: for each distinct fact of
/// the batch (by position), its seq and whether it was inserted.
pub(crate) type Written = Vec<(u64, bool)>;

/// Writes a batch through `cairn_put_facts` (with `author`,
/// `cairn_put_facts_by`) on `executor`: the pool, or a transaction that
/// also does something else atomically with the facts. The outer `Err` is
/// a failed statement, the inner one a refusal (missing predecessors).
pub(crate) async fn write_facts<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    facts: &[CanonicalFact],
    author: Option<&str>,
) -> Result<Result<Written, WriteError>, sqlx::Error> {
    let arrays = BatchArrays::new(facts);
    // With an author, the same call records authorship in the same
    // transaction; without one, nothing more is done.
    let statement = match author {
        None => {
            "SELECT ord, fact_seq, inserted, missing
             FROM cairn_put_facts($1, $2, $3, $4, $5, $6, $7)"
        }
        Some(_) => {
            "SELECT ord, fact_seq, inserted, missing
             FROM cairn_put_facts_by($8, $9, $1, $2, $3, $4, $5, $6, $7)"
        }
    };
    let mut query = arrays.bind_to(sqlx::query(statement));
    if let Some(author) = author {
        query = query.bind(author).bind(crate::AUTHORS_AGAIN_MAX as i32);
    }
    let rows = query.fetch_all(executor).await?;
    let mut missing = Vec::new();
    let mut distinct: Written = vec![(0, false); arrays.hashes.len()];
    for row in &rows {
        if let Some(hash) = row.try_get::<Option<Vec<u8>>, _>("missing")? {
            let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                return Ok(Err(WriteError::storage("malformed missing hash")));
            };
            missing.push(Hash(hash));
            continue;
        }
        let ord: i32 = row.try_get("ord")?;
        let seq: i64 = row.try_get("fact_seq")?;
        let inserted: bool = row.try_get("inserted")?;
        let Some(slot) = distinct.get_mut((ord - 1) as usize) else {
            return Ok(Err(WriteError::storage(format!(
                "unexpected position {ord}"
            ))));
        };
        *slot = (seq as u64, inserted);
    }
    if !missing.is_empty() {
        return Ok(Err(WriteError::MissingPredecessors { missing }));
    }
    Ok(Ok(distinct))
}

impl PostgresStore {
    /// The outcomes of a committed batch, counted in the metrics, with the
    /// log's head moved past it.
    pub(crate) fn record_written(
        &self,
        facts: &[CanonicalFact],
        written: Written,
        started: Instant,
    ) -> Result<Vec<PutOutcome>, WriteError> {
        let positions = BatchArrays::positions(facts);
        let counters = &self.counters;
        let mut n_inserted = 0u64;
        let mut head = 0;
        let outcomes = facts
            .iter()
            .zip(&positions)
            .map(|(fact, &(position, first))| {
                let (seq, inserted) = written[position];
                let inserted = inserted && first;
                if inserted {
                    n_inserted += 1;
                    counters
                        .bytes_inserted
                        .fetch_add(fact.canonical.len() as u64, Ordering::Relaxed);
                }
                head = head.max(seq);
                PutOutcome {
                    hash: fact.hash,
                    seq,
                    inserted,
                }
            })
            .collect();
        counters
            .facts_inserted
            .fetch_add(n_inserted, Ordering::Relaxed);
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .commit_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let bucket = FACTS_PER_COMMIT_BUCKETS
            .iter()
            .position(|&upper| n_inserted <= upper)
            .unwrap_or(FACTS_PER_COMMIT_BUCKETS.len());
        counters.facts_per_commit[bucket].fetch_add(1, Ordering::Relaxed);
        self.advance_head(head);
        Ok(outcomes)
    }
}

fn advance_head(last_seq: &watch::Sender<u64>, seq: u64) {
    last_seq.send_if_modified(|current| {
        let moved = seq > *current;
        *current = (*current).max(seq);
        moved
    });
}

async fn read_head(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let head: i64 = sqlx::query_scalar("SELECT last_seq FROM cairn_log_head")
        .fetch_one(pool)
        .await?;
    Ok(head as u64)
}

/// Follows the head of the log: notifications from every server's writes,
/// and a read of the head every [`HEAD_POLL_INTERVAL`] in case some were
/// lost (the listening connection is re-established on failure).
async fn follow_head(pool: PgPool, last_seq: watch::Sender<u64>, counters: Arc<Counters>) {
    let advance = |seq: u64| advance_head(&last_seq, seq);
    let mut listener: Option<PgListener> = None;
    let mut ticks_since_size = 0u32;
    loop {
        if listener.is_none() {
            match PgListener::connect_with(&pool).await {
                Ok(mut connected) => match connected.listen(FACTS_CHANNEL).await {
                    Ok(()) => listener = Some(connected),
                    Err(error) => tracing::warn!(%error, "cannot LISTEN for new facts"),
                },
                Err(error) => tracing::debug!(%error, "cannot connect to LISTEN for new facts"),
            }
        }
        let notified = match listener.as_mut() {
            Some(connected) => {
                match tokio::time::timeout(HEAD_POLL_INTERVAL, connected.try_recv()).await {
                    Ok(Ok(Some(notification))) => notification.payload().parse::<u64>().ok(),
                    Ok(Ok(None)) => None, // reconnected: notifications may be lost
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "LISTEN connection failed");
                        listener = None;
                        tokio::time::sleep(HEAD_POLL_INTERVAL).await;
                        None
                    }
                    Err(_) => None, // quiet for a while: poll
                }
            }
            None => {
                tokio::time::sleep(HEAD_POLL_INTERVAL).await;
                None
            }
        };
        match notified {
            Some(seq) => advance(seq),
            None => {
                // Bounded, so that a partition does not stall the follower.
                let head = tokio::time::timeout(HEAD_POLL_INTERVAL * 5, read_head(&pool)).await;
                if let Ok(Ok(head)) = head {
                    advance(head);
                }
                ticks_since_size += 1;
                if ticks_since_size >= 10 {
                    ticks_since_size = 0;
                    let size: Result<i64, _> =
                        sqlx::query_scalar("SELECT pg_database_size(current_database())")
                            .fetch_one(&pool)
                            .await;
                    if let Ok(size) = size {
                        counters.disk_bytes.store(size as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The arrays `cairn_put_facts` takes for a batch.
struct BatchArrays {
    hashes: Vec<Vec<u8>>,
    type_names: Vec<String>,
    canonicals: Vec<Vec<u8>>,
    external: Vec<Vec<u8>>,
    edge_facts: Vec<i32>,
    edge_roles: Vec<String>,
    edge_predecessors: Vec<Vec<u8>>,
    /// For each fact of the request, its 0-based position among the
    /// distinct facts and whether it is that fact's first occurrence.
    positions: Vec<(usize, bool)>,
}

/// A query of this module, with its arguments so far.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl BatchArrays {
    /// Binds the seven arrays, in `cairn_put_facts`'s order, as the next
    /// arguments of `query`.
    fn bind_to<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.hashes)
            .bind(&self.type_names)
            .bind(&self.canonicals)
            .bind(&self.external)
            .bind(&self.edge_facts)
            .bind(&self.edge_roles)
            .bind(&self.edge_predecessors)
    }

    /// For each fact of `facts`, its position among the distinct facts
    /// and whether it is that fact's first occurrence (as `new` numbers
    /// them).
    fn positions(facts: &[CanonicalFact]) -> Vec<(usize, bool)> {
        let mut seen: HashMap<Hash, usize> = HashMap::new();
        facts
            .iter()
            .map(|fact| match seen.get(&fact.hash) {
                Some(&position) => (position, false),
                None => {
                    let position = seen.len();
                    seen.insert(fact.hash, position);
                    (position, true)
                }
            })
            .collect()
    }

    fn new(facts: &[CanonicalFact]) -> BatchArrays {
        let mut arrays = BatchArrays {
            hashes: Vec::new(),
            type_names: Vec::new(),
            canonicals: Vec::new(),
            external: Vec::new(),
            edge_facts: Vec::new(),
            edge_roles: Vec::new(),
            edge_predecessors: Vec::new(),
            positions: Vec::with_capacity(facts.len()),
        };
        let mut seen: HashMap<Hash, usize> = HashMap::new();
        let mut external_seen: std::collections::HashSet<Hash> = Default::default();
        for fact in facts {
            if let Some(&position) = seen.get(&fact.hash) {
                arrays.positions.push((position, false));
                continue;
            }
            let position = arrays.hashes.len();
            for (role, predecessor) in fact.fact.all_predecessors() {
                // Only predecessors earlier in the batch count as present.
                if !seen.contains_key(predecessor) && external_seen.insert(*predecessor) {
                    arrays.external.push(predecessor.as_bytes().to_vec());
                }
                arrays.edge_facts.push(position as i32 + 1);
                arrays.edge_roles.push(role.to_string());
                arrays
                    .edge_predecessors
                    .push(predecessor.as_bytes().to_vec());
            }
            seen.insert(fact.hash, position);
            arrays.positions.push((position, true));
            arrays.hashes.push(fact.hash.as_bytes().to_vec());
            arrays.type_names.push(fact.fact.type_name.clone());
            arrays.canonicals.push(fact.canonical.clone());
        }
        arrays
    }
}

impl Store for PostgresStore {
    async fn put_facts_by(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
    ) -> Result<Vec<PutOutcome>, WriteError> {
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        // A writer that gave way to a concurrent writer of the same fact
        // (migration 13) wrote nothing and committed nothing: write again;
        // the facts the other one stored are then found stored.
        let mut attempt = 1;
        let written = loop {
            match self
                .timed(write_facts(&self.pool, &facts, author.as_deref()))
                .await
            {
                Err(error) if attempt < GAVE_WAY_ATTEMPTS_MAX && gave_way(&error) => attempt += 1,
                result => break result.map_err(write_error)?,
            }
        };
        self.record_written(&facts, written?, started)
    }

    async fn get_fact(&self, hash: &Hash) -> Result<Option<StoredFact>, ReadError> {
        let row = self
            .timed(
                sqlx::query("SELECT seq, hash, canonical FROM cairn_facts WHERE hash = $1")
                    .bind(hash.as_bytes().as_slice())
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(read_error)?;
        row.as_ref().map(Self::fact_from_row).transpose()
    }

    async fn successors(&self, query: &SuccessorsQuery) -> Result<Page, ReadError> {
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT f.seq, f.hash, f.canonical,
                            EXISTS (SELECT 1 FROM cairn_predecessors w
                                    WHERE w.predecessor = f.hash
                                      AND w.successor_type = ANY($5)) AS excluded
                     FROM cairn_facts f
                     WHERE f.seq IN (SELECT p.successor_seq FROM cairn_predecessors p
                                     WHERE p.predecessor = $1 AND p.successor_type = $2
                                       AND ($3::text IS NULL OR p.role = $3)
                                       AND p.successor_seq > $4)
                     ORDER BY f.seq
                     LIMIT $6",
                )
                .bind(query.predecessor.as_bytes().as_slice())
                .bind(&query.type_name)
                .bind(query.role.as_deref())
                .bind(query.after_seq as i64)
                .bind(&query.without_types)
                .bind(query.limit as i64)
                .fetch_all(&self.pool),
            )
            .await
            .map_err(read_error)?;
        let mut page = Page {
            facts: Vec::with_capacity(rows.len()),
            next_seq: query.after_seq,
        };
        for row in &rows {
            let fact = Self::fact_from_row(row)?;
            page.next_seq = fact.seq;
            let excluded: bool = row.try_get("excluded").map_err(read_error)?;
            if !excluded {
                page.facts.push(fact);
            }
        }
        Ok(page)
    }

    async fn successor_types(
        &self,
        predecessor: &Hash,
        after_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        self.timed(successor_types::successor_types(
            &self.pool,
            self.type_names_sort_as_bytes,
            predecessor,
            after_type,
            limit,
        ))
        .await
        .map_err(read_error)
    }

    async fn log(&self, after_seq: u64, limit: usize) -> Result<Page, ReadError> {
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT seq, hash, canonical FROM cairn_facts
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after_seq as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool),
            )
            .await
            .map_err(read_error)?;
        let mut page = Page {
            facts: Vec::with_capacity(rows.len()),
            next_seq: after_seq,
        };
        for row in &rows {
            let fact = Self::fact_from_row(row)?;
            if fact.seq != page.next_seq + 1 {
                return Err(ReadError::corrupt(format!(
                    "the log has a gap: expected seq {}, found {}",
                    page.next_seq + 1,
                    fact.seq
                )));
            }
            page.next_seq = fact.seq;
            page.facts.push(fact);
        }
        if let Some(last) = page.facts.last() {
            self.advance_head(last.seq);
        }
        Ok(page)
    }

    async fn ping(&self) -> Result<(), ReadError> {
        if let Some(missing) = self.primary.as_ref().and_then(|primary| primary.missing()) {
            return Err(ReadError::Unavailable {
                message: missing,
                source: None,
            });
        }
        self.timed(self.pool.execute("SELECT 1"))
            .await
            .map(|_| ())
            .map_err(read_error)
    }

    fn watch_last_seq(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    fn stats(&self) -> StoreStats {
        let counters = &self.counters;
        let facts_per_sync_buckets = cumulative_buckets(
            FACTS_PER_COMMIT_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(u64::MAX)),
            &counters.facts_per_commit,
        );
        let query_seconds_buckets = cumulative_buckets(
            QUERY_SECONDS_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY)),
            &counters.query_buckets,
        );
        let (open, idle, max) = self.pool_use();
        StoreStats {
            last_seq: *self.last_seq.borrow(),
            facts_inserted: counters.facts_inserted.load(Ordering::Relaxed),
            bytes_inserted: counters.bytes_inserted.load(Ordering::Relaxed),
            syncs: counters.commits.load(Ordering::Relaxed),
            sync_seconds: counters.commit_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            paced_seconds: 0.0,
            facts_per_sync_buckets,
            disk_bytes: counters.disk_bytes.load(Ordering::Relaxed),
            poisoned: false,
            database: Some(crate::store::DatabaseStats {
                pool_open: open,
                pool_idle: idle,
                pool_max: max,
                query_seconds_buckets,
                query_seconds_sum: counters.query_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                replication: self.replication.stats(),
            }),
        }
    }

    fn close(&self) {
        for task in self.background.lock().expect("lock poisoned").drain(..) {
            task.abort();
        }
        // The batch under way finishes; claims still waiting are answered
        // `Closed`.
        self.claim_batcher_shutdown.cancel();
        // Closing waits for connections in use; the pool is dropped with
        // the store, and PostgreSQL keeps everything committed.
        let pool = self.pool.clone();
        drop(tokio::spawn(async move { pool.close().await }));
    }
}

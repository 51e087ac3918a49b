//! The SQL that the outbox, the relay and the inbox run, written once for
//! every supported database, and `migrate`, which creates their tables.
//!
//! SQLite and PostgreSQL share every data statement (sqlx binds `$1`-style
//! parameters on both); only the table definitions differ. A generic
//! implementation over `sqlx::Database` would need a long list of
//! higher-ranked bounds repeated on every function (and on every caller), so
//! the shared statements live in one macro that is instantiated for each
//! database, and callers only ever write `DB: CairnDatabase`.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Pool, Postgres, Row, Sqlite};

/// A database that can hold Cairn's outbox and inbox tables:
/// [`sqlx::Sqlite`] and [`sqlx::Postgres`].
///
/// The trait is sealed; its operations are internal to this crate.
pub trait CairnDatabase: sqlx::Database + sealed::Operations {}

impl CairnDatabase for Sqlite {}
impl CairnDatabase for Postgres {}

/// Creates the outbox and inbox tables and their indexes if they do not
/// exist yet. Idempotent; call it at every start of the service. On
/// PostgreSQL, concurrent calls (several instances starting together) are
/// serialized by an advisory lock.
///
/// The tables (`created_at_ms`, `sent_at_ms` and `processed_at_ms` are
/// milliseconds since the Unix epoch, as written by the service):
///
/// - `cairn_outbox(id, hash unique, canonical, created_at_ms, sent_at_ms null)`:
///   facts to publish, in `id` order; `sent_at_ms` is set once Cairn has them.
/// - `cairn_inbox(consumer, hash, processed_at_ms, primary key (consumer, hash))`:
///   messages each consumer has processed.
pub async fn migrate<DB: CairnDatabase>(pool: &Pool<DB>) -> Result<(), sqlx::Error> {
    DB::migrate(pool).await
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub(crate) fn unix_time_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cairn_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash TEXT NOT NULL UNIQUE,
        canonical BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        sent_at_ms INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_unsent ON cairn_outbox (id) WHERE sent_at_ms IS NULL",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_sent_at ON cairn_outbox (sent_at_ms)
        WHERE sent_at_ms IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS cairn_inbox (
        consumer TEXT NOT NULL,
        hash TEXT NOT NULL,
        processed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (consumer, hash)
    )",
];

const POSTGRES_SCHEMA: &[&str] = &[
    // Concurrent `CREATE TABLE IF NOT EXISTS` can collide on PostgreSQL, so
    // migrations take this advisory lock (key: "cairnsql" in ASCII), held
    // until the migration's transaction ends.
    "SELECT pg_advisory_xact_lock(7161120822696046956)",
    "CREATE TABLE IF NOT EXISTS cairn_outbox (
        id BIGSERIAL PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        canonical BYTEA NOT NULL,
        created_at_ms BIGINT NOT NULL,
        sent_at_ms BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_unsent ON cairn_outbox (id) WHERE sent_at_ms IS NULL",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_sent_at ON cairn_outbox (sent_at_ms)
        WHERE sent_at_ms IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS cairn_inbox (
        consumer TEXT NOT NULL,
        hash TEXT NOT NULL,
        processed_at_ms BIGINT NOT NULL,
        PRIMARY KEY (consumer, hash)
    )",
];

pub(crate) mod sealed {
    use super::*;

    /// One unsent row of the outbox, as the relay reads it.
    pub struct OutboxRow {
        /// Position in the outbox: publishing follows `id` order.
        pub id: i64,
        /// The fact's hash as stored (64 lowercase hexadecimal characters).
        pub hash: String,
        /// The fact's canonical bytes as stored.
        pub canonical: Vec<u8>,
    }

    /// The statements this crate runs. Each runs on the connection or pool
    /// it is given and never opens a transaction of its own, except
    /// `migrate`.
    pub trait Operations: sqlx::Database {
        /// See [`super::migrate`].
        fn migrate(pool: &Pool<Self>) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

        /// Inserts one outbox row unless a row with that hash exists;
        /// returns whether it inserted.
        fn insert_outbox_row(
            connection: &mut Self::Connection,
            hash: &str,
            canonical: &[u8],
            created_at_ms: i64,
        ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

        /// The first `rows_max` unsent rows in `id` order.
        fn select_unsent(
            pool: &Pool<Self>,
            rows_max: usize,
        ) -> impl Future<Output = Result<Vec<OutboxRow>, sqlx::Error>> + Send;

        /// Marks the rows with these ids sent (those not marked yet);
        /// returns how many it marked.
        fn mark_sent(
            pool: &Pool<Self>,
            ids: &[i64],
            sent_at_ms: i64,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Deletes the rows sent at or before `sent_up_to_ms`; returns how many.
        fn delete_sent_up_to(
            pool: &Pool<Self>,
            sent_up_to_ms: i64,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Number of rows not yet sent.
        fn count_unsent(pool: &Pool<Self>)
            -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Records that `consumer` processed the message `hash` unless it
        /// is recorded already; returns whether it recorded it now.
        fn insert_inbox_row(
            connection: &mut Self::Connection,
            consumer: &str,
            hash: &str,
            processed_at_ms: i64,
        ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    }
}

/// Implements [`sealed::Operations`] for one database with the shared
/// statements and that database's table definitions.
macro_rules! implement_operations {
    ($database:ty, $schema:expr) => {
        impl sealed::Operations for $database {
            async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::Error> {
                let mut transaction = pool.begin().await?;
                for statement in $schema {
                    sqlx::query(statement).execute(&mut *transaction).await?;
                }
                transaction.commit().await
            }

            async fn insert_outbox_row(
                connection: &mut Self::Connection,
                hash: &str,
                canonical: &[u8],
                created_at_ms: i64,
            ) -> Result<bool, sqlx::Error> {
                let result = sqlx::query(
                    "INSERT INTO cairn_outbox (hash, canonical, created_at_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (hash) DO NOTHING",
                )
                .bind(hash)
                .bind(canonical)
                .bind(created_at_ms)
                .execute(connection)
                .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn select_unsent(
                pool: &Pool<Self>,
                rows_max: usize,
            ) -> Result<Vec<sealed::OutboxRow>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT id, hash, canonical FROM cairn_outbox WHERE sent_at_ms IS NULL
                     ORDER BY id LIMIT $1",
                )
                .bind(i64::try_from(rows_max).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(sealed::OutboxRow {
                            id: row.try_get(0)?,
                            hash: row.try_get(1)?,
                            canonical: row.try_get(2)?,
                        })
                    })
                    .collect()
            }

            async fn mark_sent(
                pool: &Pool<Self>,
                ids: &[i64],
                sent_at_ms: i64,
            ) -> Result<u64, sqlx::Error> {
                if ids.is_empty() {
                    return Ok(0);
                }
                // Ids are listed one by one, not as a range: on PostgreSQL a
                // transaction that is still open may hold an id inside the
                // range, and its row must stay unsent when it commits.
                let placeholders: Vec<String> = (0..ids.len())
                    .map(|id_idx| format!("${}", id_idx + 2))
                    .collect();
                let statement = format!(
                    "UPDATE cairn_outbox SET sent_at_ms = $1
                     WHERE sent_at_ms IS NULL AND id IN ({})",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(&statement).bind(sent_at_ms);
                for id in ids {
                    query = query.bind(*id);
                }
                Ok(query.execute(pool).await?.rows_affected())
            }

            async fn delete_sent_up_to(
                pool: &Pool<Self>,
                sent_up_to_ms: i64,
            ) -> Result<u64, sqlx::Error> {
                let result = sqlx::query(
                    "DELETE FROM cairn_outbox WHERE sent_at_ms IS NOT NULL AND sent_at_ms <= $1",
                )
                .bind(sent_up_to_ms)
                .execute(pool)
                .await?;
                Ok(result.rows_affected())
            }

            async fn count_unsent(pool: &Pool<Self>) -> Result<u64, sqlx::Error> {
                let row = sqlx::query("SELECT COUNT(*) FROM cairn_outbox WHERE sent_at_ms IS NULL")
                    .fetch_one(pool)
                    .await?;
                let count: i64 = row.try_get(0)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn insert_inbox_row(
                connection: &mut Self::Connection,
                consumer: &str,
                hash: &str,
                processed_at_ms: i64,
            ) -> Result<bool, sqlx::Error> {
                let result = sqlx::query(
                    "INSERT INTO cairn_inbox (consumer, hash, processed_at_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (consumer, hash) DO NOTHING",
                )
                .bind(consumer)
                .bind(hash)
                .bind(processed_at_ms)
                .execute(connection)
                .await?;
                Ok(result.rows_affected() == 1)
            }
        }
    };
}

implement_operations!(Sqlite, SQLITE_SCHEMA);
implement_operations!(Postgres, POSTGRES_SCHEMA);

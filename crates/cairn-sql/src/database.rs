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

#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::{Pool, Row};

/// A database that can hold Cairn's outbox and inbox tables:
/// `sqlx::Sqlite` (feature `sqlite`) and `sqlx::Postgres` (feature
/// `postgres`).
///
/// The trait is sealed; its operations are internal to this crate.
pub trait CairnDatabase: sqlx::Database + sealed::Operations {}

/// Creates the outbox and inbox tables and their indexes if they do not
/// exist yet, and upgrades tables created by an earlier version of this
/// crate. Idempotent; call it at every start of the service. It runs in one
/// transaction; on PostgreSQL, concurrent calls (several instances starting
/// together) are serialized by an advisory lock.
///
/// The tables (every `*_ms` column is milliseconds since the Unix epoch, as
/// written by the service):
///
/// - `cairn_outbox(id, hash unique, canonical, created_at_ms, sent_at_ms null,
///   failed_at_ms null, failure null, failed_attempts default 0)`: facts to
///   publish, in `id` order. `sent_at_ms` is set once Cairn has them;
///   `failed_at_ms` and `failure` are set while a row is an outbox dead letter
///   (see [`crate::Outbox::dead_letters`]), and `failed_attempts` counts how
///   often it was set aside.
/// - `cairn_inbox(consumer, hash, processed_at_ms, primary key (consumer, hash))`:
///   messages each consumer has processed.
///
/// Upgrade from the first schema (no dead letters): the three `failed_*`
/// columns are added when missing (checked one by one, so that nothing
/// locks the table when they exist), the partial indexes
/// `cairn_outbox_pending` and `cairn_outbox_dead` are created and the old
/// index `cairn_outbox_unsent` is dropped. Relays of the earlier version
/// keep working on the upgraded table (they ignore the new columns, and so
/// retry a dead letter as they retried any refused row), so instances can
/// be upgraded one at a time.
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

/// The columns that schema 2 (outbox dead letters) added to `cairn_outbox`,
/// as `(name, SQLite definition, PostgreSQL definition)`. [`migrate`] adds
/// each one that a table created by an earlier version lacks.
const OUTBOX_COLUMNS_ADDED: &[(&str, &str, &str)] = &[
    ("failed_at_ms", "INTEGER", "BIGINT"),
    ("failure", "TEXT", "TEXT"),
    (
        "failed_attempts",
        "INTEGER NOT NULL DEFAULT 0",
        "BIGINT NOT NULL DEFAULT 0",
    ),
];

/// Tables as this version creates them, before the columns of
/// [`OUTBOX_COLUMNS_ADDED`] are checked.
#[cfg(feature = "sqlite")]
const SQLITE_TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cairn_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash TEXT NOT NULL UNIQUE,
        canonical BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        sent_at_ms INTEGER,
        failed_at_ms INTEGER,
        failure TEXT,
        failed_attempts INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS cairn_inbox (
        consumer TEXT NOT NULL,
        hash TEXT NOT NULL,
        processed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (consumer, hash)
    )",
];

/// Whether `cairn_outbox` has the column named `$1`.
#[cfg(feature = "sqlite")]
const SQLITE_COLUMN_EXISTS: &str =
    "SELECT COUNT(*) FROM pragma_table_info('cairn_outbox') WHERE name = $1";

#[cfg(feature = "postgres")]
const POSTGRES_TABLES: &[&str] = &[
    // Concurrent `CREATE TABLE IF NOT EXISTS` can collide on PostgreSQL, so
    // migrations take this advisory lock (key: "cairnsql" in ASCII), held
    // until the migration's transaction ends.
    "SELECT pg_advisory_xact_lock(7161120822696046956)",
    "CREATE TABLE IF NOT EXISTS cairn_outbox (
        id BIGSERIAL PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        canonical BYTEA NOT NULL,
        created_at_ms BIGINT NOT NULL,
        sent_at_ms BIGINT,
        failed_at_ms BIGINT,
        failure TEXT,
        failed_attempts BIGINT NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS cairn_inbox (
        consumer TEXT NOT NULL,
        hash TEXT NOT NULL,
        processed_at_ms BIGINT NOT NULL,
        PRIMARY KEY (consumer, hash)
    )",
];

/// Whether `cairn_outbox` (as the search path finds it) has the column
/// named `$1`. Checked first because `ADD COLUMN IF NOT EXISTS` would take
/// an exclusive lock on the table at every start of every instance.
#[cfg(feature = "postgres")]
const POSTGRES_COLUMN_EXISTS: &str = "SELECT COUNT(*) FROM pg_attribute
     WHERE attrelid = to_regclass('cairn_outbox') AND attname = $1 AND NOT attisdropped";

/// Indexes, the same on both databases, created once every column exists.
/// `cairn_outbox_unsent` (schema 1) also covered dead letters, which the
/// relay skips; `cairn_outbox_pending` replaces it.
const INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS cairn_outbox_pending ON cairn_outbox (id)
        WHERE sent_at_ms IS NULL AND failed_at_ms IS NULL",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_dead ON cairn_outbox (id)
        WHERE failed_at_ms IS NOT NULL AND sent_at_ms IS NULL",
    "CREATE INDEX IF NOT EXISTS cairn_outbox_sent_at ON cairn_outbox (sent_at_ms)
        WHERE sent_at_ms IS NOT NULL",
    "DROP INDEX IF EXISTS cairn_outbox_unsent",
];

pub(crate) mod sealed {
    use super::*;

    /// One pending row of the outbox, as the relay reads it.
    pub struct OutboxRow {
        /// Position in the outbox: publishing follows `id` order.
        pub id: i64,
        /// The fact's hash as stored (64 lowercase hexadecimal characters).
        pub hash: String,
        /// The fact's canonical bytes as stored.
        pub canonical: Vec<u8>,
    }

    /// One dead letter of the outbox as stored.
    pub struct DeadLetterRow {
        /// Position in the outbox.
        pub id: i64,
        /// The fact's hash as stored.
        pub hash: String,
        /// The fact's canonical bytes as stored.
        pub canonical: Vec<u8>,
        /// Why it was set aside.
        pub failure: String,
        /// When it was set aside.
        pub failed_at_ms: i64,
        /// How many times it was set aside.
        pub failed_attempts: i64,
    }

    /// The statements this crate runs. Each runs on the connection or pool
    /// it is given and never opens a transaction of its own, except
    /// `migrate`. "Pending" rows are neither sent nor set aside.
    ///
    /// A dead letter is a row with `failed_at_ms` set and `sent_at_ms`
    /// unset: a relay of the first schema may still publish and mark sent a
    /// row that a newer relay set aside, and then it is sent.
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

        /// The first `rows_max` pending rows in `id` order.
        fn select_pending(
            pool: &Pool<Self>,
            rows_max: usize,
        ) -> impl Future<Output = Result<Vec<OutboxRow>, sqlx::Error>> + Send;

        /// The largest id of a pending row, if any.
        fn max_pending_id(
            pool: &Pool<Self>,
        ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;

        /// Marks the pending rows with these ids sent; returns how many it
        /// marked.
        fn mark_sent(
            pool: &Pool<Self>,
            ids: &[i64],
            sent_at_ms: i64,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Sets the pending row `id` aside as a dead letter with `failure`;
        /// returns whether it did (another relay may have done it first).
        fn set_aside(
            pool: &Pool<Self>,
            id: i64,
            failure: &str,
            failed_at_ms: i64,
        ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

        /// Whether the outbox holds any dead letter.
        fn any_dead_letter(
            pool: &Pool<Self>,
        ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

        /// Those of `hashes` that are dead letters.
        fn dead_among(
            pool: &Pool<Self>,
            hashes: &[String],
        ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send;

        /// The first `rows_max` dead letters in `id` order.
        fn select_dead_letters(
            pool: &Pool<Self>,
            rows_max: usize,
        ) -> impl Future<Output = Result<Vec<DeadLetterRow>, sqlx::Error>> + Send;

        /// Makes the dead letters among `hashes` pending again, at their
        /// places in the outbox, in one transaction; returns how many there
        /// were.
        fn retry_dead_letters(
            pool: &Pool<Self>,
            hashes: &[String],
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Deletes the dead letter `hash`; returns whether there was one.
        fn discard_dead_letter(
            pool: &Pool<Self>,
            hash: &str,
        ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

        /// Deletes the rows sent at or before `sent_up_to_ms`; returns how many.
        fn delete_sent_up_to(
            pool: &Pool<Self>,
            sent_up_to_ms: i64,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Number of pending rows.
        fn count_pending(
            pool: &Pool<Self>,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

        /// Number of dead letters.
        fn count_dead_letters(
            pool: &Pool<Self>,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

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

/// `$1, $2, …` from `$first` on, `count` of them.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|parameter_idx| format!("${parameter_idx}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COUNT(*)` as the unsigned count it is.
fn count_of(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// Implements [`sealed::Operations`] for one database with the shared
/// statements and that database's table definitions: `$tables` (creating
/// the tables), `$column_exists` (a query for one column of
/// `cairn_outbox`) and `$column_definition` (which definition of
/// [`OUTBOX_COLUMNS_ADDED`] applies).
macro_rules! implement_operations {
    ($database:ty, $tables:expr, $column_exists:expr, $column_definition:tt) => {
        impl CairnDatabase for $database {}

        impl sealed::Operations for $database {
            async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::Error> {
                let mut transaction = pool.begin().await?;
                for statement in $tables {
                    sqlx::query(statement).execute(&mut *transaction).await?;
                }
                for column in OUTBOX_COLUMNS_ADDED {
                    let (name, definition) = (column.0, column.$column_definition);
                    let n_columns: i64 = sqlx::query($column_exists)
                        .bind(name)
                        .fetch_one(&mut *transaction)
                        .await?
                        .try_get(0)?;
                    if n_columns == 0 {
                        let statement =
                            format!("ALTER TABLE cairn_outbox ADD COLUMN {name} {definition}");
                        sqlx::query(&statement).execute(&mut *transaction).await?;
                    }
                }
                for statement in INDEXES {
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

            async fn select_pending(
                pool: &Pool<Self>,
                rows_max: usize,
            ) -> Result<Vec<sealed::OutboxRow>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT id, hash, canonical FROM cairn_outbox
                     WHERE sent_at_ms IS NULL AND failed_at_ms IS NULL
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

            async fn max_pending_id(pool: &Pool<Self>) -> Result<Option<i64>, sqlx::Error> {
                sqlx::query(
                    "SELECT MAX(id) FROM cairn_outbox
                     WHERE sent_at_ms IS NULL AND failed_at_ms IS NULL",
                )
                .fetch_one(pool)
                .await?
                .try_get(0)
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
                let statement = format!(
                    "UPDATE cairn_outbox SET sent_at_ms = $1
                     WHERE sent_at_ms IS NULL AND failed_at_ms IS NULL AND id IN ({})",
                    placeholders(2, ids.len())
                );
                let mut query = sqlx::query(&statement).bind(sent_at_ms);
                for id in ids {
                    query = query.bind(*id);
                }
                Ok(query.execute(pool).await?.rows_affected())
            }

            async fn set_aside(
                pool: &Pool<Self>,
                id: i64,
                failure: &str,
                failed_at_ms: i64,
            ) -> Result<bool, sqlx::Error> {
                let result = sqlx::query(
                    "UPDATE cairn_outbox
                     SET failed_at_ms = $1, failure = $2, failed_attempts = failed_attempts + 1
                     WHERE id = $3 AND sent_at_ms IS NULL AND failed_at_ms IS NULL",
                )
                .bind(failed_at_ms)
                .bind(failure)
                .bind(id)
                .execute(pool)
                .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn any_dead_letter(pool: &Pool<Self>) -> Result<bool, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT id FROM cairn_outbox WHERE failed_at_ms IS NOT NULL AND sent_at_ms IS NULL LIMIT 1",
                )
                .fetch_all(pool)
                .await?;
                Ok(!rows.is_empty())
            }

            async fn dead_among(
                pool: &Pool<Self>,
                hashes: &[String],
            ) -> Result<Vec<String>, sqlx::Error> {
                let mut dead = Vec::new();
                for chunk in hashes.chunks(crate::limits::DEAD_LOOKUP_HASHES_MAX) {
                    let statement = format!(
                        "SELECT hash FROM cairn_outbox
                         WHERE failed_at_ms IS NOT NULL AND sent_at_ms IS NULL AND hash IN ({})",
                        placeholders(1, chunk.len())
                    );
                    let mut query = sqlx::query(&statement);
                    for hash in chunk {
                        query = query.bind(hash.as_str());
                    }
                    for row in query.fetch_all(pool).await? {
                        dead.push(row.try_get(0)?);
                    }
                }
                Ok(dead)
            }

            async fn select_dead_letters(
                pool: &Pool<Self>,
                rows_max: usize,
            ) -> Result<Vec<sealed::DeadLetterRow>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT id, hash, canonical, failure, failed_at_ms, failed_attempts
                     FROM cairn_outbox WHERE failed_at_ms IS NOT NULL AND sent_at_ms IS NULL ORDER BY id LIMIT $1",
                )
                .bind(i64::try_from(rows_max).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(sealed::DeadLetterRow {
                            id: row.try_get(0)?,
                            hash: row.try_get(1)?,
                            canonical: row.try_get(2)?,
                            failure: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                            failed_at_ms: row.try_get(4)?,
                            failed_attempts: row.try_get(5)?,
                        })
                    })
                    .collect()
            }

            async fn retry_dead_letters(
                pool: &Pool<Self>,
                hashes: &[String],
            ) -> Result<u64, sqlx::Error> {
                let mut transaction = pool.begin().await?;
                let mut n_retried = 0;
                for hash in hashes {
                    let result = sqlx::query(
                        "UPDATE cairn_outbox SET failed_at_ms = NULL, failure = NULL
                         WHERE hash = $1 AND failed_at_ms IS NOT NULL AND sent_at_ms IS NULL",
                    )
                    .bind(hash)
                    .execute(&mut *transaction)
                    .await?;
                    n_retried += result.rows_affected();
                }
                transaction.commit().await?;
                Ok(n_retried)
            }

            async fn discard_dead_letter(
                pool: &Pool<Self>,
                hash: &str,
            ) -> Result<bool, sqlx::Error> {
                let result = sqlx::query(
                    "DELETE FROM cairn_outbox WHERE hash = $1 AND failed_at_ms IS NOT NULL AND sent_at_ms IS NULL",
                )
                .bind(hash)
                .execute(pool)
                .await?;
                Ok(result.rows_affected() == 1)
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

            async fn count_pending(pool: &Pool<Self>) -> Result<u64, sqlx::Error> {
                let row = sqlx::query(
                    "SELECT COUNT(*) FROM cairn_outbox
                     WHERE sent_at_ms IS NULL AND failed_at_ms IS NULL",
                )
                .fetch_one(pool)
                .await?;
                Ok(count_of(row.try_get(0)?))
            }

            async fn count_dead_letters(pool: &Pool<Self>) -> Result<u64, sqlx::Error> {
                let row =
                    sqlx::query("SELECT COUNT(*) FROM cairn_outbox WHERE failed_at_ms IS NOT NULL AND sent_at_ms IS NULL")
                        .fetch_one(pool)
                        .await?;
                Ok(count_of(row.try_get(0)?))
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

#[cfg(feature = "sqlite")]
implement_operations!(Sqlite, SQLITE_TABLES, SQLITE_COLUMN_EXISTS, 1);
#[cfg(feature = "postgres")]
implement_operations!(Postgres, POSTGRES_TABLES, POSTGRES_COLUMN_EXISTS, 2);

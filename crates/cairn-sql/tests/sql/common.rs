//! Test harness: a real Cairn server in-process, real databases (a SQLite
//! file in a temporary directory; a fresh schema in the PostgreSQL at
//! 127.0.0.1:5432), the test service's business table, facts, a recording
//! publisher and crash injectors.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cairn_fact::{CanonicalFact, Hash, FACT_CANONICAL_BYTES_MAX_DEFAULT};
use cairn_sql::fault::{FaultInjector, InjectedFault, Step};
use cairn_sql::{CairnDatabase, FactPublisher, HttpPublisher, PublishError};
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Pool, Postgres, Row, Sqlite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Longest any test waits for something to happen.
pub const WAIT_MAX: Duration = Duration::from_secs(20);
/// Pause between two looks while waiting.
const WAIT_STEP: Duration = Duration::from_millis(20);
/// Pages of the log read at most (each up to the server's maximum).
const LOG_PAGES_MAX: usize = 100;

/// A Cairn server on a free loopback port, with its data in a temporary
/// directory; stopped when dropped.
pub struct CairnServer {
    pub base_url: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

impl CairnServer {
    pub async fn start() -> anyhow::Result<CairnServer> {
        CairnServer::start_on(TcpListener::bind("127.0.0.1:0").await?).await
    }

    pub async fn start_on(listener: TcpListener) -> anyhow::Result<CairnServer> {
        let data = tempfile::tempdir()?;
        let node = cairn_server::NodeOptions::embedded(data.path())
            .build()
            .await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let stopped = shutdown.clone();
        tokio::spawn(node.run(listener, async move { stopped.cancelled().await }));
        Ok(CairnServer {
            base_url,
            client: reqwest::Client::new(),
            shutdown,
            _data: data,
        })
    }

    /// Every hash in the server's log, in log order.
    pub async fn log_hashes(&self) -> anyhow::Result<Vec<String>> {
        let mut hashes = Vec::new();
        let mut after_seq = 0u64;
        for _ in 0..LOG_PAGES_MAX {
            let page: serde_json::Value = self
                .client
                .get(format!(
                    "{}/v1/log?after={after_seq}&limit=10000",
                    self.base_url
                ))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let facts = page["facts"]
                .as_array()
                .context("log answer without facts")?;
            if facts.is_empty() {
                return Ok(hashes);
            }
            for fact in facts {
                hashes.push(
                    fact["hash"]
                        .as_str()
                        .context("fact without hash")?
                        .to_owned(),
                );
            }
            after_seq = page["next"].as_u64().context("log answer without next")?;
        }
        anyhow::bail!("the log has more than {LOG_PAGES_MAX} pages")
    }

    pub fn publisher(&self) -> Arc<RecordingPublisher> {
        Arc::new(RecordingPublisher::new(&self.base_url))
    }
}

impl Drop for CairnServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An [`HttpPublisher`] that also records every call: the hashes it
/// published and how many calls failed.
pub struct RecordingPublisher {
    inner: HttpPublisher,
    pub published: Mutex<Vec<Hash>>,
    pub failures: AtomicUsize,
}

impl RecordingPublisher {
    pub fn new(base_url: &str) -> RecordingPublisher {
        RecordingPublisher {
            inner: HttpPublisher::new(base_url).expect("HTTP client"),
            published: Mutex::new(Vec::new()),
            failures: AtomicUsize::new(0),
        }
    }

    pub fn published(&self) -> Vec<Hash> {
        self.published.lock().unwrap().clone()
    }
}

impl FactPublisher for RecordingPublisher {
    fn publish(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(async move {
            let hashes: Vec<Hash> = facts.iter().map(|fact| fact.hash).collect();
            let result = self.inner.publish(facts).await;
            match &result {
                Ok(()) => self.published.lock().unwrap().extend(hashes),
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::SeqCst);
                }
            }
            result
        })
    }
}

/// An injector that crashes the `hit`-th time (1-based) the work reaches
/// `step`, and only then.
pub fn crash_at(step: Step, hit: usize) -> FaultInjector {
    let reached = AtomicUsize::new(0);
    Arc::new(move |reached_step| {
        if reached_step == step && reached.fetch_add(1, Ordering::SeqCst) + 1 == hit {
            Err(InjectedFault { step })
        } else {
            Ok(())
        }
    })
}

/// A fact of type `type_name` with `fields` (JSON object text) and
/// `predecessors` (JSON object text).
pub fn fact(type_name: &str, fields: &str, predecessors: &str) -> CanonicalFact {
    let text =
        format!(r#"{{"type":"{type_name}","fields":{fields},"predecessors":{predecessors}}}"#);
    CanonicalFact::from_json(text.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT).expect("valid fact")
}

/// An order fact and an order-line fact that names it.
pub fn order_and_line(label: &str) -> [CanonicalFact; 2] {
    let order = fact("Test.Order", &format!(r#"{{"label":"{label}"}}"#), "{}");
    let line = fact(
        "Test.OrderLine",
        &format!(r#"{{"label":"{label}","quantity":2}}"#),
        &format!(r#"{{"order":"{}"}}"#, order.hash),
    );
    [order, line]
}

/// Waits until `condition` holds, at most [`WAIT_MAX`].
pub async fn wait_until<C, Fut>(what: &str, mut condition: C) -> anyhow::Result<()>
where
    C: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        if condition().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// The test service's own statements. `effects` has no unique constraint on
/// purpose: an effect applied twice shows up as two rows.
pub trait TestDatabase: CairnDatabase {
    fn create_effects_table(pool: &Pool<Self>) -> impl Future<Output = sqlx::Result<()>> + Send;
    fn insert_effect(
        connection: &mut Self::Connection,
        label: &str,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Every effect label, sorted.
    fn effects(pool: &Pool<Self>) -> impl Future<Output = sqlx::Result<Vec<String>>> + Send;
    /// Rows in the outbox, sent or not.
    fn outbox_rows(pool: &Pool<Self>) -> impl Future<Output = sqlx::Result<i64>> + Send;
    /// Marks every outbox row sent without publishing it, as a relay that
    /// marked before publishing would have left it after a crash.
    fn mark_all_sent_unpublished(
        pool: &Pool<Self>,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// Overwrites the canonical bytes of the first outbox row.
    fn corrupt_first_outbox_row(pool: &Pool<Self>)
        -> impl Future<Output = sqlx::Result<()>> + Send;
}

macro_rules! implement_test_database {
    ($database:ty) => {
        impl TestDatabase for $database {
            async fn create_effects_table(pool: &Pool<Self>) -> sqlx::Result<()> {
                sqlx::query("CREATE TABLE IF NOT EXISTS effects (label TEXT NOT NULL)")
                    .execute(pool)
                    .await?;
                Ok(())
            }

            async fn insert_effect(
                connection: &mut Self::Connection,
                label: &str,
            ) -> sqlx::Result<()> {
                sqlx::query("INSERT INTO effects (label) VALUES ($1)")
                    .bind(label)
                    .execute(connection)
                    .await?;
                Ok(())
            }

            async fn effects(pool: &Pool<Self>) -> sqlx::Result<Vec<String>> {
                let rows = sqlx::query("SELECT label FROM effects ORDER BY label")
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|row| row.try_get(0)).collect()
            }

            async fn outbox_rows(pool: &Pool<Self>) -> sqlx::Result<i64> {
                sqlx::query("SELECT COUNT(*) FROM cairn_outbox")
                    .fetch_one(pool)
                    .await?
                    .try_get(0)
            }

            async fn mark_all_sent_unpublished(pool: &Pool<Self>) -> sqlx::Result<()> {
                sqlx::query("UPDATE cairn_outbox SET sent_at_ms = 0 WHERE sent_at_ms IS NULL")
                    .execute(pool)
                    .await?;
                Ok(())
            }

            async fn corrupt_first_outbox_row(pool: &Pool<Self>) -> sqlx::Result<()> {
                sqlx::query(
                    "UPDATE cairn_outbox SET canonical = $1
                     WHERE id = (SELECT MIN(id) FROM cairn_outbox)",
                )
                .bind(&b"{\"fields\":{},\"predecessors\":{},\"type\":\"Evil\"}"[..])
                .execute(pool)
                .await?;
                Ok(())
            }
        }
    };
}

implement_test_database!(Sqlite);
implement_test_database!(Postgres);

/// A database a test can open again and again, as a restarted service
/// would, and that disappears after the test.
pub trait Fixture {
    type Database: TestDatabase;
    fn open(&self) -> impl Future<Output = anyhow::Result<Pool<Self::Database>>>;
}

/// A SQLite database file in a temporary directory.
pub struct SqliteFixture {
    path: PathBuf,
    _directory: tempfile::TempDir,
}

impl SqliteFixture {
    pub fn new() -> SqliteFixture {
        let directory = tempfile::tempdir().expect("temporary directory");
        SqliteFixture {
            path: directory.path().join("service.db"),
            _directory: directory,
        }
    }
}

impl Fixture for SqliteFixture {
    type Database = Sqlite;

    async fn open(&self) -> anyhow::Result<Pool<Sqlite>> {
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        Ok(SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?)
    }
}

/// A fresh schema `cairn_sql_test_<random>` in the PostgreSQL database
/// `test` at 127.0.0.1:5432 (user postgres, trust authentication); every
/// pool opened on it uses it as its `search_path`. Dropped (CASCADE) when
/// the fixture is dropped, even when the test fails.
pub struct PostgresFixture {
    schema: String,
}

fn postgres_options() -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(5432)
        .username("postgres")
        .database("test")
}

impl PostgresFixture {
    /// The fixture, or `None` when PostgreSQL is unreachable and
    /// `CAIRN_TEST_POSTGRES=skip` is set. Unreachable without that setting
    /// fails the test with a message saying so.
    pub async fn new() -> Option<PostgresFixture> {
        let mut connection = match sqlx::PgConnection::connect_with(&postgres_options()).await {
            Ok(connection) => connection,
            Err(error) => {
                if std::env::var("CAIRN_TEST_POSTGRES").as_deref() == Ok("skip") {
                    eprintln!("PostgreSQL test skipped (CAIRN_TEST_POSTGRES=skip): {error}");
                    return None;
                }
                panic!(
                    "PostgreSQL at 127.0.0.1:5432 (database test, user postgres, trust \
                     authentication) is unreachable: {error}. Start it, or set \
                     CAIRN_TEST_POSTGRES=skip to skip the PostgreSQL tests."
                );
            }
        };
        let schema = format!("cairn_sql_test_{:016x}", fastrand::u64(..));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await
            .expect("create the test schema");
        connection.close().await.ok();
        Some(PostgresFixture { schema })
    }
}

impl Fixture for PostgresFixture {
    type Database = Postgres;

    async fn open(&self) -> anyhow::Result<Pool<Postgres>> {
        let options = postgres_options().options([("search_path", self.schema.as_str())]);
        Ok(PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?)
    }
}

impl Drop for PostgresFixture {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: drop the schema
        // from a thread with a runtime of its own.
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect_with(&postgres_options()).await?;
                sqlx::query(&statement).execute(&mut connection).await?;
                connection.close().await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(error)) = dropper.join() {
            eprintln!("cannot drop the test schema {}: {error}", self.schema);
        }
    }
}

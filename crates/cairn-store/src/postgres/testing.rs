//! Test support (feature `test-support`): a fresh PostgreSQL database per
//! test, dropped afterwards, on the server named by `CAIRN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`); set it to `skip`
//! to skip PostgreSQL tests on a machine without PostgreSQL.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The administrative connection tests use when none is configured.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database created for one test and dropped (with its connections) when
/// this value is dropped, even if the test fails.
pub struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
}

fn admin_url() -> Option<String> {
    match std::env::var("CAIRN_TEST_POSTGRES") {
        Ok(value) if value == "skip" => None,
        Ok(value) if !value.is_empty() => Some(value),
        _ => Some(DEFAULT_ADMIN_URL.to_string()),
    }
}

impl TestDatabase {
    /// Creates a fresh database, or returns `None` when
    /// `CAIRN_TEST_POSTGRES=skip`. Panics with a clear message if
    /// PostgreSQL is unreachable otherwise.
    pub async fn create() -> Option<TestDatabase> {
        TestDatabase::create_with("").await
    }

    /// [`TestDatabase::create`] with `options` appended to `CREATE
    /// DATABASE` (for example a template and a collation).
    pub async fn create_with(options: &str) -> Option<TestDatabase> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let url = admin_url()?;
        let admin: PgConnectOptions = url
            .parse()
            .expect("CAIRN_TEST_POSTGRES is a PostgreSQL URL");
        let mut connection = admin.connect().await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL at {url} is unreachable: {error}. Start it, or set \
                 CAIRN_TEST_POSTGRES=skip to skip the PostgreSQL tests."
            )
        });
        drop_databases_of_finished_runs(&mut connection).await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!(
            "cairn_test_{}_{}_{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(&format!("CREATE DATABASE {name} {options}"))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        connection.close().await.ok();
        Some(TestDatabase { admin, name })
    }

    /// The database's connection URL.
    pub fn url(&self) -> String {
        let host = self.admin.get_host();
        let port = self.admin.get_port();
        let user = self.admin.get_username();
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Empties every table of Cairn's schema and sets the log's head back
    /// to 0, so that the next store connected finds the database as if it
    /// were new (creating a database costs about a second; this, a few
    /// milliseconds). Close the stores connected before: they still
    /// believe in the old head.
    pub async fn empty(&self) -> Result<(), sqlx::Error> {
        let options: PgConnectOptions = self.url().parse()?;
        let mut connection = options.connect().await?;
        sqlx::query(
            "TRUNCATE cairn_facts, cairn_predecessors, cairn_subscriptions, cairn_messages,
                      cairn_blob_uploads, cairn_blob_chunks, cairn_blobs, cairn_identities,
                      cairn_access_tokens, cairn_audit, cairn_fact_authors, cairn_author_ranges
                      RESTART IDENTITY",
        )
        .execute(&mut connection)
        .await?;
        sqlx::query("UPDATE cairn_log_head SET last_seq = 0")
            .execute(&mut connection)
            .await?;
        // Blocks are reserved above this (migration 13); a store numbers
        // from the head anyway, this only spares it a renumbering.
        sqlx::query("SELECT setval('cairn_log_reserved', 0, false)")
            .execute(&mut connection)
            .await?;
        sqlx::query("UPDATE cairn_identity_revision SET revision = 0")
            .execute(&mut connection)
            .await?;
        connection.close().await
    }
}

/// Drops test databases left behind by test processes that are no longer
/// running (a crashed run, or databases a run kept to its end), once per
/// process. A database is named after the process that created it.
async fn drop_databases_of_finished_runs(connection: &mut PgConnection) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    SWEPT.call_once(|| first = true);
    if !first {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'cairn\\_test\\_%'")
            .fetch_all(&mut *connection)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let running = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !running {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *connection)
                .await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await and may run inside a runtime: drop the database
        // from a thread with a runtime of its own.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin = self.admin.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut connection = admin.connect().await?;
                sqlx::query(&statement).execute(&mut connection).await?;
                connection.close().await?;
                Ok::<(), sqlx::Error>(())
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!("could not drop test database {}", self.name),
        }
    }
}

//! The PostgreSQL schema as versioned migrations, applied by sqlx's
//! migrator, which holds an advisory lock while it runs, so several servers
//! starting at once apply each migration exactly once.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::PgPool;

/// Every migration, in order: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "facts", include_str!("migrations/0001_facts.sql")),
    (2, "delivery", include_str!("migrations/0002_delivery.sql")),
    (3, "blobs", include_str!("migrations/0003_blobs.sql")),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Applies the migrations the database lacks; returns the versions applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, sqlx::migrate::MigrateError> {
    let before: Vec<i64> = applied_versions(pool).await.unwrap_or_default();
    migrator().run(pool).await?;
    Ok(MIGRATIONS
        .iter()
        .map(|&(version, _, _)| version)
        .filter(|version| !before.contains(version))
        .collect())
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

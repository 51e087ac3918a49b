//! The PostgreSQL schema as versioned migrations, applied by sqlx's
//! migrator under an advisory lock, so several servers starting at once
//! apply each migration exactly once.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{PgConnection, PgPool};

/// Every migration, in order: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "facts", include_str!("migrations/0001_facts.sql")),
    (2, "delivery", include_str!("migrations/0002_delivery.sql")),
    (3, "blobs", include_str!("migrations/0003_blobs.sql")),
    (
        4,
        "delivery tokens",
        include_str!("migrations/0004_delivery_tokens.sql"),
    ),
    (
        5,
        "subscription generation",
        include_str!("migrations/0005_subscription_generation.sql"),
    ),
    (
        6,
        "identities",
        include_str!("migrations/0006_identities.sql"),
    ),
    (
        7,
        "coordination",
        include_str!("migrations/0007_coordination.sql"),
    ),
    (8, "timers", include_str!("migrations/0008_timers.sql")),
    (
        9,
        "claim batches",
        include_str!("migrations/0009_claim_batches.sql"),
    ),
    (10, "links", include_str!("migrations/0010_links.sql")),
    (11, "digests", include_str!("migrations/0011_digests.sql")),
    (
        12,
        "subscription start",
        include_str!("migrations/0012_subscription_start.sql"),
    ),
    (
        13,
        "log tickets",
        include_str!("migrations/0013_log_tickets.sql"),
    ),
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
/// Everything runs on one connection holding a session advisory lock, so
/// that servers starting at once apply each migration exactly once and
/// each reports only what it applied itself.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, sqlx::migrate::MigrateError> {
    let mut connection = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('cairn_migrate'))")
        .execute(&mut *connection)
        .await?;
    let result = async {
        let before = applied_versions(&mut connection).await.unwrap_or_default();
        migrator().run_direct(&mut *connection).await?;
        Ok(MIGRATIONS
            .iter()
            .map(|&(version, _, _)| version)
            .filter(|version| !before.contains(version))
            .collect())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('cairn_migrate'))")
        .execute(&mut *connection)
        .await?;
    result
}

/// The versions already applied (none before the first migration).
async fn applied_versions(connection: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(connection)
        .await
}

//! The relay as a `cairn_client::Service` task (`OutboxRelay::run_draining`)
//! against real databases and a real Cairn server: at shutdown it publishes
//! what is committed before it stops, and a relay that stops on its own (a
//! corrupt row) stops the service with its error.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientOptions, Service, ServiceError};
use cairn_sql::{migrate, Outbox, OutboxRelay};
use sqlx::Pool;
use tokio_util::sync::CancellationToken;

use crate::common::{fact, CairnServer, Fixture, PostgresFixture, SqliteFixture, TestDatabase};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

async fn drains_at_shutdown<F: Fixture>(fixture: F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let client = Client::remote(ClientOptions::new([cairn.base_url.clone()]))?;
    let pool: Pool<F::Database> = fixture.open().await?;
    migrate(&pool).await?;
    // Polls once an hour: only the drain at shutdown can publish.
    let relay = OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .poll_interval(Duration::from_secs(3_600));
    let stop = CancellationToken::new();
    let service = Service::new("outbox-only").task("outbox", move |shutdown| {
        relay.run_draining(shutdown, DRAIN_TIMEOUT)
    });
    let running = tokio::spawn(service.run_until(stop.clone().cancelled_owned()));
    // The relay's first pass has seen an empty outbox by now or will see
    // these rows; either way only the drain is certain to publish them.
    let facts: Vec<_> = (0..10)
        .map(|index| fact("Test.Order", &format!(r#"{{"n":{index}}}"#), "{}"))
        .collect();
    let mut transaction = pool.begin().await?;
    Outbox::new().enqueue(&mut transaction, &facts).await?;
    transaction.commit().await?;
    stop.cancel();
    running.await??;
    for fact in &facts {
        assert!(
            client.get_fact(&fact.hash).await?.is_some(),
            "{} was not published",
            fact.hash
        );
    }
    assert_eq!(Outbox::unsent_count(&pool).await?, 0);
    Ok(())
}

async fn a_corrupt_row_stops_the_service<F: Fixture>(fixture: F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let client = Client::remote(ClientOptions::new([cairn.base_url.clone()]))?;
    let pool: Pool<F::Database> = fixture.open().await?;
    migrate(&pool).await?;
    let mut transaction = pool.begin().await?;
    Outbox::new()
        .enqueue(&mut transaction, &[fact("Test.Order", "{}", "{}")])
        .await?;
    transaction.commit().await?;
    F::Database::corrupt_first_outbox_row(&pool).await?;
    let relay = OutboxRelay::new(pool.clone(), Arc::new(client.clone()));
    let never = CancellationToken::new();
    let outcome = tokio::time::timeout(
        DRAIN_TIMEOUT,
        Service::new("corrupt")
            .task("outbox", move |shutdown| {
                relay.run_draining(shutdown, DRAIN_TIMEOUT)
            })
            .run_until(never.cancelled_owned()),
    )
    .await?;
    match outcome {
        Err(ServiceError::PartFailed { part, source, .. }) => {
            assert_eq!(part, "outbox");
            assert!(source.to_string().contains("relay"), "{source}");
        }
        other => panic!("expected the relay's failure, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_relay_task_drains_at_shutdown_on_sqlite() -> anyhow::Result<()> {
    drains_at_shutdown(SqliteFixture::new()).await
}

#[tokio::test]
async fn the_relay_task_drains_at_shutdown_on_postgres() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => drains_at_shutdown(fixture).await,
        None => Ok(()),
    }
}

#[tokio::test]
async fn a_relay_that_stops_on_its_own_stops_the_service_on_sqlite() -> anyhow::Result<()> {
    a_corrupt_row_stops_the_service(SqliteFixture::new()).await
}

#[tokio::test]
async fn a_relay_that_stops_on_its_own_stops_the_service_on_postgres() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => a_corrupt_row_stops_the_service(fixture).await,
        None => Ok(()),
    }
}

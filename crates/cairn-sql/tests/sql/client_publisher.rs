//! The SDK's `Client` as the relay's publisher, against a real Cairn
//! server: an outbox drains into Cairn through it, republishing is
//! harmless, a refusal is `Rejected` and an unreachable server is a
//! transient `Unavailable`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_client::{Client, ClientOptions};
use cairn_sql::{migrate, FactPublisher, Outbox, OutboxRelay, PublishError};
use tokio_util::sync::CancellationToken;

use crate::common::{
    fact, order_and_line, wait_until, CairnServer, Fixture, SqliteFixture, WAIT_MAX,
};

/// A client with short waits, so that the unreachable case ends quickly.
fn client_of(base_url: &str) -> anyhow::Result<Client> {
    Ok(Client::remote(ClientOptions {
        attempts_max: 2,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::new([base_url])
    })?)
}

#[tokio::test]
async fn the_relay_publishes_through_the_client() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let fixture = SqliteFixture::new();
    let pool = fixture.open().await?;
    migrate(&pool).await?;
    let committed: Vec<_> = ["a", "b"]
        .iter()
        .flat_map(|label| order_and_line(label))
        .collect();
    let mut transaction = pool.begin().await?;
    Outbox::new().enqueue(&mut transaction, &committed).await?;
    transaction.commit().await?;

    let client = client_of(&cairn.base_url)?;
    let relay = OutboxRelay::new(pool.clone(), Arc::new(client.clone()))
        .batch_facts_max(3)
        .poll_interval(Duration::from_millis(20));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the outbox is published", || async {
        Ok(Outbox::unsent_count(&pool).await? == 0)
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task)
        .await
        .context("the relay did not stop")???;

    let log = cairn.log_hashes().await?;
    let expected: Vec<String> = committed.iter().map(|fact| fact.hash.to_hex()).collect();
    assert_eq!(log, expected, "Cairn holds the outbox, in order, once");

    // Publishing the same facts again succeeds and stores nothing new.
    client.publish(committed).await?;
    assert_eq!(cairn.log_hashes().await?.len(), expected.len());
    Ok(())
}

#[tokio::test]
async fn a_refusal_is_rejected_and_an_unreachable_server_unavailable() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let never_stored = fact("Test.Order", r#"{"label":"ghost"}"#, "{}");
    let orphan = fact(
        "Test.OrderLine",
        r#"{"label":"ghost"}"#,
        &format!(r#"{{"order":"{}"}}"#, never_stored.hash),
    );
    let refused = client_of(&cairn.base_url)?
        .publish(vec![orphan.clone()])
        .await
        .expect_err("a fact without its predecessor must be refused");
    assert!(
        matches!(&refused, PublishError::Rejected { status: 422, code, .. } if code == "missing_predecessors"),
        "{refused:?}"
    );
    assert!(!refused.is_transient());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let closed_url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    let unreachable = client_of(&closed_url)?
        .publish(vec![never_stored])
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(unreachable, PublishError::Unavailable { .. }),
        "{unreachable:?}"
    );
    assert!(unreachable.is_transient());
    Ok(())
}

//! `with_inbox` against real databases and a real Cairn server: a
//! subscriber whose handler writes through the inbox has exactly one effect
//! per message, also when its handler fails once (rolled back, redelivered)
//! and when a message is handed to it again after it was processed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_client::{
    BackoffDefinition, Client, ClientOptions, Delivery, HandlerError, Subscriber,
    SubscriptionDefinition,
};
use cairn_sql::{migrate, with_inbox};
use futures_util::TryStreamExt;
use sqlx::Pool;
use tokio_util::sync::CancellationToken;

use crate::common::{
    fact, wait_until, CairnServer, Fixture, PostgresFixture, SqliteFixture, TestDatabase,
};

const N_MESSAGES: usize = 5;

async fn run_scenario<F: Fixture>(fixture: F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let client = Client::remote(ClientOptions::new([cairn.base_url.clone()]))?;
    let pool: Pool<F::Database> = fixture.open().await?;
    migrate(&pool).await?;
    F::Database::create_effects_table(&pool).await?;

    let facts: Vec<_> = (0..N_MESSAGES)
        .map(|index| fact("Test.Payment", &format!(r#"{{"n":{index}}}"#), "{}"))
        .collect();
    client.put_facts(facts.clone()).await?;

    // The handler fails once, after its write, on the first message: the
    // write must roll back with the inbox record and come again.
    let failed_once = Arc::new(AtomicBool::new(false));
    let first_hash = facts[0].hash;
    let handler = with_inbox(pool.clone(), move |delivery: Delivery, transaction| {
        let failed_once = Arc::clone(&failed_once);
        Box::pin(async move {
            F::Database::insert_effect(&mut **transaction, &delivery.hash().to_hex()).await?;
            if delivery.hash() == first_hash && !failed_once.swap(true, Ordering::SeqCst) {
                return Err(HandlerError::from("the first try fails after its write"));
            }
            Ok(())
        })
    });
    let handler = Arc::new(handler);
    let definition = SubscriptionDefinition {
        backoff: Some(BackoffDefinition {
            initial_ms: Some(1),
            max_ms: Some(10),
        }),
        ..SubscriptionDefinition::new("Test.Payment")
    };
    let shutdown = CancellationToken::new();
    let subscriber_handler = Arc::clone(&handler);
    let running = tokio::spawn(
        Subscriber::new(client.clone(), "payments", move |delivery| {
            subscriber_handler(delivery)
        })
        .definition(definition)
        .wait_ms(100)
        .run(shutdown.clone()),
    );
    wait_until("every message is acknowledged", || async {
        let view = client.subscription("payments").await?;
        Ok(view.is_some_and(|view| view.acked == N_MESSAGES as u64))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_failed, 1);

    // Every message handed to the handler again (a redelivery after a lost
    // ack) has no second effect.
    let log: Vec<_> = client.log_facts().stream().try_collect().await?;
    for stored in log {
        let message = cairn_client::Message {
            token: "replayed".to_string(),
            hash: stored.hash,
            seq: stored.seq,
            attempt: 2,
            fact: stored.fact,
            upcast: None,
            original: None,
        };
        let delivery = Delivery::new(Arc::from("payments"), message);
        handler(delivery)
            .await
            .map_err(|error| anyhow::anyhow!("{}", error.message()))?;
    }
    let mut expected: Vec<String> = facts.iter().map(|fact| fact.hash.to_hex()).collect();
    expected.sort();
    assert_eq!(F::Database::effects(&pool).await?, expected);
    Ok(())
}

#[tokio::test]
async fn a_handler_with_the_inbox_has_one_effect_per_message_on_sqlite() -> anyhow::Result<()> {
    run_scenario(SqliteFixture::new()).await
}

#[tokio::test]
async fn a_handler_with_the_inbox_has_one_effect_per_message_on_postgres() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => run_scenario(fixture).await,
        None => Ok(()),
    }
}

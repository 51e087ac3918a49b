//! Inbox against real databases, with messages that are real facts read
//! from a real Cairn server's log: crashes injected at every step, restart
//! from the database file, redelivery, and a check that every message had
//! exactly one effect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use cairn_fact::{CanonicalFact, Hash};
use cairn_sql::fault::Step;
use cairn_sql::{
    migrate, FactPublisher, HttpPublisher, Inbox, InboxError, Outbox, OutboxError, OutboxRelay,
    Processed,
};
use sqlx::Pool;
use tokio_util::sync::CancellationToken;

use crate::common::{
    crash_at, fact, wait_until, CairnServer, Fixture, PostgresFixture, SqliteFixture, TestDatabase,
    WAIT_MAX,
};

/// The inbox steps at which a crash is injected.
const INBOX_STEPS: [Step; 3] = [
    Step::InboxAfterInsertBeforeHandler,
    Step::InboxAfterHandlerBeforeCommit,
    Step::InboxAfterCommit,
];

/// Messages delivered in each scenario.
const N_MESSAGES: usize = 4;

/// Publishes `N_MESSAGES` facts to Cairn and reads them back from its log,
/// as a subscriber would receive them.
async fn messages_from_cairn(cairn: &CairnServer, scenario: &str) -> anyhow::Result<Vec<Hash>> {
    let facts: Vec<CanonicalFact> = (0..N_MESSAGES)
        .map(|message_idx| {
            fact(
                "Test.Payment",
                &format!(r#"{{"scenario":"{scenario}","n":{message_idx}}}"#),
                "{}",
            )
        })
        .collect();
    HttpPublisher::new(&cairn.base_url)?.publish(facts).await?;
    cairn
        .log_hashes()
        .await?
        .iter()
        .map(|hash| Ok(Hash::from_hex(hash)?))
        .collect()
}

async fn start_service<F: Fixture>(fixture: &F) -> anyhow::Result<Pool<F::Database>> {
    let pool = fixture.open().await?;
    migrate(&pool).await?;
    F::Database::create_effects_table(&pool).await?;
    Ok(pool)
}

/// Processes `message` with a handler whose effect is one row labelled with
/// the message's hash.
async fn deliver<DB: TestDatabase>(
    inbox: &Inbox,
    pool: &Pool<DB>,
    message: &Hash,
) -> Result<Processed<String>, InboxError<sqlx::Error>> {
    let label = message.to_hex();
    inbox
        .process(pool, message, |transaction| {
            Box::pin(async move {
                DB::insert_effect(transaction, &label).await?;
                Ok(label)
            })
        })
        .await
}

/// Delivers the first message with a crash at `crash_step`, restarts from
/// the database, redelivers every message twice and checks that each had
/// exactly one effect.
async fn crash_and_redeliver<F: Fixture>(fixture: &F, crash_step: Step) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let messages = messages_from_cairn(&cairn, &format!("{crash_step:?}")).await?;
    assert_eq!(messages.len(), N_MESSAGES);
    let pool = start_service(fixture).await?;
    let crashing = Inbox::new("payments").with_fault_injector(crash_at(crash_step, 1));
    let outcome = deliver(&crashing, &pool, &messages[0]).await;
    assert!(
        matches!(outcome, Err(InboxError::Injected(fault)) if fault.step == crash_step),
        "{outcome:?}"
    );
    pool.close().await;
    drop(pool);

    // The message was not acknowledged, so it comes again with the others.
    let pool = start_service(fixture).await?;
    let inbox = Inbox::new("payments");
    for (message_idx, message) in messages.iter().enumerate() {
        let outcome = deliver(&inbox, &pool, message).await?;
        if message_idx == 0 && crash_step == Step::InboxAfterCommit {
            assert_eq!(outcome, Processed::Duplicate);
        } else {
            assert_eq!(outcome, Processed::First(message.to_hex()));
        }
    }
    for message in &messages {
        assert_eq!(deliver(&inbox, &pool, message).await?, Processed::Duplicate);
    }
    let mut expected: Vec<String> = messages.iter().map(Hash::to_hex).collect();
    expected.sort();
    assert_eq!(F::Database::effects(&pool).await?, expected);

    // Another consumer name processes the same messages independently.
    let auditor = Inbox::new("audit");
    assert_eq!(
        deliver(&auditor, &pool, &messages[1]).await?,
        Processed::First(messages[1].to_hex())
    );
    pool.close().await;
    Ok(())
}

async fn crashes_at_every_step<F, N, Fut>(new_fixture: N) -> anyhow::Result<()>
where
    F: Fixture,
    N: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<F>>,
{
    for step in INBOX_STEPS {
        let Some(fixture) = new_fixture().await else {
            return Ok(());
        };
        crash_and_redeliver(&fixture, step)
            .await
            .with_context(|| format!("crash at {step:?}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_inbox_survives_a_crash_at_every_step() -> anyhow::Result<()> {
    crashes_at_every_step(|| async { Some(SqliteFixture::new()) }).await
}

#[tokio::test]
async fn postgres_inbox_survives_a_crash_at_every_step() -> anyhow::Result<()> {
    crashes_at_every_step(PostgresFixture::new).await
}

/// A handler error rolls back the record and the handler's writes; the
/// redelivered message is then processed in full.
async fn handler_error_rolls_back<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let pool = start_service(fixture).await?;
    let inbox = Inbox::new("payments");
    let message = Hash::of_bytes(b"message");
    let outcome = inbox
        .process(&pool, &message, |transaction| {
            Box::pin(async move {
                F::Database::insert_effect(transaction, "half-done").await?;
                Err::<(), anyhow::Error>(anyhow::anyhow!("the handler gives up"))
            })
        })
        .await;
    assert!(matches!(outcome, Err(InboxError::Handler(_))));
    assert!(F::Database::effects(&pool).await?.is_empty());
    assert_eq!(
        deliver(&inbox, &pool, &message).await?,
        Processed::First(message.to_hex())
    );
    assert_eq!(F::Database::effects(&pool).await?, vec![message.to_hex()]);
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn sqlite_handler_error_rolls_back() -> anyhow::Result<()> {
    handler_error_rolls_back(&SqliteFixture::new()).await
}

#[tokio::test]
async fn postgres_handler_error_rolls_back() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => handler_error_rolls_back(&fixture).await,
        None => Ok(()),
    }
}

/// The same message delivered to several workers at once has one effect.
async fn concurrent_deliveries_have_one_effect<F>(fixture: &F) -> anyhow::Result<()>
where
    F: Fixture,
    F::Database: TestDatabase,
{
    const N_WORKERS: usize = 4;
    let pool = start_service(fixture).await?;
    let message = Hash::of_bytes(b"popular message");
    let firsts = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..N_WORKERS {
        let pool = pool.clone();
        let firsts = Arc::clone(&firsts);
        workers.push(tokio::spawn(async move {
            let inbox = Inbox::new("payments");
            if let Processed::First(_) = deliver(&inbox, &pool, &message).await? {
                firsts.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, InboxError<sqlx::Error>>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    assert_eq!(firsts.load(Ordering::SeqCst), 1);
    assert_eq!(F::Database::effects(&pool).await?, vec![message.to_hex()]);
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn sqlite_concurrent_deliveries_have_one_effect() -> anyhow::Result<()> {
    concurrent_deliveries_have_one_effect(&SqliteFixture::new()).await
}

#[tokio::test]
async fn postgres_concurrent_deliveries_have_one_effect() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => concurrent_deliveries_have_one_effect(&fixture).await,
        None => Ok(()),
    }
}

/// Consume, transform, produce: the handler enqueues a derived fact in the
/// inbox's transaction. A crash before the commit leaves neither the record
/// nor the derived fact; redelivery produces the derived fact once, and the
/// relay puts it in Cairn once.
async fn consume_and_produce_exactly_once<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let messages = messages_from_cairn(&cairn, "consume-and-produce").await?;
    let pool = start_service(fixture).await?;
    let outbox = Outbox::new();
    let receipt_of = |message: &Hash| {
        fact(
            "Test.Receipt",
            "{}",
            &format!(r#"{{"payment":"{message}"}}"#),
        )
    };
    let handle = |inbox: Inbox, pool: Pool<F::Database>, message: Hash| {
        let outbox = outbox.clone();
        let receipt = receipt_of(&message);
        async move {
            inbox
                .process(&pool, &message, |transaction| {
                    Box::pin(async move {
                        F::Database::insert_effect(transaction, &message.to_hex()).await?;
                        outbox.enqueue(transaction, &[receipt]).await
                    })
                })
                .await
        }
    };
    let crashing = Inbox::new("receipts")
        .with_fault_injector(crash_at(Step::InboxAfterHandlerBeforeCommit, 1));
    let outcome: Result<_, InboxError<OutboxError>> =
        handle(crashing, pool.clone(), messages[0]).await;
    assert!(
        matches!(outcome, Err(InboxError::Injected(_))),
        "{outcome:?}"
    );
    pool.close().await;
    drop(pool);

    let pool = start_service(fixture).await?;
    assert_eq!(Outbox::unsent_count(&pool).await?, 0);
    for _ in 0..2 {
        for message in &messages {
            handle(Inbox::new("receipts"), pool.clone(), *message).await?;
        }
    }
    assert_eq!(Outbox::unsent_count(&pool).await?, N_MESSAGES as u64);
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher());
    let task = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the receipts are published", || async {
        Ok(Outbox::unsent_count(&pool).await? == 0)
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task).await???;
    let mut expected: Vec<String> = messages.iter().map(Hash::to_hex).collect();
    expected.extend(
        messages
            .iter()
            .map(|message| receipt_of(message).hash.to_hex()),
    );
    expected.sort();
    let mut log = cairn.log_hashes().await?;
    log.sort();
    assert_eq!(log, expected);
    assert_eq!(F::Database::effects(&pool).await?.len(), N_MESSAGES);
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn sqlite_consume_and_produce_exactly_once() -> anyhow::Result<()> {
    consume_and_produce_exactly_once(&SqliteFixture::new()).await
}

#[tokio::test]
async fn postgres_consume_and_produce_exactly_once() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => consume_and_produce_exactly_once(&fixture).await,
        None => Ok(()),
    }
}

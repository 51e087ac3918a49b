//! Outbox and relay against a real Cairn server: crashes injected at every
//! step, restarts from the database file, and an oracle that checks every
//! committed fact is in Cairn exactly once, nothing rolled back is, and each
//! business effect happened exactly once.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_fact::CanonicalFact;
use cairn_sql::fault::Step;
use cairn_sql::{
    migrate, FactPublisher, HttpPublisher, Outbox, OutboxError, OutboxRelay, PublishError,
    RelayError,
};
use futures_util::FutureExt;
use sqlx::Pool;
use tokio_util::sync::CancellationToken;

use crate::common::{
    crash_at, fact, order_and_line, wait_until, CairnServer, Fixture, PostgresFixture,
    SqliteFixture, TestDatabase, WAIT_MAX,
};

/// The outbox steps at which a crash is injected.
const OUTBOX_STEPS: [Step; 4] = [
    Step::OutboxAfterInsertBeforeCommit,
    Step::RelayAfterReadBeforePublish,
    Step::RelayAfterPublishBeforeMarkSent,
    Step::RelayAfterMarkSent,
];

/// Poll interval of relays that are expected to be woken by `notify`.
const POLL_INTERVAL_LONG: Duration = Duration::from_secs(3_600);

/// Opens the service database and creates its tables, as every start of
/// the service does.
async fn start_service<F: Fixture>(fixture: &F) -> anyhow::Result<Pool<F::Database>> {
    let pool = fixture.open().await?;
    migrate(&pool).await?;
    F::Database::create_effects_table(&pool).await?;
    Ok(pool)
}

/// One business transaction: records the effect `label` and enqueues
/// `facts`, then commits.
async fn commit_effect<DB: TestDatabase>(
    pool: &Pool<DB>,
    outbox: &Outbox,
    label: &str,
    facts: &[CanonicalFact],
) -> anyhow::Result<()> {
    let mut transaction = pool.begin().await?;
    DB::insert_effect(&mut transaction, label).await?;
    outbox.enqueue(&mut transaction, facts).await?;
    transaction.commit().await?;
    Ok(())
}

/// Runs a relay until the outbox is empty and Cairn holds `expected`, then
/// shuts it down and checks that it stopped cleanly.
async fn relay_until_published<DB: TestDatabase>(
    pool: &Pool<DB>,
    publisher: Arc<dyn FactPublisher>,
    cairn: &CairnServer,
    expected: &[CanonicalFact],
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), publisher)
        .batch_facts_max(2)
        .poll_interval(Duration::from_millis(20));
    let task = tokio::spawn(relay.run(shutdown.clone()));
    let expected: HashSet<String> = expected.iter().map(|fact| fact.hash.to_hex()).collect();
    wait_until("the outbox is published", || async {
        let unsent = Outbox::unsent_count(pool).await?;
        let in_cairn: HashSet<String> = cairn.log_hashes().await?.into_iter().collect();
        Ok(unsent == 0 && expected.is_subset(&in_cairn))
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task)
        .await
        .context("the relay did not stop at shutdown")???;
    Ok(())
}

/// The oracle: Cairn's log holds exactly `committed`, each once, every
/// order before its line; the effects are exactly `effects`.
async fn check_exactly_once<DB: TestDatabase>(
    cairn: &CairnServer,
    pool: &Pool<DB>,
    committed: &[CanonicalFact],
    effects: &[&str],
) -> anyhow::Result<()> {
    let log = cairn.log_hashes().await?;
    let mut expected: Vec<String> = committed.iter().map(|fact| fact.hash.to_hex()).collect();
    let mut actual = log.clone();
    expected.sort();
    actual.sort();
    assert_eq!(
        actual, expected,
        "Cairn's log is not exactly the committed facts"
    );
    for pair in committed.chunks(2) {
        let position =
            |fact: &CanonicalFact| log.iter().position(|hash| *hash == fact.hash.to_hex());
        assert!(
            position(&pair[0]) < position(&pair[1]),
            "a line came before its order"
        );
    }
    let mut expected_effects: Vec<String> = effects.iter().map(|label| label.to_string()).collect();
    expected_effects.sort();
    assert_eq!(DB::effects(pool).await?, expected_effects);
    assert_eq!(Outbox::unsent_count(pool).await?, 0);
    Ok(())
}

/// Commits three orders (two facts each), rolls one back, crashes at
/// `crash_step`, restarts from the database file and checks the oracle.
async fn crash_and_restart<F: Fixture>(fixture: &F, crash_step: Step) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let publisher = cairn.publisher();
    let pool = start_service(fixture).await?;
    let outbox = Outbox::new();
    let mut committed = Vec::new();
    let mut committed_effects = Vec::new();
    let labels = ["order-1", "order-2", "order-3"];
    for label in labels {
        let facts = order_and_line(label);
        commit_effect(&pool, &outbox, label, &facts).await?;
        committed.extend(facts);
        committed_effects.push(label);
    }
    let rolled_back = order_and_line("rolled-back");
    let mut transaction = pool.begin().await?;
    F::Database::insert_effect(&mut transaction, "rolled-back").await?;
    outbox.enqueue(&mut transaction, &rolled_back).await?;
    transaction.rollback().await?;

    let crashed = order_and_line("crashed");
    if crash_step == Step::OutboxAfterInsertBeforeCommit {
        let crashing_outbox = Outbox::new().with_fault_injector(crash_at(crash_step, 1));
        let mut transaction = pool.begin().await?;
        F::Database::insert_effect(&mut transaction, "crashed").await?;
        let error = crashing_outbox
            .enqueue(&mut transaction, &crashed)
            .await
            .expect_err("the injected crash");
        assert!(matches!(error, OutboxError::Injected(fault) if fault.step == crash_step));
        // The process dies: its transaction never commits.
        drop(transaction);
    } else {
        // The second batch crashes, so that the first is fully sent.
        let relay = OutboxRelay::new(pool.clone(), publisher.clone())
            .batch_facts_max(2)
            .with_fault_injector(crash_at(crash_step, 2));
        let outcome = tokio::time::timeout(WAIT_MAX, relay.run(CancellationToken::new()))
            .await
            .context("the relay did not reach the crash")?;
        assert!(
            matches!(outcome, Err(RelayError::Injected(fault)) if fault.step == crash_step),
            "{outcome:?}"
        );
    }
    pool.close().await;
    drop(pool);

    let pool = start_service(fixture).await?;
    relay_until_published(&pool, publisher.clone(), &cairn, &committed).await?;
    check_exactly_once(&cairn, &pool, &committed, &committed_effects).await?;
    let in_cairn: HashSet<String> = cairn.log_hashes().await?.into_iter().collect();
    for never_committed in rolled_back.iter().chain(&crashed) {
        assert!(!in_cairn.contains(&never_committed.hash.to_hex()));
    }
    if crash_step == Step::RelayAfterPublishBeforeMarkSent {
        // The crashed batch really was published twice, and Cairn kept one.
        let published = publisher.published();
        let distinct: HashSet<_> = published.iter().collect();
        assert_eq!(published.len(), distinct.len() + 2, "{crash_step:?}");
    }
    pool.close().await;
    Ok(())
}

async fn crashes_at_every_step<F, N, Fut>(new_fixture: N) -> anyhow::Result<()>
where
    F: Fixture,
    N: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<F>>,
{
    for step in OUTBOX_STEPS {
        let Some(fixture) = new_fixture().await else {
            return Ok(());
        };
        crash_and_restart(&fixture, step)
            .await
            .with_context(|| format!("crash at {step:?}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_outbox_survives_a_crash_at_every_step() -> anyhow::Result<()> {
    crashes_at_every_step(|| async { Some(SqliteFixture::new()) }).await
}

#[tokio::test]
async fn postgres_outbox_survives_a_crash_at_every_step() -> anyhow::Result<()> {
    crashes_at_every_step(PostgresFixture::new).await
}

/// Enqueuing the same fact again, in the same or a later transaction, adds
/// no row; the relay then wakes on `notify` alone (its poll interval is an
/// hour), and stops promptly at shutdown.
async fn enqueue_is_idempotent_and_notify_wakes_the_relay<F: Fixture>(
    fixture: &F,
) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    let outbox = Outbox::new();
    let facts = order_and_line("once");
    let mut transaction = pool.begin().await?;
    assert_eq!(outbox.enqueue(&mut transaction, &facts).await?, 2);
    assert_eq!(outbox.enqueue(&mut transaction, &facts[..1]).await?, 0);
    transaction.commit().await?;
    let mut transaction = pool.begin().await?;
    assert_eq!(outbox.enqueue(&mut transaction, &facts).await?, 0);
    transaction.commit().await?;
    assert_eq!(Outbox::unsent_count(&pool).await?, 2);

    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher()).poll_interval(POLL_INTERVAL_LONG);
    let handle = relay.handle();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the first facts are published", || async {
        Ok(cairn.log_hashes().await?.len() == 2)
    })
    .await?;
    // The relay now sleeps for an hour unless woken.
    let later = order_and_line("later");
    commit_effect(&pool, &outbox, "later", &later).await?;
    handle.notify();
    wait_until("the later facts are published", || async {
        Ok(cairn.log_hashes().await?.len() == 4)
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task)
        .await
        .context("the relay did not stop at shutdown")???;
    let mut committed = facts.to_vec();
    committed.extend(later);
    check_exactly_once(&cairn, &pool, &committed, &["later"]).await
}

#[tokio::test]
async fn sqlite_enqueue_is_idempotent_and_notify_wakes_the_relay() -> anyhow::Result<()> {
    enqueue_is_idempotent_and_notify_wakes_the_relay(&SqliteFixture::new()).await
}

#[tokio::test]
async fn postgres_enqueue_is_idempotent_and_notify_wakes_the_relay() -> anyhow::Result<()> {
    match PostgresFixture::new().await {
        Some(fixture) => enqueue_is_idempotent_and_notify_wakes_the_relay(&fixture).await,
        None => Ok(()),
    }
}

/// With Cairn down, the relay keeps retrying with backoff; once Cairn is
/// up on that address, everything is published once.
#[tokio::test]
async fn relay_retries_until_cairn_is_up() -> anyhow::Result<()> {
    let fixture = SqliteFixture::new();
    let pool = start_service(&fixture).await?;
    let facts = order_and_line("retried");
    commit_effect(&pool, &Outbox::new(), "retried", &facts).await?;

    // Reserve a free port, then release it so that connections are refused.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?;
    let publisher = Arc::new(crate::common::RecordingPublisher::new(&format!(
        "http://{address}"
    )));
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), publisher.clone())
        .backoff(Duration::from_millis(5), Duration::from_millis(50));
    let task = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the relay has failed three times", || async {
        Ok(publisher.failures.load(std::sync::atomic::Ordering::SeqCst) >= 3)
    })
    .await?;
    assert_eq!(Outbox::unsent_count(&pool).await?, 2);

    let cairn = CairnServer::start_on(tokio::net::TcpListener::bind(address).await?).await?;
    wait_until("the outbox is published", || async {
        Ok(Outbox::unsent_count(&pool).await? == 0)
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task).await???;
    check_exactly_once(&cairn, &pool, &facts, &["retried"]).await
}

/// A zero retention deletes rows as soon as they are sent.
#[tokio::test]
async fn sent_rows_are_purged_after_the_retention() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let fixture = SqliteFixture::new();
    let pool = start_service(&fixture).await?;
    let facts = order_and_line("purged");
    commit_effect(&pool, &Outbox::new(), "purged", &facts).await?;
    assert_eq!(<sqlx::Sqlite as TestDatabase>::outbox_rows(&pool).await?, 2);
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher()).sent_retention(Duration::ZERO);
    let task = tokio::spawn(relay.run(shutdown.clone()));
    wait_until("the sent rows are deleted", || async {
        Ok(<sqlx::Sqlite as TestDatabase>::outbox_rows(&pool).await? == 0)
    })
    .await?;
    shutdown.cancel();
    tokio::time::timeout(WAIT_MAX, task).await???;
    check_exactly_once(&cairn, &pool, &facts, &["purged"]).await
}

/// Negative control: the oracle notices a fact that was marked sent but
/// never published (what marking before publishing would do at a crash).
#[tokio::test]
async fn the_oracle_detects_a_lost_fact() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let fixture = SqliteFixture::new();
    let pool = start_service(&fixture).await?;
    let published = order_and_line("published");
    commit_effect(&pool, &Outbox::new(), "published", &published).await?;
    relay_until_published(&pool, cairn.publisher(), &cairn, &published).await?;
    let lost = order_and_line("lost");
    commit_effect(&pool, &Outbox::new(), "lost", &lost).await?;
    <sqlx::Sqlite as TestDatabase>::mark_all_sent_unpublished(&pool).await?;
    relay_until_published(&pool, cairn.publisher(), &cairn, &[]).await?;
    let mut committed = published.to_vec();
    committed.extend(lost);
    let verdict = AssertUnwindSafe(check_exactly_once(
        &cairn,
        &pool,
        &committed,
        &["lost", "published"],
    ))
    .catch_unwind()
    .await;
    assert!(verdict.is_err(), "the oracle missed a lost fact");
    Ok(())
}

/// A row whose bytes do not match its hash stops the relay before anything
/// is published.
#[tokio::test]
async fn a_corrupt_row_stops_the_relay() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let fixture = SqliteFixture::new();
    let pool = start_service(&fixture).await?;
    commit_effect(&pool, &Outbox::new(), "corrupt", &order_and_line("corrupt")).await?;
    <sqlx::Sqlite as TestDatabase>::corrupt_first_outbox_row(&pool).await?;
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher());
    let outcome = tokio::time::timeout(WAIT_MAX, relay.run(CancellationToken::new())).await?;
    assert!(
        matches!(outcome, Err(RelayError::CorruptRow { .. })),
        "{outcome:?}"
    );
    assert!(cairn.log_hashes().await?.is_empty());
    Ok(())
}

/// The HTTP publisher reports Cairn's refusal with its code, and treats a
/// second publication of the same facts as success.
#[tokio::test]
async fn http_publisher_reports_refusals_and_accepts_republication() -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let publisher = HttpPublisher::new(&cairn.base_url)?;
    let [order, line] = order_and_line("direct");
    let error = publisher
        .publish(vec![line.clone()])
        .await
        .expect_err("a missing predecessor");
    assert!(
        matches!(&error, PublishError::Rejected { status: 422, code, .. } if code == "missing_predecessors"),
        "{error}"
    );
    assert!(!error.is_transient());
    publisher.publish(vec![order.clone(), line.clone()]).await?;
    publisher.publish(vec![order.clone(), line.clone()]).await?;
    assert_eq!(
        cairn.log_hashes().await?,
        vec![order.hash.to_hex(), line.hash.to_hex()]
    );
    let unreachable = HttpPublisher::new("http://127.0.0.1:1")?;
    let error = unreachable
        .publish(vec![fact("Test.Lost", "{}", "{}")])
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_transient(), "{error}");
    Ok(())
}

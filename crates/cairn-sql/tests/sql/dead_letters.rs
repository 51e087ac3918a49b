//! Outbox dead letters and the relay's drain, against a real Cairn server
//! and real databases (each test on SQLite and on PostgreSQL): a fact Cairn
//! refuses is set aside with its error while the rest of the outbox is
//! published in order, its successors are set aside with it, dead letters
//! can be listed, counted, retried and discarded, the relay counts what it
//! did, `migrate` upgrades the first schema, and `drain_and_stop` publishes
//! what is committed before stopping.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_fact::CanonicalFact;
use cairn_sql::{migrate, FactPublisher, Outbox, OutboxRelay, RelayTask};
use sqlx::{Pool, Postgres, Sqlite};
use tokio_util::sync::CancellationToken;

use crate::common::{
    fact, order_and_line, wait_until, CairnServer, Fixture, PostgresFixture, RecordingPublisher,
    SqliteFixture, TestDatabase, WAIT_MAX,
};

/// Poll interval of relays that must act without being woken.
const POLL_INTERVAL_SHORT: Duration = Duration::from_millis(20);
/// Poll interval of relays that must act only when asked.
const POLL_INTERVAL_LONG: Duration = Duration::from_secs(3_600);

/// Runs `$scenario(&fixture)` as two tests, on SQLite and on PostgreSQL.
macro_rules! on_both_databases {
    ($scenario:ident, $sqlite_test:ident, $postgres_test:ident) => {
        #[tokio::test]
        async fn $sqlite_test() -> anyhow::Result<()> {
            $scenario(&SqliteFixture::new()).await
        }

        #[tokio::test]
        async fn $postgres_test() -> anyhow::Result<()> {
            match PostgresFixture::new().await {
                Some(fixture) => $scenario(&fixture).await,
                None => Ok(()),
            }
        }
    };
}

/// Opens the service database and creates the outbox tables.
async fn start_service<F: Fixture>(fixture: &F) -> anyhow::Result<Pool<F::Database>> {
    let pool = fixture.open().await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Enqueues `facts` in one committed transaction.
async fn enqueue<DB: TestDatabase>(pool: &Pool<DB>, facts: &[CanonicalFact]) -> anyhow::Result<()> {
    let mut transaction = pool.begin().await?;
    Outbox::new().enqueue(&mut transaction, facts).await?;
    transaction.commit().await?;
    Ok(())
}

/// A relay with short waits, publishing at most `batch_facts_max` facts
/// per call, started in its own task.
fn start_relay<DB: TestDatabase>(
    pool: &Pool<DB>,
    publisher: Arc<dyn FactPublisher>,
    batch_facts_max: usize,
) -> RelayTask {
    OutboxRelay::new(pool.clone(), publisher)
        .batch_facts_max(batch_facts_max)
        .poll_interval(POLL_INTERVAL_SHORT)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .spawn()
}

fn hex(facts: &[&CanonicalFact]) -> Vec<String> {
    facts.iter().map(|fact| fact.hash.to_hex()).collect()
}

/// Waits until Cairn's log is exactly `expected`, in that order.
async fn wait_for_log(cairn: &CairnServer, expected: &[&CanonicalFact]) -> anyhow::Result<()> {
    let expected = hex(expected);
    let outcome = wait_until("Cairn's log holds the expected facts", || async {
        Ok(cairn.log_hashes().await? == expected)
    })
    .await;
    if outcome.is_err() {
        anyhow::bail!(
            "Cairn's log is {:?}, expected {expected:?}",
            cairn.log_hashes().await?
        );
    }
    Ok(())
}

/// Waits until the outbox holds `n_dead_letters` dead letters and nothing
/// pending.
async fn wait_for_dead_letters<DB: TestDatabase>(
    pool: &Pool<DB>,
    n_dead_letters: u64,
) -> anyhow::Result<()> {
    wait_until("the outbox is published or set aside", || async {
        Ok(Outbox::unsent_count(pool).await? == 0
            && Outbox::dead_letter_count(pool).await? == n_dead_letters)
    })
    .await
}

/// A shipment fact that names `line` as predecessor.
fn shipment_of(line: &CanonicalFact, label: &str) -> CanonicalFact {
    fact(
        "Test.Shipment",
        &format!(r#"{{"label":"{label}"}}"#),
        &format!(r#"{{"line":"{}"}}"#, line.hash),
    )
}

/// Reproduction of the blocked relay: a line whose order was never
/// enqueued is refused by Cairn (422 missing_predecessors). Facts enqueued
/// after it must still reach Cairn; before dead letters existed the relay
/// retried the refused batch forever and published nothing after it. The
/// refused row is a dead letter with Cairn's error.
async fn a_refused_fact_does_not_block_the_outbox<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    let [_never_enqueued_order, orphan_line] = order_and_line("orphan");
    let later = order_and_line("later");
    enqueue(&pool, std::slice::from_ref(&orphan_line)).await?;
    enqueue(&pool, &later).await?;

    let relay = start_relay(&pool, cairn.publisher(), 500);
    let outcome = wait_for_log(&cairn, &[&later[0], &later[1]]).await;
    relay.stop().await?;
    outcome?;
    wait_for_dead_letters(&pool, 1).await?;
    let dead_letters = Outbox::dead_letters(&pool, 10).await?;
    assert_eq!(dead_letters.len(), 1);
    let dead_letter = &dead_letters[0];
    assert_eq!(dead_letter.hash, orphan_line.hash);
    assert_eq!(dead_letter.canonical, orphan_line.canonical);
    assert_eq!(dead_letter.fact()?.hash, orphan_line.hash);
    assert_eq!(dead_letter.attempts, 1);
    assert!(dead_letter.failed_at_ms > 0);
    assert!(
        dead_letter.error.contains("422") && dead_letter.error.contains("missing_predecessors"),
        "{}",
        dead_letter.error
    );
    Ok(())
}

on_both_databases!(
    a_refused_fact_does_not_block_the_outbox,
    sqlite_a_refused_fact_does_not_block_the_outbox,
    postgres_a_refused_fact_does_not_block_the_outbox
);

/// In one batch of six facts, the refused one (the third) is found
/// by halving; the others are published in outbox order.
async fn a_bad_row_in_a_batch_is_set_aside_in_order<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    let before = order_and_line("before");
    let [_, orphan_line] = order_and_line("orphan");
    let after = order_and_line("after");
    let unrelated = fact("Test.Note", r#"{"label":"unrelated"}"#, "{}");
    let mut outbox_order = vec![before[0].clone(), before[1].clone(), orphan_line.clone()];
    outbox_order.extend(after.iter().cloned());
    outbox_order.push(unrelated.clone());
    enqueue(&pool, &outbox_order).await?;

    let publisher = cairn.publisher();
    let relay = start_relay(&pool, publisher.clone(), 500);
    let outcome = wait_for_log(
        &cairn,
        &[&before[0], &before[1], &after[0], &after[1], &unrelated],
    )
    .await;
    relay.stop().await?;
    outcome?;
    wait_for_dead_letters(&pool, 1).await?;
    let dead_letters = Outbox::dead_letters(&pool, 10).await?;
    assert_eq!(dead_letters[0].hash, orphan_line.hash);
    // Each published fact was published once: halving never publishes a
    // stored group again.
    let published = publisher.published();
    assert_eq!(published.len(), 5, "{published:?}");
    Ok(())
}

on_both_databases!(
    a_bad_row_in_a_batch_is_set_aside_in_order,
    sqlite_a_bad_row_in_a_batch_is_set_aside_in_order,
    postgres_a_bad_row_in_a_batch_is_set_aside_in_order
);

/// A refused line, a shipment naming it and a second shipment naming that
/// shipment are all set aside, in one batch and across batches of one
/// fact; an unrelated fact after them is published. Then the missing order
/// is published, the dead letters are retried together (the last one
/// first: order follows the outbox, not the call) and all reach Cairn in
/// order.
async fn successors_of_a_dead_letter_are_set_aside_and_retried<F: Fixture>(
    fixture: &F,
) -> anyhow::Result<()> {
    for batch_facts_max in [500, 1] {
        let cairn = CairnServer::start().await?;
        let pool = start_service(fixture).await?;
        let label = format!("batch-{batch_facts_max}");
        let [order, line] = order_and_line(&label);
        let shipment = shipment_of(&line, &label);
        let second_shipment = fact(
            "Test.Shipment",
            &format!(r#"{{"label":"{label}-second"}}"#),
            &format!(r#"{{"after":"{}"}}"#, shipment.hash),
        );
        let unrelated = fact("Test.Note", &format!(r#"{{"label":"{label}"}}"#), "{}");
        let chain = [line.clone(), shipment.clone(), second_shipment.clone()];
        enqueue(&pool, &chain).await?;
        enqueue(&pool, std::slice::from_ref(&unrelated)).await?;

        let relay = start_relay(&pool, cairn.publisher(), batch_facts_max);
        let handle = relay.handle();
        wait_for_log(&cairn, &[&unrelated])
            .await
            .with_context(|| format!("batches of {batch_facts_max}"))?;
        wait_for_dead_letters(&pool, 3).await?;
        let dead_letters = Outbox::dead_letters(&pool, 10).await?;
        let dead_hashes: Vec<_> = dead_letters.iter().map(|dead| dead.hash).collect();
        assert_eq!(
            dead_hashes,
            vec![line.hash, shipment.hash, second_shipment.hash]
        );
        assert!(dead_letters[0].error.contains("missing_predecessors"));
        assert!(
            dead_letters[1].error.contains(&format!(
                "predecessor line = {} is a dead letter",
                line.hash
            )),
            "{}",
            dead_letters[1].error
        );
        assert!(
            dead_letters[2].error.contains(&format!(
                "predecessor after = {} is a dead letter",
                shipment.hash
            )),
            "{}",
            dead_letters[2].error
        );

        // Retrying before the cause is fixed sets the row aside again.
        assert!(Outbox::retry_dead_letter(&pool, &line.hash).await?);
        handle.notify();
        wait_until("the retried line is set aside again", || async {
            let dead_letters = Outbox::dead_letters(&pool, 10).await?;
            Ok(dead_letters.len() == 3 && dead_letters[0].attempts == 2)
        })
        .await?;

        enqueue(&pool, std::slice::from_ref(&order)).await?;
        handle.notify();
        wait_for_log(&cairn, &[&unrelated, &order]).await?;
        // Retried together, in one transaction: retried one by one while
        // the relay polls, a successor retried before its predecessor
        // would be set aside again.
        let chain_last_first = [second_shipment.hash, shipment.hash, line.hash];
        assert_eq!(
            Outbox::retry_dead_letters(&pool, &chain_last_first).await?,
            3
        );
        assert!(!Outbox::retry_dead_letter(&pool, &line.hash).await?);
        handle.notify();
        wait_for_log(
            &cairn,
            &[&unrelated, &order, &line, &shipment, &second_shipment],
        )
        .await?;
        wait_for_dead_letters(&pool, 0).await?;
        relay.stop().await?;
        pool.close().await;
    }
    Ok(())
}

on_both_databases!(
    successors_of_a_dead_letter_are_set_aside_and_retried,
    sqlite_successors_of_a_dead_letter_are_set_aside_and_retried,
    postgres_successors_of_a_dead_letter_are_set_aside_and_retried
);

/// A discarded dead letter is gone and never published; the relay's
/// metrics count what it published and set aside, and the backlog.
async fn discard_and_metrics<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    let [_, orphan_line] = order_and_line("discarded");
    let shipment = shipment_of(&orphan_line, "discarded");
    let published = order_and_line("published");
    enqueue(&pool, &[orphan_line.clone(), shipment.clone()]).await?;
    enqueue(&pool, &published).await?;
    let relay = start_relay(&pool, cairn.publisher(), 500);
    let handle = relay.handle();
    wait_for_log(&cairn, &[&published[0], &published[1]]).await?;
    wait_for_dead_letters(&pool, 2).await?;
    wait_until("the metrics show the backlog", || async {
        let metrics = handle.metrics();
        Ok(metrics.n_dead_letters == 2 && metrics.n_pending == 0)
    })
    .await?;
    let metrics = handle.metrics();
    assert_eq!(metrics.n_published_total, 2);
    assert_eq!(metrics.n_dead_lettered_total, 2);
    assert_eq!(metrics.n_retries_total, 0);

    assert!(Outbox::discard_dead_letter(&pool, &orphan_line.hash).await?);
    assert!(!Outbox::discard_dead_letter(&pool, &orphan_line.hash).await?);
    assert_eq!(Outbox::dead_letter_count(&pool).await?, 1);
    let dead_letters = Outbox::dead_letters(&pool, 10).await?;
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].hash, shipment.hash);
    // The successor of a discarded dead letter still cannot be stored.
    assert!(Outbox::retry_dead_letter(&pool, &shipment.hash).await?);
    handle.notify();
    wait_until("the retried shipment is set aside again", || async {
        let dead_letters = Outbox::dead_letters(&pool, 10).await?;
        Ok(dead_letters.len() == 1 && dead_letters[0].attempts == 2)
    })
    .await?;
    let drained = relay.drain_and_stop(WAIT_MAX).await?;
    assert_eq!(drained.n_unsent, 0);
    assert_eq!(drained.n_dead_letters, 1);
    assert_eq!(
        cairn.log_hashes().await?,
        hex(&[&published[0], &published[1]])
    );
    Ok(())
}

on_both_databases!(
    discard_and_metrics,
    sqlite_discard_and_metrics,
    postgres_discard_and_metrics
);

/// A refusal that is not about the facts (404 from a wrong base URL) sets
/// nothing aside: the relay retries, and counts its retries.
async fn a_wrong_url_sets_nothing_aside<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    enqueue(&pool, &order_and_line("wrong-url")).await?;
    let publisher = Arc::new(RecordingPublisher::new(&format!(
        "{}/not-cairn",
        cairn.base_url
    )));
    let relay = start_relay(&pool, publisher.clone(), 500);
    let handle = relay.handle();
    wait_until("the relay has retried three times", || async {
        Ok(handle.metrics().n_retries_total >= 3)
    })
    .await?;
    relay.stop().await?;
    assert_eq!(Outbox::dead_letter_count(&pool).await?, 0);
    assert_eq!(Outbox::unsent_count(&pool).await?, 2);
    Ok(())
}

on_both_databases!(
    a_wrong_url_sets_nothing_aside,
    sqlite_a_wrong_url_sets_nothing_aside,
    postgres_a_wrong_url_sets_nothing_aside
);

/// The tables as the first version of this crate created them, and its
/// way of writing an outbox row.
trait FirstSchema: TestDatabase {
    const FIRST_SCHEMA: &'static [&'static str];

    fn create_first_schema(
        pool: &Pool<Self>,
    ) -> impl std::future::Future<Output = sqlx::Result<()>>;

    fn insert_first_schema_row(
        pool: &Pool<Self>,
        fact: &CanonicalFact,
        sent_at_ms: Option<i64>,
    ) -> impl std::future::Future<Output = sqlx::Result<()>>;
}

macro_rules! implement_first_schema_statements {
    () => {
        async fn create_first_schema(pool: &Pool<Self>) -> sqlx::Result<()> {
            for statement in Self::FIRST_SCHEMA {
                sqlx::query(statement).execute(pool).await?;
            }
            Ok(())
        }

        async fn insert_first_schema_row(
            pool: &Pool<Self>,
            fact: &CanonicalFact,
            sent_at_ms: Option<i64>,
        ) -> sqlx::Result<()> {
            sqlx::query(
                "INSERT INTO cairn_outbox (hash, canonical, created_at_ms, sent_at_ms)
                 VALUES ($1, $2, 1, $3)",
            )
            .bind(fact.hash.to_hex())
            .bind(&fact.canonical[..])
            .bind(sent_at_ms)
            .execute(pool)
            .await?;
            Ok(())
        }
    };
}

impl FirstSchema for Sqlite {
    const FIRST_SCHEMA: &'static [&'static str] = &[
        "CREATE TABLE cairn_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hash TEXT NOT NULL UNIQUE,
            canonical BLOB NOT NULL,
            created_at_ms INTEGER NOT NULL,
            sent_at_ms INTEGER
        )",
        "CREATE INDEX cairn_outbox_unsent ON cairn_outbox (id) WHERE sent_at_ms IS NULL",
        "CREATE INDEX cairn_outbox_sent_at ON cairn_outbox (sent_at_ms)
            WHERE sent_at_ms IS NOT NULL",
        "CREATE TABLE cairn_inbox (
            consumer TEXT NOT NULL,
            hash TEXT NOT NULL,
            processed_at_ms INTEGER NOT NULL,
            PRIMARY KEY (consumer, hash)
        )",
    ];

    implement_first_schema_statements!();
}

impl FirstSchema for Postgres {
    const FIRST_SCHEMA: &'static [&'static str] = &[
        "CREATE TABLE cairn_outbox (
            id BIGSERIAL PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            canonical BYTEA NOT NULL,
            created_at_ms BIGINT NOT NULL,
            sent_at_ms BIGINT
        )",
        "CREATE INDEX cairn_outbox_unsent ON cairn_outbox (id) WHERE sent_at_ms IS NULL",
        "CREATE INDEX cairn_outbox_sent_at ON cairn_outbox (sent_at_ms)
            WHERE sent_at_ms IS NOT NULL",
        "CREATE TABLE cairn_inbox (
            consumer TEXT NOT NULL,
            hash TEXT NOT NULL,
            processed_at_ms BIGINT NOT NULL,
            PRIMARY KEY (consumer, hash)
        )",
    ];

    implement_first_schema_statements!();
}

/// An outbox of the first schema, with a sent row and pending rows (one of
/// them refused) written as the first version wrote them, is upgraded by
/// `migrate` (twice: it is idempotent); then the relay publishes the
/// pending rows and sets the refused one aside.
async fn migrate_upgrades_the_first_schema<F>(fixture: &F) -> anyhow::Result<()>
where
    F: Fixture,
    F::Database: FirstSchema,
{
    let cairn = CairnServer::start().await?;
    let pool = fixture.open().await?;
    F::Database::create_first_schema(&pool).await?;
    let sent = fact("Test.Note", r#"{"label":"sent-before-upgrade"}"#, "{}");
    let [_, orphan_line] = order_and_line("before-upgrade-orphan");
    let pending = order_and_line("before-upgrade");
    let rows = [(&sent, Some(1_i64)), (&orphan_line, None)]
        .into_iter()
        .chain(pending.iter().map(|fact| (fact, None)));
    for (fact, sent_at_ms) in rows {
        F::Database::insert_first_schema_row(&pool, fact, sent_at_ms).await?;
    }
    migrate(&pool).await?;
    migrate(&pool).await?;
    assert_eq!(Outbox::unsent_count(&pool).await?, 3);
    assert_eq!(Outbox::dead_letter_count(&pool).await?, 0);

    let relay = start_relay(&pool, cairn.publisher(), 500);
    wait_for_log(&cairn, &[&pending[0], &pending[1]]).await?;
    wait_for_dead_letters(&pool, 1).await?;
    relay.stop().await?;
    assert_eq!(
        Outbox::dead_letters(&pool, 10).await?[0].hash,
        orphan_line.hash
    );
    // A fresh database and an upgraded one end with the same columns.
    migrate(&pool).await?;
    assert_eq!(F::Database::outbox_rows(&pool).await?, 4);
    Ok(())
}

on_both_databases!(
    migrate_upgrades_the_first_schema,
    sqlite_migrate_upgrades_the_first_schema,
    postgres_migrate_upgrades_the_first_schema
);

/// `drain_and_stop` publishes everything committed, then the relay stops,
/// even though nobody woke it and its poll interval is an hour; through
/// the handle with `run` in a task of the test's own, too.
async fn drain_publishes_everything_then_stops<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let cairn = CairnServer::start().await?;
    let pool = start_service(fixture).await?;
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher())
        .batch_facts_max(7)
        .poll_interval(POLL_INTERVAL_LONG)
        .spawn();
    let committed: Vec<CanonicalFact> = (0..20)
        .flat_map(|label_idx| order_and_line(&format!("drained-{label_idx}")))
        .collect();
    // Let the relay fall asleep on an empty outbox first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    enqueue(&pool, &committed).await?;
    let drained = relay.drain_and_stop(WAIT_MAX).await?;
    assert_eq!(drained.n_unsent, 0);
    assert_eq!(drained.n_dead_letters, 0);
    let expected: Vec<&CanonicalFact> = committed.iter().collect();
    assert_eq!(cairn.log_hashes().await?, hex(&expected));

    // The same through the handle, with `run` in the test's own task.
    let more = order_and_line("drained-by-handle");
    enqueue(&pool, &more).await?;
    let relay = OutboxRelay::new(pool.clone(), cairn.publisher()).poll_interval(POLL_INTERVAL_LONG);
    let handle = relay.handle();
    let task = tokio::spawn(relay.run(CancellationToken::new()));
    let drained = handle.drain_and_stop(WAIT_MAX).await?;
    assert_eq!(drained.n_unsent, 0);
    tokio::time::timeout(WAIT_MAX, task)
        .await
        .context("the relay did not stop after draining")???;
    assert!(matches!(
        handle.drain_and_stop(WAIT_MAX).await,
        Err(cairn_sql::DrainError::NotRunning)
    ));
    assert_eq!(Outbox::unsent_count(&pool).await?, 0);
    Ok(())
}

on_both_databases!(
    drain_publishes_everything_then_stops,
    sqlite_drain_publishes_everything_then_stops,
    postgres_drain_publishes_everything_then_stops
);

/// With Cairn down, `drain_and_stop` gives up at its timeout, stops the
/// relay and says how many rows are left (still in the outbox).
async fn drain_with_cairn_down_reports_what_is_left<F: Fixture>(fixture: &F) -> anyhow::Result<()> {
    let pool = start_service(fixture).await?;
    enqueue(&pool, &order_and_line("unsent-1")).await?;
    enqueue(&pool, &order_and_line("unsent-2")).await?;
    // A free port that nothing listens on: connections are refused.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?;
    let publisher = Arc::new(RecordingPublisher::new(&format!("http://{address}")));
    let relay = start_relay(&pool, publisher.clone(), 500);
    let handle = relay.handle();
    let started = tokio::time::Instant::now();
    let timeout = Duration::from_millis(500);
    let drained = tokio::time::timeout(WAIT_MAX, relay.drain_and_stop(timeout))
        .await
        .context("drain_and_stop outlived its timeout")??;
    assert!(started.elapsed() >= timeout);
    assert_eq!(drained.n_unsent, 4);
    assert_eq!(drained.n_dead_letters, 0);
    assert!(handle.metrics().n_retries_total >= 1);
    assert_eq!(Outbox::unsent_count(&pool).await?, 4);
    Ok(())
}

on_both_databases!(
    drain_with_cairn_down_reports_what_is_left,
    sqlite_drain_with_cairn_down_reports_what_is_left,
    postgres_drain_with_cairn_down_reports_what_is_left
);

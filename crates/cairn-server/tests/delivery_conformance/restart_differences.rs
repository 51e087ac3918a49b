//! Where the engines legitimately differ (ARCHITECTURE.md, "Where the
//! engines differ"), pinned by tests rather than left out of the sweep:
//! what a restart does to leases and tokens, that the counters
//! `delivered`, `redelivered` and `acked` belong to one server, and which
//! clock the shared engine uses.

use std::sync::Arc;
use std::time::Duration;

use cairn_fact::CanonicalFact;
use cairn_server::clock::Clock;
use cairn_server::delivery::shared::SharedOptions;
use cairn_server::delivery::{Subscription, TokenSecrets};
use tokio_util::sync::CancellationToken;

use crate::engines::{Engine, EngineKind};
use crate::schedule::START_MS;

const LEASE_MS: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn job(n: u64) -> CanonicalFact {
    let json = format!(r#"{{"type":"Job","fields":{{"n":{n}}},"predecessors":{{}}}}"#);
    CanonicalFact::from_json(json.as_bytes(), 65_536).expect("a valid fact")
}

async fn subscribe(engine: &Engine, name: &str) -> Arc<dyn Subscription> {
    let definition = cairn_delivery::SubscriptionDefinition::from_json(
        format!(r#"{{"type":"Job","lease_ms":{LEASE_MS}}}"#).as_bytes(),
    )
    .expect("a valid definition");
    engine
        .deliveries()
        .apply(name, definition, None)
        .await
        .expect("created")
        .0
}

async fn statuses(outcomes: Vec<cairn_delivery::TokenOutcome>) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|outcome| outcome.status.as_str())
        .collect()
}

/// The engines to run a test on: always memory, shared with PostgreSQL.
async fn engines(clock: &Clock) -> Vec<Engine> {
    let mut engines = vec![Engine::memory(clock.clone(), 1)];
    engines.extend(Engine::shared(clock.clone(), 1).await);
    engines
}

#[test]
fn a_restart_voids_leases_in_memory_and_keeps_them_on_postgresql() {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        let clock = Clock::simulated(START_MS);
        for mut engine in engines(&clock).await {
            subscribe(&engine, "jobs").await;
            engine.publish(vec![job(1)]).await;
            let jobs = engine.subscription("jobs").await;
            let before = jobs.pull(1, 0, None, &shutdown).await.unwrap();
            assert_eq!(before[0].attempt, 1);
            drop(jobs);
            clock.advance_ms(1_000);
            engine.restart();
            let jobs = engine.subscription("jobs").await;
            let old = vec![before[0].token.clone()];
            match engine.kind {
                EngineKind::Memory => {
                    // The lease was never recorded: the restart voided it,
                    // its token is not this incarnation's, and the message
                    // is delivered again at once with the same attempt.
                    assert_eq!(
                        statuses(jobs.extend(&old, None).await.unwrap()).await,
                        ["unknown"]
                    );
                    let after = jobs.pull(1, 0, None, &shutdown).await.unwrap();
                    assert_eq!((after.len(), after[0].attempt), (1, 1));
                    assert_ne!(after[0].token, before[0].token);
                    assert_eq!(statuses(jobs.ack(&old).await.unwrap()).await, ["unknown"]);
                    let view = jobs.view().await.unwrap();
                    assert_eq!((view.in_flight, view.delivered), (1, 1));
                }
                EngineKind::Shared => {
                    // The lease is a row: it outlives the server, and its
                    // token acts on the new one.
                    assert!(jobs.pull(1, 0, None, &shutdown).await.unwrap().is_empty());
                    let view = jobs.view().await.unwrap();
                    assert_eq!((view.in_flight, view.delivered), (1, 0));
                    assert_eq!(
                        statuses(jobs.extend(&old, None).await.unwrap()).await,
                        ["extended"]
                    );
                    assert_eq!(statuses(jobs.ack(&old).await.unwrap()).await, ["acked"]);
                }
            }
            engine.deliveries().delete("jobs").await.unwrap();
        }
    });
}

#[test]
fn counters_belong_to_the_server_that_delivered() {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        let clock = Clock::simulated(START_MS);
        let Some(engine) = Engine::shared(clock.clone(), 2).await else {
            return;
        };
        subscribe(&engine, "jobs").await;
        engine.publish(vec![job(1), job(2)]).await;
        let other_server = engine
            .another_server(SharedOptions {
                clock: Some(clock.clone()),
                secrets: TokenSecrets::seeded(2),
                expiry_interval: Duration::ZERO,
            })
            .expect("a shared engine");
        let here = engine.subscription("jobs").await;
        let there = other_server.get("jobs").await.unwrap();
        let mine = here.pull(1, 0, None, &shutdown).await.unwrap();
        let theirs = there.pull(1, 0, None, &shutdown).await.unwrap();
        assert_ne!(mine[0].seq, theirs[0].seq);
        let tokens = vec![theirs[0].token.clone()];
        assert_eq!(statuses(there.ack(&tokens).await.unwrap()).await, ["acked"]);
        let (here_view, there_view) = (here.view().await.unwrap(), there.view().await.unwrap());
        // The state is shared; the counters are each server's own.
        assert_eq!((here_view.in_flight, there_view.in_flight), (1, 1));
        assert_eq!((here_view.delivered, here_view.acked), (1, 0));
        assert_eq!((there_view.delivered, there_view.acked), (1, 1));
    });
}

#[test]
fn the_shared_engine_reads_the_database_clock_unless_given_one() {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        // A clock 25 years behind the database's.
        let past_ms = 1_000_000_000_000;
        let clock = Clock::simulated(past_ms);
        let Some(engine) = Engine::shared(clock.clone(), 3).await else {
            return;
        };
        subscribe(&engine, "jobs").await;
        engine.publish(vec![job(1)]).await;
        let jobs = engine.subscription("jobs").await;
        assert_eq!(jobs.pull(1, 0, None, &shutdown).await.unwrap().len(), 1);
        clock.advance_ms(1_234);
        assert_eq!(jobs.view().await.unwrap().oldest_unacked_age_ms, 1_234);
        // A production server reads the database's clock: to it, that
        // delivery happened 25 years ago, and its lease is long over.
        let production = engine
            .another_server(SharedOptions::default())
            .expect("a shared engine");
        let view = production.get("jobs").await.unwrap().view().await.unwrap();
        const YEAR_MS: u64 = 365 * 24 * 3_600_000;
        assert!(
            view.oldest_unacked_age_ms > 20 * YEAR_MS,
            "{}",
            view.oldest_unacked_age_ms
        );
        assert_eq!(view.in_flight, 0);
    });
}

//! The `CoordinationStore` contract, checked through the traits alone on
//! both backends (the `coordination_conformance!` macro runs every check
//! against the embedded store and against PostgreSQL, a fresh database per
//! test): claims won once, answered alike and released only by their
//! holder, each decision a fact in the log; leases granted, refused while
//! held, renewed and released, with fences that only grow; fenced writes
//! refused once a later grant exists; and everything still there after
//! the store is reopened. Many concurrent claimers and stores racing on
//! one database are in the PostgreSQL-only tests at the end.

#[macro_use]
mod both_backends;

use std::sync::Arc;

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    ClaimReleaseOutcome, CoordinationStore, EmbeddedOptions, EmbeddedStore, Fence, LeaseOutcome,
    LeaseRequest, PostgresOptions, PostgresStore, Store, WriteError,
};

fn fact(type_name: &str, fields: &str) -> CanonicalFact {
    let json = format!(r#"{{"type":"{type_name}","fields":{fields},"predecessors":{{}}}}"#);
    CanonicalFact::from_json(json.as_bytes(), 65536).unwrap()
}

async fn stored<S: Store>(store: &S, fields: &str) -> Hash {
    let fact = fact("Seat.Booking", fields);
    store.put_facts(vec![fact.clone()]).await.unwrap();
    fact.hash
}

fn acquire(name: &str, holder: &str, ttl_ms: u64) -> LeaseRequest {
    LeaseRequest::Acquire {
        name: name.into(),
        holder: holder.into(),
        ttl_ms,
    }
}

fn granted(outcome: LeaseOutcome) -> cairn_store::LeaseRecord {
    match outcome {
        LeaseOutcome::Granted(record) => record,
        other => panic!("expected a grant, got {other:?}"),
    }
}

async fn claims_have_one_winner_and_are_facts<S: Store + CoordinationStore>(store: &S) {
    let first = stored(store, r#"{"by":"ann"}"#).await;
    let second = stored(store, r#"{"by":"bob"}"#).await;
    let won = store.claim("seat 12A", first).await.unwrap();
    assert!(won.won);
    let holder = won.record.holder.clone().unwrap();
    assert_eq!((holder.fact, won.record.generation), (first, 1));
    // The decision is a fact in the log, naming the winner.
    let claimed = store.get_fact(&holder.claimed).await.unwrap().unwrap();
    assert_eq!(claimed.seq, holder.claimed_seq);
    let text = String::from_utf8(claimed.canonical).unwrap();
    assert!(text.contains(r#""type":"Cairn.Claimed""#), "{text}");
    assert!(text.contains(&first.to_hex()), "{text}");
    assert!(text.contains(store.deployment()), "{text}");

    let again = store.claim("seat 12A", first).await.unwrap();
    assert!(again.won, "claiming again with the winner is idempotent");
    assert_eq!(again.record, won.record);
    let lost = store.claim("seat 12A", second).await.unwrap();
    assert!(!lost.won);
    assert_eq!(lost.record.holder.unwrap().fact, first);
    assert_eq!(
        store.claim_record("seat 12A").await.unwrap(),
        Some(won.record.clone())
    );
    assert_eq!(store.claim_record("seat 12B").await.unwrap(), None);

    let missing = fact("Seat.Booking", r#"{"by":"nobody"}"#).hash;
    let last_seq = *store.watch_last_seq().borrow();
    assert!(matches!(
        store.claim("seat 14C", missing).await,
        Err(WriteError::MissingPredecessors { .. })
    ));
    assert_eq!(store.claim_record("seat 14C").await.unwrap(), None);
    assert_eq!(*store.watch_last_seq().borrow(), last_seq);
}

async fn only_the_holder_releases_and_a_new_claim_is_a_new_fact<S: Store + CoordinationStore>(
    store: &S,
) {
    let first = stored(store, r#"{"by":"ann"}"#).await;
    let second = stored(store, r#"{"by":"bob"}"#).await;
    let won = store.claim("username:ann", first).await.unwrap();
    assert!(matches!(
        store.release_claim("username:ann", second).await.unwrap(),
        ClaimReleaseOutcome::NotHolder(Some(_))
    ));
    let ClaimReleaseOutcome::Released(released) =
        store.release_claim("username:ann", first).await.unwrap()
    else {
        panic!("the holder releases");
    };
    assert_eq!(released.holder, None);
    // A retried release answers the same.
    assert_eq!(
        store.release_claim("username:ann", first).await.unwrap(),
        ClaimReleaseOutcome::Released(released.clone())
    );
    let release = released.released.clone().unwrap();
    let release_fact = store.get_fact(&release.released).await.unwrap().unwrap();
    assert!(String::from_utf8(release_fact.canonical)
        .unwrap()
        .contains("Cairn.ClaimReleased"));

    let second_win = store.claim("username:ann", second).await.unwrap();
    assert!(second_win.won);
    assert_eq!(second_win.record.generation, 2);
    assert_ne!(
        second_win.record.holder.unwrap().claimed,
        won.record.holder.unwrap().claimed
    );
    assert!(matches!(
        store.release_claim("never claimed", first).await.unwrap(),
        ClaimReleaseOutcome::NotHolder(None)
    ));
}

async fn leases_grant_refuse_renew_and_release_with_growing_fences<S: Store + CoordinationStore>(
    store: &S,
) {
    let now_ms = 1_000_000;
    let first = granted(
        store
            .update_lease(acquire("leader", "a", 60_000), now_ms)
            .await
            .unwrap(),
    );
    assert_eq!(first.fence, 1);
    let grant_fact = store.get_fact(&first.granted).await.unwrap().unwrap();
    assert!(String::from_utf8(grant_fact.canonical)
        .unwrap()
        .contains("Cairn.LeaseGranted"));
    let held = store
        .update_lease(acquire("leader", "b", 60_000), now_ms + 1)
        .await
        .unwrap();
    assert!(matches!(held, LeaseOutcome::Held(ref record) if record.holder == "a"));
    let renew = |fence| LeaseRequest::Renew {
        name: "leader".into(),
        holder: "a".into(),
        fence,
        ttl_ms: Some(120_000),
    };
    let renewed = granted(store.update_lease(renew(1), now_ms + 2).await.unwrap());
    assert_eq!(renewed.fence, 1);
    assert!(matches!(
        store.update_lease(renew(7), now_ms + 3).await.unwrap(),
        LeaseOutcome::Stale(Some(_))
    ));
    let release = LeaseRequest::Release {
        name: "leader".into(),
        holder: "a".into(),
        fence: 1,
    };
    let released = granted(store.update_lease(release, now_ms + 4).await.unwrap());
    assert!(released.released);
    let second = granted(
        store
            .update_lease(acquire("leader", "b", 60_000), now_ms + 5)
            .await
            .unwrap(),
    );
    assert_eq!(second.fence, 2);
    assert_eq!(
        store.lease_record("leader").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.lease_record("follower").await.unwrap(), None);
}

async fn a_fenced_write_is_refused_once_a_later_grant_exists<S: Store + CoordinationStore>(
    store: &S,
) {
    let first = granted(
        store
            .update_lease(acquire("job", "a", 100), 0)
            .await
            .unwrap(),
    );
    let fence = |fence| Fence {
        name: "job".into(),
        fence,
    };
    let written = fact("Job.Done", r#"{"n":1}"#);
    let outcomes = store
        .put_facts_fenced(vec![written.clone()], None, fence(first.fence))
        .await
        .unwrap();
    assert!(outcomes[0].inserted);
    // A later grant makes fence 1 stale: once the first expired (at once
    // on the embedded store, asked with a later time; within 100 ms on
    // PostgreSQL, which judges by the database's clock).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        match store
            .update_lease(acquire("job", "b", 60_000), 1_000_000)
            .await
            .unwrap()
        {
            LeaseOutcome::Granted(record) => break record,
            LeaseOutcome::Held(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => panic!("expected a grant, got {other:?}"),
        }
    };
    assert_eq!(second.fence, 2);
    let last_seq = *store.watch_last_seq().borrow();
    let refused = store
        .put_facts_fenced(
            vec![fact("Job.Done", r#"{"n":2}"#)],
            Some(Arc::from("old-leader")),
            fence(1),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(WriteError::StaleFence {
                fence: 1,
                current: Some(2),
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(*store.watch_last_seq().borrow(), last_seq, "nothing stored");
    assert!(store
        .put_facts_fenced(vec![fact("Job.Done", r#"{"n":3}"#)], None, fence(2))
        .await
        .is_ok());
    assert!(matches!(
        store
            .put_facts_fenced(vec![fact("Job.Done", r#"{"n":4}"#)], None, fence(3))
            .await,
        Err(WriteError::StaleFence { .. })
    ));
    assert!(matches!(
        store
            .put_facts_fenced(
                vec![fact("Job.Done", r#"{"n":5}"#)],
                None,
                Fence {
                    name: "no such lease".into(),
                    fence: 1
                }
            )
            .await,
        Err(WriteError::StaleFence { current: None, .. })
    ));
}

/// A claim, its release and another claim of the key, sent at once (on
/// PostgreSQL they are decided in one batch): decided in the order sent,
/// each answer naming the seqs its facts got.
async fn a_claim_its_release_and_the_next_claim_at_once_are_decided_in_order<
    S: Store + CoordinationStore,
>(
    store: &S,
) {
    let first = stored(store, r#"{"by":"ann"}"#).await;
    let second = stored(store, r#"{"by":"bob"}"#).await;
    let (won, released, next) = tokio::join!(
        store.claim("table 7", first),
        store.release_claim("table 7", first),
        store.claim("table 7", second),
    );
    let won = won.unwrap();
    assert!(won.won);
    assert_eq!(won.record.generation, 1);
    let ClaimReleaseOutcome::Released(released) = released.unwrap() else {
        panic!("the holder releases");
    };
    let next = next.unwrap();
    assert!(next.won);
    assert_eq!(next.record.generation, 2);
    let first_holder = won.record.holder.unwrap();
    let release = released.released.unwrap();
    let next_holder = next.record.holder.clone().unwrap();
    assert_eq!(next.record.released, Some(release.clone()));
    for (hash, seq) in [
        (first_holder.claimed, first_holder.claimed_seq),
        (release.released, release.released_seq),
        (next_holder.claimed, next_holder.claimed_seq),
    ] {
        assert_eq!(store.get_fact(&hash).await.unwrap().unwrap().seq, seq);
    }
    assert!(first_holder.claimed_seq < release.released_seq);
    assert!(release.released_seq < next_holder.claimed_seq);
    assert_eq!(
        store.claim_record("table 7").await.unwrap(),
        Some(next.record)
    );
}

both_backends!(
    claims_have_one_winner_and_are_facts,
    a_claim_its_release_and_the_next_claim_at_once_are_decided_in_order,
    only_the_holder_releases_and_a_new_claim_is_a_new_fact,
    leases_grant_refuse_renew_and_release_with_growing_fences,
    a_fenced_write_is_refused_once_a_later_grant_exists,
);

#[tokio::test]
async fn embedded_claims_leases_and_the_deployment_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let open = || EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let store = open();
    let deployment = store.deployment().to_string();
    assert_eq!(deployment.len(), 32);
    let winner = stored(&store, "{}").await;
    let claim = store.claim("k", winner).await.unwrap().record;
    let lease = granted(
        store
            .update_lease(acquire("l", "a", 1_000), 0)
            .await
            .unwrap(),
    );
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    let reopened = open();
    assert_eq!(reopened.deployment(), deployment);
    assert_eq!(reopened.claim_record("k").await.unwrap(), Some(claim));
    assert_eq!(reopened.lease_record("l").await.unwrap(), Some(lease));
    let next = granted(
        reopened
            .update_lease(acquire("l", "b", 1_000), 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(next.fence, 2, "fences keep growing across restarts");
    tokio::task::spawn_blocking(move || reopened.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_claimers_on_many_servers_see_exactly_one_winner() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            PostgresStore::connect(&database.url(), PostgresOptions::default())
                .await
                .unwrap(),
        );
    }
    assert_eq!(servers[0].deployment(), servers[2].deployment());
    let mut contenders = Vec::new();
    for n in 0..64 {
        contenders.push(stored(&servers[0], &format!(r#"{{"n":{n}}}"#)).await);
    }
    let claims = contenders
        .iter()
        .enumerate()
        .map(|(n, &fact)| servers[n % servers.len()].claim("last item", fact));
    let results = futures_util::future::join_all(claims).await;
    let winners: Vec<Hash> = results
        .iter()
        .map(|result| {
            result
                .as_ref()
                .unwrap()
                .record
                .holder
                .as_ref()
                .unwrap()
                .fact
        })
        .collect();
    assert!(winners.iter().all(|winner| *winner == winners[0]));
    let n_won = results
        .iter()
        .filter(|result| result.as_ref().unwrap().won)
        .count();
    assert_eq!(n_won, 1);
    let grants = (0..12).map(|n| {
        servers[n % servers.len()].update_lease(acquire("leader", &format!("h{n}"), 60_000), 0)
    });
    let outcomes = futures_util::future::join_all(grants).await;
    let n_granted = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(LeaseOutcome::Granted(_))))
        .count();
    assert_eq!(n_granted, 1, "{outcomes:?}");
    for server in servers {
        server.close();
    }
}

/// The `Cairn.Claimed` facts in the log, as (key, generation) → count.
async fn claimed_facts_by_key_and_generation(
    store: &PostgresStore,
) -> std::collections::HashMap<(String, u64), usize> {
    let mut counts = std::collections::HashMap::new();
    let mut after_seq = 0;
    for _ in 0..1_000 {
        let page = store.log(after_seq, 1_000).await.unwrap();
        if page.facts.is_empty() {
            return counts;
        }
        after_seq = page.next_seq;
        for stored in page.facts {
            let fact: serde_json::Value = serde_json::from_slice(&stored.canonical).unwrap();
            if fact["type"] == "Cairn.Claimed" {
                let key = fact["fields"]["key"].as_str().unwrap().to_string();
                let generation = fact["fields"]["generation"].as_u64().unwrap();
                *counts.entry((key, generation)).or_insert(0) += 1;
            }
        }
    }
    panic!("the log did not end within 1,000 pages");
}

/// Many claims of a few keys at once, through two stores on one database
/// (each batching its own, decided optimistically with the locked path as
/// fallback): in every round each key has exactly one winner, every answer
/// names it, and its generation follows the last release; a claim of a
/// fact that is not stored fails alone, leaving the rest of its batch
/// decided.
#[tokio::test]
async fn postgres_batched_claims_on_two_stores_have_one_winner_per_key_and_generation() {
    batched_claims_on_two_stores(PostgresOptions::default()).await;
}

/// The same, every batch decided under the row locks of its keys, two
/// batches of a store at once.
#[tokio::test]
async fn postgres_locked_claim_batches_on_two_stores_have_one_winner_per_key_and_generation() {
    let mut options = PostgresOptions::default();
    options.claims.optimistic_attempts_max = 0;
    options.claims.batches_in_flight_max = 2;
    batched_claims_on_two_stores(options).await;
}

/// The same, optimistic, with small batches and three of a store at once,
/// so that a store's own batches conflict too.
#[tokio::test]
async fn postgres_concurrent_claim_batches_of_one_store_have_one_winner_per_key_and_generation() {
    let mut options = PostgresOptions::default();
    options.claims.batches_in_flight_max = 3;
    options.claims.batch_claims_max = 4;
    batched_claims_on_two_stores(options).await;
}

async fn batched_claims_on_two_stores(options: PostgresOptions) {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..2 {
        stores.push(
            PostgresStore::connect(&database.url(), options.clone())
                .await
                .unwrap(),
        );
    }
    const KEYS: [&str; 4] = ["seat 1", "seat 2", "seat 3", "seat 4"];
    const ROUNDS: u64 = 3;
    let mut contenders = Vec::new();
    for n in 0..16 {
        contenders.push(stored(&stores[0], &format!(r#"{{"n":{n}}}"#)).await);
    }
    let missing = fact("Seat.Booking", r#"{"by":"nobody"}"#).hash;
    for round in 1..=ROUNDS {
        // Every contender claims every key, alternating stores, with two
        // claims of a fact that is not stored among them: one of a key
        // nobody else claims, one of a contended key.
        let mut claims = Vec::new();
        for (n, &fact) in contenders.iter().enumerate() {
            for (k, key) in KEYS.iter().enumerate() {
                claims.push((stores[(n + k) % 2].claim(key, fact), (Some(k), fact)));
            }
            if n == 5 {
                claims.push((stores[0].claim("nobody's", missing), (None, missing)));
                claims.push((stores[1].claim(KEYS[0], missing), (Some(0), missing)));
            }
        }
        let (futures, claimed): (Vec<_>, Vec<_>) = claims.into_iter().unzip();
        let results = futures_util::future::join_all(futures).await;
        let mut winners: Vec<Option<Hash>> = vec![None; KEYS.len()];
        for (result, (key, claimant)) in results.iter().zip(&claimed) {
            let Some(k) = key else {
                assert!(
                    matches!(result, Err(WriteError::MissingPredecessors { missing: m }) if m == &vec![missing]),
                    "{result:?}"
                );
                continue;
            };
            let outcome = match result {
                // The missing fact on a contended key: refused if it came
                // first in its batch, answered as held otherwise.
                Err(WriteError::MissingPredecessors { missing: m })
                    if *claimant == missing && m == &vec![missing] =>
                {
                    continue
                }
                other => other.as_ref().unwrap(),
            };
            assert_eq!(outcome.record.generation, round, "{outcome:?}");
            let holder = outcome.record.holder.as_ref().unwrap();
            assert_ne!(holder.fact, missing);
            match winners[*k] {
                None => winners[*k] = Some(holder.fact),
                Some(winner) => assert_eq!(holder.fact, winner, "one winner per key"),
            }
            assert_eq!(outcome.won, holder.fact == *claimant);
            let claimed = stores[0].get_fact(&holder.claimed).await.unwrap().unwrap();
            assert_eq!(claimed.seq, holder.claimed_seq);
        }
        let n_won: Vec<usize> = (0..KEYS.len())
            .map(|k| {
                results
                    .iter()
                    .zip(&claimed)
                    .filter(|(result, (key, _))| {
                        *key == Some(k) && result.as_ref().is_ok_and(|outcome| outcome.won)
                    })
                    .count()
            })
            .collect();
        assert_eq!(
            n_won,
            vec![1; KEYS.len()],
            "each winner claimed each key once"
        );
        assert_eq!(stores[1].claim_record("nobody's").await.unwrap(), None);
        // The winners release, on the other store, beside refused releases.
        let releases = KEYS.iter().enumerate().flat_map(|(k, key)| {
            let winner = winners[k].unwrap();
            let loser = *contenders.iter().find(|&&c| c != winner).unwrap();
            [
                stores[1].release_claim(key, loser),
                stores[1].release_claim(key, winner),
            ]
        });
        let released = futures_util::future::join_all(releases).await;
        for pair in released.chunks(2) {
            assert!(
                matches!(pair[0], Ok(ClaimReleaseOutcome::NotHolder(_))),
                "{pair:?}"
            );
            assert!(
                matches!(pair[1], Ok(ClaimReleaseOutcome::Released(_))),
                "{pair:?}"
            );
        }
    }
    let counts = claimed_facts_by_key_and_generation(&stores[0]).await;
    assert_eq!(counts.len(), KEYS.len() * ROUNDS as usize, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    for store in stores {
        store.close();
    }
}

/// A closed store answers a claim `Closed` instead of leaving it waiting.
#[tokio::test]
async fn postgres_claims_after_close_are_refused() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    let fact = stored(&store, "{}").await;
    assert!(store.claim("k", fact).await.unwrap().won);
    store.close();
    let refused = tokio::time::timeout(std::time::Duration::from_secs(60), store.claim("k", fact))
        .await
        .expect("answered");
    assert!(matches!(refused, Err(WriteError::Closed)), "{refused:?}");
}

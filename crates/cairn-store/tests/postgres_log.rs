//! The PostgreSQL log under concurrent writers (migration 13's tickets):
//! several tasks write overlapping batches — facts every writer writes,
//! predecessor chains inside a batch and across batches, single facts —
//! while readers page the log. Whatever the interleaving, the log must be
//! dense and gap-free, a fact written by several writers must get one seq
//! for all of them, predecessors must come before their successors, and a
//! reader must never see a gap or a fact appear below a seq it has already
//! passed. Also: blocks reserved by a transaction that rolled back, or left
//! half-used by a deduplicated batch, never become gaps. Each test makes its
//! own database (`CAIRN_TEST_POSTGRES=skip` skips them).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{PostgresOptions, PostgresStore, PutOutcome, Store, WriteError};

const WRITERS: u64 = 6;
const ROUNDS: u64 = 30;
/// Attempts of one batch when the store reports itself unavailable (a
/// writer that gave way more often than the store retries it).
const ATTEMPTS_MAX: u32 = 20;
/// Pages a reader reads at most (bounds its loop whatever happens).
const READER_PAGES_MAX: u32 = 1_000_000;

fn fact(
    type_name: &str,
    fields: serde_json::Value,
    predecessors: &[(&str, Hash)],
) -> CanonicalFact {
    let predecessors: serde_json::Map<String, serde_json::Value> = predecessors
        .iter()
        .map(|(role, hash)| {
            (
                role.to_string(),
                serde_json::Value::String(hash.to_string()),
            )
        })
        .collect();
    let json = serde_json::json!({
        "type": type_name,
        "fields": fields,
        "predecessors": predecessors,
    });
    CanonicalFact::from_json(json.to_string().as_bytes(), 65_536).unwrap()
}

async fn connect(database: &TestDatabase) -> PostgresStore {
    PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .expect("the test database accepts connections")
}

/// Writes `facts`, again while the store reports itself unavailable.
async fn put(store: &PostgresStore, facts: Vec<CanonicalFact>) -> Vec<PutOutcome> {
    let mut attempt = 1;
    loop {
        match store.put_facts(facts.clone()).await {
            Ok(outcomes) => return outcomes,
            Err(WriteError::Unavailable { message, .. }) if attempt < ATTEMPTS_MAX => {
                eprintln!("attempt {attempt}: {message}");
                attempt += 1;
            }
            Err(error) => panic!("write failed: {error}"),
        }
    }
}

/// The whole log, checked dense from seq 1.
async fn whole_log(store: &PostgresStore) -> Vec<(u64, CanonicalFact)> {
    let mut facts = Vec::new();
    let mut after = 0;
    loop {
        let page = store.log(after, 1_000).await.expect("the log reads");
        if page.facts.is_empty() {
            return facts;
        }
        for stored in page.facts {
            assert_eq!(stored.seq, after + 1, "the log is dense");
            after = stored.seq;
            let canonical = CanonicalFact::from_json(&stored.canonical, 65_536).unwrap();
            facts.push((stored.seq, canonical));
        }
    }
}

async fn head(store: &PostgresStore) -> u64 {
    let head: i64 = sqlx::query_scalar("SELECT last_seq FROM cairn_log_head")
        .fetch_one(store.pool())
        .await
        .unwrap();
    head as u64
}

/// Checks the final log: dense (by `whole_log`), the head at its end,
/// each hash once, predecessors before successors, and every seq a writer
/// was told is the fact's seq in the log.
async fn check_log(store: &PostgresStore, told: &[(Hash, u64)]) -> BTreeMap<u64, Hash> {
    let log = whole_log(store).await;
    assert_eq!(
        head(store).await,
        log.len() as u64,
        "the head is the log's end"
    );
    let mut seq_of: HashMap<Hash, u64> = HashMap::new();
    for (seq, fact) in &log {
        assert!(
            seq_of.insert(fact.hash, *seq).is_none(),
            "each fact is stored once"
        );
        for (role, predecessor) in fact.fact.all_predecessors() {
            let before = seq_of.get(predecessor).copied();
            assert!(
                before.is_some_and(|before| before < *seq),
                "predecessor {role} of seq {seq} is stored before it (at {before:?})"
            );
        }
    }
    for (hash, seq) in told {
        assert_eq!(
            seq_of.get(hash),
            Some(seq),
            "the seq a writer was told is the fact's"
        );
    }
    log.into_iter()
        .map(|(seq, fact)| (seq, fact.hash))
        .collect()
}

/// One writer's batches: its own chain (each link's predecessor the link
/// before, in the same batch or an earlier one), facts every writer writes
/// (the same in every writer, with predecessors among themselves), and a
/// single fact now and then. Returns every (hash, seq) it was told.
async fn writer(store: Arc<PostgresStore>, id: u64) -> Vec<(Hash, u64)> {
    let mut told = Vec::new();
    let mut link: Option<Hash> = None;
    let mut shared_before: Option<Hash> = None;
    for round in 0..ROUNDS {
        let mut batch = Vec::new();
        // Shared facts: the same in every writer, each round's first one
        // succeeding the previous round's last.
        for k in 0..3 {
            let predecessors: Vec<(&str, Hash)> =
                shared_before.iter().map(|h| ("before", *h)).collect();
            let shared = fact(
                "Shared",
                serde_json::json!({"round": round, "k": k}),
                &predecessors,
            );
            shared_before = Some(shared.hash);
            batch.push(shared);
        }
        // The writer's own chain, after the shared ones; now and then a
        // batch repeats only what other writers write too.
        let own_links = if (round + id) % 7 == 3 {
            0
        } else {
            1 + (round + id) % 5
        };
        for k in 0..own_links {
            let predecessors: Vec<(&str, Hash)> = link.iter().map(|h| ("prev", *h)).collect();
            let own = fact(
                "Link",
                serde_json::json!({"writer": id, "round": round, "k": k}),
                &predecessors,
            );
            link = Some(own.hash);
            batch.push(own);
        }
        // A successor of a shared fact, the same in every writer.
        batch.push(fact(
            "SharedChild",
            serde_json::json!({"round": round}),
            &[("parent", shared_before.unwrap())],
        ));
        for outcome in put(&store, batch).await {
            told.push((outcome.hash, outcome.seq));
        }
        // A single fact, shared by half the writers.
        if round % 3 == 0 {
            let single = fact(
                "Single",
                serde_json::json!({"round": round, "half": id % 2}),
                &[],
            );
            for outcome in put(&store, vec![single]).await {
                told.push((outcome.hash, outcome.seq));
            }
        }
    }
    told
}

/// Pages the log until told to stop and then to the end; returns every
/// (seq, hash) it saw. `log` itself fails on a gap inside a page; across
/// pages each page must start right after the last seq seen.
async fn reader(
    store: Arc<PostgresStore>,
    stop: Arc<AtomicBool>,
    limit: usize,
) -> BTreeMap<u64, Hash> {
    let mut seen = BTreeMap::new();
    let mut after = 0;
    let mut last_round = false;
    for _ in 0..READER_PAGES_MAX {
        let page = store
            .log(after, limit)
            .await
            .expect("a reader never meets a gap");
        if page.facts.is_empty() {
            if last_round {
                return seen;
            }
            last_round = stop.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for stored in page.facts {
            assert_eq!(
                stored.seq,
                after + 1,
                "a page starts where the reader stopped"
            );
            after = stored.seq;
            seen.insert(stored.seq, stored.hash);
        }
    }
    panic!("the reader read {READER_PAGES_MAX} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_the_log_dense_ordered_and_agreed() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = Arc::new(connect(&database).await);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [1usize, 7, 100]
        .into_iter()
        .map(|limit| tokio::spawn(reader(store.clone(), stop.clone(), limit)))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(store.clone(), id)))
        .collect();
    let mut told = Vec::new();
    for writer in writers {
        told.extend(writer.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let log = check_log(&store, &told).await;
    // How often blocks were left partly unused (a deduplicated batch, a
    // writer that gave way): informative, it depends on timing.
    let (tickets, given_back): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT last_value FROM cairn_log_tickets),
                (SELECT last_value FROM cairn_log_given_back)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!(
        "{} facts, {tickets} tickets, {given_back} slots given back",
        log.len()
    );
    // Every writer wrote the shared facts: they were told one seq each.
    let shared: HashMap<Hash, u64> = told.iter().copied().collect();
    for (hash, seq) in &told {
        assert_eq!(
            shared[hash], *seq,
            "writers of the same fact get the same seq"
        );
    }
    for reader in readers {
        let seen = reader.await.unwrap();
        // The reader went to the end, and every seq it passed holds, in the
        // final log, the fact it saw there: nothing appeared behind it.
        assert_eq!(seen, log, "a reader saw the log as it is");
    }
}

#[tokio::test]
async fn a_rolled_back_reservation_leaves_no_gap() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = connect(&database).await;
    let first = fact("Before", serde_json::json!({}), &[]);
    put(&store, vec![first.clone()]).await;
    // A transaction reserves a block of three and publishes, then rolls
    // back: its block is never used.
    let doomed: Vec<CanonicalFact> = (0..3)
        .map(|n| fact("Doomed", serde_json::json!({"n": n}), &[]))
        .collect();
    let mut transaction = store.pool().begin().await.unwrap();
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT fact_seq FROM cairn_put_facts($1, $2, $3, '{}', '{}', '{}', '{}')",
    )
    .bind(
        doomed
            .iter()
            .map(|f| f.hash.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        doomed
            .iter()
            .map(|f| f.fact.type_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        doomed
            .iter()
            .map(|f| f.canonical.clone())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *transaction)
    .await
    .unwrap();
    assert_eq!(seqs, vec![2, 3, 4]);
    transaction.rollback().await.unwrap();
    // The next batch (one fact already stored, one of the rolled back
    // ones, one new) is numbered from the head.
    let outcomes = put(
        &store,
        vec![
            first.clone(),
            doomed[1].clone(),
            fact("After", serde_json::json!({}), &[]),
        ],
    )
    .await;
    let seqs: Vec<(u64, bool)> = outcomes.iter().map(|o| (o.seq, o.inserted)).collect();
    assert_eq!(seqs, vec![(1, false), (2, true), (3, true)]);
    let told: Vec<(Hash, u64)> = outcomes.iter().map(|o| (o.hash, o.seq)).collect();
    assert_eq!(check_log(&store, &told).await.len(), 3);
}

#[tokio::test]
async fn a_batch_that_meets_a_concurrent_writer_of_its_facts_leaves_no_gap() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = connect(&database).await;
    let facts: Vec<CanonicalFact> = (0..4)
        .map(|n| fact("Raced", serde_json::json!({"n": n}), &[]))
        .collect();
    // A transaction writes facts 1 and 3 and holds its commit; a batch of
    // all four, started meanwhile, meets them in flight. In any order the
    // log ends dense with every fact once.
    let mut transaction = store.pool().begin().await.unwrap();
    let held = [&facts[1], &facts[3]];
    let _: Vec<i64> = sqlx::query_scalar(
        "SELECT fact_seq FROM cairn_put_facts($1, $2, $3, '{}', '{}', '{}', '{}')",
    )
    .bind(
        held.iter()
            .map(|f| f.hash.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        held.iter()
            .map(|f| f.fact.type_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(held.iter().map(|f| f.canonical.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *transaction)
    .await
    .unwrap();
    let store = Arc::new(store);
    let racing = {
        let (store, facts) = (store.clone(), facts.clone());
        tokio::spawn(async move { put(&store, facts).await })
    };
    // Give the batch time to reach the held facts (the outcome does not
    // depend on whether it did).
    tokio::time::sleep(Duration::from_millis(100)).await;
    transaction.commit().await.unwrap();
    let outcomes = racing.await.unwrap();
    let told: Vec<(Hash, u64)> = outcomes.iter().map(|o| (o.hash, o.seq)).collect();
    let log = check_log(&store, &told).await;
    assert_eq!(log.len(), 4);
    assert_eq!(outcomes.iter().filter(|o| o.inserted).count(), 2);
}

//! The `TimerStore` contract, checked through the trait alone on both
//! backends (the `timer_conformance!` macro runs every check against the
//! embedded store and against PostgreSQL, a fresh database per test):
//! definitions put, replaced, listed and deleted; the due timers read from
//! the time index, earliest first and bounded; progress as a
//! compare-and-set that never moves backwards and never resurrects a
//! deleted timer; claims shared between PostgreSQL servers; and timers
//! still there after the embedded store is reopened.

#[macro_use]
mod both_backends;

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    EmbeddedOptions, EmbeddedStore, PostgresOptions, PostgresStore, Store, TimerProgress, TimerPut,
    TimerRecord, TimerStore,
};

/// An attempt time in the past on every clock.
const PAST_MS: u64 = 1_000;
/// An attempt time no test reaches (the year 2200).
const FUTURE_MS: u64 = 7_258_118_400_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn record(name: &str, definition: &str, attempt_at_ms: Option<u64>) -> TimerRecord {
    TimerRecord {
        name: name.to_string(),
        definition_json: definition.to_string(),
        generation: 0,
        next_due_ms: attempt_at_ms,
        attempt_at_ms,
        last_fired_ms: None,
        last_error: None,
    }
}

fn progress(
    stored: &TimerRecord,
    fired_ms: Option<u64>,
    next_due_ms: Option<u64>,
) -> TimerProgress {
    TimerProgress {
        name: stored.name.clone(),
        generation: stored.generation,
        from_due_ms: stored.next_due_ms,
        fired_ms,
        next_due_ms,
        attempt_at_ms: next_due_ms,
        last_error: None,
    }
}

async fn definitions_are_put_replaced_listed_and_deleted<S: TimerStore>(store: &S) {
    let (put, created) = store
        .put_timer(record("b", "{\"v\":1}", Some(PAST_MS)))
        .await
        .unwrap();
    assert_eq!(put, TimerPut::Created);
    assert_eq!(created.generation, 1);
    let (put, same) = store
        .put_timer(record("b", "{\"v\":1}", Some(FUTURE_MS)))
        .await
        .unwrap();
    assert_eq!(put, TimerPut::Unchanged);
    assert_eq!(same, created, "an unchanged put keeps the stored record");
    // Progress, then a replacement keeps the last firing.
    assert_eq!(
        store
            .record_timer_progress(vec![progress(&created, Some(PAST_MS), Some(FUTURE_MS))])
            .await
            .unwrap(),
        1
    );
    let (put, replaced) = store
        .put_timer(record("b", "{\"v\":2}", Some(PAST_MS + 1)))
        .await
        .unwrap();
    assert_eq!(put, TimerPut::Replaced);
    assert_eq!(replaced.generation, 2);
    assert_eq!(replaced.last_fired_ms, Some(PAST_MS));
    assert_eq!(replaced.next_due_ms, Some(PAST_MS + 1));
    assert_eq!(store.timer("b").await.unwrap(), Some(replaced.clone()));
    for name in ["a", "c", "d"] {
        store.put_timer(record(name, "{}", None)).await.unwrap();
    }
    let names = |records: Vec<TimerRecord>| -> Vec<String> {
        records.into_iter().map(|record| record.name).collect()
    };
    assert_eq!(
        names(store.timers(None, 10).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    assert_eq!(names(store.timers(None, 2).await.unwrap()), ["a", "b"]);
    assert_eq!(
        names(store.timers(Some("b"), 10).await.unwrap()),
        ["c", "d"]
    );
    assert!(store.delete_timer("c").await.unwrap());
    assert!(!store.delete_timer("c").await.unwrap());
    assert_eq!(store.timer("c").await.unwrap(), None);
    assert_eq!(
        names(store.timers(Some("a"), 10).await.unwrap()),
        ["b", "d"]
    );
}

async fn due_timers_come_from_the_index_earliest_first<S: TimerStore>(store: &S) {
    assert_eq!(store.next_timer_attempt_ms().await.unwrap(), None);
    for (name, attempt) in [
        ("late", Some(FUTURE_MS)),
        ("second", Some(PAST_MS + 5)),
        ("first", Some(PAST_MS)),
        ("never", None),
        ("third", Some(PAST_MS + 9)),
    ] {
        store.put_timer(record(name, "{}", attempt)).await.unwrap();
    }
    assert_eq!(store.next_timer_attempt_ms().await.unwrap(), Some(PAST_MS));
    assert_eq!(store.pending_timers().await.unwrap(), 4);
    let due = store.claim_due_timers(now_ms(), 60_000, 2).await.unwrap();
    let names: Vec<&str> = due.timers.iter().map(|timer| timer.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert!(due.now_ms >= now_ms() - 60_000, "now is a real time");
    let due = store.claim_due_timers(now_ms(), 60_000, 100).await.unwrap();
    let names: Vec<&str> = due.timers.iter().map(|timer| timer.name.as_str()).collect();
    assert!(
        names.contains(&"third") && !names.contains(&"late") && !names.contains(&"never"),
        "{names:?}"
    );
}

async fn progress_is_a_compare_and_set_that_never_goes_back<S: TimerStore>(store: &S) {
    let (_, stored) = store
        .put_timer(record("t", "{}", Some(PAST_MS)))
        .await
        .unwrap();
    let mut stale_generation = progress(&stored, Some(PAST_MS), Some(PAST_MS + 60));
    stale_generation.generation += 1;
    let mut stale_due = progress(&stored, Some(PAST_MS), Some(PAST_MS + 60));
    stale_due.from_due_ms = Some(PAST_MS - 1);
    assert_eq!(
        store
            .record_timer_progress(vec![stale_generation, stale_due])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.timer("t").await.unwrap(), Some(stored.clone()));
    // One applies; the same again (a second server's pass) does not.
    let first = progress(&stored, Some(PAST_MS), Some(PAST_MS + 60));
    assert_eq!(
        store
            .record_timer_progress(vec![first.clone()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.record_timer_progress(vec![first]).await.unwrap(), 0);
    let now = store.timer("t").await.unwrap().unwrap();
    assert_eq!(
        (now.last_fired_ms, now.next_due_ms, now.attempt_at_ms),
        (Some(PAST_MS), Some(PAST_MS + 60), Some(PAST_MS + 60))
    );
    // A failure keeps the occurrence, moves the attempt and shows why.
    let failed = TimerProgress {
        fired_ms: None,
        next_due_ms: now.next_due_ms,
        attempt_at_ms: Some(FUTURE_MS),
        last_error: Some("missing".into()),
        ..progress(&now, None, None)
    };
    assert_eq!(store.record_timer_progress(vec![failed]).await.unwrap(), 1);
    let now = store.timer("t").await.unwrap().unwrap();
    assert_eq!(now.last_error.as_deref(), Some("missing"));
    assert_eq!(
        now.last_fired_ms,
        Some(PAST_MS),
        "last fired never moves back"
    );
    assert_eq!(
        store.next_timer_attempt_ms().await.unwrap(),
        Some(FUTURE_MS)
    );
    // Done: no attempt left, nothing pending.
    assert_eq!(
        store
            .record_timer_progress(vec![progress(&now, Some(PAST_MS + 60), None)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.pending_timers().await.unwrap(), 0);
    assert_eq!(store.next_timer_attempt_ms().await.unwrap(), None);
    // A deleted timer is not resurrected by a late pass.
    let (_, doomed) = store
        .put_timer(record("doomed", "{}", Some(PAST_MS)))
        .await
        .unwrap();
    assert!(store.delete_timer("doomed").await.unwrap());
    assert_eq!(
        store
            .record_timer_progress(vec![progress(&doomed, Some(PAST_MS), Some(PAST_MS + 1))])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.timer("doomed").await.unwrap(), None);
    assert!(store
        .claim_due_timers(now_ms(), 60_000, 100)
        .await
        .unwrap()
        .timers
        .is_empty());
}

both_backends!(
    definitions_are_put_replaced_listed_and_deleted,
    due_timers_come_from_the_index_earliest_first,
    progress_is_a_compare_and_set_that_never_goes_back,
);

#[tokio::test]
async fn postgres_servers_share_the_due_timers_through_claims() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let first = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    let second = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    for index in 0..10 {
        first
            .put_timer(record(&format!("t{index}"), "{}", Some(PAST_MS + index)))
            .await
            .unwrap();
    }
    let claimed = first.claim_due_timers(0, 60_000, 6).await.unwrap();
    assert_eq!(claimed.timers.len(), 6);
    let rest = second.claim_due_timers(0, 60_000, 100).await.unwrap();
    assert_eq!(rest.timers.len(), 4, "claimed timers are not claimed again");
    let mut names: Vec<String> = claimed
        .timers
        .iter()
        .chain(&rest.timers)
        .map(|t| t.name.clone())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 10);
    assert!(second
        .claim_due_timers(0, 60_000, 100)
        .await
        .unwrap()
        .timers
        .is_empty());
    // A claim runs out: with a claim of 0 ms they are due again at once.
    let expired = first.claim_due_timers(0, 0, 100).await.unwrap();
    assert!(expired.timers.is_empty(), "the 60 s claims still hold");
    first.close();
    second.close();
}

#[tokio::test]
async fn embedded_timers_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let (_, stored) = store
        .put_timer(record("kept", "{\"k\":1}", Some(PAST_MS)))
        .await
        .unwrap();
    store
        .record_timer_progress(vec![progress(&stored, Some(PAST_MS), Some(PAST_MS + 7))])
        .await
        .unwrap();
    store
        .put_timer(record("gone", "{}", Some(PAST_MS)))
        .await
        .unwrap();
    store.delete_timer("gone").await.unwrap();
    assert_eq!(store.pending_timers().await.unwrap(), 1);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(
        store.pending_timers().await.unwrap(),
        1,
        "the pending count is counted again at open"
    );
    let kept = store.timer("kept").await.unwrap().unwrap();
    assert_eq!(
        (kept.generation, kept.last_fired_ms, kept.next_due_ms),
        (1, Some(PAST_MS), Some(PAST_MS + 7))
    );
    assert_eq!(store.timer("gone").await.unwrap(), None);
    let due = store.claim_due_timers(now_ms(), 0, 10).await.unwrap();
    assert_eq!(due.timers, vec![kept]);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

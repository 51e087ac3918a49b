//! The `LinkStore` contract, checked through the trait alone on both
//! backends (`both_backends!` runs every shared check against the embedded
//! store and against PostgreSQL, a fresh database per test): links
//! created, left unchanged and replaced (next generation, incarnation,
//! progress and pause kept); read one by one and listed by name in pages;
//! deleted, after which progress for them is refused, also once made again
//! as another incarnation; paused and resumed; progress saved and read
//! back. Then each backend's claims — PostgreSQL's between runners, by the
//! database's clock; the embedded store's granted to any runner of an
//! existing incarnation — links still there after the embedded store is
//! reopened, and a record's `Debug` that never shows its definition.

#[macro_use]
mod both_backends;

use std::time::{Duration, Instant};

use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    EmbeddedOptions, EmbeddedStore, LinkPut, LinkRecord, LinkStore, PostgresOptions, PostgresStore,
    Store,
};

/// A definition holding a credential, as the server's would.
const DEFINITION: &str = r#"{"source":"https://a.example","token":"s3cret-token"}"#;
const OTHER_DEFINITION: &str = r#"{"source":"https://b.example","token":"s3cret-token"}"#;

fn names(records: Vec<LinkRecord>) -> Vec<String> {
    records.into_iter().map(|record| record.name).collect()
}

async fn links_are_created_left_unchanged_and_replaced<S: LinkStore>(store: &S) {
    let (put, created) = store.put_link("l", DEFINITION, "inc-1").await.unwrap();
    assert_eq!(put, LinkPut::Created);
    assert_eq!(
        created,
        LinkRecord {
            name: "l".into(),
            definition_json: DEFINITION.into(),
            incarnation: "inc-1".into(),
            generation: 1,
            paused: false,
            progress_json: None,
            runner: None,
        }
    );
    assert_eq!(store.link("l").await.unwrap(), Some(created.clone()));
    let (put, same) = store.put_link("l", DEFINITION, "inc-2").await.unwrap();
    assert_eq!(put, LinkPut::Unchanged);
    assert_eq!(same, created, "an unchanged put keeps the stored record");
    // Progress and a pause, then a new definition keeps both.
    assert!(store
        .claim_link("l", "inc-1", "runner-a", 60_000)
        .await
        .unwrap());
    assert!(store
        .save_link_progress("l", "inc-1", "runner-a", r#"{"bookmark":7}"#)
        .await
        .unwrap());
    store.set_link_paused("l", true).await.unwrap().unwrap();
    let (put, replaced) = store
        .put_link("l", OTHER_DEFINITION, "inc-3")
        .await
        .unwrap();
    assert_eq!(put, LinkPut::Replaced);
    assert_eq!(replaced.definition_json, OTHER_DEFINITION);
    assert_eq!(replaced.generation, 2);
    assert_eq!(replaced.incarnation, "inc-1", "the incarnation is kept");
    assert_eq!(replaced.progress_json.as_deref(), Some(r#"{"bookmark":7}"#));
    assert!(replaced.paused, "the pause is kept");
    assert_eq!(store.link("l").await.unwrap(), Some(replaced.clone()));
    // The old definition again is a change too.
    let (put, again) = store.put_link("l", DEFINITION, "inc-4").await.unwrap();
    assert_eq!(put, LinkPut::Replaced);
    assert_eq!((again.generation, again.incarnation.as_str()), (3, "inc-1"));
}

async fn links_are_read_and_listed_by_name_in_pages<S: LinkStore>(store: &S) {
    assert_eq!(store.link("absent").await.unwrap(), None);
    assert!(store.links(None, 10).await.unwrap().is_empty());
    for name in ["d", "b", "a", "c", "b.x"] {
        store.put_link(name, "{}", name).await.unwrap();
    }
    assert_eq!(
        names(store.links(None, 10).await.unwrap()),
        ["a", "b", "b.x", "c", "d"]
    );
    assert_eq!(names(store.links(None, 2).await.unwrap()), ["a", "b"]);
    assert_eq!(
        names(store.links(Some("b"), 2).await.unwrap()),
        ["b.x", "c"]
    );
    assert_eq!(names(store.links(Some("c"), 10).await.unwrap()), ["d"]);
    assert!(store.links(Some("d"), 10).await.unwrap().is_empty());
    assert_eq!(
        names(store.links(Some("0"), 1).await.unwrap()),
        ["a"],
        "`after` need not be a stored name"
    );
    assert!(store.links(None, 0).await.unwrap().is_empty());
    let listed = store.links(Some("a"), 1).await.unwrap();
    assert_eq!(listed, vec![store.link("b").await.unwrap().unwrap()]);
}

async fn deleted_links_refuse_progress_even_when_made_again<S: LinkStore>(store: &S) {
    store.put_link("l", DEFINITION, "inc-1").await.unwrap();
    store.put_link("kept", "{}", "inc-k").await.unwrap();
    assert!(store
        .claim_link("l", "inc-1", "runner-a", 60_000)
        .await
        .unwrap());
    assert!(store.delete_link("l").await.unwrap());
    assert!(!store.delete_link("l").await.unwrap());
    assert!(!store.delete_link("never").await.unwrap());
    assert_eq!(store.link("l").await.unwrap(), None);
    assert_eq!(names(store.links(None, 10).await.unwrap()), ["kept"]);
    assert!(!store
        .save_link_progress("l", "inc-1", "runner-a", "{}")
        .await
        .unwrap());
    assert!(!store
        .claim_link("l", "inc-1", "runner-a", 60_000)
        .await
        .unwrap());
    assert_eq!(store.link("l").await.unwrap(), None, "nothing resurrected");
    // Made again: another incarnation, a fresh record.
    let (put, remade) = store.put_link("l", DEFINITION, "inc-2").await.unwrap();
    assert_eq!(put, LinkPut::Created);
    assert_eq!(
        (remade.incarnation.as_str(), remade.generation),
        ("inc-2", 1)
    );
    assert_eq!(remade.progress_json, None);
    assert!(!store
        .claim_link("l", "inc-1", "runner-a", 60_000)
        .await
        .unwrap());
    assert!(!store
        .save_link_progress("l", "inc-1", "runner-a", r#"{"stale":true}"#)
        .await
        .unwrap());
    assert_eq!(store.link("l").await.unwrap().unwrap().progress_json, None);
    assert!(store
        .claim_link("l", "inc-2", "runner-a", 60_000)
        .await
        .unwrap());
    assert!(store
        .save_link_progress("l", "inc-2", "runner-a", r#"{"fresh":true}"#)
        .await
        .unwrap());
    assert_eq!(
        store
            .link("l")
            .await
            .unwrap()
            .unwrap()
            .progress_json
            .as_deref(),
        Some(r#"{"fresh":true}"#)
    );
}

async fn links_are_paused_and_resumed<S: LinkStore>(store: &S) {
    assert_eq!(store.set_link_paused("absent", true).await.unwrap(), None);
    assert_eq!(store.set_link_paused("absent", false).await.unwrap(), None);
    assert_eq!(store.link("absent").await.unwrap(), None);
    let (_, created) = store.put_link("l", DEFINITION, "inc-1").await.unwrap();
    let paused = store.set_link_paused("l", true).await.unwrap().unwrap();
    assert!(paused.paused);
    assert_eq!(
        paused,
        LinkRecord {
            paused: true,
            ..created.clone()
        },
        "a pause changes nothing else"
    );
    assert_eq!(store.link("l").await.unwrap(), Some(paused.clone()));
    assert_eq!(
        store.set_link_paused("l", true).await.unwrap(),
        Some(paused),
        "pausing a paused link answers it as it is"
    );
    let resumed = store.set_link_paused("l", false).await.unwrap().unwrap();
    assert_eq!(resumed, created);
    assert_eq!(store.link("l").await.unwrap(), Some(created));
}

async fn progress_is_saved_and_read_back<S: LinkStore>(store: &S) {
    store.put_link("l", DEFINITION, "inc-1").await.unwrap();
    assert!(store
        .claim_link("l", "inc-1", "runner-a", 60_000)
        .await
        .unwrap());
    let progress = r#"{"bookmark":{"store":"abc","seq":42},"copied":17,"last_error":null}"#;
    assert!(store
        .save_link_progress("l", "inc-1", "runner-a", progress)
        .await
        .unwrap());
    let stored = store.link("l").await.unwrap().unwrap();
    assert_eq!(stored.progress_json.as_deref(), Some(progress));
    assert_eq!(stored.generation, 1, "progress is not a new generation");
    assert!(store
        .save_link_progress("l", "inc-1", "runner-a", r#"{"copied":18}"#)
        .await
        .unwrap());
    assert_eq!(
        store
            .link("l")
            .await
            .unwrap()
            .unwrap()
            .progress_json
            .as_deref(),
        Some(r#"{"copied":18}"#)
    );
    assert!(
        !store
            .save_link_progress("l", "inc-other", "runner-a", "{}")
            .await
            .unwrap(),
        "another incarnation's progress is refused"
    );
    assert!(!store
        .save_link_progress("absent", "inc-1", "runner-a", "{}")
        .await
        .unwrap());
    assert_eq!(store.link("absent").await.unwrap(), None);
    assert_eq!(
        store
            .link("l")
            .await
            .unwrap()
            .unwrap()
            .progress_json
            .as_deref(),
        Some(r#"{"copied":18}"#)
    );
    // Releasing gives the claim up; the record stays.
    store.release_link("l", "runner-a").await.unwrap();
    store.release_link("absent", "runner-a").await.unwrap();
    assert!(store.link("l").await.unwrap().is_some());
}

both_backends!(
    links_are_created_left_unchanged_and_replaced,
    links_are_read_and_listed_by_name_in_pages,
    deleted_links_refuse_progress_even_when_made_again,
    links_are_paused_and_resumed,
    progress_is_saved_and_read_back,
);

/// Claims the link `l` for `runner` until granted, within `deadline`.
async fn claim_within(store: &PostgresStore, runner: &str, claim_ms: u64, deadline: Duration) {
    let started = Instant::now();
    while !store
        .claim_link("l", "inc-1", runner, claim_ms)
        .await
        .unwrap()
    {
        assert!(
            started.elapsed() < deadline,
            "{runner} not granted within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn postgres_runners_share_a_link_through_claims_by_the_database_clock() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    // Two stores: two servers on one database.
    let first = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    let second = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    first.put_link("l", DEFINITION, "inc-1").await.unwrap();
    assert_eq!(first.link("l").await.unwrap().unwrap().runner, None);
    assert!(
        !first.claim_link("l", "inc-0", "a", 60_000).await.unwrap(),
        "another incarnation is refused"
    );
    assert!(!first
        .claim_link("absent", "inc-1", "a", 60_000)
        .await
        .unwrap());
    // A holds it; B is refused while A's claim lasts, and A renews.
    assert!(first.claim_link("l", "inc-1", "a", 60_000).await.unwrap());
    assert_eq!(
        second.link("l").await.unwrap().unwrap().runner.as_deref(),
        Some("a")
    );
    assert!(!second.claim_link("l", "inc-1", "b", 60_000).await.unwrap());
    assert!(first.claim_link("l", "inc-1", "a", 60_000).await.unwrap());
    // Only the holder saves progress.
    assert!(!second
        .save_link_progress("l", "inc-1", "b", r#"{"by":"b"}"#)
        .await
        .unwrap());
    assert!(first
        .save_link_progress("l", "inc-1", "a", r#"{"by":"a"}"#)
        .await
        .unwrap());
    // Released: B takes it over at once. A release by a runner that does
    // not hold the claim changes nothing.
    second.release_link("l", "not-a").await.unwrap();
    assert!(!second.claim_link("l", "inc-1", "b", 60_000).await.unwrap());
    first.release_link("l", "a").await.unwrap();
    assert_eq!(first.link("l").await.unwrap().unwrap().runner, None);
    assert!(second.claim_link("l", "inc-1", "b", 60_000).await.unwrap());
    first.release_link("l", "a").await.unwrap();
    assert_eq!(
        first.link("l").await.unwrap().unwrap().runner.as_deref(),
        Some("b"),
        "a release by another runner leaves the claim alone"
    );
    assert!(!first
        .save_link_progress("l", "inc-1", "a", r#"{"by":"a"}"#)
        .await
        .unwrap());
    assert!(!first.claim_link("l", "inc-1", "a", 60_000).await.unwrap());
    // A short claim runs out by the database's clock: A is granted once
    // it has, and B, the old holder, no longer saves progress.
    second.release_link("l", "b").await.unwrap();
    let claimed = Instant::now();
    assert!(second.claim_link("l", "inc-1", "b", 200).await.unwrap());
    assert!(!first.claim_link("l", "inc-1", "a", 60_000).await.unwrap());
    claim_within(&first, "a", 60_000, Duration::from_secs(10)).await;
    assert!(
        claimed.elapsed() >= Duration::from_millis(190),
        "granted before the claim ran out: {:?}",
        claimed.elapsed()
    );
    assert!(!second
        .save_link_progress("l", "inc-1", "b", r#"{"by":"b"}"#)
        .await
        .unwrap());
    let stored = first.link("l").await.unwrap().unwrap();
    assert_eq!(stored.progress_json.as_deref(), Some(r#"{"by":"a"}"#));
    assert_eq!(stored.runner.as_deref(), Some("a"));
    // An expired claim is not shown as a runner.
    first.release_link("l", "a").await.unwrap();
    assert!(first.claim_link("l", "inc-1", "a", 0).await.unwrap());
    let started = Instant::now();
    while first.link("l").await.unwrap().unwrap().runner.is_some() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A delete ends the claim with the link.
    assert!(first.delete_link("l").await.unwrap());
    assert!(!first
        .save_link_progress("l", "inc-1", "a", "{}")
        .await
        .unwrap());
    first.close();
    second.close();
}

#[tokio::test]
async fn postgres_concurrent_puts_create_a_link_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    // Four stores: four servers on one database.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            PostgresStore::connect(&database.url(), PostgresOptions::default())
                .await
                .unwrap(),
        );
    }
    let puts = stores.iter().enumerate().map(|(index, store)| async move {
        store
            .put_link("l", DEFINITION, &format!("inc-{index}"))
            .await
            .unwrap()
    });
    let outcomes = futures_util::future::join_all(puts).await;
    let created: Vec<&LinkRecord> = outcomes
        .iter()
        .filter(|(put, _)| *put == LinkPut::Created)
        .map(|(_, record)| record)
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    let incarnation = created[0].incarnation.clone();
    for (put, record) in &outcomes {
        assert_ne!(*put, LinkPut::Replaced, "{outcomes:?}");
        assert_eq!(record.incarnation, incarnation, "{outcomes:?}");
        assert_eq!(record.generation, 1, "{outcomes:?}");
    }
    // Different definitions at once: each its own generation, the
    // incarnation kept.
    let puts = stores.iter().enumerate().map(|(index, store)| async move {
        store
            .put_link("l", &format!("{{\"v\":{index}}}"), "unused")
            .await
            .unwrap()
    });
    let outcomes = futures_util::future::join_all(puts).await;
    let mut generations: Vec<u64> = outcomes
        .iter()
        .map(|(put, record)| {
            assert_eq!(*put, LinkPut::Replaced);
            assert_eq!(record.incarnation, incarnation);
            record.generation
        })
        .collect();
    generations.sort_unstable();
    assert_eq!(generations, [2, 3, 4, 5]);
    let stored = stores[0].link("l").await.unwrap().unwrap();
    assert_eq!(stored.generation, 5);
    for store in stores {
        store.close();
    }
}

#[tokio::test]
async fn embedded_claims_are_granted_to_any_runner_of_an_existing_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert!(!store
        .claim_link("absent", "inc-1", "a", 60_000)
        .await
        .unwrap());
    store.put_link("l", DEFINITION, "inc-1").await.unwrap();
    assert!(store.claim_link("l", "inc-1", "a", 60_000).await.unwrap());
    assert!(
        store.claim_link("l", "inc-1", "b", 60_000).await.unwrap(),
        "one runner: every claim of the incarnation is granted"
    );
    assert!(!store.claim_link("l", "inc-2", "a", 60_000).await.unwrap());
    assert!(
        store
            .save_link_progress("l", "inc-1", "someone", r#"{"n":1}"#)
            .await
            .unwrap(),
        "the runner is not checked"
    );
    store.release_link("l", "a").await.unwrap();
    let stored = store.link("l").await.unwrap().unwrap();
    assert_eq!(stored.runner, None, "no runner is ever recorded");
    assert_eq!(stored.progress_json.as_deref(), Some(r#"{"n":1}"#));
    assert!(store.claim_link("l", "inc-1", "c", 60_000).await.unwrap());
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn embedded_links_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    store.put_link("kept", DEFINITION, "inc-1").await.unwrap();
    store.put_link("kept", OTHER_DEFINITION, "x").await.unwrap();
    store
        .save_link_progress("kept", "inc-1", "r", r#"{"seq":9}"#)
        .await
        .unwrap();
    store.set_link_paused("kept", true).await.unwrap();
    store.put_link("gone", "{}", "inc-g").await.unwrap();
    assert!(store.delete_link("gone").await.unwrap());
    let before = store.link("kept").await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(
        store.link("kept").await.unwrap(),
        Some(LinkRecord {
            name: "kept".into(),
            definition_json: OTHER_DEFINITION.into(),
            incarnation: "inc-1".into(),
            generation: 2,
            paused: true,
            progress_json: Some(r#"{"seq":9}"#.into()),
            runner: None,
        })
    );
    assert_eq!(store.link("kept").await.unwrap(), Some(before));
    assert_eq!(store.link("gone").await.unwrap(), None);
    assert_eq!(names(store.links(None, 10).await.unwrap()), ["kept"]);
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

#[test]
fn a_record_debug_never_shows_its_definition() {
    let record = LinkRecord {
        name: "l".into(),
        definition_json: DEFINITION.into(),
        incarnation: "inc-1".into(),
        generation: 1,
        paused: false,
        progress_json: Some("{}".into()),
        runner: Some("a".into()),
    };
    for shown in [format!("{record:?}"), format!("{record:#?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("a.example"), "{shown}");
        assert!(shown.contains("inc-1"), "{shown}");
    }
}

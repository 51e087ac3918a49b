//! The `DigestStore` contract, checked through the trait on both backends
//! (`both_backends!`): every answer — short prefixes from the maintained
//! digests, long ones from the facts — equals the digests computed here
//! from the facts written (the oracle, `DigestAnswer::from_facts`), under
//! type filters, and after more writes. On the embedded store, also after
//! reopening, and after a crash at every write (a copy of the data
//! directory cut at each batch boundary of the journal, checkpoints of the
//! digests included): the digests always equal those of the facts the
//! reopened store holds.

#[macro_use]
mod both_backends;

#[allow(dead_code)]
#[path = "common/data_files.rs"]
mod data_files;

use std::sync::Arc;

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::digests::{DigestAnswer, DigestQuery, HashPrefix};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    DigestStore, EmbeddedOptions, EmbeddedStore, PostgresOptions, PostgresStore, Store,
};

const TYPES: [&str; 3] = ["Shop.Order", "Shop.Line", "HR.Person"];

fn fact(n: u64) -> CanonicalFact {
    let type_name = TYPES[(n % 3) as usize];
    let json = format!(r#"{{"type":"{type_name}","fields":{{"n":{n}}},"predecessors":{{}}}}"#);
    CanonicalFact::from_json(json.as_bytes(), 64 * 1024).unwrap()
}

fn facts(range: std::ops::Range<u64>) -> Vec<CanonicalFact> {
    range.map(fact).collect()
}

fn query(prefix: &str, types: Option<&'static str>) -> DigestQuery {
    DigestQuery {
        prefix: HashPrefix::parse(prefix).unwrap(),
        types: match types {
            None => Arc::new(|_| true),
            Some(start) => Arc::new(move |type_name: &str| type_name.starts_with(start)),
        },
        hashes_max: 256,
    }
}

/// What the answer must be, from the facts.
fn expected(written: &[CanonicalFact], query: &DigestQuery) -> DigestAnswer {
    DigestAnswer::from_facts(
        query,
        written
            .iter()
            .filter(|fact| query.prefix.contains(&fact.hash))
            .map(|fact| (fact.hash, fact.fact.type_name.as_str())),
    )
}

/// Prefixes of every depth the answers are checked at: the root, and
/// 1 to 5 digits of some written hashes, and a 63-digit one.
fn prefixes(written: &[CanonicalFact]) -> Vec<String> {
    let mut prefixes = vec![String::new()];
    for fact in written.iter().step_by(97).take(4) {
        let hex = fact.hash.to_hex();
        for digits in [1, 2, 3, 4, 5, 63] {
            prefixes.push(hex[..digits].to_string());
        }
    }
    prefixes.push("fff".into());
    prefixes
}

async fn check_all<S: DigestStore>(store: &S, written: &[CanonicalFact]) {
    for prefix in prefixes(written) {
        for types in [None, Some("Shop."), Some("Nothing.")] {
            let query = query(&prefix, types);
            let answer = store.digests(&query).await.unwrap();
            assert_eq!(
                answer,
                expected(written, &query),
                "prefix {prefix:?}, types {types:?}"
            );
        }
    }
}

async fn an_empty_store_has_empty_digests<S: DigestStore>(store: &S) {
    let answer = store.digests(&query("", None)).await.unwrap();
    assert_eq!(answer.total.count, 0);
    assert_eq!(answer.total.xor, [0; 32]);
    let deep = store.digests(&query("abc", None)).await.unwrap();
    assert_eq!(deep.hashes, Some(Vec::new()));
}

async fn digests_equal_those_of_the_facts<S: Store + DigestStore>(store: &S) {
    let mut written = facts(0..1_500);
    store.put_facts(written.clone()).await.unwrap();
    // A fact written again changes nothing.
    store.put_facts(facts(0..10)).await.unwrap();
    check_all(store, &written).await;
    let more = facts(1_500..2_200);
    for batch in more.chunks(100) {
        store.put_facts(batch.to_vec()).await.unwrap();
    }
    written.extend(more);
    check_all(store, &written).await;
    let root = store.digests(&query("", None)).await.unwrap();
    assert_eq!(root.total.count, 2_200);
    let listed: Hash = written[5].hash;
    let deep = store
        .digests(&query(&listed.to_hex()[..4], None))
        .await
        .unwrap();
    assert!(deep.hashes.unwrap().contains(&listed));
}

both_backends!(
    an_empty_store_has_empty_digests,
    digests_equal_those_of_the_facts,
);

fn small_checkpoints() -> EmbeddedOptions {
    EmbeddedOptions {
        digest_checkpoint_facts: 25,
        ..EmbeddedOptions::default()
    }
}

async fn close(store: EmbeddedStore) {
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

/// Every fact the store holds, from its log.
async fn stored_facts(store: &EmbeddedStore) -> Vec<CanonicalFact> {
    let page = store.log(0, 100_000).await.unwrap();
    page.facts
        .iter()
        .map(|stored| CanonicalFact::from_json(&stored.canonical, 64 * 1024).unwrap())
        .collect()
}

#[tokio::test]
async fn embedded_digests_survive_reopening_with_and_without_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for round in 0..3u64 {
        let store = EmbeddedStore::open(dir.path(), small_checkpoints()).unwrap();
        check_all(&store, &written).await;
        for batch in 0..7 {
            let batch = facts(round * 1_000 + batch * 10..round * 1_000 + batch * 10 + 10);
            store.put_facts(batch.clone()).await.unwrap();
            written.extend(batch);
        }
        check_all(&store, &written).await;
        close(store).await;
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    check_all(&store, &written).await;
    close(store).await;
}

#[tokio::test]
async fn embedded_digests_after_a_crash_at_every_write_equal_those_of_the_facts_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let store = EmbeddedStore::open(&data_dir, small_checkpoints()).unwrap();
    let journal = data_files::journal_files(&data_dir)
        .pop()
        .expect("a journal");
    let read_watermark = || std::fs::read(data_dir.join("durable-seq")).unwrap_or_default();
    let mut written_ends = vec![data_files::journal_written_end(&journal, 0)];
    let mut watermarks = vec![read_watermark()];
    for batch in 0..12u64 {
        store
            .put_facts(facts(batch * 7..batch * 7 + 7))
            .await
            .unwrap();
        let previous_end = *written_ends.last().unwrap();
        written_ends.push(data_files::journal_written_end(&journal, previous_end));
        watermarks.push(read_watermark());
    }
    assert_eq!(data_files::journal_files(&data_dir), vec![journal.clone()]);
    assert!(data_files::table_files(&data_dir).is_empty());
    let image = tempfile::tempdir().unwrap();
    data_files::copy_data_dir(&data_dir, &image.path().join("data"));
    close(store).await;

    for (cut, end) in written_ends.iter().enumerate() {
        let crashed = tempfile::tempdir().unwrap();
        let crashed_dir = crashed.path().join("data");
        data_files::copy_data_dir(&image.path().join("data"), &crashed_dir);
        let crashed_journal = data_files::journal_files(&crashed_dir).pop().unwrap();
        let length = data_files::length(&crashed_journal);
        data_files::set_length(&crashed_journal, *end);
        data_files::set_length(&crashed_journal, length);
        std::fs::write(crashed_dir.join("durable-seq"), &watermarks[cut]).unwrap();
        let store = EmbeddedStore::open(&crashed_dir, EmbeddedOptions::default()).unwrap();
        let kept = stored_facts(&store).await;
        assert_eq!(kept.len() as u64, cut as u64 * 7, "crash after write {cut}");
        check_all(&store, &kept).await;
        close(store).await;
    }
}

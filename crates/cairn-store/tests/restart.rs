//! A store reopened after heavy writes, with several journals to recover
//! (as a crash leaves them), keeps accepting writes: the memtables
//! recovered from its journals get flushed and the journals deleted,
//! instead of the engine halting writes for good. A store closed cleanly
//! leaves nothing to replay.

use std::time::Duration;

use cairn_fact::CanonicalFact;
use cairn_store::{EmbeddedOptions, EmbeddedStore, Store};

#[allow(dead_code)]
#[path = "common/data_files.rs"]
mod data_files;

const ROUNDS: usize = 3;
const BATCHES_PER_ROUND: usize = 80;
const FACTS_PER_BATCH: usize = 1000;

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        journal_bytes_max: 64 * 1024 * 1024,
        memtable_bytes: 1024 * 1024,
        write_buffer_bytes: 8 * 1024 * 1024,
        // Close as a crash would: the memtables stay in the journals.
        flush_memtables_at_close: false,
        ..EmbeddedOptions::default()
    }
}

fn big_fact(round: usize, batch: usize, index: usize) -> CanonicalFact {
    let padding = "x".repeat(200);
    let json = format!(
        r#"{{"type":"Restart.Fact","fields":{{"round":{round},"batch":{batch},"index":{index},"padding":"{padding}"}},"predecessors":{{}}}}"#
    );
    CanonicalFact::from_json(json.as_bytes(), 64 * 1024).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_after_reopening_a_store_with_several_journals() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected_last_seq = 0;
    for round in 0..ROUNDS {
        let store = EmbeddedStore::open(dir.path(), options()).unwrap();
        assert_eq!(
            store.watch_last_seq().borrow().to_owned(),
            expected_last_seq
        );
        for batch in 0..BATCHES_PER_ROUND {
            let facts = (0..FACTS_PER_BATCH)
                .map(|index| big_fact(round, batch, index))
                .collect();
            let outcomes = tokio::time::timeout(Duration::from_secs(60), store.put_facts(facts))
                .await
                .unwrap_or_else(|_| panic!("round {round}, batch {batch}: the write stalled"))
                .unwrap();
            assert!(outcomes.iter().all(|outcome| outcome.inserted));
            expected_last_seq += FACTS_PER_BATCH as u64;
        }
        tokio::task::spawn_blocking(move || store.close())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_close_writes_every_memtable_out_and_leaves_no_journal_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clean_close = EmbeddedOptions {
        flush_memtables_at_close: true,
        ..options()
    };
    let store = EmbeddedStore::open(dir.path(), clean_close.clone()).unwrap();
    let facts: Vec<CanonicalFact> = (0..FACTS_PER_BATCH)
        .map(|index| big_fact(0, 0, index))
        .collect();
    let outcomes = store.put_facts(facts).await.unwrap();
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();

    let journals = data_files::journal_files(dir.path());
    assert_eq!(
        journals.len(),
        1,
        "only the active journal is left: {journals:?}"
    );
    assert_eq!(
        data_files::journal_written_end(&journals[0], 0),
        0,
        "the active journal holds no batch"
    );
    assert!(!data_files::table_files(dir.path()).is_empty());
    let store = EmbeddedStore::open(dir.path(), options()).unwrap();
    assert_eq!(
        store.watch_last_seq().borrow().to_owned(),
        FACTS_PER_BATCH as u64
    );
    for outcome in &outcomes {
        let stored = store.get_fact(&outcome.hash).await.unwrap();
        assert_eq!(
            stored.map(|fact| fact.seq),
            Some(outcome.seq),
            "{} is kept",
            outcome.hash
        );
    }
}

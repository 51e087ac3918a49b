//! A store reopened after heavy writes keeps accepting writes: the
//! memtables recovered from its journals get flushed and the journals
//! deleted, instead of the engine halting writes for good.

use std::time::Duration;

use cairn_fact::CanonicalFact;
use cairn_store::{EmbeddedOptions, EmbeddedStore, Store};

const ROUNDS: usize = 3;
const BATCHES_PER_ROUND: usize = 80;
const FACTS_PER_BATCH: usize = 1000;

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        journal_bytes_max: 64 * 1024 * 1024,
        memtable_bytes: 1024 * 1024,
        write_buffer_bytes: 8 * 1024 * 1024,
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

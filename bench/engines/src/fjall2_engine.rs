//! Candidate 1: fjall 2.11 with Cairn's current layout and settings (`EmbeddedOptions`
//! defaults, `open_keyspace`, `EmbeddedStore::open`, `Writer::add_to_batch`).

use std::path::Path;

use fjall2::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::engine::{fact_value, successor_key, type_key, Engine};
use crate::workload::Record;

pub struct Fjall2 {
    keyspace: Keyspace,
    facts: PartitionHandle,
    by_hash: PartitionHandle,
    by_type: PartitionHandle,
    successors: PartitionHandle,
}

impl Fjall2 {
    pub fn open(dir: &Path) -> anyhow::Result<Fjall2> {
        let keyspace = Config::new(dir.join("store"))
            .manual_journal_persist(true)
            .flush_workers(512)
            .cache_size(16 * 1024 * 1024)
            .max_write_buffer_size(32 * 1024 * 1024)
            .max_journaling_size(1024 * 1024 * 1024)
            .open()?;
        let compressed = PartitionCreateOptions::default()
            .manual_journal_persist(true)
            .max_memtable_size(8 * 1024 * 1024);
        let uncompressed = compressed
            .clone()
            .compression(fjall2::CompressionType::None);
        let unfiltered = uncompressed.clone().bloom_filter_bits(None);
        Ok(Fjall2 {
            facts: keyspace.open_partition("facts", compressed.bloom_filter_bits(None))?,
            by_hash: keyspace.open_partition("by_hash", uncompressed)?,
            successors: keyspace.open_partition("successors", unfiltered.clone())?,
            by_type: keyspace.open_partition("by_type", unfiltered)?,
            keyspace,
        })
    }
}

impl Engine for Fjall2 {
    fn write_group(&mut self, records: &[Record]) -> anyhow::Result<usize> {
        let mut batch = self.keyspace.batch();
        let mut new_count = 0;
        for record in records {
            if self.by_hash.get(record.hash)?.is_some() {
                continue;
            }
            new_count += 1;
            let seq = record.seq.to_be_bytes();
            batch.insert(&self.facts, seq, fact_value(record));
            batch.insert(&self.by_hash, record.hash, seq);
            batch.insert(&self.by_type, type_key(&record.type_name, record.seq), []);
            if let Some(predecessor) = &record.predecessor {
                let key = successor_key(predecessor, &record.type_name, record.seq, "order");
                batch.insert(&self.successors, key, []);
            }
        }
        batch.commit()?;
        self.keyspace.persist(PersistMode::SyncData)?;
        Ok(new_count)
    }

    fn get(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(seq) = self.by_hash.get(hash)? else {
            return Ok(None);
        };
        Ok(self.facts.get(&seq)?.map(|value| value[32..].to_vec()))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

//! Candidate 2: fjall 3 with the same layout and the closest settings to Cairn's (16 MiB
//! cache, 8 MiB memtables, 1 GiB journal budget, LZ4 only on `facts`, bloom only on
//! `by_hash`, manual journal persist, one `SyncData` per group).

use std::path::Path;

use fjall3::config::{CompressionPolicy, FilterPolicy};
use fjall3::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::{fact_value, successor_key, type_key, Engine};
use crate::workload::Record;

pub struct Fjall3 {
    database: Database,
    facts: Keyspace,
    by_hash: Keyspace,
    by_type: Keyspace,
    successors: Keyspace,
}

/// fjall 3 with Cairn's memory settings, or with fjall 3's own (64 MiB memtables, no write
/// buffer cap) to tell the engine from the settings.
#[derive(Clone, Copy)]
pub enum Settings {
    Cairn,
    Fjall3Defaults,
}

fn base_options(settings: Settings) -> KeyspaceCreateOptions {
    let options = KeyspaceCreateOptions::default()
        .manual_journal_persist(true)
        .data_block_compression_policy(CompressionPolicy::disabled());
    match settings {
        Settings::Cairn => options.max_memtable_size(8 * 1024 * 1024),
        Settings::Fjall3Defaults => options,
    }
}

impl Fjall3 {
    #[allow(deprecated)] // max_write_buffer_size is hidden in fjall 3 but still honoured
    pub fn open(dir: &Path, settings: Settings) -> anyhow::Result<Fjall3> {
        let builder = Database::builder(dir.join("store"))
            .manual_journal_persist(true)
            .cache_size(16 * 1024 * 1024)
            .max_journaling_size(1024 * 1024 * 1024);
        let database = match settings {
            Settings::Cairn => builder.max_write_buffer_size(Some(32 * 1024 * 1024)),
            Settings::Fjall3Defaults => builder,
        }
        .open()?;
        let base_options = || base_options(settings);
        let facts = database.keyspace("facts", || {
            base_options()
                .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
                .filter_policy(FilterPolicy::disabled())
        })?;
        let by_hash = database.keyspace("by_hash", base_options)?;
        let by_type = database.keyspace("by_type", || {
            base_options().filter_policy(FilterPolicy::disabled())
        })?;
        let successors = database.keyspace("successors", || {
            base_options().filter_policy(FilterPolicy::disabled())
        })?;
        Ok(Fjall3 {
            database,
            facts,
            by_hash,
            by_type,
            successors,
        })
    }
}

impl Engine for Fjall3 {
    fn write_group(&mut self, records: &[Record]) -> anyhow::Result<usize> {
        let mut batch = self.database.batch();
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
        self.database.persist(PersistMode::SyncData)?;
        Ok(new_count)
    }

    fn get(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(seq) = self.by_hash.get(hash)? else {
            return Ok(None);
        };
        Ok(self.facts.get(&seq)?.map(|value| value[32..].to_vec()))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        self.database.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

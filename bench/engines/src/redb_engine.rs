//! Candidate 4: redb (a copy-on-write B-tree) with the same four tables and one write
//! transaction per group (its default `Durability::Immediate` syncs at every commit).

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use crate::engine::{fact_value, successor_key, type_key, Engine};
use crate::workload::Record;

const FACTS: TableDefinition<u64, &[u8]> = TableDefinition::new("facts");
const BY_HASH: TableDefinition<&[u8], u64> = TableDefinition::new("by_hash");
const BY_TYPE: TableDefinition<&[u8], ()> = TableDefinition::new("by_type");
const SUCCESSORS: TableDefinition<&[u8], ()> = TableDefinition::new("successors");

pub struct Redb {
    database: Database,
}

impl Redb {
    pub fn open(dir: &Path) -> anyhow::Result<Redb> {
        std::fs::create_dir_all(dir)?;
        let database = redb::Builder::new()
            .set_cache_size(16 * 1024 * 1024)
            .create(dir.join("store.redb"))?;
        Ok(Redb { database })
    }
}

impl Engine for Redb {
    fn write_group(&mut self, records: &[Record]) -> anyhow::Result<usize> {
        let transaction = self.database.begin_write()?;
        let mut new_count = 0;
        {
            let mut facts = transaction.open_table(FACTS)?;
            let mut by_hash = transaction.open_table(BY_HASH)?;
            let mut by_type = transaction.open_table(BY_TYPE)?;
            let mut successors = transaction.open_table(SUCCESSORS)?;
            for record in records {
                if by_hash.get(record.hash.as_slice())?.is_some() {
                    continue;
                }
                new_count += 1;
                facts.insert(record.seq, fact_value(record).as_slice())?;
                by_hash.insert(record.hash.as_slice(), record.seq)?;
                by_type.insert(type_key(&record.type_name, record.seq).as_slice(), ())?;
                if let Some(predecessor) = &record.predecessor {
                    let key = successor_key(predecessor, &record.type_name, record.seq, "order");
                    successors.insert(key.as_slice(), ())?;
                }
            }
        }
        transaction.commit()?;
        Ok(new_count)
    }

    fn get(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        let transaction = self.database.begin_read()?;
        let by_hash = transaction.open_table(BY_HASH)?;
        let Some(seq) = by_hash.get(hash.as_slice())? else {
            return Ok(None);
        };
        let facts = transaction.open_table(FACTS)?;
        let value = facts.get(seq.value())?;
        Ok(value.map(|value| value.value()[32..].to_vec()))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

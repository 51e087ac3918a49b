//! The indexes of the segment-log candidate (`by_hash`, `by_type`, `successors`, and a `meta`
//! entry with the log position indexed so far), kept in fjall 2 or fjall 3 **without** a sync
//! per group: they can be rebuilt from the log past that position.

use std::path::Path;

/// Which index a key belongs to.
#[derive(Clone, Copy)]
pub enum IndexName {
    ByHash,
    ByType,
    Successors,
}

/// One group's index entries.
#[derive(Default)]
pub struct IndexBatch {
    pub entries: Vec<(IndexName, Vec<u8>, Vec<u8>)>,
}

const META_INDEXED_END: &str = "indexed_end";

/// An index store: fjall 2 or fjall 3 under the same interface.
pub trait IndexKv: Send + Sync {
    fn get_by_hash(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>>;
    /// Applies a group's entries and the new indexed end (log bytes, next seq) atomically,
    /// without syncing.
    fn apply(&self, batch: IndexBatch, indexed_end: (u64, u64)) -> anyhow::Result<()>;
    /// The (log bytes, next seq) indexed so far, as recovered.
    fn indexed_end(&self) -> anyhow::Result<(u64, u64)>;
    fn close(&self) -> anyhow::Result<()>;
}

fn encode_end(indexed_end: (u64, u64)) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&indexed_end.0.to_be_bytes());
    bytes[8..].copy_from_slice(&indexed_end.1.to_be_bytes());
    bytes
}

fn decode_end(bytes: Option<&[u8]>) -> (u64, u64) {
    match bytes {
        Some(bytes) if bytes.len() == 16 => (
            u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
        ),
        _ => (0, 1),
    }
}

pub struct Fjall2Index {
    keyspace: fjall2::Keyspace,
    by_hash: fjall2::PartitionHandle,
    by_type: fjall2::PartitionHandle,
    successors: fjall2::PartitionHandle,
    meta: fjall2::PartitionHandle,
}

impl Fjall2Index {
    pub fn open(dir: &Path) -> anyhow::Result<Fjall2Index> {
        let keyspace = fjall2::Config::new(dir)
            .manual_journal_persist(true)
            .flush_workers(512)
            .cache_size(16 * 1024 * 1024)
            .max_write_buffer_size(32 * 1024 * 1024)
            .max_journaling_size(1024 * 1024 * 1024)
            .open()?;
        let filtered = fjall2::PartitionCreateOptions::default()
            .manual_journal_persist(true)
            .max_memtable_size(8 * 1024 * 1024)
            .compression(fjall2::CompressionType::None);
        let unfiltered = filtered.clone().bloom_filter_bits(None);
        Ok(Fjall2Index {
            by_hash: keyspace.open_partition("by_hash", filtered)?,
            by_type: keyspace.open_partition("by_type", unfiltered.clone())?,
            successors: keyspace.open_partition("successors", unfiltered.clone())?,
            meta: keyspace.open_partition("meta", unfiltered)?,
            keyspace,
        })
    }
}

impl IndexKv for Fjall2Index {
    fn get_by_hash(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.by_hash.get(hash)?.map(|value| value.to_vec()))
    }

    fn apply(&self, batch: IndexBatch, indexed_end: (u64, u64)) -> anyhow::Result<()> {
        let mut fjall_batch = self.keyspace.batch();
        for (name, key, value) in batch.entries {
            let partition = match name {
                IndexName::ByHash => &self.by_hash,
                IndexName::ByType => &self.by_type,
                IndexName::Successors => &self.successors,
            };
            fjall_batch.insert(partition, key, value);
        }
        fjall_batch.insert(&self.meta, META_INDEXED_END, encode_end(indexed_end));
        fjall_batch.commit()?;
        Ok(())
    }

    fn indexed_end(&self) -> anyhow::Result<(u64, u64)> {
        Ok(decode_end(self.meta.get(META_INDEXED_END)?.as_deref()))
    }

    fn close(&self) -> anyhow::Result<()> {
        self.keyspace.persist(fjall2::PersistMode::SyncAll)?;
        Ok(())
    }
}

pub struct Fjall3Index {
    database: fjall3::Database,
    by_hash: fjall3::Keyspace,
    by_type: fjall3::Keyspace,
    successors: fjall3::Keyspace,
    meta: fjall3::Keyspace,
}

impl Fjall3Index {
    #[allow(deprecated)] // max_write_buffer_size is hidden in fjall 3 but still honoured
    pub fn open(dir: &Path) -> anyhow::Result<Fjall3Index> {
        use fjall3::config::{CompressionPolicy, FilterPolicy};
        let database = fjall3::Database::builder(dir)
            .manual_journal_persist(true)
            .cache_size(16 * 1024 * 1024)
            .max_write_buffer_size(Some(32 * 1024 * 1024))
            .max_journaling_size(1024 * 1024 * 1024)
            .open()?;
        let filtered = || {
            fjall3::KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .max_memtable_size(8 * 1024 * 1024)
                .data_block_compression_policy(CompressionPolicy::disabled())
        };
        let unfiltered = || filtered().filter_policy(FilterPolicy::disabled());
        Ok(Fjall3Index {
            by_hash: database.keyspace("by_hash", filtered)?,
            by_type: database.keyspace("by_type", unfiltered)?,
            successors: database.keyspace("successors", unfiltered)?,
            meta: database.keyspace("meta", unfiltered)?,
            database,
        })
    }
}

impl IndexKv for Fjall3Index {
    fn get_by_hash(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.by_hash.get(hash)?.map(|value| value.to_vec()))
    }

    fn apply(&self, batch: IndexBatch, indexed_end: (u64, u64)) -> anyhow::Result<()> {
        let mut fjall_batch = self.database.batch();
        for (name, key, value) in batch.entries {
            let keyspace = match name {
                IndexName::ByHash => &self.by_hash,
                IndexName::ByType => &self.by_type,
                IndexName::Successors => &self.successors,
            };
            fjall_batch.insert(keyspace, key, value);
        }
        fjall_batch.insert(&self.meta, META_INDEXED_END, encode_end(indexed_end));
        fjall_batch.commit()?;
        Ok(())
    }

    fn indexed_end(&self) -> anyhow::Result<(u64, u64)> {
        Ok(decode_end(self.meta.get(META_INDEXED_END)?.as_deref()))
    }

    fn close(&self) -> anyhow::Result<()> {
        self.database.persist(fjall3::PersistMode::SyncAll)?;
        Ok(())
    }
}

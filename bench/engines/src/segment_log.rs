//! Candidate 3: an append-only log holds the fact bytes and is the journal (one
//! `fdatasync` per group); the indexes live in fjall and are written without a sync of their
//! own, with the log position they cover, so open re-indexes the log past that position.
//!
//! Log record: `payload_len u32 LE | crc32(payload) u32 LE | payload`, payload =
//! `seq u64 BE | hash 32 | type_len u8 | type | has_predecessor u8 | [predecessor 32] | body`.
//! `by_hash` maps hash → `seq u64 BE | log position u64 BE | record length u32 BE`.
//! (One file here; a real store would roll segments and keep a dense seq → position file.)

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::engine::{successor_key, type_key, Engine};
use crate::index_kv::{IndexBatch, IndexKv, IndexName};
use crate::workload::Record;

const HEADER_BYTES: usize = 8;

pub struct SegmentLog {
    log: File,
    log_end: u64,
    index: Box<dyn IndexKv>,
    /// Set by the driver for the last groups: they reach the log but not the index, as if a
    /// crash lost the index's unsynced tail, so reopening measures recovery.
    skip_index: bool,
    /// What the last open re-indexed: (records, milliseconds).
    recovered: (u64, f64),
}

/// A record parsed back from the log.
struct LoggedRecord<'a> {
    seq: u64,
    hash: [u8; 32],
    type_name: &'a str,
    predecessor: Option<[u8; 32]>,
    body: &'a [u8],
}

fn parse_payload(payload: &[u8]) -> Option<LoggedRecord<'_>> {
    let seq = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let hash: [u8; 32] = payload.get(8..40)?.try_into().ok()?;
    let type_len = *payload.get(40)? as usize;
    let type_name = std::str::from_utf8(payload.get(41..41 + type_len)?).ok()?;
    let mut at = 41 + type_len;
    let predecessor = match *payload.get(at)? {
        0 => {
            at += 1;
            None
        }
        _ => {
            let predecessor = payload.get(at + 1..at + 33)?.try_into().ok()?;
            at += 33;
            Some(predecessor)
        }
    };
    Some(LoggedRecord {
        seq,
        hash,
        type_name,
        predecessor,
        body: payload.get(at..)?,
    })
}

fn index_entries(batch: &mut IndexBatch, record: &LoggedRecord<'_>, position: u64, length: u32) {
    let mut location = Vec::with_capacity(20);
    location.extend_from_slice(&record.seq.to_be_bytes());
    location.extend_from_slice(&position.to_be_bytes());
    location.extend_from_slice(&length.to_be_bytes());
    batch
        .entries
        .push((IndexName::ByHash, record.hash.to_vec(), location));
    batch.entries.push((
        IndexName::ByType,
        type_key(record.type_name, record.seq),
        Vec::new(),
    ));
    if let Some(predecessor) = &record.predecessor {
        batch.entries.push((
            IndexName::Successors,
            successor_key(predecessor, record.type_name, record.seq, "order"),
            Vec::new(),
        ));
    }
}

impl SegmentLog {
    pub fn open(dir: &Path, index: Box<dyn IndexKv>) -> anyhow::Result<SegmentLog> {
        std::fs::create_dir_all(dir)?;
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("facts.log"))?;
        let started = Instant::now();
        let (indexed_end, mut next_seq) = index.indexed_end()?;
        // Recovery: every complete record past the indexed end is re-indexed; the first torn
        // or corrupt one ends the log (it belongs to a group that was never acknowledged).
        let file_bytes = log.metadata()?.len();
        let mut tail = vec![0u8; (file_bytes - indexed_end) as usize];
        log.read_exact_at(&mut tail, indexed_end)?;
        let mut at = 0usize;
        let mut batch = IndexBatch::default();
        let mut recovered_count = 0u64;
        while at + HEADER_BYTES <= tail.len() {
            let payload_len = u32::from_le_bytes(tail[at..at + 4].try_into()?) as usize;
            let crc = u32::from_le_bytes(tail[at + 4..at + 8].try_into()?);
            let Some(payload) = tail.get(at + HEADER_BYTES..at + HEADER_BYTES + payload_len) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            let Some(record) = parse_payload(payload) else {
                break;
            };
            let length = (HEADER_BYTES + payload_len) as u32;
            index_entries(&mut batch, &record, indexed_end + at as u64, length);
            next_seq = record.seq + 1;
            recovered_count += 1;
            at += HEADER_BYTES + payload_len;
            if batch.entries.len() >= 30_000 {
                index.apply(
                    std::mem::take(&mut batch),
                    (indexed_end + at as u64, next_seq),
                )?;
            }
        }
        let log_end = indexed_end + at as u64;
        index.apply(batch, (log_end, next_seq))?;
        if log_end < file_bytes {
            log.set_len(log_end)?;
            log.sync_data()?;
        }
        let recovered = (recovered_count, started.elapsed().as_secs_f64() * 1000.0);
        Ok(SegmentLog {
            log,
            log_end,
            index,
            skip_index: false,
            recovered,
        })
    }
}

impl Engine for SegmentLog {
    fn write_group(&mut self, records: &[Record]) -> anyhow::Result<usize> {
        let mut buffer = Vec::with_capacity(records.len() * 420);
        let mut batch = IndexBatch::default();
        let mut new_count = 0;
        let mut next_seq = 0;
        for record in records {
            if self.index.get_by_hash(&record.hash)?.is_some() {
                continue;
            }
            new_count += 1;
            let start = buffer.len();
            buffer.extend_from_slice(&[0u8; HEADER_BYTES]);
            buffer.extend_from_slice(&record.seq.to_be_bytes());
            buffer.extend_from_slice(&record.hash);
            buffer.push(record.type_name.len() as u8);
            buffer.extend_from_slice(record.type_name.as_bytes());
            match &record.predecessor {
                Some(predecessor) => {
                    buffer.push(1);
                    buffer.extend_from_slice(predecessor);
                }
                None => buffer.push(0),
            }
            buffer.extend_from_slice(&record.body);
            let payload_len = buffer.len() - start - HEADER_BYTES;
            let crc = crc32fast::hash(&buffer[start + HEADER_BYTES..]);
            buffer[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
            buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            let logged = parse_payload(&buffer[start + HEADER_BYTES..]).expect("just written");
            index_entries(
                &mut batch,
                &logged,
                self.log_end + start as u64,
                (buffer.len() - start) as u32,
            );
            next_seq = record.seq + 1;
        }
        self.log.write_all_at(&buffer, self.log_end)?;
        self.log.sync_data()?;
        self.log_end += buffer.len() as u64;
        if !self.skip_index && new_count > 0 {
            self.index.apply(batch, (self.log_end, next_seq))?;
        }
        Ok(new_count)
    }

    fn get(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(location) = self.index.get_by_hash(hash)? else {
            return Ok(None);
        };
        let position = u64::from_be_bytes(location[8..16].try_into()?);
        let length = u32::from_be_bytes(location[16..20].try_into()?) as usize;
        let mut record = vec![0u8; length];
        self.log.read_exact_at(&mut record, position)?;
        let payload = &record[HEADER_BYTES..];
        let crc = u32::from_le_bytes(record[4..8].try_into()?);
        anyhow::ensure!(
            crc32fast::hash(payload) == crc,
            "corrupt record at {position}"
        );
        let logged = parse_payload(payload).ok_or_else(|| anyhow::anyhow!("bad record"))?;
        Ok(Some(logged.body.to_vec()))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        self.log.sync_data()?;
        self.index.close()
    }

    fn set_skip_index(&mut self, skip_index: bool) {
        self.skip_index = skip_index;
    }

    fn recovered(&self) -> Option<(u64, f64)> {
        Some(self.recovered)
    }
}

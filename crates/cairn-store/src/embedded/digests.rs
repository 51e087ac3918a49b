//! The embedded store's digests (see `crate::digests`): the per-type
//! digests of the 4,096 three-digit prefixes live in memory, updated by
//! the writer after each group of new facts is durable (an XOR per fact),
//! and are checkpointed to the `digests` partition, with the seq they
//! cover, every `EmbeddedOptions::digest_checkpoint_facts` new facts and at close. Open loads
//! the checkpoint and replays the facts after it from the log (the
//! `facts` partition is keyed by seq), so open reads at most about
//! that many facts more than it would otherwise.
//!
//! | key                          | value                         |
//! |------------------------------|-------------------------------|
//! | `c`                          | covered seq (u64 BE)          |
//! | `b` ‖ type ‖ 0 ‖ bucket (u16 BE) | count (u64 BE) ‖ XOR (32 bytes) |
//!
//! *Invariant:* a checkpoint describes exactly the facts with seq up to its
//! covered seq. A checkpoint is one atomic batch written after those facts
//! were synced, into the same journal, so a crash keeps it only together
//! with everything before it; an unsynced checkpoint lost in a crash leaves
//! the previous one, and open replays more.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use cairn_fact::Hash;
use fjall::PartitionHandle;

use super::{keys, Shared};
use crate::digests::{Aggregates, Digest, DigestAnswer, DigestQuery, MAINTAINED_DIGITS};
use crate::error::ReadError;

/// New facts between two checkpoints by default (at most, plus one group;
/// `EmbeddedOptions::digest_checkpoint_facts`).
pub const CHECKPOINT_FACTS: u64 = 100_000;

const COVERED_KEY: &[u8] = b"c";
const BUCKET_TAG: u8 = b'b';

/// The in-memory digests and where their checkpoint stands.
pub struct DigestState {
    aggregates: Aggregates,
    /// The facts up to this seq are counted.
    covered_seq: u64,
    /// The seq the last checkpoint covers.
    checkpoint_seq: u64,
    /// Types with digests changed since the last checkpoint.
    dirty_types: HashSet<Box<str>>,
    /// The stored checkpoint was not used (it was ahead of the log): the
    /// next one replaces it whole.
    replace_whole: bool,
}

/// The new facts of one group, by type.
#[derive(Default)]
pub struct Staged {
    by_type: HashMap<String, Vec<Hash>>,
}

impl Staged {
    /// Adds a new fact of the group.
    pub fn add(&mut self, type_name: &str, hash: Hash) {
        match self.by_type.get_mut(type_name) {
            Some(hashes) => hashes.push(hash),
            None => {
                self.by_type.insert(type_name.to_string(), vec![hash]);
            }
        }
    }
}

fn bucket_key(type_name: &str, bucket: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + type_name.len() + 3);
    key.push(BUCKET_TAG);
    key.extend_from_slice(type_name.as_bytes());
    key.push(0);
    key.extend_from_slice(&bucket.to_be_bytes());
    key
}

fn digest_value(digest: &Digest) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&digest.count.to_be_bytes());
    value[8..].copy_from_slice(&digest.xor);
    value
}

/// Loads the checkpoint and replays the facts after it, up to `last_seq`.
pub fn load(
    digests: &PartitionHandle,
    facts: &PartitionHandle,
    last_seq: u64,
) -> Result<DigestState, ReadError> {
    let damaged = |what: &str| ReadError::corrupt(format!("the digests partition {what}"));
    let engine = |error: fjall::Error| {
        ReadError::storage_caused_by(format!("cannot read the digests: {error}"), error)
    };
    let mut aggregates = Aggregates::default();
    let mut replace_whole = false;
    let mut covered_seq = match digests.get(COVERED_KEY).map_err(engine)? {
        None => 0,
        Some(value) => keys::decode_seq(&value).ok_or_else(|| damaged("has a malformed seq"))?,
    };
    if covered_seq > last_seq {
        // Cannot happen while the invariant holds (the watermark check at
        // open refuses a store that lost facts); rebuilt, never trusted.
        tracing::warn!(
            covered_seq,
            last_seq,
            "the digest checkpoint is ahead of the log; rebuilding it from the log"
        );
        covered_seq = 0;
        replace_whole = true;
    } else if covered_seq > 0 {
        for entry in digests.prefix([BUCKET_TAG]) {
            let (key, value) = entry.map_err(engine)?;
            let rest = &key[1..];
            let split = rest
                .len()
                .checked_sub(3)
                .filter(|&at| rest[at] == 0)
                .ok_or_else(|| damaged("has a malformed key"))?;
            let type_name =
                std::str::from_utf8(&rest[..split]).map_err(|_| damaged("has a malformed type"))?;
            let bucket = u16::from_be_bytes([rest[split + 1], rest[split + 2]]);
            if value.len() != 40 || usize::from(bucket) >= crate::digests::MAINTAINED_BUCKETS {
                return Err(damaged("has a malformed digest"));
            }
            let digest = Digest {
                count: u64::from_be_bytes(value[..8].try_into().expect("8 bytes")),
                xor: value[8..].try_into().expect("32 bytes"),
            };
            aggregates.merge(type_name, bucket, &digest);
        }
    }
    let checkpoint_seq = covered_seq;
    let mut dirty_types = HashSet::new();
    if covered_seq < last_seq {
        let engine = |error: fjall::Error| {
            ReadError::storage_caused_by(format!("cannot read the log: {error}"), error)
        };
        for entry in facts.range(keys::seq_key(covered_seq + 1)..=keys::seq_key(last_seq)) {
            let (key, value) = entry.map_err(engine)?;
            let seq = keys::decode_seq(&key)
                .ok_or_else(|| ReadError::corrupt("malformed key in the facts partition"))?;
            let (hash, canonical) = keys::split_fact_value(&value).ok_or_else(|| {
                ReadError::corrupt(format!("fact with seq {seq} has a truncated record"))
            })?;
            let type_name = cairn_fact::canonical_type(canonical)
                .ok_or_else(|| ReadError::corrupt(format!("fact with seq {seq} has no type")))?;
            if seq != covered_seq + 1 {
                return Err(ReadError::corrupt(format!(
                    "the log has a gap: expected seq {}, found {seq}",
                    covered_seq + 1
                )));
            }
            aggregates.add(type_name, &hash);
            if !dirty_types.contains(type_name) {
                dirty_types.insert(type_name.into());
            }
            covered_seq = seq;
        }
        if covered_seq != last_seq {
            return Err(ReadError::corrupt(format!(
                "the log ends at seq {covered_seq} before seq {last_seq}"
            )));
        }
    }
    Ok(DigestState {
        aggregates,
        covered_seq,
        checkpoint_seq,
        dirty_types,
        replace_whole,
    })
}

/// Counts a group's new facts, durable up to `last_seq`; checkpoints when
/// [`CHECKPOINT_FACTS`] were counted since the last checkpoint. Called by
/// the writer after the group's sync.
pub fn committed(shared: &Shared, staged: Staged, last_seq: u64) {
    let mut state = shared.digests.lock().expect("lock poisoned");
    for (type_name, hashes) in staged.by_type {
        for hash in &hashes {
            state.aggregates.add(&type_name, hash);
        }
        if !state.dirty_types.contains(type_name.as_str()) {
            state.dirty_types.insert(type_name.into_boxed_str());
        }
    }
    state.covered_seq = last_seq;
    if state.covered_seq - state.checkpoint_seq >= shared.options.digest_checkpoint_facts {
        write_checkpoint(shared, &mut state);
    }
}

/// Writes a checkpoint of the digests as they stand (at close).
pub fn checkpoint(shared: &Shared) {
    if shared.poisoned.load(Ordering::Acquire) {
        return;
    }
    let mut state = shared.digests.lock().expect("lock poisoned");
    if state.covered_seq != state.checkpoint_seq
        || !state.dirty_types.is_empty()
        || state.replace_whole
    {
        write_checkpoint(shared, &mut state);
    }
}

/// One atomic batch: the digests of the types changed since the last
/// checkpoint and the seq they cover. Committed to the journal without a
/// sync of its own (the next group's sync, or the one at close, makes it
/// durable); a failure poisons the store, as any failed journal write.
fn write_checkpoint(shared: &Shared, state: &mut DigestState) {
    let mut batch = shared.keyspace.batch();
    if state.replace_whole {
        for entry in shared.digests_partition.prefix([BUCKET_TAG]) {
            match entry {
                Ok((key, _)) => batch.remove(&shared.digests_partition, key),
                Err(error) => {
                    tracing::error!(%error, "cannot read the digest checkpoint to replace it");
                    return;
                }
            }
        }
        let types: Vec<Box<str>> = state
            .aggregates
            .iter()
            .map(|(name, _)| name.into())
            .collect();
        state.dirty_types.extend(types);
    }
    for type_name in &state.dirty_types {
        let Some(buckets) = state.aggregates.of_type(type_name) else {
            continue;
        };
        for (&bucket, digest) in buckets {
            batch.insert(
                &shared.digests_partition,
                bucket_key(type_name, bucket),
                digest_value(digest),
            );
        }
    }
    batch.insert(
        &shared.digests_partition,
        COVERED_KEY,
        keys::seq_key(state.covered_seq),
    );
    match batch.commit() {
        Ok(()) => {
            state.checkpoint_seq = state.covered_seq;
            state.dirty_types.clear();
            state.replace_whole = false;
        }
        Err(error) => {
            tracing::error!(%error, "cannot write the digest checkpoint; the store is poisoned");
            shared.poisoned.store(true, Ordering::Release);
        }
    }
}

/// Answers a digest query (see `crate::digests::DigestStore`).
pub fn answer(shared: &Shared, query: &DigestQuery) -> Result<DigestAnswer, ReadError> {
    if query.prefix.len() < MAINTAINED_DIGITS {
        let state = shared.digests.lock().expect("lock poisoned");
        return Ok(state.aggregates.answer(query));
    }
    let durable = shared.durable_seq();
    let lower = query.prefix.lower_bound();
    let range: Box<dyn Iterator<Item = _>> = match query.prefix.upper_bound() {
        Some(upper) => Box::new(shared.by_hash.range(lower..upper)),
        None => Box::new(shared.by_hash.range(lower..)),
    };
    let mut facts: Vec<(Hash, String)> = Vec::new();
    for entry in range {
        let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
        let hash = Hash(
            key[..]
                .try_into()
                .map_err(|_| shared.corrupt("malformed key in the hash index".into()))?,
        );
        let seq = keys::decode_seq(&value)
            .ok_or_else(|| shared.corrupt(format!("malformed hash index entry for {hash}")))?;
        if seq > durable {
            continue;
        }
        let fact = shared.fact_at(seq)?;
        if fact.hash != hash {
            return Err(shared.corrupt(format!("hash index for {hash} points at {}", fact.hash)));
        }
        let type_name = cairn_fact::canonical_type(&fact.canonical)
            .ok_or_else(|| shared.corrupt(format!("fact {hash} has no type")))?;
        facts.push((hash, type_name.to_string()));
    }
    Ok(DigestAnswer::from_facts(
        query,
        facts
            .iter()
            .map(|(hash, type_name)| (*hash, type_name.as_str())),
    ))
}

//! Durable timers in the embedded store: the `timers` partition of the
//! keyspace, and the `TimerStore` implementation.
//!
//! | key                                      | value          |
//! |------------------------------------------|----------------|
//! | `d` ‖ name                               | timer record   |
//! | `q` ‖ attempt_at_ms (u64 BE) ‖ name      | empty (index)  |
//!
//! A record is a format-version byte (`1`) followed by JSON. The `q`
//! index holds one entry per timer with an `attempt_at_ms`, so the
//! scheduler reads the due timers (and the next wake-up) from its start
//! without touching the others. Every change is staged by the writer
//! thread into its group batch (see `writer.rs`), so a record and its
//! index entry are committed together, in the journal and fsync of facts.
//! Changes read what earlier requests of the same group staged first
//! ([`Staged`]), then the partition.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::writer::WriteRequest;
use super::{EmbeddedStore, Shared};
use crate::error::{ReadError, WriteError};
use crate::timers::{DueTimers, TimerProgress, TimerPut, TimerRecord, TimerStore};

const DEFINITION_TAG: u8 = b'd';
const INDEX_TAG: u8 = b'q';
const RECORD_VERSION: u8 = 1;

/// One timer change for the writer.
pub enum TimerChange {
    Put(TimerRecord),
    Delete(String),
    Progress(Vec<TimerProgress>),
}

/// What a change did, answered once it is durable.
pub enum TimerOutcome {
    Put(TimerPut, TimerRecord),
    Deleted(bool),
    Applied(usize),
}

/// Timer records staged by the requests of one group so far.
#[derive(Default)]
pub struct Staged {
    records: HashMap<String, Option<TimerRecord>>,
    /// Entries this group adds to the batch.
    pub n_writes: usize,
    /// Index entries this group adds (positive) or removes (negative):
    /// the change of the pending count once the group is durable.
    pub pending_delta: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredTimer {
    name: String,
    definition_json: String,
    generation: u64,
    next_due_ms: Option<u64>,
    attempt_at_ms: Option<u64>,
    last_fired_ms: Option<u64>,
    last_error: Option<String>,
}

fn encode(record: &TimerRecord) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(
        &mut bytes,
        &StoredTimer {
            name: record.name.clone(),
            definition_json: record.definition_json.clone(),
            generation: record.generation,
            next_due_ms: record.next_due_ms,
            attempt_at_ms: record.attempt_at_ms,
            last_fired_ms: record.last_fired_ms,
            last_error: record.last_error.clone(),
        },
    )
    .expect("records serialize to memory");
    bytes
}

fn decode(key_name: &[u8], bytes: &[u8]) -> Result<TimerRecord, String> {
    let stored: StoredTimer = match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|error| format!("malformed timer record: {error}"))?,
        _ => return Err("timer record of an unknown version".into()),
    };
    if stored.name.as_bytes() != key_name {
        return Err(format!(
            "timer record {:?} is stored under another name",
            stored.name
        ));
    }
    Ok(TimerRecord {
        name: stored.name,
        definition_json: stored.definition_json,
        generation: stored.generation,
        next_due_ms: stored.next_due_ms,
        attempt_at_ms: stored.attempt_at_ms,
        last_fired_ms: stored.last_fired_ms,
        last_error: stored.last_error,
    })
}

fn definition_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(DEFINITION_TAG);
    key.extend_from_slice(name.as_bytes());
    key
}

fn index_key(attempt_at_ms: u64, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + name.len());
    key.push(INDEX_TAG);
    key.extend_from_slice(&attempt_at_ms.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// The attempt time and name of an index key.
fn split_index_key(key: &[u8]) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(&[INDEX_TAG])?;
    let (time, name) = rest.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*time), std::str::from_utf8(name).ok()?))
}

fn read_record(shared: &Shared, name: &str) -> Result<Option<TimerRecord>, ReadError> {
    let value = shared
        .timers
        .get(definition_key(name))
        .map_err(|error| shared.engine_error(error))?;
    value
        .map(|bytes| decode(name.as_bytes(), &bytes).map_err(|message| shared.corrupt(message)))
        .transpose()
}

fn write_error(error: ReadError) -> WriteError {
    WriteError::storage_caused_by(error.to_string(), error)
}

/// The record `name` as this group sees it.
fn current(
    shared: &Shared,
    staged: &Staged,
    name: &str,
) -> Result<Option<TimerRecord>, WriteError> {
    if let Some(record) = staged.records.get(name) {
        return Ok(record.clone());
    }
    read_record(shared, name).map_err(write_error)
}

/// Replaces `old` by `new` (either may be absent), index entry included.
fn stage_record(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    name: &str,
    old: Option<&TimerRecord>,
    new: Option<TimerRecord>,
) {
    let old_attempt = old.and_then(|old| old.attempt_at_ms);
    let new_attempt = new.as_ref().and_then(|new| new.attempt_at_ms);
    if old_attempt != new_attempt {
        if let Some(attempt_at_ms) = old_attempt {
            batch.remove(&shared.timers, index_key(attempt_at_ms, name));
            staged.n_writes += 1;
            staged.pending_delta -= 1;
        }
        if let Some(attempt_at_ms) = new_attempt {
            batch.insert(&shared.timers, index_key(attempt_at_ms, name), []);
            staged.n_writes += 1;
            staged.pending_delta += 1;
        }
    }
    match &new {
        Some(record) => batch.insert(&shared.timers, definition_key(name), encode(record)),
        None => batch.remove(&shared.timers, definition_key(name)),
    }
    staged.n_writes += 1;
    staged.records.insert(name.to_string(), new);
}

/// Stages one change into the group's batch (on the writer thread).
pub fn stage_change(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    change: TimerChange,
) -> Result<TimerOutcome, WriteError> {
    match change {
        TimerChange::Put(mut record) => {
            let old = current(shared, staged, &record.name)?;
            let outcome = match &old {
                Some(old) if old.definition_json == record.definition_json => {
                    return Ok(TimerOutcome::Put(TimerPut::Unchanged, old.clone()))
                }
                Some(old) => {
                    record.generation = old.generation + 1;
                    record.last_fired_ms = old.last_fired_ms;
                    TimerPut::Replaced
                }
                None => {
                    record.generation = 1;
                    record.last_fired_ms = None;
                    TimerPut::Created
                }
            };
            let name = record.name.clone();
            stage_record(
                shared,
                batch,
                staged,
                &name,
                old.as_ref(),
                Some(record.clone()),
            );
            Ok(TimerOutcome::Put(outcome, record))
        }
        TimerChange::Delete(name) => {
            let old = current(shared, staged, &name)?;
            if old.is_some() {
                stage_record(shared, batch, staged, &name, old.as_ref(), None);
            }
            Ok(TimerOutcome::Deleted(old.is_some()))
        }
        TimerChange::Progress(entries) => {
            let mut applied = 0;
            for progress in entries {
                let Some(old) = current(shared, staged, &progress.name)? else {
                    continue;
                };
                if old.generation != progress.generation || old.next_due_ms != progress.from_due_ms
                {
                    continue;
                }
                let new = TimerRecord {
                    next_due_ms: progress.next_due_ms,
                    attempt_at_ms: progress.attempt_at_ms,
                    last_fired_ms: old.last_fired_ms.max(progress.fired_ms),
                    last_error: progress.last_error,
                    ..old.clone()
                };
                stage_record(shared, batch, staged, &progress.name, Some(&old), Some(new));
                applied += 1;
            }
            Ok(TimerOutcome::Applied(applied))
        }
    }
}

impl EmbeddedStore {
    async fn send_timer_change(&self, change: TimerChange) -> Result<TimerOutcome, WriteError> {
        self.ask_writer(|reply| WriteRequest::Timers { change, reply })
            .await
    }

    fn read_timers(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TimerRecord>, ReadError> {
        let shared = &self.shared;
        let start = match after {
            // The first key after `d ‖ after`: `d ‖ after ‖ 0`.
            Some(after) => {
                let mut key = definition_key(after);
                key.push(0);
                key
            }
            None => vec![DEFINITION_TAG],
        };
        let mut records = Vec::new();
        for entry in shared
            .timers
            .range(start..vec![DEFINITION_TAG + 1])
            .take(limit)
        {
            let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
            records.push(decode(&key[1..], &value).map_err(|message| shared.corrupt(message))?);
        }
        Ok(records)
    }

    fn read_due(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRecord>, ReadError> {
        let shared = &self.shared;
        let end = index_key(now_ms.saturating_add(1), "");
        let mut due = Vec::new();
        for entry in shared.timers.range(vec![INDEX_TAG]..end).take(limit) {
            let (key, _) = entry.map_err(|error| shared.engine_error(error))?;
            let (attempt_at_ms, name) = split_index_key(&key)
                .ok_or_else(|| shared.corrupt("malformed timer index key".into()))?;
            let record = read_record(shared, name)?.ok_or_else(|| {
                shared.corrupt(format!("timer {name:?} is indexed but not stored"))
            })?;
            if record.attempt_at_ms != Some(attempt_at_ms) {
                return Err(shared.corrupt(format!(
                    "timer {name:?} is indexed at {attempt_at_ms} but stored at {:?}",
                    record.attempt_at_ms
                )));
            }
            due.push(record);
        }
        Ok(due)
    }

    fn read_next_attempt(&self) -> Result<Option<u64>, ReadError> {
        let shared = &self.shared;
        let first = shared
            .timers
            .prefix([INDEX_TAG])
            .next()
            .transpose()
            .map_err(|error| shared.engine_error(error))?;
        first
            .map(|(key, _)| {
                split_index_key(&key)
                    .map(|(attempt_at_ms, _)| attempt_at_ms)
                    .ok_or_else(|| shared.corrupt("malformed timer index key".into()))
            })
            .transpose()
    }
}

/// Counts the entries of the time index: the timers with an attempt
/// pending (once, when the store opens; the writer keeps the count after).
pub(super) fn count_pending(shared: &Shared) -> Result<u64, ReadError> {
    let mut count = 0;
    for entry in shared.timers.prefix([INDEX_TAG]) {
        entry.map_err(|error| shared.engine_error(error))?;
        count += 1;
    }
    Ok(count)
}

/// Applies a durable group's change of the pending count.
pub(super) fn apply_pending_delta(shared: &Shared, pending_delta: i64) {
    let magnitude = pending_delta.unsigned_abs();
    if pending_delta >= 0 {
        shared.timers_pending.fetch_add(magnitude, Ordering::AcqRel);
    } else {
        shared.timers_pending.fetch_sub(magnitude, Ordering::AcqRel);
    }
}

impl TimerStore for EmbeddedStore {
    fn put_timer(
        &self,
        record: TimerRecord,
    ) -> BoxFuture<'_, Result<(TimerPut, TimerRecord), WriteError>> {
        Box::pin(async move {
            match self.send_timer_change(TimerChange::Put(record)).await? {
                TimerOutcome::Put(put, record) => Ok((put, record)),
                _ => Err(WriteError::storage("unexpected answer to a timer put")),
            }
        })
    }

    fn timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerRecord>, ReadError>> {
        Box::pin(std::future::ready(read_record(&self.shared, name)))
    }

    fn timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TimerRecord>, ReadError>> {
        Box::pin(std::future::ready(self.read_timers(after, limit)))
    }

    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(async move {
            match self
                .send_timer_change(TimerChange::Delete(name.to_string()))
                .await?
            {
                TimerOutcome::Deleted(deleted) => Ok(deleted),
                _ => Err(WriteError::storage("unexpected answer to a timer delete")),
            }
        })
    }

    fn claim_due_timers(
        &self,
        now_ms: u64,
        _claim_ms: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<DueTimers, ReadError>> {
        Box::pin(std::future::ready(
            self.read_due(now_ms, limit)
                .map(|timers| DueTimers { now_ms, timers }),
        ))
    }

    fn record_timer_progress(
        &self,
        progress: Vec<TimerProgress>,
    ) -> BoxFuture<'_, Result<usize, WriteError>> {
        Box::pin(async move {
            if progress.is_empty() {
                return Ok(0);
            }
            match self
                .send_timer_change(TimerChange::Progress(progress))
                .await?
            {
                TimerOutcome::Applied(applied) => Ok(applied),
                _ => Err(WriteError::storage("unexpected answer to timer progress")),
            }
        })
    }

    fn next_timer_attempt_ms(&self) -> BoxFuture<'_, Result<Option<u64>, ReadError>> {
        Box::pin(std::future::ready(self.read_next_attempt()))
    }

    fn pending_timers(&self) -> BoxFuture<'_, Result<u64, ReadError>> {
        Box::pin(std::future::ready(Ok(self
            .shared
            .timers_pending
            .load(Ordering::Acquire))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_checks_its_key() {
        let record = TimerRecord {
            name: "t1".into(),
            definition_json: "{}".into(),
            generation: 3,
            next_due_ms: Some(5),
            attempt_at_ms: Some(6),
            last_fired_ms: None,
            last_error: Some("x".into()),
        };
        assert_eq!(decode(b"t1", &encode(&record)).unwrap(), record);
        assert!(decode(b"t2", &encode(&record)).is_err());
        assert_eq!(split_index_key(&index_key(7, "ab")), Some((7, "ab")));
        assert!(index_key(1, "zz") < index_key(2, "a"));
    }
}

//! Replication links in the embedded store: the `links` partition of the
//! keyspace, and the `LinkStore` implementation.
//!
//! | key           | value       |
//! |---------------|-------------|
//! | `d` ‖ name    | link record |
//!
//! A record is a format-version byte (`1`) followed by JSON (the
//! definition, incarnation, generation, paused flag and progress; the
//! runner is not stored: the embedded store has one). Every change is
//! staged by the writer thread into its group batch (see `writer.rs`), so
//! it is committed in the journal and fsync of facts, and reads what
//! earlier requests of the same group staged first ([`Staged`]), then the
//! partition. Claims write nothing: a claim of an existing incarnation is
//! granted, so it is answered from the partition without the writer.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::writer::WriteRequest;
use super::{EmbeddedStore, Shared};
use crate::error::{ReadError, WriteError};
use crate::links::{LinkPut, LinkRecord, LinkStore};

const DEFINITION_TAG: u8 = b'd';
const RECORD_VERSION: u8 = 1;

/// One link change for the writer.
pub enum LinkChange {
    Put {
        name: String,
        definition_json: String,
        incarnation: String,
    },
    Delete(String),
    SetPaused {
        name: String,
        paused: bool,
    },
    SaveProgress {
        name: String,
        incarnation: String,
        progress_json: String,
    },
}

/// What a change did, answered once it is durable.
pub enum LinkOutcome {
    Put(LinkPut, LinkRecord),
    Deleted(bool),
    Paused(Option<LinkRecord>),
    Saved(bool),
}

/// Link records staged by the requests of one group so far.
#[derive(Default)]
pub struct Staged {
    records: HashMap<String, Option<LinkRecord>>,
    /// Entries this group adds to the batch.
    pub n_writes: usize,
}

#[derive(Serialize, Deserialize)]
struct StoredLink {
    name: String,
    definition_json: String,
    incarnation: String,
    generation: u64,
    paused: bool,
    progress_json: Option<String>,
}

fn encode(record: &LinkRecord) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(
        &mut bytes,
        &StoredLink {
            name: record.name.clone(),
            definition_json: record.definition_json.clone(),
            incarnation: record.incarnation.clone(),
            generation: record.generation,
            paused: record.paused,
            progress_json: record.progress_json.clone(),
        },
    )
    .expect("records serialize to memory");
    bytes
}

fn decode(key_name: &[u8], bytes: &[u8]) -> Result<LinkRecord, String> {
    // The error never quotes the record: its definition may hold a secret.
    let stored: StoredLink = match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => serde_json::from_slice(json).map_err(|error| {
            format!(
                "malformed link record (line {}, column {})",
                error.line(),
                error.column()
            )
        })?,
        _ => return Err("link record of an unknown version".into()),
    };
    if stored.name.as_bytes() != key_name {
        return Err(format!(
            "link record {:?} is stored under another name",
            stored.name
        ));
    }
    Ok(LinkRecord {
        name: stored.name,
        definition_json: stored.definition_json,
        incarnation: stored.incarnation,
        generation: stored.generation,
        paused: stored.paused,
        progress_json: stored.progress_json,
        runner: None,
    })
}

fn definition_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(DEFINITION_TAG);
    key.extend_from_slice(name.as_bytes());
    key
}

fn read_record(shared: &Shared, name: &str) -> Result<Option<LinkRecord>, ReadError> {
    let value = shared
        .links
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
fn current(shared: &Shared, staged: &Staged, name: &str) -> Result<Option<LinkRecord>, WriteError> {
    if let Some(record) = staged.records.get(name) {
        return Ok(record.clone());
    }
    read_record(shared, name).map_err(write_error)
}

/// Writes `new` (or removes the record when it is `None`) into the batch.
fn stage_record(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    name: &str,
    new: Option<LinkRecord>,
) {
    match &new {
        Some(record) => batch.insert(&shared.links, definition_key(name), encode(record)),
        None => batch.remove(&shared.links, definition_key(name)),
    }
    staged.n_writes += 1;
    staged.records.insert(name.to_string(), new);
}

/// Stages one change into the group's batch (on the writer thread).
pub fn stage_change(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    change: LinkChange,
) -> Result<LinkOutcome, WriteError> {
    match change {
        LinkChange::Put {
            name,
            definition_json,
            incarnation,
        } => {
            let old = current(shared, staged, &name)?;
            let (put, record) = match old {
                Some(old) if old.definition_json == definition_json => {
                    return Ok(LinkOutcome::Put(LinkPut::Unchanged, old))
                }
                Some(old) => (
                    LinkPut::Replaced,
                    LinkRecord {
                        definition_json,
                        generation: old.generation + 1,
                        ..old
                    },
                ),
                None => (
                    LinkPut::Created,
                    LinkRecord {
                        name: name.clone(),
                        definition_json,
                        incarnation,
                        generation: 1,
                        paused: false,
                        progress_json: None,
                        runner: None,
                    },
                ),
            };
            stage_record(shared, batch, staged, &name, Some(record.clone()));
            Ok(LinkOutcome::Put(put, record))
        }
        LinkChange::Delete(name) => {
            let existed = current(shared, staged, &name)?.is_some();
            if existed {
                stage_record(shared, batch, staged, &name, None);
            }
            Ok(LinkOutcome::Deleted(existed))
        }
        LinkChange::SetPaused { name, paused } => {
            let Some(old) = current(shared, staged, &name)? else {
                return Ok(LinkOutcome::Paused(None));
            };
            if old.paused == paused {
                return Ok(LinkOutcome::Paused(Some(old)));
            }
            let record = LinkRecord { paused, ..old };
            stage_record(shared, batch, staged, &name, Some(record.clone()));
            Ok(LinkOutcome::Paused(Some(record)))
        }
        LinkChange::SaveProgress {
            name,
            incarnation,
            progress_json,
        } => {
            let Some(old) = current(shared, staged, &name)? else {
                return Ok(LinkOutcome::Saved(false));
            };
            if old.incarnation != incarnation {
                return Ok(LinkOutcome::Saved(false));
            }
            let record = LinkRecord {
                progress_json: Some(progress_json),
                ..old
            };
            stage_record(shared, batch, staged, &name, Some(record));
            Ok(LinkOutcome::Saved(true))
        }
    }
}

impl EmbeddedStore {
    async fn send_link_change(&self, change: LinkChange) -> Result<LinkOutcome, WriteError> {
        self.ask_writer(|reply| WriteRequest::Links { change, reply })
            .await
    }

    fn read_links(&self, after: Option<&str>, limit: usize) -> Result<Vec<LinkRecord>, ReadError> {
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
            .links
            .range(start..vec![DEFINITION_TAG + 1])
            .take(limit)
        {
            let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
            records.push(decode(&key[1..], &value).map_err(|message| shared.corrupt(message))?);
        }
        Ok(records)
    }
}

fn unexpected(what: &str) -> WriteError {
    WriteError::storage(format!("unexpected answer to a link {what}"))
}

impl LinkStore for EmbeddedStore {
    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition_json: &'a str,
        incarnation: &'a str,
    ) -> BoxFuture<'a, Result<(LinkPut, LinkRecord), WriteError>> {
        Box::pin(async move {
            let change = LinkChange::Put {
                name: name.to_string(),
                definition_json: definition_json.to_string(),
                incarnation: incarnation.to_string(),
            };
            match self.send_link_change(change).await? {
                LinkOutcome::Put(put, record) => Ok((put, record)),
                _ => Err(unexpected("put")),
            }
        })
    }

    fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkRecord>, ReadError>> {
        Box::pin(std::future::ready(read_record(&self.shared, name)))
    }

    fn links<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<LinkRecord>, ReadError>> {
        Box::pin(std::future::ready(self.read_links(after, limit)))
    }

    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(async move {
            match self
                .send_link_change(LinkChange::Delete(name.to_string()))
                .await?
            {
                LinkOutcome::Deleted(deleted) => Ok(deleted),
                _ => Err(unexpected("delete")),
            }
        })
    }

    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<Option<LinkRecord>, WriteError>> {
        Box::pin(async move {
            let change = LinkChange::SetPaused {
                name: name.to_string(),
                paused,
            };
            match self.send_link_change(change).await? {
                LinkOutcome::Paused(record) => Ok(record),
                _ => Err(unexpected("pause")),
            }
        })
    }

    /// `runner` is not checked: the embedded store has one runner.
    fn save_link_progress<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        _runner: &'a str,
        progress_json: &'a str,
    ) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(async move {
            let change = LinkChange::SaveProgress {
                name: name.to_string(),
                incarnation: incarnation.to_string(),
                progress_json: progress_json.to_string(),
            };
            match self.send_link_change(change).await? {
                LinkOutcome::Saved(saved) => Ok(saved),
                _ => Err(unexpected("progress")),
            }
        })
    }

    /// Granted iff the link exists as `incarnation`; nothing is written.
    fn claim_link<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        _runner: &'a str,
        _claim_ms: u64,
    ) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(std::future::ready(
            read_record(&self.shared, name)
                .map(|record| record.is_some_and(|record| record.incarnation == incarnation))
                .map_err(write_error),
        ))
    }

    /// Nothing to give up: the embedded store records no claims.
    fn release_link<'a>(
        &'a self,
        _name: &'a str,
        _runner: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_checks_its_key() {
        let record = LinkRecord {
            name: "l1".into(),
            definition_json: "{\"token\":\"secret\"}".into(),
            incarnation: "i1".into(),
            generation: 3,
            paused: true,
            progress_json: Some("{}".into()),
            runner: None,
        };
        assert_eq!(decode(b"l1", &encode(&record)).unwrap(), record);
        assert!(decode(b"l2", &encode(&record)).is_err());
        let mut damaged = encode(&record);
        damaged.truncate(damaged.len() - 1);
        let error = decode(b"l1", &damaged).unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}

//! Claims and leases in the embedded store: their records in the
//! `coordination` partition, and [`CoordinationStore`] for the store.
//!
//! | key               | value                    |
//! |-------------------|--------------------------|
//! | `c` ‖ claim key   | `ClaimRecord` as JSON    |
//! | `l` ‖ lease name  | `LeaseRecord` as JSON    |
//!
//! Every operation, reads included, goes through the writer thread, which
//! decides it (the rules of [`crate::coordination`]) against the records
//! as they stand in its current group, and answers only after that group
//! is durable: the writer is the one place where claims are decided, so
//! they are linearizable, and no answer reveals a decision a crash could
//! still undo. The deployment's identity is kept in the `meta` partition,
//! made when the store is created.

use std::collections::HashMap;

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::writer::WriteRequest;
use super::{EmbeddedStore, Shared};
use crate::coordination::{
    ClaimOutcome, ClaimRecord, ClaimReleaseOutcome, CoordinationStore, Fence, LeaseOutcome,
    LeaseRecord, LeaseRequest,
};
use crate::error::{ReadError, WriteError};
use crate::store::PutOutcome;

const CLAIM_TAG: u8 = b'c';
const LEASE_TAG: u8 = b'l';
/// The key of the deployment's identity in the `meta` partition.
pub(super) const DEPLOYMENT_KEY: &str = "deployment";

/// A claim or lease operation for the writer.
pub enum CoordinationOp {
    Claim { key: String, fact: Hash },
    ReleaseClaim { key: String, fact: Hash },
    ReadClaim { key: String },
    Lease { request: LeaseRequest, now_ms: u64 },
    ReadLease { name: String },
}

/// The writer's answer to a [`CoordinationOp`].
pub enum CoordinationAnswer {
    Claim(ClaimOutcome),
    ReleaseClaim(ClaimReleaseOutcome),
    ClaimRecord(Option<ClaimRecord>),
    Lease(LeaseOutcome),
    LeaseRecord(Option<LeaseRecord>),
}

/// The key of a claim's record.
pub(super) fn claim_key(key: &str) -> Vec<u8> {
    tagged(CLAIM_TAG, key)
}

/// The key of a lease's record.
pub(super) fn lease_key(name: &str) -> Vec<u8> {
    tagged(LEASE_TAG, name)
}

fn tagged(tag: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + text.len());
    key.push(tag);
    key.extend_from_slice(text.as_bytes());
    key
}

/// Records this group wrote, read before the partition so that two
/// operations on one key in one group see each other.
#[derive(Default)]
pub struct Staged {
    records: HashMap<Vec<u8>, Vec<u8>>,
    /// Entries this group adds to the batch.
    pub n_writes: usize,
}

impl Staged {
    /// Reads the record at `key`, staged or stored.
    pub fn read<R: DeserializeOwned>(
        &self,
        shared: &Shared,
        key: &[u8],
    ) -> Result<Option<R>, WriteError> {
        let bytes = match self.records.get(key) {
            Some(bytes) => Some(bytes.clone()),
            None => shared
                .coordination
                .get(key)
                .map_err(|error| {
                    let error = shared.engine_error(error);
                    WriteError::storage_caused_by(error.to_string(), error)
                })?
                .map(|bytes| bytes.to_vec()),
        };
        bytes
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|error| {
                    let error = shared.corrupt(format!(
                        "malformed coordination record {:?}: {error}",
                        String::from_utf8_lossy(key)
                    ));
                    WriteError::storage_caused_by(error.to_string(), error)
                })
            })
            .transpose()
    }

    /// Stages `record` at `key` in `batch`.
    pub fn write<R: Serialize>(
        &mut self,
        shared: &Shared,
        batch: &mut fjall::Batch,
        key: Vec<u8>,
        record: &R,
    ) {
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        batch.insert(&shared.coordination, &key, &bytes);
        self.records.insert(key, bytes);
        self.n_writes += 1;
    }
}

/// Reads the deployment's identity, making it when the store is new.
pub(super) fn deployment(
    meta: &fjall::PartitionHandle,
    keyspace: &fjall::Keyspace,
) -> Result<String, fjall::Error> {
    if let Some(stored) = meta.get(DEPLOYMENT_KEY)? {
        return Ok(String::from_utf8_lossy(&stored).into_owned());
    }
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|error| fjall::Error::Io(std::io::Error::other(error.to_string())))?;
    let deployment: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    meta.insert(DEPLOYMENT_KEY, deployment.as_bytes())?;
    keyspace.persist(fjall::PersistMode::SyncAll)?;
    Ok(deployment)
}

impl EmbeddedStore {
    async fn coordinate(&self, op: CoordinationOp) -> Result<CoordinationAnswer, WriteError> {
        self.ask_writer(|reply| WriteRequest::Coordination { op, reply })
            .await
    }

    /// A read through the writer; a failed read is a read error.
    async fn coordinate_read(&self, op: CoordinationOp) -> Result<CoordinationAnswer, ReadError> {
        self.coordinate(op).await.map_err(|error| match error {
            WriteError::Corrupt(message) => ReadError::corrupt(message),
            other => ReadError::storage(other.to_string()),
        })
    }
}

fn unexpected<T>() -> Result<T, WriteError> {
    Err(WriteError::storage("the writer answered another operation"))
}

impl CoordinationStore for EmbeddedStore {
    fn deployment(&self) -> &str {
        &self.shared.deployment
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimOutcome, WriteError>> {
        Box::pin(async move {
            let op = CoordinationOp::Claim {
                key: key.to_string(),
                fact,
            };
            match self.coordinate(op).await? {
                CoordinationAnswer::Claim(outcome) => Ok(outcome),
                _ => unexpected(),
            }
        })
    }

    fn claim_record<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClaimRecord>, ReadError>> {
        Box::pin(async move {
            let op = CoordinationOp::ReadClaim {
                key: key.to_string(),
            };
            match self.coordinate_read(op).await? {
                CoordinationAnswer::ClaimRecord(record) => Ok(record),
                _ => Err(ReadError::storage("the writer answered another operation")),
            }
        })
    }

    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleaseOutcome, WriteError>> {
        Box::pin(async move {
            let op = CoordinationOp::ReleaseClaim {
                key: key.to_string(),
                fact,
            };
            match self.coordinate(op).await? {
                CoordinationAnswer::ReleaseClaim(outcome) => Ok(outcome),
                _ => unexpected(),
            }
        })
    }

    fn update_lease(
        &self,
        request: LeaseRequest,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<LeaseOutcome, WriteError>> {
        Box::pin(async move {
            match self
                .coordinate(CoordinationOp::Lease { request, now_ms })
                .await?
            {
                CoordinationAnswer::Lease(outcome) => Ok(outcome),
                _ => unexpected(),
            }
        })
    }

    fn lease_record<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseRecord>, ReadError>> {
        Box::pin(async move {
            let op = CoordinationOp::ReadLease {
                name: name.to_string(),
            };
            match self.coordinate_read(op).await? {
                CoordinationAnswer::LeaseRecord(record) => Ok(record),
                _ => Err(ReadError::storage("the writer answered another operation")),
            }
        })
    }

    fn put_facts_fenced(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
        fence: Fence,
    ) -> BoxFuture<'_, Result<Vec<PutOutcome>, WriteError>> {
        Box::pin(self.send_facts(facts, author, Some(fence)))
    }
}

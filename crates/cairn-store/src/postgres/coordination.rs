//! Claims, leases and fenced writes on PostgreSQL (migration 7): every
//! server of the deployment decides on the same rows.
//!
//! Claims and releases go through the store's claim batcher
//! (`claim_batcher.rs`): many in one transaction, under the row locks of
//! their keys. A lease operation is one transaction: make sure the row
//! exists, lock it (`FOR UPDATE`), decide by the rules of
//! [`crate::coordination`] on the record it holds, write the decision's
//! fact with `cairn_put_facts` and the new record, commit. Two servers
//! deciding on one key or name therefore take turns on its row lock, and
//! the second sees the first's decision. Lease expiry is judged by the
//! database's clock, so every server agrees on it. A fenced write locks
//! its lease's row `FOR SHARE` in the transaction that writes its facts:
//! a grant (which needs the row `FOR UPDATE`) waits for it, and a write
//! after a grant sees the grant.

use std::time::Instant;

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use sqlx::{Postgres, Transaction};

use super::errors::{read_error, write_error};
use super::transaction::{self, TransactionConnection};
use super::{write_facts, PostgresStore};
use crate::coordination::{
    check_fence, decide_lease, ClaimOutcome, ClaimRecord, ClaimReleaseOutcome, CoordinationStore,
    Fence, LeaseDecision, LeaseOutcome, LeaseRecord, LeaseRequest,
};
use crate::error::{ReadError, WriteError};
use crate::store::PutOutcome;

/// Makes the row of a lease (a row is made to be locked).
const ENSURE_LEASE_ROW: &str = "INSERT INTO cairn_leases (name) VALUES ($1) ON CONFLICT DO NOTHING";
/// Locks a lease's row for the transaction and reads its record.
const LOCK_LEASE_ROW: &str = "SELECT record FROM cairn_leases WHERE name = $1 FOR UPDATE";
/// Stores a lease's record.
const UPDATE_LEASE_ROW: &str = "UPDATE cairn_leases SET record = $2 WHERE name = $1";
/// Reads a claim's record.
const READ_CLAIM_ROW: &str = "SELECT record FROM cairn_claims WHERE key = $1";
/// Reads a lease's record.
const READ_LEASE_ROW: &str = "SELECT record FROM cairn_leases WHERE name = $1";

fn decode<R: DeserializeOwned>(text: Option<String>) -> Result<Option<R>, String> {
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|error| format!("malformed coordination record: {error}"))
    })
    .transpose()
}

/// Locks the lease `name`'s record for this transaction, making its row
/// if it has none.
async fn lock_lease(
    transaction: &mut Transaction<'_, Postgres>,
    name: &str,
) -> Result<Option<LeaseRecord>, WriteError> {
    sqlx::query(ENSURE_LEASE_ROW)
        .bind(name)
        .execute(&mut **transaction)
        .await
        .map_err(write_error)?;
    let text: Option<String> = sqlx::query_scalar(LOCK_LEASE_ROW)
        .bind(name)
        .fetch_one(&mut **transaction)
        .await
        .map_err(write_error)?;
    decode(text).map_err(WriteError::Corrupt)
}

async fn store_lease(
    transaction: &mut Transaction<'_, Postgres>,
    name: &str,
    record: &LeaseRecord,
) -> Result<(), WriteError> {
    let text = serde_json::to_string(record).expect("a record serializes");
    sqlx::query(UPDATE_LEASE_ROW)
        .bind(name)
        .bind(text)
        .execute(&mut **transaction)
        .await
        .map_err(write_error)?;
    Ok(())
}

/// Writes one fact the server decided on, in the transaction; its seq.
async fn write_server_fact(
    transaction: &mut Transaction<'_, Postgres>,
    fact: &CanonicalFact,
) -> Result<u64, WriteError> {
    let written = write_facts(&mut **transaction, std::slice::from_ref(fact), None)
        .await
        .map_err(write_error)??;
    Ok(written[0].0)
}

impl PostgresStore {
    /// Runs `body` in a transaction under the operation deadline and
    /// commits it; the facts it wrote are then counted and the log's head
    /// moved.
    async fn decide<T>(
        &self,
        body: impl for<'t> FnOnce(
                &'t mut Transaction<'_, Postgres>,
            ) -> BoxFuture<'t, Result<(T, Option<u64>), WriteError>>
            + Send,
    ) -> Result<T, WriteError> {
        let transaction = async {
            let mut connection = TransactionConnection::acquire(self.pool())
                .await
                .map_err(write_error)?;
            let mut transaction = connection.begin().await.map_err(write_error)?;
            let (answer, fact_seq) = body(&mut transaction).await?;
            transaction::commit(transaction)
                .await
                .map_err(write_error)?;
            Ok((answer, fact_seq))
        };
        let (answer, fact_seq) = self.timed_transaction(transaction).await?;
        if let Some(seq) = fact_seq {
            self.advance_head(seq);
        }
        Ok(answer)
    }

    async fn read_record<R: DeserializeOwned>(
        &self,
        statement: &'static str,
        id: &str,
    ) -> Result<Option<R>, ReadError> {
        let text: Option<Option<String>> = self
            .timed(
                sqlx::query_scalar(statement)
                    .bind(id)
                    .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        decode(text.flatten()).map_err(ReadError::corrupt)
    }
}

impl CoordinationStore for PostgresStore {
    fn deployment(&self) -> &str {
        &self.deployment
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimOutcome, WriteError>> {
        Box::pin(self.claims.claim(key, fact))
    }

    fn claim_record<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClaimRecord>, ReadError>> {
        Box::pin(self.read_record(READ_CLAIM_ROW, key))
    }

    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleaseOutcome, WriteError>> {
        Box::pin(self.claims.release(key, fact))
    }

    fn update_lease(
        &self,
        request: LeaseRequest,
        _now_ms: u64,
    ) -> BoxFuture<'_, Result<LeaseOutcome, WriteError>> {
        let deployment = self.deployment.clone();
        Box::pin(self.decide(move |transaction| {
            Box::pin(async move {
                let name = request.name().to_string();
                let record = lock_lease(transaction, &name).await?;
                // Every server judges expiry by the database's clock.
                let now_ms: i64 = sqlx::query_scalar(
                    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                )
                .fetch_one(&mut **transaction)
                .await
                .map_err(write_error)?;
                let now_ms = u64::try_from(now_ms).unwrap_or(0);
                let (record, seq) =
                    match decide_lease(record.as_ref(), &request, now_ms, &deployment) {
                        LeaseDecision::Answer(answer) => return Ok((answer, None)),
                        LeaseDecision::Write(record) => (record, None),
                        LeaseDecision::WriteWithFact { record, fact } => {
                            let seq = write_server_fact(transaction, &fact).await?;
                            (record, Some(seq))
                        }
                    };
                store_lease(transaction, &name, &record).await?;
                Ok((LeaseOutcome::Granted(record), seq))
            })
        }))
    }

    fn lease_record<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseRecord>, ReadError>> {
        Box::pin(self.read_record(READ_LEASE_ROW, name))
    }

    fn put_facts_fenced(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
        fence: Fence,
    ) -> BoxFuture<'_, Result<Vec<PutOutcome>, WriteError>> {
        Box::pin(async move {
            if facts.is_empty() {
                return Ok(Vec::new());
            }
            let started = Instant::now();
            let transaction = async {
                let mut connection = TransactionConnection::acquire(self.pool())
                    .await
                    .map_err(write_error)?;
                let mut transaction = connection.begin().await.map_err(write_error)?;
                let text: Option<Option<String>> =
                    sqlx::query_scalar("SELECT record FROM cairn_leases WHERE name = $1 FOR SHARE")
                        .bind(&fence.name)
                        .fetch_optional(&mut *transaction)
                        .await
                        .map_err(write_error)?;
                let record: Option<LeaseRecord> =
                    decode(text.flatten()).map_err(WriteError::Corrupt)?;
                check_fence(record.as_ref(), &fence)?;
                let written = write_facts(&mut *transaction, &facts, author.as_deref())
                    .await
                    .map_err(write_error)??;
                transaction::commit(transaction)
                    .await
                    .map_err(write_error)?;
                Ok(written)
            };
            let written = self.timed_transaction(transaction).await?;
            self.record_written(&facts, written, started)
        })
    }
}

//! Identities, access tokens, the audit trail and authorship on
//! PostgreSQL (`migrations/0006_identities.sql`): the `IdentityStore`
//! implementation.
//!
//! Every identity change runs in one transaction that first moves the
//! single `cairn_identity_revision` row, whose lock makes identity changes
//! from all servers one at a time, and commits the revision with the
//! change: a server that sees the revision move reads the change. A name or
//! token id taken concurrently is a unique violation, answered as
//! `Exists` or `TokenIdTaken`. Authorship is written by the
//! `cairn_put_facts_by` function in the facts' own transaction (see
//! `mod.rs`).

use std::time::Instant;

use cairn_fact::Hash;
use futures_util::future::BoxFuture;
use sqlx::{Postgres, Row, Transaction};

use super::errors::{read_error, write_error};
use super::transaction::{self, TransactionConnection};
use super::PostgresStore;
use crate::error::{ReadError, WriteError};
use crate::identity::{
    AuditRecord, AuthorRecord, IdentityError, IdentityRecord, IdentityStore, TokenRecord,
};

/// Constraint whose violation means the identity's name is taken.
const IDENTITY_NAME_CONSTRAINT: &str = "cairn_identities_pkey";
/// Constraint whose violation means a token id is taken.
const TOKEN_ID_CONSTRAINT: &str = "cairn_access_tokens_pkey";

/// Maps a failed statement of an identity change: a name or token id that
/// another transaction took first is a refusal, anything else a failure.
fn change_error(error: sqlx::Error, name: &str, token_ids: &[&str]) -> IdentityError {
    if let sqlx::Error::Database(database) = &error {
        if database.code().as_deref() == Some("23505") {
            match database.constraint() {
                Some(IDENTITY_NAME_CONSTRAINT) => return IdentityError::Exists(name.to_string()),
                Some(TOKEN_ID_CONSTRAINT) => {
                    let id = token_ids.first().copied().unwrap_or_default();
                    return IdentityError::TokenIdTaken(id.to_string());
                }
                _ => {}
            }
        }
    }
    IdentityError::Write(write_error(error))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64, what: &str) -> Result<u64, ReadError> {
    u64::try_from(value).map_err(|_| ReadError::corrupt(format!("negative {what}: {value}")))
}

fn to_u32(value: Option<i32>, what: &str) -> Result<Option<u32>, ReadError> {
    value
        .map(|value| {
            u32::try_from(value).map_err(|_| ReadError::corrupt(format!("negative {what}")))
        })
        .transpose()
}

fn to_i32(value: Option<u32>) -> Option<i32> {
    value.map(|value| i32::try_from(value).unwrap_or(i32::MAX))
}

/// Moves the identity revision, taking the lock that orders identity
/// changes.
async fn move_revision(transaction: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cairn_identity_revision SET revision = revision + 1")
        .execute(&mut **transaction)
        .await
        .map(|_| ())
}

async fn insert_token(
    transaction: &mut Transaction<'_, Postgres>,
    name: &str,
    token: &TokenRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cairn_access_tokens
             (id, identity, secret_hash, created_at_ms, expires_at_ms, last_used_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(name)
    .bind(token.secret_hash.as_slice())
    .bind(to_i64(token.created_at_ms))
    .bind(token.expires_at_ms.map(to_i64))
    .bind(token.last_used_at_ms.map(to_i64))
    .execute(&mut **transaction)
    .await
    .map(|_| ())
}

impl PostgresStore {
    /// [`PostgresStore::timed`] for an identity change's transaction.
    async fn timed_change(
        &self,
        change: impl std::future::Future<Output = Result<(), IdentityError>>,
    ) -> Result<(), IdentityError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.operation_timeout, change)
            .await
            .unwrap_or_else(|_| Err(IdentityError::Write(write_error(self.no_answer()))));
        self.counters.observe_query(started.elapsed());
        result
    }

    async fn create_in_transaction(&self, identity: IdentityRecord) -> Result<(), IdentityError> {
        let token_ids: Vec<&str> = identity.tokens.iter().map(|t| t.id.as_str()).collect();
        let failed = |error| change_error(error, &identity.name, &token_ids);
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(failed)?;
        let mut transaction = connection.begin().await.map_err(failed)?;
        move_revision(&mut transaction).await.map_err(failed)?;
        sqlx::query(
            "INSERT INTO cairn_identities
                 (name, permissions_json, rate_per_s, write_rate_per_s, created_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&identity.name)
        .bind(&identity.permissions_json)
        .bind(to_i32(identity.rate_per_s))
        .bind(to_i32(identity.write_rate_per_s))
        .bind(to_i64(identity.created_at_ms))
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
        for token in &identity.tokens {
            insert_token(&mut transaction, &identity.name, token)
                .await
                .map_err(|error| change_error(error, &identity.name, &[token.id.as_str()]))?;
        }
        transaction::commit(transaction).await.map_err(failed)
    }

    async fn rotate_in_transaction(
        &self,
        name: &str,
        token: TokenRecord,
        others_expire_at_ms: u64,
    ) -> Result<(), IdentityError> {
        let failed = |error| change_error(error, name, &[token.id.as_str()]);
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(failed)?;
        let mut transaction = connection.begin().await.map_err(failed)?;
        move_revision(&mut transaction).await.map_err(failed)?;
        let exists = sqlx::query("SELECT 1 FROM cairn_identities WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(failed)?
            .is_some();
        if !exists {
            return Err(IdentityError::Unknown(name.to_string()));
        }
        sqlx::query(
            "UPDATE cairn_access_tokens
             SET expires_at_ms = least(coalesce(expires_at_ms, $2), $2)
             WHERE identity = $1",
        )
        .bind(name)
        .bind(to_i64(others_expire_at_ms))
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
        insert_token(&mut transaction, name, &token)
            .await
            .map_err(failed)?;
        transaction::commit(transaction).await.map_err(failed)
    }

    async fn revoke_in_transaction(&self, name: &str) -> Result<(), IdentityError> {
        let failed = |error| change_error(error, name, &[]);
        let mut connection = TransactionConnection::acquire(self.pool())
            .await
            .map_err(failed)?;
        let mut transaction = connection.begin().await.map_err(failed)?;
        move_revision(&mut transaction).await.map_err(failed)?;
        let deleted = sqlx::query("DELETE FROM cairn_identities WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await
            .map_err(failed)?
            .rows_affected();
        if deleted == 0 {
            // Rolled back on drop: the revision does not move.
            return Err(IdentityError::Unknown(name.to_string()));
        }
        transaction::commit(transaction).await.map_err(failed)
    }

    async fn read_identities(&self) -> Result<Vec<IdentityRecord>, ReadError> {
        // One statement, so one snapshot: tokens match their identities.
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT i.name, i.permissions_json, i.rate_per_s, i.write_rate_per_s,
                            i.created_at_ms AS identity_created_at_ms,
                            t.id, t.secret_hash, t.created_at_ms, t.expires_at_ms,
                            t.last_used_at_ms
                     FROM cairn_identities i
                     LEFT JOIN cairn_access_tokens t ON t.identity = i.name
                     ORDER BY i.name, t.created_at_ms, t.id",
                )
                .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        let mut identities: Vec<IdentityRecord> = Vec::new();
        for row in &rows {
            let name: String = row.try_get("name").map_err(read_error)?;
            if identities.last().is_none_or(|last| last.name != name) {
                identities.push(IdentityRecord {
                    permissions_json: row.try_get("permissions_json").map_err(read_error)?,
                    rate_per_s: to_u32(row.try_get("rate_per_s").map_err(read_error)?, "rate")?,
                    write_rate_per_s: to_u32(
                        row.try_get("write_rate_per_s").map_err(read_error)?,
                        "write rate",
                    )?,
                    created_at_ms: to_u64(
                        row.try_get("identity_created_at_ms").map_err(read_error)?,
                        "creation time",
                    )?,
                    tokens: Vec::new(),
                    name,
                });
            }
            let Some(id) = row.try_get::<Option<String>, _>("id").map_err(read_error)? else {
                continue;
            };
            let secret_hash: Vec<u8> = row.try_get("secret_hash").map_err(read_error)?;
            let secret_hash: [u8; 32] = secret_hash
                .try_into()
                .map_err(|_| ReadError::corrupt(format!("token {id} has a malformed hash")))?;
            let optional_ms = |column: &str| -> Result<Option<u64>, ReadError> {
                row.try_get::<Option<i64>, _>(column)
                    .map_err(read_error)?
                    .map(|ms| to_u64(ms, column))
                    .transpose()
            };
            let token = TokenRecord {
                secret_hash,
                created_at_ms: to_u64(
                    row.try_get("created_at_ms").map_err(read_error)?,
                    "creation time",
                )?,
                expires_at_ms: optional_ms("expires_at_ms")?,
                last_used_at_ms: optional_ms("last_used_at_ms")?,
                id,
            };
            identities
                .last_mut()
                .expect("an identity row came first")
                .tokens
                .push(token);
        }
        Ok(identities)
    }

    async fn read_audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, ReadError> {
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT seq, at_ms, identity, method, route, outcome, status, count, detail
                     FROM cairn_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(to_i64(after))
                .bind(to_i64(limit as u64))
                .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        rows.iter()
            .map(|row| {
                let status: i32 = row.try_get("status").map_err(read_error)?;
                Ok(AuditRecord {
                    seq: to_u64(row.try_get("seq").map_err(read_error)?, "audit seq")?,
                    at_ms: to_u64(row.try_get("at_ms").map_err(read_error)?, "audit time")?,
                    identity: row.try_get("identity").map_err(read_error)?,
                    method: row.try_get("method").map_err(read_error)?,
                    route: row.try_get("route").map_err(read_error)?,
                    outcome: row.try_get("outcome").map_err(read_error)?,
                    status: u16::try_from(status).map_err(|_| {
                        ReadError::corrupt(format!("audit status {status} out of range"))
                    })?,
                    count: to_u64(row.try_get("count").map_err(read_error)?, "audit count")?,
                    detail: row.try_get("detail").map_err(read_error)?,
                })
            })
            .collect()
    }

    async fn write_audit(&self, mut entries: Vec<AuditRecord>) -> Result<(), WriteError> {
        // Entries the limit would delete at once are not written: the
        // statement's DELETE does not see the rows its INSERT adds.
        let kept_max = usize::try_from(self.audit_entries_max).unwrap_or(usize::MAX);
        if entries.len() > kept_max {
            entries.drain(..entries.len() - kept_max);
        }
        let mut at_ms = Vec::with_capacity(entries.len());
        let mut identities = Vec::with_capacity(entries.len());
        let mut methods = Vec::with_capacity(entries.len());
        let mut routes = Vec::with_capacity(entries.len());
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut statuses = Vec::with_capacity(entries.len());
        let mut counts = Vec::with_capacity(entries.len());
        let mut details = Vec::with_capacity(entries.len());
        for entry in entries {
            at_ms.push(to_i64(entry.at_ms));
            identities.push(entry.identity);
            methods.push(entry.method);
            routes.push(entry.route);
            outcomes.push(entry.outcome);
            statuses.push(i32::from(entry.status));
            counts.push(to_i64(entry.count));
            details.push(entry.detail);
        }
        // One statement: the entries, then the oldest beyond the limit
        // (an index range from the start of the trail, usually empty).
        // Sequence gaps only make fewer entries stay; an entry of a
        // concurrent append that this DELETE cannot see yet goes with the
        // next append.
        self.timed(
            sqlx::query(
                "WITH appended AS (
                     INSERT INTO cairn_audit
                         (at_ms, identity, method, route, outcome, status, count, detail)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                          $5::text[], $6::int[], $7::bigint[], $8::text[])
                     RETURNING seq
                 )
                 DELETE FROM cairn_audit
                 WHERE seq <= (SELECT max(seq) FROM appended) - $9",
            )
            .bind(&at_ms)
            .bind(&identities)
            .bind(&methods)
            .bind(&routes)
            .bind(&outcomes)
            .bind(&statuses)
            .bind(&counts)
            .bind(&details)
            .bind(to_i64(self.audit_entries_max))
            .execute(self.pool()),
        )
        .await
        .map(|_| ())
        .map_err(write_error)
    }
}

impl IdentityStore for PostgresStore {
    fn identity_revision(&self) -> BoxFuture<'_, Result<u64, ReadError>> {
        Box::pin(async move {
            let revision: i64 = self
                .timed(
                    sqlx::query_scalar("SELECT revision FROM cairn_identity_revision")
                        .fetch_one(self.pool()),
                )
                .await
                .map_err(read_error)?;
            to_u64(revision, "identity revision")
        })
    }

    fn identities(&self) -> BoxFuture<'_, Result<Vec<IdentityRecord>, ReadError>> {
        Box::pin(self.read_identities())
    }

    fn create_identity(
        &self,
        identity: IdentityRecord,
    ) -> BoxFuture<'_, Result<(), IdentityError>> {
        Box::pin(self.timed_change(self.create_in_transaction(identity)))
    }

    fn rotate_token(
        &self,
        name: &str,
        token: TokenRecord,
        others_expire_at_ms: u64,
    ) -> BoxFuture<'_, Result<(), IdentityError>> {
        let name = name.to_string();
        Box::pin(async move {
            self.timed_change(self.rotate_in_transaction(&name, token, others_expire_at_ms))
                .await
        })
    }

    fn revoke_identity(&self, name: &str) -> BoxFuture<'_, Result<(), IdentityError>> {
        let name = name.to_string();
        Box::pin(async move { self.timed_change(self.revoke_in_transaction(&name)).await })
    }

    fn record_token_uses(&self, uses: Vec<(String, u64)>) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            if uses.is_empty() {
                return Ok(());
            }
            let (ids, at_ms): (Vec<String>, Vec<i64>) =
                uses.into_iter().map(|(id, at)| (id, to_i64(at))).unzip();
            // Several servers may record uses of the same tokens at once;
            // rows are locked in id order so that they cannot deadlock.
            self.timed(
                sqlx::query(
                    "WITH uses AS (
                         SELECT u.id, max(u.at) AS at
                         FROM unnest($1::text[], $2::bigint[]) AS u(id, at)
                         GROUP BY u.id
                     ),
                     locked AS (
                         SELECT t.id FROM cairn_access_tokens t
                         WHERE t.id IN (SELECT id FROM uses)
                         ORDER BY t.id FOR UPDATE
                     )
                     UPDATE cairn_access_tokens t
                     SET last_used_at_ms = greatest(t.last_used_at_ms, uses.at)
                     FROM uses, locked
                     WHERE t.id = uses.id AND locked.id = t.id",
                )
                .bind(&ids)
                .bind(&at_ms)
                .execute(self.pool()),
            )
            .await
            .map(|_| ())
            .map_err(write_error)
        })
    }

    fn append_audit(&self, entries: Vec<AuditRecord>) -> BoxFuture<'_, Result<(), WriteError>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            self.write_audit(entries).await
        })
    }

    fn audit(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, ReadError>> {
        Box::pin(self.read_audit(after, limit))
    }

    fn authorship<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<AuthorRecord>, ReadError>> {
        Box::pin(async move {
            let row = self
                .timed(
                    // A fact written again has its own row; any other
                    // has the first author of the range holding its seq.
                    sqlx::query(
                        "SELECT first_author, again FROM cairn_fact_authors WHERE hash = $1
                         UNION ALL
                         SELECT cairn_first_author(f.seq), '{}'::text[] FROM cairn_facts f
                         WHERE f.hash = $1
                           AND NOT EXISTS (SELECT 1 FROM cairn_fact_authors WHERE hash = $1)
                           AND cairn_first_author(f.seq) IS NOT NULL",
                    )
                    .bind(hash.as_bytes().as_slice())
                    .fetch_optional(self.pool()),
                )
                .await
                .map_err(read_error)?;
            row.map(|row| {
                Ok(AuthorRecord {
                    first: row.try_get("first_author").map_err(read_error)?,
                    again: row.try_get("again").map_err(read_error)?,
                })
            })
            .transpose()
        })
    }
}

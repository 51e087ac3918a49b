//! Identities, their access tokens, the audit trail and the authorship of
//! facts, as the server keeps them beside the facts: the persistence
//! behind `--auth` (`docs/api-v1.md`, "Access control").
//!
//! The store never sees a token: only its id and the BLAKE3 hash of its
//! secret. Permissions are kept as the JSON text the server gives (the
//! store does not interpret them). Every change to identities or tokens
//! moves [`IdentityStore::identity_revision`], which servers poll to
//! reload what they cache (on PostgreSQL, every server sees a revocation
//! within a second that way).

use futures_util::future::BoxFuture;

use crate::error::{ReadError, WriteError};

/// Entries the audit trail keeps at most; older ones are deleted as new
/// ones are appended, so a flood of refusals cannot fill the disk.
pub const AUDIT_ENTRIES_MAX: u64 = 100_000;

/// One access token of an identity, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's id: 16 lowercase hex digits, unique in the store.
    pub id: String,
    /// BLAKE3 of the token's secret.
    pub secret_hash: [u8; 32],
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it stops working, if it does.
    pub expires_at_ms: Option<u64>,
    /// When it was last used (as recorded by [`IdentityStore::record_token_uses`]).
    pub last_used_at_ms: Option<u64>,
}

/// An identity as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    /// Its unique name.
    pub name: String,
    /// Its permissions, as JSON text (`cairn_api::Permissions`).
    pub permissions_json: String,
    /// Requests per second on each server, if limited.
    pub rate_per_s: Option<u32>,
    /// Facts written per second on each server, if limited.
    pub write_rate_per_s: Option<u32>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// Its tokens, oldest first.
    pub tokens: Vec<TokenRecord>,
}

/// One entry of the audit trail as stored (`seq` is assigned on append).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail, ascending, assigned by the store.
    pub seq: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The identity, or `-`.
    pub identity: String,
    /// HTTP method.
    pub method: String,
    /// Route or path.
    pub route: String,
    /// What happened (`created`, `revoked`, `forbidden`, …).
    pub outcome: String,
    /// HTTP status answered.
    pub status: u16,
    /// Requests this entry stands for.
    pub count: u64,
    /// A few words, never a secret.
    pub detail: String,
}

/// Who wrote a fact: the first identity and, bounded, the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorRecord {
    /// The identity whose write stored the fact.
    pub first: String,
    /// Other identities that wrote it again, in order, at most
    /// [`AUTHORS_AGAIN_MAX`].
    pub again: Vec<String>,
}

/// Identities recorded as having written a fact again, at most.
pub const AUTHORS_AGAIN_MAX: usize = 8;

/// Why an identity change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// `create_identity` with a name that exists.
    #[error("an identity named {0:?} exists")]
    Exists(String),
    /// No identity with that name.
    #[error("no identity named {0:?}")]
    Unknown(String),
    /// A new token's id is already used by another token (ids are random:
    /// draw another one); nothing changed.
    #[error("a token with id {0:?} exists")]
    TokenIdTaken(String),
    /// The storage failed; nothing changed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The persistence of identities, tokens, the audit trail and authorship.
/// Every write is durable on return, like a fact's.
pub trait IdentityStore: Send + Sync + 'static {
    /// A number that changes whenever an identity or token is created,
    /// rotated, expired early or revoked (not when a token is used). It
    /// only grows. Read it *before* [`IdentityStore::identities`]: a change
    /// committed between the two reads then shows up as one more change
    /// at the next poll, never as a change that is missed.
    fn identity_revision(&self) -> BoxFuture<'_, Result<u64, ReadError>>;

    /// Every identity with its tokens (revoked ones are gone), by name.
    fn identities(&self) -> BoxFuture<'_, Result<Vec<IdentityRecord>, ReadError>>;

    /// Creates an identity with its tokens; `Exists` if the name is taken,
    /// `TokenIdTaken` if a token id is.
    fn create_identity(&self, identity: IdentityRecord)
        -> BoxFuture<'_, Result<(), IdentityError>>;

    /// Adds `token` to the identity `name` and makes each of its other
    /// tokens expire at `others_expire_at_ms` at the latest (a rotation
    /// with an overlap); `Unknown` if absent, `TokenIdTaken` if the new
    /// token's id is used.
    fn rotate_token(
        &self,
        name: &str,
        token: TokenRecord,
        others_expire_at_ms: u64,
    ) -> BoxFuture<'_, Result<(), IdentityError>>;

    /// Deletes the identity `name` and its tokens; `Unknown` if absent.
    fn revoke_identity(&self, name: &str) -> BoxFuture<'_, Result<(), IdentityError>>;

    /// Records when tokens were last used (`(token id, at_ms)`; unknown ids
    /// are ignored). Does not move the revision.
    fn record_token_uses(&self, uses: Vec<(String, u64)>) -> BoxFuture<'_, Result<(), WriteError>>;

    /// Appends entries to the audit trail (their `seq` is ignored and
    /// assigned), keeping at most [`AUDIT_ENTRIES_MAX`] entries (tests may
    /// set a smaller limit): the oldest go first.
    fn append_audit(&self, entries: Vec<AuditRecord>) -> BoxFuture<'_, Result<(), WriteError>>;

    /// Audit entries with `seq > after`, ascending, at most `limit`.
    fn audit(&self, after: u64, limit: usize)
        -> BoxFuture<'_, Result<Vec<AuditRecord>, ReadError>>;

    /// Who wrote the fact `hash`, if anyone authenticated did.
    fn authorship<'a>(
        &'a self,
        hash: &'a cairn_fact::Hash,
    ) -> BoxFuture<'a, Result<Option<AuthorRecord>, ReadError>>;
}

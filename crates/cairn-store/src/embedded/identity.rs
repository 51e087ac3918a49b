//! Identities, access tokens, the audit trail and authorship in the
//! embedded store: three partitions of the same keyspace, and the
//! `IdentityStore` implementation.
//!
//! | partition    | key                       | value                          |
//! |--------------|---------------------------|--------------------------------|
//! | `identities` | `i` ‖ name                | identity record with its tokens|
//! | `identities` | `t` ‖ token id            | name of the token's identity   |
//! | `identities` | `r`                       | identity revision (u64 BE)     |
//! | `audit`      | seq (u64 BE)              | audit record                   |
//! | `authors`    | `s` ‖ first seq (u64 BE)  | last seq (u64 BE) ‖ author     |
//! | `authors`    | `h` ‖ fact hash           | authorship record              |
//!
//! Records are a format-version byte (`1`) followed by JSON, like delivery
//! records. A token is kept as its id and the BLAKE3 hash of its secret.
//!
//! Authorship costs one entry per write request, not per fact: the facts a
//! request inserts get consecutive seqs, so their first author is one
//! range entry (`s`), found for a fact by the last range starting at or
//! before its seq. Only a fact written again by another identity gets an
//! entry of its own (`h`: its first author and the others, in order).
//!
//! Every change is staged by the writer thread into its group batch (see
//! `writer.rs`), so the writer stays the only writer, identity changes share
//! the journal, atomic commits and fsyncs of facts, and authorship is
//! committed in the same batch as the facts it describes. Read-modify-write
//! changes read what earlier requests of the same group staged first
//! ([`Staged`]), then the partition, which holds every earlier group.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::writer::WriteRequest;
use super::{keys, EmbeddedStore, Shared};
use crate::error::{ReadError, WriteError};
use crate::identity::{
    AuditRecord, AuthorRecord, IdentityError, IdentityRecord, IdentityStore, TokenRecord,
    AUTHORS_AGAIN_MAX,
};

const IDENTITY_TAG: u8 = b'i';
const TOKEN_TAG: u8 = b't';
const REVISION_KEY: &[u8] = b"r";
const RECORD_VERSION: u8 = 1;

/// One identity change (or token use, or audit append) for the writer.
pub enum IdentityChange {
    Create(IdentityRecord),
    Rotate {
        name: String,
        token: TokenRecord,
        others_expire_at_ms: u64,
    },
    Revoke {
        name: String,
    },
    TokenUses(Vec<(String, u64)>),
    AppendAudit(Vec<AuditRecord>),
}

impl IdentityChange {
    /// Whether the change moves the identity revision.
    fn moves_revision(&self) -> bool {
        matches!(
            self,
            IdentityChange::Create(_)
                | IdentityChange::Rotate { .. }
                | IdentityChange::Revoke { .. }
        )
    }
}

/// Where the audit trail stands; kept by the writer thread.
pub struct AuditCursor {
    /// The seq the next entry gets.
    pub next_seq: u64,
    /// The oldest seq still stored (`next_seq` when the trail is empty).
    pub oldest_seq: u64,
}

/// What the requests of one group staged so far, for the read-modify-write
/// changes of later requests of the same group.
#[derive(Default)]
pub struct Staged {
    /// Identities written (`Some`) or deleted (`None`) in this group.
    identities: HashMap<String, Option<IdentityRecord>>,
    /// Token ids given to (`Some(name)`) or taken from (`None`) identities.
    token_owners: HashMap<String, Option<String>>,
    /// Authorship records written in this group.
    authors: HashMap<Hash, AuthorRecord>,
    /// Author ranges of this group: first seq, last seq, author.
    author_ranges: Vec<(u64, u64, String)>,
    /// The identity revision after this group's changes, if it moved.
    pub revision: Option<u64>,
    /// Entries this group adds to the batch.
    pub n_writes: usize,
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    id: String,
    /// BLAKE3 of the secret, in hex.
    secret_hash: String,
    created_at_ms: u64,
    expires_at_ms: Option<u64>,
    last_used_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    name: String,
    permissions_json: String,
    rate_per_s: Option<u32>,
    write_rate_per_s: Option<u32>,
    created_at_ms: u64,
    tokens: Vec<StoredToken>,
}

#[derive(Serialize, Deserialize)]
struct StoredAudit {
    at_ms: u64,
    identity: String,
    method: String,
    route: String,
    outcome: String,
    status: u16,
    count: u64,
    detail: String,
}

#[derive(Serialize, Deserialize)]
struct StoredAuthors {
    first: String,
    again: Vec<String>,
}

fn encode(record: &impl Serialize) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(&mut bytes, record).expect("records serialize to memory");
    bytes
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, String> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|error| format!("malformed {what} record: {error}")),
        _ => Err(format!("{what} record of an unknown version")),
    }
}

fn encode_identity(identity: &IdentityRecord) -> Vec<u8> {
    encode(&StoredIdentity {
        name: identity.name.clone(),
        permissions_json: identity.permissions_json.clone(),
        rate_per_s: identity.rate_per_s,
        write_rate_per_s: identity.write_rate_per_s,
        created_at_ms: identity.created_at_ms,
        tokens: identity
            .tokens
            .iter()
            .map(|token| StoredToken {
                id: token.id.clone(),
                secret_hash: blake3::Hash::from(token.secret_hash).to_hex().to_string(),
                created_at_ms: token.created_at_ms,
                expires_at_ms: token.expires_at_ms,
                last_used_at_ms: token.last_used_at_ms,
            })
            .collect(),
    })
}

fn decode_identity(key_name: &[u8], bytes: &[u8]) -> Result<IdentityRecord, String> {
    let stored: StoredIdentity = decode(bytes, "identity")?;
    if stored.name.as_bytes() != key_name {
        return Err(format!(
            "identity record {:?} is stored under another name",
            stored.name
        ));
    }
    let mut tokens = Vec::with_capacity(stored.tokens.len());
    for token in stored.tokens {
        let secret_hash = blake3::Hash::from_hex(&token.secret_hash)
            .map_err(|error| format!("malformed secret hash of token {}: {error}", token.id))?;
        tokens.push(TokenRecord {
            id: token.id,
            secret_hash: *secret_hash.as_bytes(),
            created_at_ms: token.created_at_ms,
            expires_at_ms: token.expires_at_ms,
            last_used_at_ms: token.last_used_at_ms,
        });
    }
    Ok(IdentityRecord {
        name: stored.name,
        permissions_json: stored.permissions_json,
        rate_per_s: stored.rate_per_s,
        write_rate_per_s: stored.write_rate_per_s,
        created_at_ms: stored.created_at_ms,
        tokens,
    })
}

fn encode_audit(entry: &AuditRecord) -> Vec<u8> {
    encode(&StoredAudit {
        at_ms: entry.at_ms,
        identity: entry.identity.clone(),
        method: entry.method.clone(),
        route: entry.route.clone(),
        outcome: entry.outcome.clone(),
        status: entry.status,
        count: entry.count,
        detail: entry.detail.clone(),
    })
}

fn decode_audit(seq: u64, bytes: &[u8]) -> Result<AuditRecord, String> {
    let stored: StoredAudit = decode(bytes, "audit")?;
    Ok(AuditRecord {
        seq,
        at_ms: stored.at_ms,
        identity: stored.identity,
        method: stored.method,
        route: stored.route,
        outcome: stored.outcome,
        status: stored.status,
        count: stored.count,
        detail: stored.detail,
    })
}

const AUTHORS_OF_FACT_TAG: u8 = b'h';
const AUTHOR_RANGE_TAG: u8 = b's';

fn fact_authors_key(hash: &Hash) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(AUTHORS_OF_FACT_TAG);
    key.extend_from_slice(hash.as_bytes());
    key
}

fn author_range_key(first_seq: u64) -> [u8; 9] {
    let mut key = [AUTHOR_RANGE_TAG; 9];
    key[1..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

fn encode_author_range(last_seq: u64, author: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + author.len());
    value.extend_from_slice(&last_seq.to_be_bytes());
    value.extend_from_slice(author.as_bytes());
    value
}

fn decode_author_range(bytes: &[u8]) -> Result<(u64, String), String> {
    let (last, author) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| "author range shorter than 8 bytes".to_string())?;
    let author = std::str::from_utf8(author)
        .map_err(|_| "author range names no UTF-8 author".to_string())?;
    Ok((u64::from_be_bytes(*last), author.to_string()))
}

/// The first author of the fact at `seq`: the author of the last range
/// that starts at or before `seq`, if it reaches `seq`.
fn read_author_at(shared: &Shared, seq: u64) -> Result<Option<String>, ReadError> {
    let last_range = shared
        .authors
        .range(author_range_key(0)..=author_range_key(seq))
        .next_back()
        .transpose()
        .map_err(|error| shared.engine_error(error))?;
    let Some((key, value)) = last_range else {
        return Ok(None);
    };
    let (last_seq, author) = decode_author_range(&value).map_err(|message| {
        shared.corrupt(format!("author range at {:?}: {message}", key.as_ref()))
    })?;
    Ok((last_seq >= seq).then_some(author))
}

fn encode_authors(record: &AuthorRecord) -> Vec<u8> {
    encode(&StoredAuthors {
        first: record.first.clone(),
        again: record.again.clone(),
    })
}

fn decode_authors(bytes: &[u8]) -> Result<AuthorRecord, String> {
    let stored: StoredAuthors = decode(bytes, "authorship")?;
    if stored.again.len() > AUTHORS_AGAIN_MAX {
        return Err(format!(
            "authorship record lists {} authors again, more than {AUTHORS_AGAIN_MAX}",
            stored.again.len()
        ));
    }
    Ok(AuthorRecord {
        first: stored.first,
        again: stored.again,
    })
}

fn tagged_key(tag: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(tag);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The identity revision and the audit trail's bounds as stored, read at
/// open.
pub fn read_state(shared: &Shared) -> Result<(u64, AuditCursor), ReadError> {
    let revision = match shared
        .identities
        .get(REVISION_KEY)
        .map_err(|error| shared.engine_error(error))?
    {
        None => 0,
        Some(bytes) => keys::decode_seq(&bytes)
            .ok_or_else(|| shared.corrupt("malformed identity revision".into()))?,
    };
    let seq_of = |key: &[u8]| {
        keys::decode_seq(key).ok_or_else(|| shared.corrupt("malformed audit key".into()))
    };
    let last = shared
        .audit
        .last_key_value()
        .map_err(|error| shared.engine_error(error))?;
    let cursor = match last {
        None => AuditCursor {
            next_seq: 1,
            oldest_seq: 1,
        },
        Some((last_key, _)) => {
            let (first_key, _) = shared
                .audit
                .first_key_value()
                .map_err(|error| shared.engine_error(error))?
                .ok_or_else(|| shared.corrupt("the audit trail vanished at open".into()))?;
            AuditCursor {
                next_seq: seq_of(&last_key)? + 1,
                oldest_seq: seq_of(&first_key)?,
            }
        }
    };
    Ok((revision, cursor))
}

/// A failed read on the writer thread, as the write's error.
fn write_error(error: ReadError) -> WriteError {
    WriteError::storage_caused_by(error.to_string(), error)
}

/// Reads on the writer thread: what this group staged, else the partition.
struct WriterView<'a> {
    shared: &'a Shared,
    staged: &'a Staged,
}

impl WriterView<'_> {
    fn identity(&self, name: &str) -> Result<Option<IdentityRecord>, WriteError> {
        if let Some(staged) = self.staged.identities.get(name) {
            return Ok(staged.clone());
        }
        read_identity(self.shared, name).map_err(write_error)
    }

    fn token_owner(&self, id: &str) -> Result<Option<String>, WriteError> {
        if let Some(staged) = self.staged.token_owners.get(id) {
            return Ok(staged.clone());
        }
        let shared = self.shared;
        let owner = shared
            .identities
            .get(tagged_key(TOKEN_TAG, id))
            .map_err(|error| write_error(shared.engine_error(error)))?;
        owner
            .map(|name| {
                String::from_utf8(name.to_vec()).map_err(|_| {
                    write_error(shared.corrupt(format!("malformed owner of token {id}")))
                })
            })
            .transpose()
    }

    /// The authorship of the stored fact `hash` at `seq`, as staged or
    /// stored.
    fn authors(&self, hash: &Hash, seq: u64) -> Result<Option<AuthorRecord>, WriteError> {
        if let Some(staged) = self.staged.authors.get(hash) {
            return Ok(Some(staged.clone()));
        }
        if let Some(record) = read_fact_authors(self.shared, hash).map_err(write_error)? {
            return Ok(Some(record));
        }
        let staged_range = self
            .staged
            .author_ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&seq));
        let first = match staged_range {
            Some((_, _, author)) => Some(author.clone()),
            None => read_author_at(self.shared, seq).map_err(write_error)?,
        };
        Ok(first.map(|first| AuthorRecord {
            first,
            again: Vec::new(),
        }))
    }
}

fn read_identity(shared: &Shared, name: &str) -> Result<Option<IdentityRecord>, ReadError> {
    let value = shared
        .identities
        .get(tagged_key(IDENTITY_TAG, name))
        .map_err(|error| shared.engine_error(error))?;
    value
        .map(|bytes| {
            decode_identity(name.as_bytes(), &bytes).map_err(|message| shared.corrupt(message))
        })
        .transpose()
}

/// Who wrote the fact `hash`: its own record if another identity wrote it
/// again, else the author of the range holding its seq.
fn read_authors(shared: &Shared, hash: &Hash) -> Result<Option<AuthorRecord>, ReadError> {
    if let Some(record) = read_fact_authors(shared, hash)? {
        return Ok(Some(record));
    }
    let seq = shared
        .by_hash
        .get(hash.as_bytes())
        .map_err(|error| shared.engine_error(error))?;
    let Some(seq) = seq else {
        return Ok(None);
    };
    let seq = <[u8; 8]>::try_from(seq.as_ref())
        .map(u64::from_be_bytes)
        .map_err(|_| shared.corrupt(format!("the seq of {hash} is not 8 bytes")))?;
    Ok(read_author_at(shared, seq)?.map(|first| AuthorRecord {
        first,
        again: Vec::new(),
    }))
}

fn read_fact_authors(shared: &Shared, hash: &Hash) -> Result<Option<AuthorRecord>, ReadError> {
    let value = shared
        .authors
        .get(fact_authors_key(hash))
        .map_err(|error| shared.engine_error(error))?;
    value
        .map(|bytes| {
            decode_authors(&bytes)
                .map_err(|message| shared.corrupt(format!("authorship of {hash}: {message}")))
        })
        .transpose()
}

/// The authorship records a validated request of facts by `author`
/// changes besides its range (see [`stage_author_range`]): `author` added
/// to the list of each fact it writes again that was stored (or staged) by
/// another author, when it is new there and the list is not full. Runs on
/// the writer thread, before the request is staged.
pub fn authorship_changes(
    shared: &Shared,
    staged: &Staged,
    author: &str,
    facts: &[CanonicalFact],
    existing: &[Option<u64>],
    group_new_facts: &HashMap<Hash, u64>,
) -> Result<Vec<(Hash, AuthorRecord)>, WriteError> {
    let view = WriterView { shared, staged };
    let mut changes = Vec::new();
    let mut seen_in_request = HashSet::new();
    for (fact, existing_seq) in facts.iter().zip(existing) {
        // A fact this request inserts is covered by its range.
        let Some(seq) = existing_seq.or_else(|| group_new_facts.get(&fact.hash).copied()) else {
            continue;
        };
        // A fact repeated in the request has the same author each time.
        if !seen_in_request.insert(fact.hash) {
            continue;
        }
        // A fact stored without an author has no record: its first writer
        // is unknown, and a later writer did not store it.
        let Some(mut record) = view.authors(&fact.hash, seq)? else {
            continue;
        };
        let listed = record.first == author || record.again.iter().any(|again| again == author);
        if !listed && record.again.len() < AUTHORS_AGAIN_MAX {
            record.again.push(author.to_string());
            changes.push((fact.hash, record));
        }
    }
    Ok(changes)
}

/// Adds authorship records (from [`authorship_changes`]) to a group batch.
pub fn stage_authorship(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    changes: Vec<(Hash, AuthorRecord)>,
) {
    for (hash, record) in changes {
        debug_assert!(record.again.len() <= AUTHORS_AGAIN_MAX);
        batch.insert(
            &shared.authors,
            fact_authors_key(&hash),
            encode_authors(&record),
        );
        staged.authors.insert(hash, record);
        staged.n_writes += 1;
    }
}

/// Records `author` as the first author of the facts a request inserted,
/// seqs `first_seq..=last_seq`. Consecutive requests of one author in a
/// group share one range; [`write_author_ranges`] writes them.
pub fn stage_author_range(staged: &mut Staged, first_seq: u64, last_seq: u64, author: &str) {
    if let Some((_, last, previous_author)) = staged.author_ranges.last_mut() {
        if *last + 1 == first_seq && previous_author == author {
            *last = last_seq;
            return;
        }
    }
    staged
        .author_ranges
        .push((first_seq, last_seq, author.to_string()));
}

/// Adds the author ranges of a group to its batch, once every request is
/// staged.
pub fn write_author_ranges(shared: &Shared, batch: &mut fjall::Batch, staged: &mut Staged) {
    for (first_seq, last_seq, author) in &staged.author_ranges {
        batch.insert(
            &shared.authors,
            author_range_key(*first_seq),
            encode_author_range(*last_seq, author),
        );
        staged.n_writes += 1;
    }
}

/// Adds one identity change to a group batch, after checking it against
/// the store and the group; a refused change adds nothing. Runs on the
/// writer thread.
pub fn stage_change(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    audit: &mut AuditCursor,
    change: IdentityChange,
) -> Result<(), IdentityError> {
    let moves_revision = change.moves_revision();
    match change {
        IdentityChange::Create(identity) => {
            let view = WriterView { shared, staged };
            if view.identity(&identity.name)?.is_some() {
                return Err(IdentityError::Exists(identity.name));
            }
            let mut ids = HashSet::new();
            for token in &identity.tokens {
                if !ids.insert(token.id.as_str()) || view.token_owner(&token.id)?.is_some() {
                    return Err(IdentityError::TokenIdTaken(token.id.clone()));
                }
            }
            for token in &identity.tokens {
                stage_token_owner(shared, batch, staged, &token.id, Some(&identity.name));
            }
            stage_identity(
                shared,
                batch,
                staged,
                &identity.name,
                Some(identity.clone()),
            );
        }
        IdentityChange::Rotate {
            name,
            token,
            others_expire_at_ms,
        } => {
            let view = WriterView { shared, staged };
            let mut identity = view
                .identity(&name)?
                .ok_or_else(|| IdentityError::Unknown(name.clone()))?;
            if view.token_owner(&token.id)?.is_some() {
                return Err(IdentityError::TokenIdTaken(token.id));
            }
            for other in &mut identity.tokens {
                let expires = other.expires_at_ms.unwrap_or(u64::MAX);
                other.expires_at_ms = Some(expires.min(others_expire_at_ms));
            }
            stage_token_owner(shared, batch, staged, &token.id, Some(&name));
            identity.tokens.push(token);
            stage_identity(shared, batch, staged, &name, Some(identity));
        }
        IdentityChange::Revoke { name } => {
            let view = WriterView { shared, staged };
            let identity = view
                .identity(&name)?
                .ok_or_else(|| IdentityError::Unknown(name.clone()))?;
            for token in &identity.tokens {
                stage_token_owner(shared, batch, staged, &token.id, None);
            }
            stage_identity(shared, batch, staged, &name, None);
        }
        IdentityChange::TokenUses(uses) => {
            let mut changed: HashMap<String, IdentityRecord> = HashMap::new();
            for (id, at_ms) in uses {
                let view = WriterView { shared, staged };
                let Some(owner) = view.token_owner(&id)? else {
                    continue;
                };
                let identity = match changed.remove(&owner) {
                    Some(identity) => Some(identity),
                    None => view.identity(&owner)?,
                };
                let Some(mut identity) = identity else {
                    return Err(IdentityError::Write(write_error(shared.corrupt(format!(
                        "token {id} belongs to the identity {owner:?}, which is not stored"
                    )))));
                };
                if let Some(token) = identity.tokens.iter_mut().find(|token| token.id == id) {
                    token.last_used_at_ms = token.last_used_at_ms.max(Some(at_ms));
                }
                changed.insert(owner, identity);
            }
            for (name, identity) in changed {
                stage_identity(shared, batch, staged, &name, Some(identity));
            }
        }
        IdentityChange::AppendAudit(entries) => {
            for entry in &entries {
                batch.insert(
                    &shared.audit,
                    keys::seq_key(audit.next_seq),
                    encode_audit(entry),
                );
                audit.next_seq += 1;
                staged.n_writes += 1;
            }
            let kept_max = shared.options.audit_entries_max;
            // Entries below `next_seq - kept_max` go: at most `kept_max` stay.
            while audit.next_seq - audit.oldest_seq > kept_max {
                batch.remove(&shared.audit, keys::seq_key(audit.oldest_seq));
                audit.oldest_seq += 1;
                staged.n_writes += 1;
            }
        }
    }
    if moves_revision {
        let revision = staged
            .revision
            .unwrap_or_else(|| shared.identity_revision.load(Ordering::Acquire))
            + 1;
        batch.insert(&shared.identities, REVISION_KEY, keys::seq_key(revision));
        staged.revision = Some(revision);
        staged.n_writes += 1;
    }
    Ok(())
}

fn stage_identity(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    name: &str,
    identity: Option<IdentityRecord>,
) {
    let key = tagged_key(IDENTITY_TAG, name);
    match &identity {
        Some(identity) => batch.insert(&shared.identities, key, encode_identity(identity)),
        None => batch.remove(&shared.identities, key),
    }
    staged.identities.insert(name.to_string(), identity);
    staged.n_writes += 1;
}

fn stage_token_owner(
    shared: &Shared,
    batch: &mut fjall::Batch,
    staged: &mut Staged,
    id: &str,
    owner: Option<&str>,
) {
    let key = tagged_key(TOKEN_TAG, id);
    match owner {
        Some(owner) => batch.insert(&shared.identities, key, owner.as_bytes()),
        None => batch.remove(&shared.identities, key),
    }
    staged
        .token_owners
        .insert(id.to_string(), owner.map(str::to_string));
    staged.n_writes += 1;
}

impl EmbeddedStore {
    async fn send_identity_change(&self, change: IdentityChange) -> Result<(), IdentityError> {
        self.ask_writer(|reply| WriteRequest::Identity { change, reply })
            .await
    }

    /// An identity change that can only fail to be written.
    async fn send_write(&self, change: IdentityChange) -> Result<(), WriteError> {
        match self.send_identity_change(change).await {
            Ok(()) => Ok(()),
            Err(IdentityError::Write(error)) => Err(error),
            Err(other) => Err(WriteError::storage(format!("unexpected refusal: {other}"))),
        }
    }

    fn read_identities(&self) -> Result<Vec<IdentityRecord>, ReadError> {
        let shared = &self.shared;
        let mut identities = Vec::new();
        for entry in shared.identities.prefix([IDENTITY_TAG]) {
            let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
            let identity =
                decode_identity(&key[1..], &value).map_err(|message| shared.corrupt(message))?;
            identities.push(identity);
        }
        Ok(identities)
    }

    fn read_audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, ReadError> {
        let shared = &self.shared;
        let mut entries = Vec::new();
        let start = keys::seq_key(after.saturating_add(1));
        for entry in shared.audit.range(start..).take(limit) {
            let (key, value) = entry.map_err(|error| shared.engine_error(error))?;
            let seq = keys::decode_seq(&key)
                .ok_or_else(|| shared.corrupt("malformed audit key".into()))?;
            entries.push(decode_audit(seq, &value).map_err(|message| shared.corrupt(message))?);
        }
        Ok(entries)
    }
}

impl IdentityStore for EmbeddedStore {
    fn identity_revision(&self) -> BoxFuture<'_, Result<u64, ReadError>> {
        let revision = self.shared.identity_revision.load(Ordering::Acquire);
        Box::pin(std::future::ready(Ok(revision)))
    }

    fn identities(&self) -> BoxFuture<'_, Result<Vec<IdentityRecord>, ReadError>> {
        Box::pin(std::future::ready(self.read_identities()))
    }

    fn create_identity(
        &self,
        identity: IdentityRecord,
    ) -> BoxFuture<'_, Result<(), IdentityError>> {
        Box::pin(self.send_identity_change(IdentityChange::Create(identity)))
    }

    fn rotate_token(
        &self,
        name: &str,
        token: TokenRecord,
        others_expire_at_ms: u64,
    ) -> BoxFuture<'_, Result<(), IdentityError>> {
        Box::pin(self.send_identity_change(IdentityChange::Rotate {
            name: name.to_string(),
            token,
            others_expire_at_ms,
        }))
    }

    fn revoke_identity(&self, name: &str) -> BoxFuture<'_, Result<(), IdentityError>> {
        Box::pin(self.send_identity_change(IdentityChange::Revoke {
            name: name.to_string(),
        }))
    }

    fn record_token_uses(&self, uses: Vec<(String, u64)>) -> BoxFuture<'_, Result<(), WriteError>> {
        if uses.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(self.send_write(IdentityChange::TokenUses(uses)))
    }

    fn append_audit(&self, entries: Vec<AuditRecord>) -> BoxFuture<'_, Result<(), WriteError>> {
        if entries.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(self.send_write(IdentityChange::AppendAudit(entries)))
    }

    fn audit(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, ReadError>> {
        Box::pin(std::future::ready(self.read_audit(after, limit)))
    }

    fn authorship<'a>(
        &'a self,
        hash: &'a Hash,
    ) -> BoxFuture<'a, Result<Option<AuthorRecord>, ReadError>> {
        Box::pin(std::future::ready(read_authors(&self.shared, hash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_record_round_trips_and_checks_its_key() {
        let identity = IdentityRecord {
            name: "billing".into(),
            permissions_json: r#"{"read":["Shop.*"]}"#.into(),
            rate_per_s: Some(10),
            write_rate_per_s: None,
            created_at_ms: 5,
            tokens: vec![TokenRecord {
                id: "0123456789abcdef".into(),
                secret_hash: [7; 32],
                created_at_ms: 5,
                expires_at_ms: Some(9),
                last_used_at_ms: None,
            }],
        };
        let bytes = encode_identity(&identity);
        assert_eq!(decode_identity(b"billing", &bytes).unwrap(), identity);
        assert!(decode_identity(b"other", &bytes).is_err());
        assert!(decode_identity(b"billing", &bytes[1..]).is_err());
    }

    #[test]
    fn an_authorship_record_with_too_many_authors_is_refused() {
        let record = AuthorRecord {
            first: "a".into(),
            again: vec!["b".into(); AUTHORS_AGAIN_MAX + 1],
        };
        assert!(decode_authors(&encode_authors(&record)).is_err());
    }
}

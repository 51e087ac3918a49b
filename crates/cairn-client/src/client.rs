//! [`Client`]: the SDK's handle. Cheap to clone, it holds an
//! `Arc<dyn Transport>` and adds what the wire does not: typed facts with
//! client-side hashes (checked against the server's), paging, request and
//! reply.

use crate::wire::{AuditPage, IdentityView, TokenCreateRequest, TokenCreated, TokenRotateRequest};
use crate::wire::{BoundariesAnswer, ServiceDeclaration, ServiceView};
use crate::wire::{ClaimAnswer, ClaimReleased, LeaseAction, LeaseGrant};
use crate::wire::{Compatibility, SchemaList, SchemaRegistration, SchemaVersionView};
use crate::wire::{LinkDefinition, LinkRepaired, LinkView};
use crate::wire::{TimerDefinition, TimerView};
use std::net::SocketAddr;
use std::sync::Arc;

use cairn_api::meta::LOG_LAST_SEQ_METRIC;
use cairn_fact::{CanonicalFact, Hash};

use crate::error::{ClientError, Result};
use crate::limits;
use crate::options::ClientOptions;
use crate::remote::RemoteTransport;
use crate::transport::Transport;
use crate::typed::{schema_registration, to_canonical_fact, Typed, TypedFact};
use crate::wire::{
    AppliedSubscription, DeadLetter, DeadLetterPage, DeadLetterQuery, FactPage,
    GenerationPrecondition, LogQuery, PutResult, ReplaySelection, StoredFact,
    SubscriptionDefinition, SubscriptionView, SuccessorsQuery,
};

/// A handle to a Cairn store, remote or embedded. Clones share the
/// transport (and its connections).
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    /// The node of an embedded client (what `Client::sync_with` runs on).
    #[cfg(feature = "embedded")]
    embedded: Option<Arc<crate::embedded::EmbeddedNode>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client of remote servers (see [`RemoteTransport`]).
    pub fn remote(options: ClientOptions) -> Result<Client> {
        Ok(Client::with_transport(Arc::new(RemoteTransport::new(
            options,
        )?)))
    }

    /// A client over any transport (for example a store embedded in the
    /// process).
    pub fn with_transport(transport: Arc<dyn Transport>) -> Client {
        Client {
            transport,
            #[cfg(feature = "embedded")]
            embedded: None,
        }
    }

    /// A client of the embedded node `node`, reached through `transport`.
    #[cfg(feature = "embedded")]
    pub(crate) fn with_embedded_node(
        transport: Arc<dyn Transport>,
        node: Arc<crate::embedded::EmbeddedNode>,
    ) -> Client {
        Client {
            transport,
            embedded: Some(node),
        }
    }

    /// The node of an embedded client, `None` for any other.
    #[cfg(feature = "embedded")]
    pub(crate) fn embedded_node(&self) -> Option<&Arc<crate::embedded::EmbeddedNode>> {
        self.embedded.as_ref()
    }

    /// The transport, for calls at the level of wire types (pull, ack,
    /// nack, extend, ...).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Closes the client and every clone of it: afterwards their calls fail
    /// with [`ClientError::Closed`]. An embedded node's long-polls end, its
    /// listener stops and its store is closed durably before this returns;
    /// a remote server is not affected. Calling it again does nothing more.
    pub async fn close(&self) {
        self.transport.close().await;
    }

    /// The local address an embedded node serves API v1 on (see
    /// `EmbeddedOptions::listen`); `None` for a remote client or a node
    /// that does not listen.
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.transport.local_address()
    }

    /// Stores a typed fact and returns the server's result, after checking
    /// that the server computed the same hash as the client. Safe to retry:
    /// storing a fact again changes nothing.
    pub async fn put<T: TypedFact>(&self, value: &T) -> Result<PutResult> {
        let fact = to_canonical_fact(value)?;
        let mut results = self.put_facts(vec![fact]).await?;
        results
            .pop()
            .ok_or_else(|| ClientError::Protocol("a put answered no result".to_string()))
    }

    /// Stores facts (each one's predecessors stored earlier or earlier in
    /// the list), checking every hash against the server's. Lists beyond
    /// one request's limits are sent as several requests in order, so a
    /// failure may leave an earlier part stored; sending the whole list
    /// again is safe.
    pub async fn put_facts(&self, facts: Vec<CanonicalFact>) -> Result<Vec<PutResult>> {
        let mut results = Vec::with_capacity(facts.len());
        for batch in split_batches(facts) {
            let local_hashes: Vec<Hash> = batch.iter().map(|fact| fact.hash).collect();
            let batch_results = self.transport.put_facts(batch).await?;
            check_results(&local_hashes, &batch_results)?;
            results.extend(batch_results);
        }
        Ok(results)
    }

    /// Reads a typed fact; `None` if it is not stored, an error if it has
    /// another type.
    pub async fn get<T: TypedFact>(&self, hash: &Hash) -> Result<Option<Typed<T>>> {
        match self.transport.get_fact(*hash).await? {
            Some(stored) => Typed::from_stored(stored).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a fact as JSON; `None` if it is not stored.
    pub async fn get_fact(&self, hash: &Hash) -> Result<Option<StoredFact>> {
        self.transport.get_fact(*hash).await
    }

    /// Reads a fact as a reader of schema `version` of its type sees it:
    /// a fact written at an older version comes upcast by the server (its
    /// `upcast` says from which version, `original` is the fact as
    /// stored, whose hash `hash` stays); one written at that version or a
    /// newer one comes as stored. `None` if it is not stored; the server's
    /// `unknown_schema` ([`ClientError::Api`]) if its type has no such
    /// version. A typed read ([`Client::get`]) needs none of this: it
    /// upcasts to its own [`TypedFact::VERSION`] on the client.
    pub async fn get_fact_as(&self, hash: &Hash, version: u32) -> Result<Option<StoredFact>> {
        self.transport.get_fact_as(*hash, version).await
    }

    /// Registers schema `version` of the fact type `type_name` (admin): the
    /// first registration answers the view with `registered: Some(true)`,
    /// the same registration again `Some(false)` (safe to retry). Refusals
    /// are [`ClientError::Api`]: `invalid_schema`, `schema_conflict`, and
    /// `incompatible_schema`, whose changes
    /// [`ClientError::breaking_changes`] lists.
    pub async fn register_schema(
        &self,
        type_name: &str,
        version: u32,
        registration: &SchemaRegistration,
    ) -> Result<SchemaVersionView> {
        self.transport
            .register_schema(type_name, version, registration)
            .await
    }

    /// Registers `T`'s version ([`TypedFact::VERSION`]) of its type with
    /// the JSON Schema `schema` of its fields and `T`'s own upcasts (see
    /// [`schema_registration`]), as [`Client::register_schema`] does.
    pub async fn register_typed_schema<T: TypedFact>(
        &self,
        schema: serde_json::Value,
        compatibility: Compatibility,
    ) -> Result<SchemaVersionView> {
        let registration = schema_registration::<T>(schema, compatibility);
        self.register_schema(T::TYPE_NAME, T::VERSION, &registration)
            .await
    }

    /// The schema versions of `type_name`, oldest first; `None` if it has
    /// no schema.
    pub async fn schemas(&self, type_name: &str) -> Result<Option<SchemaList>> {
        self.transport.list_schema_versions(type_name).await
    }

    /// Schema `version` of `type_name` as registered; `None` if there is
    /// no such version.
    pub async fn schema(&self, type_name: &str, version: u32) -> Result<Option<SchemaVersionView>> {
        self.transport.get_schema(type_name, version).await
    }

    /// Every type with a schema that the caller may read, sorted, each
    /// with its versions.
    pub async fn schema_types(&self) -> Result<Vec<SchemaList>> {
        Ok(self.transport.list_schemas().await?.types)
    }

    /// One page of successors, as the query asks.
    pub async fn successors_page(&self, query: &SuccessorsQuery) -> Result<FactPage> {
        self.transport.successors(query).await
    }

    /// One page of the log.
    pub async fn log(&self, query: LogQuery) -> Result<FactPage> {
        self.transport.log(query).await
    }

    /// The `seq` of the newest durable fact in the log (0 if the log is
    /// empty), read from the server's metrics: following the log from its
    /// end starts with a [`LogQuery`] after it, without paging through
    /// everything before.
    pub async fn log_last_seq(&self) -> Result<u64> {
        let metrics = self.transport.metrics().await?;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(LOG_LAST_SEQ_METRIC)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "the server's metrics have no {LOG_LAST_SEQ_METRIC} count"
                ))
            })
    }

    /// Puts a subscription's definition, idempotently: creates the
    /// subscription, finds the same definition, or updates what may change
    /// of it (`lease_ms`, `max_attempts`, `backoff`,
    /// `max_in_flight_per_key`, `rate_limit_per_s`) without losing its
    /// cursor, messages or dead letters. A change of what cannot change
    /// (`type`, `predecessor`, `ordering_key`, `start`) is refused with
    /// `409 subscription_conflict` ([`ClientError::Api`]). Safe to retry.
    pub async fn apply_subscription(
        &self,
        name: &str,
        definition: &SubscriptionDefinition,
    ) -> Result<AppliedSubscription> {
        self.transport
            .apply_subscription(name, definition, None)
            .await
    }

    /// [`Client::apply_subscription`] only if the subscription exists at
    /// the generation `precondition` names (or at all, for
    /// [`GenerationPrecondition::Exists`]): otherwise the server refuses
    /// with `412 generation_mismatch` (its error details carry the current
    /// `generation`, `null` if there is none) and nothing changes. Two
    /// versions of a service then cannot overwrite each other's definition
    /// unseen: each names the generation it read.
    pub async fn apply_subscription_if(
        &self,
        name: &str,
        definition: &SubscriptionDefinition,
        precondition: GenerationPrecondition,
    ) -> Result<AppliedSubscription> {
        self.transport
            .apply_subscription(name, definition, Some(precondition))
            .await
    }

    /// Reads a subscription; `None` if there is none by that name.
    pub async fn subscription(&self, name: &str) -> Result<Option<SubscriptionView>> {
        self.transport.get_subscription(name).await
    }

    /// Lists every subscription, by name.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>> {
        self.transport.list_subscriptions().await
    }

    /// Deletes a subscription.
    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.transport.delete_subscription(name).await
    }

    /// Creates an identity and answers its first access token, shown this
    /// once (admin; the server must run with `--auth`).
    pub async fn create_token(&self, request: &TokenCreateRequest) -> Result<TokenCreated> {
        self.transport.create_token(request).await
    }

    /// Every identity with its permissions and token dates, never a secret
    /// (admin).
    pub async fn list_tokens(&self) -> Result<Vec<IdentityView>> {
        self.transport.list_tokens().await
    }

    /// Revokes an identity and every token of it (admin): servers refuse
    /// them within a second.
    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        self.transport.revoke_token(name).await
    }

    /// A new access token for an identity; its earlier tokens keep working
    /// for the request's overlap (admin).
    pub async fn rotate_token(
        &self,
        name: &str,
        request: &TokenRotateRequest,
    ) -> Result<TokenCreated> {
        self.transport.rotate_token(name, request).await
    }

    /// A page of the audit trail after `after` (admin).
    pub async fn audit(&self, after: u64, limit: u32) -> Result<AuditPage> {
        self.transport.audit(after, limit).await
    }

    /// Creates or replaces the durable timer `name`; answers its view
    /// (`next_due`, `last_fired`). Putting the same definition again
    /// changes nothing. A one-shot timeout: `TimerDefinition::at_ms(at_ms,
    /// template)`, its template naming the fact it guards as a predecessor.
    pub async fn put_timer(&self, name: &str, definition: &TimerDefinition) -> Result<TimerView> {
        self.transport.put_timer(name, definition).await
    }

    /// The timer `name`, `None` if there is none.
    pub async fn get_timer(&self, name: &str) -> Result<Option<TimerView>> {
        self.transport.get_timer(name).await
    }

    /// Every timer the caller may read, by name (all pages).
    pub async fn list_timers(&self) -> Result<Vec<TimerView>> {
        let mut timers = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.transport.list_timers(after.as_deref(), None).await?;
            timers.extend(page.timers);
            match page.next {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => return Ok(timers),
            }
        }
    }

    /// Deletes the timer `name`: it never fires again (`unknown_timer` if
    /// there is none).
    pub async fn delete_timer(&self, name: &str) -> Result<()> {
        self.transport.delete_timer(name).await
    }

    /// Creates the replication link `name` on this deployment (which
    /// receives), or rotates its token: a link's source and types cannot
    /// change (`link_conflict`). Admin.
    pub async fn put_link(&self, name: &str, definition: &LinkDefinition) -> Result<LinkView> {
        self.transport.put_link(name, definition).await
    }

    /// The link `name` (state, bookmark, lag), `None` if there is none.
    pub async fn get_link(&self, name: &str) -> Result<Option<LinkView>> {
        self.transport.get_link(name).await
    }

    /// Every link of this deployment, by name.
    pub async fn list_links(&self) -> Result<Vec<LinkView>> {
        Ok(self.transport.list_links().await?.links)
    }

    /// Deletes the link `name` (`unknown_link` if there is none); the
    /// facts it received stay.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        self.transport.delete_link(name).await
    }

    /// Repairs the link `name`: compares its source's digests with this
    /// deployment's for its types and fetches what is missing
    /// (predecessors first). Admin.
    pub async fn repair_link(&self, name: &str) -> Result<LinkRepaired> {
        self.transport.repair_link(name).await
    }

    /// Pauses (`true`) or resumes (`false`) the link `name`.
    pub async fn set_link_paused(&self, name: &str, paused: bool) -> Result<LinkView> {
        self.transport.set_link_paused(name, paused).await
    }

    /// Registers the service declaration `declaration` (or replaces the
    /// current one of its name; the same one again changes nothing).
    /// Types this deployment has never seen written nor another service
    /// declare are refused (`unknown_type`) unless `allow_unknown_types`,
    /// which a first deployment needs. Admin.
    pub async fn register_service(
        &self,
        declaration: &ServiceDeclaration,
        allow_unknown_types: bool,
    ) -> Result<ServiceView> {
        self.transport
            .put_service(declaration, allow_unknown_types)
            .await
    }

    /// Every current service declaration, by name. Admin.
    pub async fn list_services(&self) -> Result<Vec<ServiceView>> {
        Ok(self.transport.list_services().await?.services)
    }

    /// The flow map and the boundaries check: declarations, observed
    /// flows, edges and violations, over the window `unseen_for_ms` (the
    /// server's default, 7 days, if `None`). Admin.
    pub async fn boundaries(&self, unseen_for_ms: Option<u64>) -> Result<BoundariesAnswer> {
        self.transport.boundaries(unseen_for_ms).await
    }

    /// Claims `key` for the stored fact `fact`: the first claim of a free
    /// key wins (`won`), every other answers the winner. Safe to retry.
    /// See "Claims" in `docs/api-v1.md`.
    pub async fn claim(&self, key: &str, fact: &Hash) -> Result<ClaimAnswer> {
        self.transport.claim(key, *fact).await
    }

    /// The fact that holds `key`, `None` if nobody does.
    pub async fn claim_holder(&self, key: &str) -> Result<Option<ClaimAnswer>> {
        self.transport.claim_holder(key).await
    }

    /// Frees `key`; only the fact that holds it may (else the server's
    /// `not_claim_holder`).
    pub async fn release_claim(&self, key: &str, fact: &Hash) -> Result<ClaimReleased> {
        self.transport.release_claim(key, *fact).await
    }

    /// Acquires the lease `name` for `holder` for `ttl` (100 ms to 1 h):
    /// a grant with a new fence, or the server's `lease_held` while
    /// another holder's grant is current. See "Leases with fencing tokens"
    /// in `docs/api-v1.md`.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseGrant> {
        let action = LeaseAction::Acquire {
            holder: holder.to_string(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        self.transport.lease(name, action).await
    }

    /// Renews `grant` for its own length from now (`stale_fence` once
    /// another grant exists or it was released).
    pub async fn renew_lease(&self, grant: &LeaseGrant) -> Result<LeaseGrant> {
        let action = LeaseAction::Renew {
            holder: grant.holder.clone(),
            fence: grant.fence,
            ttl_ms: None,
        };
        self.transport.lease(&grant.name, action).await
    }

    /// Releases `grant`, so another holder may acquire the lease at once.
    pub async fn release_lease(&self, grant: &LeaseGrant) -> Result<LeaseGrant> {
        let action = LeaseAction::Release {
            holder: grant.holder.clone(),
            fence: grant.fence,
        };
        self.transport.lease(&grant.name, action).await
    }

    /// The last grant of the lease `name`, `None` if it was never granted.
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseGrant>> {
        self.transport.get_lease(name).await
    }

    /// Stores facts as [`Client::put_facts`] does, fenced by `grant`: the
    /// server stores a batch only while `grant` is its lease's current
    /// grant, checked atomically with the write, and otherwise answers
    /// `stale_fence` (nothing stored) — the holder has lost the lease and
    /// must stop. A `stale_fence` after a retry (the first answer lost)
    /// leaves it unknown whether the first attempt was stored.
    pub async fn put_facts_fenced(
        &self,
        facts: Vec<CanonicalFact>,
        grant: &LeaseGrant,
    ) -> Result<Vec<PutResult>> {
        let mut results = Vec::with_capacity(facts.len());
        for batch in split_batches(facts) {
            let local_hashes: Vec<Hash> = batch.iter().map(|fact| fact.hash).collect();
            let batch_results = self
                .transport
                .put_facts_fenced(batch, &grant.name, grant.fence)
                .await?;
            check_results(&local_hashes, &batch_results)?;
            results.extend(batch_results);
        }
        Ok(results)
    }

    /// Pauses delivery of a subscription.
    pub async fn pause(&self, name: &str) -> Result<SubscriptionView> {
        self.transport.pause(name).await
    }

    /// Resumes delivery of a subscription.
    pub async fn resume(&self, name: &str) -> Result<SubscriptionView> {
        self.transport.resume(name).await
    }

    /// One page of a subscription's dead letters.
    pub async fn dead_letters(&self, name: &str, query: DeadLetterQuery) -> Result<DeadLetterPage> {
        self.transport.dead_letters(name, query).await
    }

    /// One dead letter; `None` if the message is not one.
    pub async fn dead_letter(&self, name: &str, hash: &Hash) -> Result<Option<DeadLetter>> {
        self.transport.dead_letter(name, *hash).await
    }

    /// Delivers dead letters again with fresh attempts; answers how many.
    pub async fn replay_dead_letters(
        &self,
        name: &str,
        selection: &ReplaySelection,
    ) -> Result<u64> {
        self.transport.replay_dead_letters(name, selection).await
    }

    /// Discards a dead letter (it stays recorded as discarded).
    pub async fn discard_dead_letter(&self, name: &str, hash: &Hash) -> Result<()> {
        self.transport.discard_dead_letter(name, *hash).await
    }
}

/// Splits facts into batches within the request limits, keeping order.
fn split_batches(facts: Vec<CanonicalFact>) -> Vec<Vec<CanonicalFact>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for fact in facts {
        let fact_bytes = fact.canonical.len() + 1;
        if !batch.is_empty()
            && (batch.len() >= limits::BATCH_FACTS_MAX
                || batch_bytes + fact_bytes > limits::BATCH_BODY_BYTES_MAX)
        {
            batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch_bytes += fact_bytes;
        batch.push(fact);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Checks a batch's results against the hashes computed here: one per
/// fact, each the same.
fn check_results(local_hashes: &[Hash], results: &[PutResult]) -> Result<()> {
    if results.len() != local_hashes.len() {
        return Err(ClientError::Protocol(format!(
            "a batch of {} fact(s) answered {} result(s)",
            local_hashes.len(),
            results.len()
        )));
    }
    for (local, result) in local_hashes.iter().zip(results) {
        if *local != result.hash {
            return Err(ClientError::HashMismatch {
                local: *local,
                server: result.hash,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(index: usize) -> CanonicalFact {
        let json = format!(r#"{{"type":"T","fields":{{"i":{index}}},"predecessors":{{}}}}"#);
        CanonicalFact::from_json(json.as_bytes(), 1024).unwrap()
    }

    #[test]
    fn batches_keep_order_and_respect_the_count_limit() {
        let facts: Vec<CanonicalFact> = (0..limits::BATCH_FACTS_MAX + 3).map(fact).collect();
        let hashes: Vec<Hash> = facts.iter().map(|fact| fact.hash).collect();
        let batches = split_batches(facts);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![limits::BATCH_FACTS_MAX, 3]
        );
        let rejoined: Vec<Hash> = batches.iter().flatten().map(|fact| fact.hash).collect();
        assert_eq!(rejoined, hashes);
        assert!(split_batches(Vec::new()).is_empty());
    }
}

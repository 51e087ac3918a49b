//! The [`Transport`] trait: API v1 at the level of wire types, so that a
//! [`crate::Client`] runs the same way against a remote server
//! ([`crate::RemoteTransport`]) or a store embedded in the process.
//!
//! The trait is object safe (methods return boxed futures) so that a
//! `Client` holds an `Arc<dyn Transport>` and services do not become generic
//! over where their data lives.

use std::net::SocketAddr;

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;

use crate::error::Result;
use crate::wire::{
    AppliedSubscription, DeadLetter, DeadLetterPage, DeadLetterQuery, FactPage,
    GenerationPrecondition, LogQuery, Message, NackOptions, PullOptions, PutResult, RawMessage,
    ReplaySelection, StoredFact, SubscriptionDefinition, SubscriptionView, SuccessorsQuery,
    TokenResult,
};
use crate::wire::{AuditPage, IdentityView, TokenCreateRequest, TokenCreated, TokenRotateRequest};
use crate::wire::{BoundariesAnswer, ServiceDeclaration, ServiceList, ServiceView};
use crate::wire::{ClaimAnswer, ClaimReleased, LeaseAction, LeaseGrant};
use crate::wire::{LinkDefinition, LinkList, LinkRepaired, LinkView};
use crate::wire::{SchemaList, SchemaRegistration, SchemaTypes, SchemaVersionView};
use crate::wire::{TimerDefinition, TimerList, TimerView};

/// API v1 as a set of async calls over wire types.
///
/// Contract for every implementation (the integration tests check it for
/// the remote one):
/// - `put_facts` is idempotent and durable on return: it answers one
///   [`PutResult`] per fact, in order, only after every fact is stored;
///   calling it again with the same facts stores nothing new.
/// - Reads answer what is durable; `wait_ms` long-polls until at least one
///   result exists or the wait ends, and then answers (possibly empty).
/// - Errors that the server reports keep its status and stable code in
///   [`crate::ClientError::Api`]; `get_fact`, `get_subscription` and
///   `dead_letter` answer `None` instead of an error for what does not exist.
/// - Subscription calls have the semantics of `docs/api-v1.md`
///   ("Subscription details"): at-least-once delivery under leases, per-token
///   results for ack, nack and extend.
pub trait Transport: Send + Sync + 'static {
    /// Stores a batch of facts (predecessors first or already stored).
    fn put_facts(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<Vec<PutResult>>>;

    /// Reads one fact, `None` if it is not stored.
    fn get_fact(&self, hash: Hash) -> BoxFuture<'_, Result<Option<StoredFact>>>;

    /// Reads one fact as a reader of schema `version` of its type sees it
    /// (`?as_version=`): written at an older version, the upcast view
    /// (`upcast` and `original` set); `None` if it is not stored. The
    /// server's `unknown_schema` if its type has no such version.
    fn get_fact_as(&self, hash: Hash, version: u32) -> BoxFuture<'_, Result<Option<StoredFact>>>;

    /// Reads one page of successors of a fact.
    fn successors<'a>(&'a self, query: &'a SuccessorsQuery) -> BoxFuture<'a, Result<FactPage>>;

    /// Reads one page of the log.
    fn log(&self, query: LogQuery) -> BoxFuture<'_, Result<FactPage>>;

    /// Creates a subscription, confirms the same definition, or updates
    /// what may change of an existing one (`PUT`); with a `precondition`
    /// (`If-Match`), only if the subscription exists at that generation
    /// (else `412 generation_mismatch`, and nothing changes).
    fn apply_subscription<'a>(
        &'a self,
        name: &'a str,
        definition: &'a SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> BoxFuture<'a, Result<AppliedSubscription>>;

    /// Reads a subscription, `None` if there is none by that name.
    fn get_subscription<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SubscriptionView>>>;

    /// Lists every subscription, by name.
    fn list_subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionView>>>;

    /// Deletes a subscription.
    fn delete_subscription<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Leases up to `options.max` messages, long-polling up to `wait_ms`.
    fn pull<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<Message>>>;

    /// Like [`Transport::pull`], each message's fact exactly as the server
    /// sent it (its canonical bytes).
    fn pull_raw<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<RawMessage>>>;

    /// Acknowledges messages; the answer reports each token.
    fn ack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>>;

    /// Gives messages back for redelivery (or the dead letters).
    fn nack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        options: &'a NackOptions,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>>;

    /// Renews leases from now, for `lease_ms` or the subscription's lease.
    fn extend<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>>;

    /// Stops delivery (pulls answer empty lists).
    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>>;

    /// Resumes delivery.
    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>>;

    /// Lists dead letters.
    fn dead_letters<'a>(
        &'a self,
        name: &'a str,
        query: DeadLetterQuery,
    ) -> BoxFuture<'a, Result<DeadLetterPage>>;

    /// Reads one dead letter, `None` if that message is not one.
    fn dead_letter<'a>(
        &'a self,
        name: &'a str,
        hash: Hash,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>>>;

    /// Delivers dead letters again with fresh attempts; answers how many.
    fn replay_dead_letters<'a>(
        &'a self,
        name: &'a str,
        selection: &'a ReplaySelection,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Discards a dead letter (it stays recorded as discarded).
    fn discard_dead_letter<'a>(&'a self, name: &'a str, hash: Hash) -> BoxFuture<'a, Result<()>>;

    /// The server's metrics (`GET /metrics`) in the Prometheus text format.
    fn metrics(&self) -> BoxFuture<'_, Result<String>>;

    /// Creates an identity and its first access token (`POST /v1/tokens`).
    fn create_token<'a>(
        &'a self,
        request: &'a TokenCreateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>>;

    /// Every identity (`GET /v1/tokens`).
    fn list_tokens(&self) -> BoxFuture<'_, Result<Vec<IdentityView>>>;

    /// Revokes an identity and its tokens (`DELETE /v1/tokens/{name}`).
    fn revoke_token<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// A new token for an identity (`POST /v1/tokens/{name}/rotate`).
    fn rotate_token<'a>(
        &'a self,
        name: &'a str,
        request: &'a TokenRotateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>>;

    /// A page of the audit trail (`GET /v1/audit`).
    fn audit(&self, after: u64, limit: u32) -> BoxFuture<'_, Result<AuditPage>>;

    /// Creates or replaces a durable timer (`PUT /v1/timers/{name}`).
    fn put_timer<'a>(
        &'a self,
        name: &'a str,
        definition: &'a TimerDefinition,
    ) -> BoxFuture<'a, Result<TimerView>>;

    /// Reads a timer, `None` if there is none by that name (or the caller
    /// may not read its template's type).
    fn get_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerView>>>;

    /// A page of timers by name, after `after` (`GET /v1/timers`).
    fn list_timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: Option<u32>,
    ) -> BoxFuture<'a, Result<TimerList>>;

    /// Deletes a timer: it never fires again (`DELETE /v1/timers/{name}`).
    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Creates a replication link or rotates its token (`PUT /v1/links/{name}`).
    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition: &'a LinkDefinition,
    ) -> BoxFuture<'a, Result<LinkView>>;

    /// Reads a link, `None` if there is none by that name.
    fn get_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkView>>>;

    /// Every link (`GET /v1/links`).
    fn list_links(&self) -> BoxFuture<'_, Result<LinkList>>;

    /// Deletes a link (`DELETE /v1/links/{name}`).
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Repairs a link: fetches what its source holds and this deployment
    /// lacks (`POST /v1/links/{name}/repair`).
    fn repair_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<LinkRepaired>>;

    /// Pauses or resumes a link (`POST /v1/links/{name}/pause|resume`).
    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<LinkView>>;

    /// Registers or replaces a service declaration
    /// (`PUT /v1/services/{name}`), refusing unknown types unless
    /// `allow_unknown_types`.
    fn put_service<'a>(
        &'a self,
        declaration: &'a ServiceDeclaration,
        allow_unknown_types: bool,
    ) -> BoxFuture<'a, Result<ServiceView>>;

    /// Every current service declaration (`GET /v1/services`).
    fn list_services(&self) -> BoxFuture<'_, Result<ServiceList>>;

    /// The boundaries check (`GET /v1/boundaries`), over the window
    /// `unseen_for_ms` (the server's default if `None`).
    fn boundaries(&self, unseen_for_ms: Option<u64>) -> BoxFuture<'_, Result<BoundariesAnswer>>;

    /// Claims `key` for the stored fact `fact` (`POST /v1/claims`).
    fn claim<'a>(&'a self, key: &'a str, fact: Hash) -> BoxFuture<'a, Result<ClaimAnswer>>;

    /// The holder of `key`, `None` if nobody holds it.
    fn claim_holder<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ClaimAnswer>>>;

    /// Releases `key`, held by `fact` (`POST /v1/claims/release`).
    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleased>>;

    /// Acquires, renews or releases the lease `name`.
    fn lease<'a>(&'a self, name: &'a str, action: LeaseAction)
        -> BoxFuture<'a, Result<LeaseGrant>>;

    /// The last grant of the lease `name`, `None` if it was never granted.
    fn get_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>>;

    /// Stores a batch as [`Transport::put_facts`] does, only while the
    /// grant `fence` of the lease `lease` is current (`Cairn-Fence`).
    fn put_facts_fenced<'a>(
        &'a self,
        facts: Vec<CanonicalFact>,
        lease: &'a str,
        fence: u64,
    ) -> BoxFuture<'a, Result<Vec<PutResult>>>;

    /// Registers schema `version` of `type_name` (`PUT
    /// /v1/schemas/{type}/{version}`, admin); the same registration again
    /// answers it with `registered: false`.
    fn register_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
        registration: &'a SchemaRegistration,
    ) -> BoxFuture<'a, Result<SchemaVersionView>>;

    /// One schema version, `None` if the type has no such version.
    fn get_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<SchemaVersionView>>>;

    /// The schema versions of a type, `None` if it has none.
    fn list_schema_versions<'a>(
        &'a self,
        type_name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SchemaList>>>;

    /// Every type with a schema the caller may read (`GET /v1/schemas`).
    fn list_schemas(&self) -> BoxFuture<'_, Result<SchemaTypes>>;

    /// Closes the transport for every holder: once it returns, calls fail
    /// with [`crate::ClientError::Closed`], and a store the transport owns
    /// (an embedded node) is closed durably. Calling it again does nothing
    /// more. The default does nothing at all: a transport with nothing to
    /// release may keep answering.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// The local address on which a server owned by the transport serves
    /// API v1 (an embedded node started with a listen address); `None`
    /// otherwise, which is the default.
    fn local_address(&self) -> Option<SocketAddr> {
        None
    }
}

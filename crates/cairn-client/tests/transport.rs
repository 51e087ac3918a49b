//! `Client::with_transport` over a transport defined outside the crate: a
//! wrapper that counts calls and passes them to the remote transport. It
//! shows that the trait can be implemented elsewhere (as the embedded
//! transport will be) and that the client's typed layer only uses it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_client::{
    AppliedSubscription, CanonicalFact, Client, DeadLetter, DeadLetterPage, DeadLetterQuery,
    FactPage, GenerationPrecondition, Hash, LogQuery, Message, NackOptions, PullOptions, PutResult,
    RawMessage, RemoteTransport, ReplaySelection, Result, StoredFact, SubscriptionDefinition,
    SubscriptionView, SuccessorsQuery, TokenResult, Transport,
};
use cairn_client::{AuditPage, IdentityView, TokenCreateRequest, TokenCreated, TokenRotateRequest};
use cairn_client::{BoundariesAnswer, ServiceDeclaration, ServiceList, ServiceView};
use cairn_client::{ClaimAnswer, ClaimReleased, LeaseAction, LeaseGrant};
use cairn_client::{LinkDefinition, LinkList, LinkRepaired, LinkView};
use cairn_client::{SchemaList, SchemaRegistration, SchemaTypes, SchemaVersionView};
use cairn_client::{TimerDefinition, TimerList, TimerView};
use common::{fast_options, Customer, Order, TestServer};
use futures_util::future::BoxFuture;

struct CountingTransport {
    inner: RemoteTransport,
    calls: AtomicUsize,
}

impl CountingTransport {
    fn count(&self) -> &RemoteTransport {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

impl Transport for CountingTransport {
    fn put_facts(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<Vec<PutResult>>> {
        self.count().put_facts(facts)
    }
    fn get_fact(&self, hash: Hash) -> BoxFuture<'_, Result<Option<StoredFact>>> {
        self.count().get_fact(hash)
    }
    fn successors<'a>(&'a self, query: &'a SuccessorsQuery) -> BoxFuture<'a, Result<FactPage>> {
        self.count().successors(query)
    }
    fn log(&self, query: LogQuery) -> BoxFuture<'_, Result<FactPage>> {
        self.count().log(query)
    }
    fn apply_subscription<'a>(
        &'a self,
        name: &'a str,
        definition: &'a SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> BoxFuture<'a, Result<AppliedSubscription>> {
        self.count()
            .apply_subscription(name, definition, precondition)
    }
    fn get_subscription<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SubscriptionView>>> {
        self.count().get_subscription(name)
    }
    fn list_subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionView>>> {
        self.count().list_subscriptions()
    }
    fn delete_subscription<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.count().delete_subscription(name)
    }
    fn pull<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        self.count().pull(name, options)
    }
    fn pull_raw<'a>(
        &'a self,
        name: &'a str,
        options: PullOptions,
    ) -> BoxFuture<'a, Result<Vec<RawMessage>>> {
        self.count().pull_raw(name, options)
    }
    fn ack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        self.count().ack(name, tokens)
    }
    fn nack<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        options: &'a NackOptions,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        self.count().nack(name, tokens, options)
    }
    fn extend<'a>(
        &'a self,
        name: &'a str,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> BoxFuture<'a, Result<Vec<TokenResult>>> {
        self.count().extend(name, tokens, lease_ms)
    }
    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>> {
        self.count().pause(name)
    }
    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SubscriptionView>> {
        self.count().resume(name)
    }
    fn dead_letters<'a>(
        &'a self,
        name: &'a str,
        query: DeadLetterQuery,
    ) -> BoxFuture<'a, Result<DeadLetterPage>> {
        self.count().dead_letters(name, query)
    }
    fn dead_letter<'a>(
        &'a self,
        name: &'a str,
        hash: Hash,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>>> {
        self.count().dead_letter(name, hash)
    }
    fn replay_dead_letters<'a>(
        &'a self,
        name: &'a str,
        selection: &'a ReplaySelection,
    ) -> BoxFuture<'a, Result<u64>> {
        self.count().replay_dead_letters(name, selection)
    }
    fn discard_dead_letter<'a>(&'a self, name: &'a str, hash: Hash) -> BoxFuture<'a, Result<()>> {
        self.count().discard_dead_letter(name, hash)
    }
    fn metrics(&self) -> BoxFuture<'_, Result<String>> {
        self.count().metrics()
    }
    fn create_token<'a>(
        &'a self,
        request: &'a TokenCreateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>> {
        self.count().create_token(request)
    }
    fn list_tokens(&self) -> BoxFuture<'_, Result<Vec<IdentityView>>> {
        self.count().list_tokens()
    }
    fn revoke_token<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.count().revoke_token(name)
    }
    fn rotate_token<'a>(
        &'a self,
        name: &'a str,
        request: &'a TokenRotateRequest,
    ) -> BoxFuture<'a, Result<TokenCreated>> {
        self.count().rotate_token(name, request)
    }
    fn audit(&self, after: u64, limit: u32) -> BoxFuture<'_, Result<AuditPage>> {
        self.count().audit(after, limit)
    }
    fn claim<'a>(&'a self, key: &'a str, fact: Hash) -> BoxFuture<'a, Result<ClaimAnswer>> {
        self.count().claim(key, fact)
    }
    fn claim_holder<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ClaimAnswer>>> {
        self.count().claim_holder(key)
    }
    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleased>> {
        self.count().release_claim(key, fact)
    }
    fn lease<'a>(
        &'a self,
        name: &'a str,
        action: LeaseAction,
    ) -> BoxFuture<'a, Result<LeaseGrant>> {
        self.count().lease(name, action)
    }
    fn get_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        self.count().get_lease(name)
    }
    fn get_fact_as(&self, hash: Hash, version: u32) -> BoxFuture<'_, Result<Option<StoredFact>>> {
        self.count().get_fact_as(hash, version)
    }
    fn register_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
        registration: &'a SchemaRegistration,
    ) -> BoxFuture<'a, Result<SchemaVersionView>> {
        self.count()
            .register_schema(type_name, version, registration)
    }
    fn get_schema<'a>(
        &'a self,
        type_name: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<Option<SchemaVersionView>>> {
        self.count().get_schema(type_name, version)
    }
    fn list_schema_versions<'a>(
        &'a self,
        type_name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SchemaList>>> {
        self.count().list_schema_versions(type_name)
    }
    fn list_schemas(&self) -> BoxFuture<'_, Result<SchemaTypes>> {
        self.count().list_schemas()
    }
    fn put_facts_fenced<'a>(
        &'a self,
        facts: Vec<CanonicalFact>,
        lease: &'a str,
        fence: u64,
    ) -> BoxFuture<'a, Result<Vec<PutResult>>> {
        self.count().put_facts_fenced(facts, lease, fence)
    }
    fn put_timer<'a>(
        &'a self,
        name: &'a str,
        definition: &'a TimerDefinition,
    ) -> BoxFuture<'a, Result<TimerView>> {
        self.count().put_timer(name, definition)
    }
    fn get_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerView>>> {
        self.count().get_timer(name)
    }
    fn list_timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: Option<u32>,
    ) -> BoxFuture<'a, Result<TimerList>> {
        self.count().list_timers(after, limit)
    }
    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.count().delete_timer(name)
    }
    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition: &'a LinkDefinition,
    ) -> BoxFuture<'a, Result<LinkView>> {
        self.count().put_link(name, definition)
    }
    fn get_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkView>>> {
        self.count().get_link(name)
    }
    fn list_links(&self) -> BoxFuture<'_, Result<LinkList>> {
        self.count().list_links()
    }
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.count().delete_link(name)
    }
    fn repair_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<LinkRepaired>> {
        self.count().repair_link(name)
    }
    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<LinkView>> {
        self.count().set_link_paused(name, paused)
    }
    fn put_service<'a>(
        &'a self,
        declaration: &'a ServiceDeclaration,
        allow_unknown_types: bool,
    ) -> BoxFuture<'a, Result<ServiceView>> {
        self.count().put_service(declaration, allow_unknown_types)
    }
    fn list_services(&self) -> BoxFuture<'_, Result<ServiceList>> {
        self.count().list_services()
    }
    fn boundaries(&self, unseen_for_ms: Option<u64>) -> BoxFuture<'_, Result<BoundariesAnswer>> {
        self.count().boundaries(unseen_for_ms)
    }
}

#[tokio::test]
async fn a_client_runs_over_any_transport() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let transport = Arc::new(CountingTransport {
        inner: RemoteTransport::new(fast_options(vec![server.url()]))?,
        calls: AtomicUsize::new(0),
    });
    let client = Client::with_transport(Arc::clone(&transport) as Arc<dyn Transport>);
    let customer = client.put(&Customer { name: "Ada".into() }).await?;
    client
        .put(&Order {
            id: "o-1".into(),
            total: 3.0,
            customer: Some(customer.hash),
        })
        .await?;
    let orders = client.successors::<Order>(&customer.hash).all().await?;
    assert_eq!(orders.len(), 1);
    assert!(client
        .clone()
        .get::<Customer>(&customer.hash)
        .await?
        .is_some());
    // Two puts, two successors pages (the second one empty), one get.
    assert_eq!(transport.calls.load(Ordering::SeqCst), 5);
    server.stop().await
}

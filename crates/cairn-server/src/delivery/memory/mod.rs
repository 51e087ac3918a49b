//! The in-memory delivery engine, for stores that keep one server's
//! subscriptions (the embedded store): each subscription's pure state
//! machine (`cairn-delivery`) runs in the server's memory, against the
//! store, on the clock it is given ([`MemoryOptions`]).
//!
//! [`MemoryDeliveries`] is the registry of subscriptions; each one is a
//! [`MemorySubscription`] whose state sits behind an async mutex. Every
//! operation takes the lock, asks the state machine, and queues the
//! resulting changes to the store *while still holding the lock*, so one
//! subscription's changes reach the store in the order they were made.
//! Operations that promise durability (ack, nack, pause, replay, ...) then
//! wait, outside the lock, for a durability barrier, so concurrent acks
//! share one fsync.
//!
//! Nothing runs in the background: lease expiries, due retries and the
//! admission of new facts are processed when a subscription is next used
//! (pulled, acked, viewed, scraped), which is exactly when they matter.
//!
//! Each subscription's token key is new at every start (leases are not
//! recorded, so tokens from before a restart must not act; with a new key
//! they are simply not this incarnation's tokens: `unknown`).

mod subscription;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_api::GenerationPrecondition;
use cairn_delivery::{
    validate_subscription_name, Change, SubscriptionDefinition, SubscriptionState,
};
use cairn_store::{DeliveryStore, ReadError, Store};

use tokio::sync::RwLock;

use crate::clock::Clock;
use crate::delivery::{
    Answer, Applied, Deliveries, DeliveryError, Subscription, TokenSecrets, SUBSCRIPTIONS_MAX,
};

pub use subscription::MemorySubscription;

/// How the in-memory engine is built.
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// The delivery clock.
    pub clock: Clock,
    /// Where each subscription incarnation's token secret comes from.
    pub secrets: TokenSecrets,
}

impl MemoryOptions {
    /// The engine on `clock`, with random token secrets (production).
    pub fn new(clock: Clock) -> MemoryOptions {
        MemoryOptions {
            clock,
            secrets: TokenSecrets::Random,
        }
    }
}

/// The registry of subscriptions.
pub struct MemoryDeliveries<S> {
    store: Arc<S>,
    subscriptions: RwLock<BTreeMap<String, Arc<MemorySubscription<S>>>>,
    next_id: AtomicU64,
    options: MemoryOptions,
}

impl<S: Store + DeliveryStore> MemoryDeliveries<S> {
    /// Loads every subscription from the store.
    pub fn load(store: Arc<S>, options: MemoryOptions) -> Result<MemoryDeliveries<S>, ReadError> {
        let now = options.clock.now_ms();
        let mut subscriptions = BTreeMap::new();
        let mut next_id = 1;
        for stored in store.load_subscriptions()? {
            let id = stored.record.id;
            next_id = next_id.max(id + 1);
            let name = stored.record.name.clone();
            let state = SubscriptionState::restore(
                stored.record,
                stored.pending,
                stored.dead,
                stored.discarded,
                now,
                options.secrets.next_key(),
            );
            subscriptions.insert(
                name,
                Arc::new(MemorySubscription::new(
                    Arc::clone(&store),
                    state,
                    options.clock.clone(),
                )),
            );
        }
        tracing::info!(
            n_subscriptions = subscriptions.len(),
            "subscriptions loaded"
        );
        Ok(MemoryDeliveries {
            store,
            subscriptions: RwLock::new(subscriptions),
            next_id: AtomicU64::new(next_id),
            options,
        })
    }
}

impl<S: Store + DeliveryStore> Deliveries for MemoryDeliveries<S> {
    fn apply<'a>(
        &'a self,
        name: &'a str,
        definition: SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> Answer<'a, (Arc<dyn Subscription>, Applied)> {
        Box::pin(async move {
            validate_subscription_name(name).map_err(DeliveryError::InvalidDefinition)?;
            // The registry's write lock keeps a delete out while the
            // definition changes.
            let mut subscriptions = self.subscriptions.write().await;
            if let Some(existing) = subscriptions.get(name) {
                let applied = existing.apply(definition, precondition).await?;
                return Ok((Arc::clone(existing) as Arc<dyn Subscription>, applied));
            }
            if precondition.is_some() {
                return Err(DeliveryError::GenerationMismatch {
                    name: name.to_string(),
                    current_generation: None,
                });
            }
            if subscriptions.len() >= SUBSCRIPTIONS_MAX {
                return Err(DeliveryError::TooManySubscriptions);
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let cursor_seq = match definition.start {
                cairn_delivery::Start::Beginning => 0,
                cairn_delivery::Start::Now => self.store.stats().last_seq,
            };
            let state = SubscriptionState::new(
                id,
                name.to_string(),
                definition,
                cursor_seq,
                self.options.clock.now_ms(),
                self.options.secrets.next_key(),
            );
            self.store
                .write_delivery(id, vec![Change::Subscription(state.record())], true)
                .await?;
            let subscription = Arc::new(MemorySubscription::new(
                Arc::clone(&self.store),
                state,
                self.options.clock.clone(),
            ));
            subscriptions.insert(name.to_string(), Arc::clone(&subscription));
            tracing::info!(name, id, "subscription created");
            Ok((subscription as Arc<dyn Subscription>, Applied::Created))
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> Answer<'a, Arc<dyn Subscription>> {
        Box::pin(async move {
            self.subscriptions
                .read()
                .await
                .get(name)
                .map(|subscription| Arc::clone(subscription) as Arc<dyn Subscription>)
                .ok_or_else(|| DeliveryError::UnknownSubscription(name.to_string()))
        })
    }

    fn list(&self) -> Answer<'_, Vec<Arc<dyn Subscription>>> {
        Box::pin(async move {
            Ok(self
                .subscriptions
                .read()
                .await
                .values()
                .map(|subscription| Arc::clone(subscription) as Arc<dyn Subscription>)
                .collect())
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> Answer<'a, ()> {
        Box::pin(async move {
            let mut subscriptions = self.subscriptions.write().await;
            let subscription = subscriptions
                .get(name)
                .cloned()
                .ok_or_else(|| DeliveryError::UnknownSubscription(name.to_string()))?;
            self.store.delete_subscription(subscription.id()).await?;
            subscriptions.remove(name);
            subscription.close();
            tracing::info!(name, "subscription deleted");
            Ok(())
        })
    }
}

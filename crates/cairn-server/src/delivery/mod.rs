//! Delivery: the subscriptions API as two object-safe traits,
//! [`Deliveries`] (the registry) and [`Subscription`] (one subscription's
//! operations), with one engine per kind of store:
//!
//! * [`memory`]: each subscription's pure state machine runs in this
//!   server's memory and persists its changes through a `DeliveryStore`
//!   (the embedded store, one server);
//! * [`shared`]: the state lives in PostgreSQL rows that every server
//!   reads and locks (`FOR UPDATE SKIP LOCKED`), so many servers serve one
//!   subscription without coordinating among themselves.
//!
//! Handlers see only the traits, so both engines answer every endpoint the
//! same way. Both take their time from a clock they are given and their
//! token secrets from a [`TokenSecrets`] source, and decide with the same
//! pure functions of `cairn-delivery`; the conformance suite
//! (`tests/delivery_conformance/`) drives both with one seeded schedule
//! and checks that they keep the same invariants and answer alike.

pub mod memory;
pub mod shared;

use std::sync::{Arc, Mutex};

use cairn_api::{DeliveryState, GenerationPrecondition};
use cairn_delivery::{
    MessageRecord, MessageStatus, SplitMix64, SubscriptionDefinition, TokenKey, TokenOutcome,
};
use cairn_fact::Hash;
use cairn_store::{MessageSelection, ReadError, WriteError};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Subscriptions one server keeps at most.
pub const SUBSCRIPTIONS_MAX: usize = 1_000;

/// Where the secrets of subscription incarnations come from (each signs
/// its incarnation's tokens and jitters its backoff; see
/// `cairn_delivery::TokenKey`).
#[derive(Clone, Debug)]
pub enum TokenSecrets {
    /// Fresh random bytes each time (production).
    Random,
    /// A sequence fixed by a seed, for tests that replay a run.
    Seeded(Arc<Mutex<SplitMix64>>),
}

impl TokenSecrets {
    /// Secrets drawn from `seed`.
    pub fn seeded(seed: u64) -> TokenSecrets {
        TokenSecrets::Seeded(Arc::new(Mutex::new(SplitMix64::new(seed))))
    }

    /// A new secret.
    pub fn next_secret(&self) -> [u8; 32] {
        match self {
            TokenSecrets::Random => rand::random(),
            TokenSecrets::Seeded(random) => {
                let mut random = random.lock().expect("lock poisoned");
                let mut secret = [0u8; 32];
                for chunk in secret.chunks_mut(8) {
                    chunk.copy_from_slice(&random.next_u64().to_le_bytes());
                }
                secret
            }
        }
    }

    /// A new key.
    pub fn next_key(&self) -> TokenKey {
        TokenKey::new(self.next_secret())
    }
}

/// Why a delivery operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No subscription has that name.
    #[error("no subscription named {0:?}")]
    UnknownSubscription(String),
    /// The name or the definition is not acceptable.
    #[error("{0}")]
    InvalidDefinition(String),
    /// A definition under that name differs in members that cannot change.
    #[error(
        "subscription {name:?} exists with another {}; these cannot change (delete the \
         subscription and create it again to change them), only lease_ms, max_attempts, \
         backoff, max_in_flight_per_key and rate_limit_per_s can",
        fixed_members_changed.join(", ")
    )]
    Conflict {
        /// The subscription's name.
        name: String,
        /// The members that differ and cannot change, as on the wire.
        fixed_members_changed: Vec<&'static str>,
    },
    /// The `If-Match` precondition does not hold: the subscription is at
    /// another generation, or there is none.
    #[error("{}", generation_mismatch_message(name, *current_generation))]
    GenerationMismatch {
        /// The subscription's name.
        name: String,
        /// Its generation now; `None` if it does not exist.
        current_generation: Option<u64>,
    },
    /// The server keeps no more subscriptions.
    #[error("this server keeps at most {SUBSCRIPTIONS_MAX} subscriptions")]
    TooManySubscriptions,
    /// The store could not write.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The store could not read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

fn generation_mismatch_message(name: &str, current_generation: Option<u64>) -> String {
    match current_generation {
        Some(generation) => format!(
            "subscription {name:?} is at generation {generation}, not the one If-Match names; \
             nothing changed (read it again before deciding)"
        ),
        None => format!(
            "no subscription named {name:?} exists, and If-Match asks for one; nothing changed"
        ),
    }
}

/// What a `PUT` of a definition did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The subscription was created (generation 1).
    Created,
    /// Members that may change were changed (the generation grew by one).
    Updated,
    /// The same definition was there: nothing changed.
    Unchanged,
}

/// A leased message as answered by a pull.
#[derive(Clone, Debug)]
pub struct PulledMessage {
    /// The lease token.
    pub token: String,
    /// The fact's hash.
    pub hash: Hash,
    /// The fact's seq.
    pub seq: u64,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// The fact's canonical JSON.
    pub canonical: Vec<u8>,
}

/// A dead (or discarded) letter with its fact.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The fact's seq.
    pub seq: u64,
    /// Its delivery record.
    pub record: MessageRecord,
    /// The fact's canonical JSON.
    pub canonical: Vec<u8>,
}

/// How one subscription has carried one fact (addition, issue 17: `GET
/// /v1/facts/{hash}/deliveries`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDelivery {
    /// Where the message stands.
    pub state: DeliveryState,
    /// Deliveries in its current round (0 where none is recorded).
    pub attempts: u32,
    /// The error of its last failed attempt, if any.
    pub last_error: Option<String>,
    /// When it died (dead and discarded letters).
    pub dead_at_ms: Option<u64>,
    /// A pending message's next delivery time, when that lies ahead.
    pub not_before_ms: Option<u64>,
}

impl MessageDelivery {
    /// A message that has no record, decided by where it lies: at or below
    /// the start (`start_seq`, 0 when not recorded) it was never a message;
    /// beyond the admission cursor it is not admitted yet (pending, not
    /// before its own `cairn_not_before` if that lies ahead); in between,
    /// its record was removed by its ack. Both engines decide with this.
    pub fn unrecorded(
        seq: u64,
        start_seq: u64,
        cursor_seq: u64,
        fact_not_before_ms: Option<u64>,
        now_ms: u64,
    ) -> MessageDelivery {
        let (state, not_before_ms) = if seq <= start_seq {
            (DeliveryState::NotSelectedBeforeStart, None)
        } else if seq > cursor_seq {
            let ahead = fact_not_before_ms.filter(|&not_before| not_before > now_ms);
            (DeliveryState::Pending, ahead)
        } else {
            (DeliveryState::Acked, None)
        };
        MessageDelivery {
            state,
            attempts: 0,
            last_error: None,
            dead_at_ms: None,
            not_before_ms,
        }
    }

    /// A dead or discarded letter, from its record.
    pub fn settled(record: &MessageRecord) -> MessageDelivery {
        let state = match record.status {
            MessageStatus::Discarded => DeliveryState::Discarded,
            MessageStatus::Dead | MessageStatus::Pending => DeliveryState::Dead,
        };
        MessageDelivery {
            state,
            attempts: record.attempts,
            last_error: record.last_error.clone(),
            dead_at_ms: record.dead_at_ms,
            not_before_ms: None,
        }
    }

    /// A tracked message: leased now, or pending (waiting until
    /// `not_before_ms` if that lies ahead).
    pub fn tracked(
        leased: bool,
        attempts: u32,
        last_error: Option<String>,
        not_before_ms: Option<u64>,
    ) -> MessageDelivery {
        MessageDelivery {
            state: if leased {
                DeliveryState::InFlight
            } else {
                DeliveryState::Pending
            },
            attempts,
            last_error,
            dead_at_ms: None,
            not_before_ms: if leased { None } else { not_before_ms },
        }
    }
}

/// The subscription view of the API: definition and counters, flat.
pub use cairn_api::SubscriptionView;

/// Which facts are messages of a subscription with this definition.
pub fn selection_of(definition: &SubscriptionDefinition) -> MessageSelection {
    match definition.predecessor_hash() {
        Some((role, predecessor)) => MessageSelection::Successors {
            type_name: definition.type_name.clone(),
            role,
            predecessor,
        },
        None => MessageSelection::Type(definition.type_name.clone()),
    }
}

/// What the delivery traits answer: a boxed future (the traits are used as
/// trait objects) of a result.
pub type Answer<'a, T> = BoxFuture<'a, Result<T, DeliveryError>>;

/// The registry of subscriptions.
pub trait Deliveries: Send + Sync + 'static {
    /// Creates a subscription, finds the same one, or updates the members
    /// of its definition that may change (`SubscriptionDefinition::change_to`)
    /// and counts a generation, keeping its cursor, messages, leases,
    /// attempts and dead letters. A change of a member that cannot change
    /// is a [`DeliveryError::Conflict`]. With a `precondition`, nothing is
    /// created, and nothing changes unless it holds
    /// ([`DeliveryError::GenerationMismatch`]); it is checked atomically
    /// with the change. Durable before it returns.
    fn apply<'a>(
        &'a self,
        name: &'a str,
        definition: SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> Answer<'a, (Arc<dyn Subscription>, Applied)>;

    /// The subscription with this name.
    fn get<'a>(&'a self, name: &'a str) -> Answer<'a, Arc<dyn Subscription>>;

    /// Every subscription, by name.
    fn list(&self) -> Answer<'_, Vec<Arc<dyn Subscription>>>;

    /// Deletes a subscription and all its delivery state, durably.
    fn delete<'a>(&'a self, name: &'a str) -> Answer<'a, ()>;
}

/// One subscription's operations. Tokens are answered one outcome each,
/// in request order; operations that change state are durable before they
/// return.
pub trait Subscription: Send + Sync + 'static {
    /// The name.
    fn name(&self) -> &str;

    /// The facts it delivers (fixed for its life: what it selects cannot
    /// change), by which access control authorizes every operation on it.
    fn selection(&self) -> &MessageSelection;

    /// The schema version its messages are delivered as (the definition's
    /// `as_version`, which may change), if any.
    fn as_version(&self) -> Answer<'_, Option<u32>>;

    /// Leases up to `max` messages, waiting up to `wait_ms` for at least one.
    fn pull<'a>(
        &'a self,
        max: usize,
        wait_ms: u64,
        lease_ms: Option<u64>,
        shutdown: &'a CancellationToken,
    ) -> Answer<'a, Vec<PulledMessage>>;

    /// Acknowledges.
    fn ack<'a>(&'a self, tokens: &'a [String]) -> Answer<'a, Vec<TokenOutcome>>;

    /// Negative acknowledgement, with an optional delay and error text.
    fn nack<'a>(
        &'a self,
        tokens: &'a [String],
        delay_ms: Option<u64>,
        error: Option<&'a str>,
    ) -> Answer<'a, Vec<TokenOutcome>>;

    /// Renews leases.
    fn extend<'a>(
        &'a self,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> Answer<'a, Vec<TokenOutcome>>;

    /// Pauses or resumes delivery.
    fn set_paused(&self, paused: bool) -> Answer<'_, SubscriptionView>;

    /// The definition (with its generation) and counters.
    fn view(&self) -> Answer<'_, SubscriptionView>;

    /// Dead letters (or discarded ones) with `seq > after_seq`.
    fn dead_letters(
        &self,
        discarded: bool,
        after_seq: u64,
        limit: usize,
    ) -> Answer<'_, Vec<DeadLetter>>;

    /// The dead letter of this fact, if it is one.
    fn dead_letter<'a>(&'a self, hash: &'a Hash) -> Answer<'a, Option<DeadLetter>>;

    /// Replays dead letters (these hashes, or as many as fit); returns how
    /// many were replayed.
    fn replay<'a>(&'a self, hashes: Option<&'a [Hash]>) -> Answer<'a, usize>;

    /// Discards one dead letter, keeping its record. False if the fact is
    /// not a dead letter of this subscription.
    fn discard<'a>(&'a self, hash: &'a Hash) -> Answer<'a, bool>;

    /// How this subscription has carried the fact at `seq`, which the
    /// caller has checked it selects (addition, issue 17);
    /// `fact_not_before_ms` is the fact's own `cairn_not_before`. Exact
    /// at the time of the answer: leases that ran out by then are ended
    /// first (as every read of a subscription does), and the message's
    /// record and the subscription's cursor are read together. Leases
    /// nothing, counts nothing, admits nothing.
    fn delivery_of(&self, seq: u64, fact_not_before_ms: Option<u64>)
        -> Answer<'_, MessageDelivery>;
}

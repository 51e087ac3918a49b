//! Cairn's delivery logic as a pure state machine: subscriptions, leases,
//! acknowledgements, retries with backoff, per-key ordering, rate limits and
//! dead letters.
//!
//! Nothing here does I/O or reads a clock. Every operation takes the current
//! time (`now_ms`, milliseconds since the Unix epoch) and returns the
//! decisions plus the [`Change`]s that a runtime must persist, so the same
//! logic runs in the server, in unit tests and in simulations with
//! simulated time. Randomness (backoff jitter, lease ids) comes from a seeded
//! generator, so a run is reproducible from its seed.

#![forbid(unsafe_code)]

mod attributes;
mod backoff;
mod definition;
pub mod limits;
mod random;
mod rate;
mod record;
mod subscription;
mod token;

pub use attributes::{message_attributes, MessageAttributes, NOT_BEFORE_FIELD};
pub use backoff::Backoff;
pub use definition::{DefinitionError, PredecessorSelector, Start, SubscriptionDefinition};
pub use random::SplitMix64;
pub use rate::TokenBucket;
pub use record::{
    validate_subscription_name, MessageRecord, MessageStatus, RecordError, SubscriptionRecord,
};
pub use subscription::{
    truncate_error, AdmittedMessage, Change, Counters, Lease, SubscriptionState, TokenOutcome,
    TokenStatus, LEASE_EXPIRED_ERROR,
};
pub use token::LeaseToken;

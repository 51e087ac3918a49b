//! Cairn's delivery logic as a pure state machine: subscriptions, leases,
//! acknowledgements, retries with backoff, per-key ordering, rate limits and
//! dead letters.
//!
//! Nothing here does I/O or reads a clock. Every operation takes the current
//! time (`now_ms`, milliseconds since the Unix epoch) and returns the
//! decisions plus the [`Change`]s that a runtime must persist, so the same
//! logic runs in the server, in unit tests and in simulations with
//! simulated time. Tokens are signed and backoff jitter drawn with a key
//! the runtime gives each subscription ([`TokenKey`]), so a run is
//! reproducible from its key, and two engines given the same key decide
//! alike.

#![forbid(unsafe_code)]

mod attributes;
mod backoff;
mod definition;
mod failure;
pub mod limits;
mod outcomes;
mod random;
mod rate;
mod record;
mod subscription;
mod token;

pub use attributes::{
    fact_attributes, may_have_not_before, message_attributes, MessageAttributes, UnreadableFact,
    NOT_BEFORE_FIELD,
};
pub use backoff::Backoff;
pub use definition::{
    DefinitionChange, DefinitionError, PredecessorSelector, Start, SubscriptionDefinition,
};
pub use failure::{retry_delay_ms, FailedAttempt};
pub use outcomes::{unsettled_status, TokenBatch};
pub use random::SplitMix64;
pub use rate::TokenBucket;
pub use record::{
    validate_subscription_name, MessageRecord, MessageStatus, RecordError, SubscriptionRecord,
    FIRST_GENERATION,
};
pub use subscription::{
    truncate_error, AdmittedMessage, Change, Counters, Lease, SubscriptionState, TokenOutcome,
    TokenStatus, TrackedDetail, LEASE_EXPIRED_ERROR,
};
pub use token::{lease_number, match_token, LeaseToken, MessageLease, TokenKey, TokenMatch};

//! Cairn's storage layer.
//!
//! The [`Store`] trait is the contract every backend keeps (its doc comment
//! states it); [`EmbeddedStore`] is the default backend, a single data
//! directory on top of the fjall LSM engine with group commit. Delivery state
//! (subscriptions, leases, acks, dead letters) is kept through the
//! [`DeliveryStore`] trait, in the same journal and commits as facts.
//! [`PostgresStore`] keeps facts and delivery state in PostgreSQL, shared by
//! many servers. Blobs are content-addressed, as files or in PostgreSQL,
//! managed by [`BlobStore`].

#![forbid(unsafe_code)]

mod blobs;
pub mod coordination;
mod delivery;
pub mod digests;
mod embedded;
mod error;
mod identity;
pub mod limits;
mod links;
pub mod postgres;
mod store;
mod timers;

pub use blobs::{BlobError, BlobReader, BlobStore, BlobWriter};
pub use coordination::{
    ClaimOutcome, ClaimRecord, ClaimReleaseOutcome, CoordinationStore, Fence, LeaseOutcome,
    LeaseRecord, LeaseRequest,
};
pub use delivery::{DeliveryStore, MessageSelection, StoredSubscription};
pub use digests::{DigestAnswer, DigestQuery, DigestStore, HashPrefix};
pub use embedded::{EmbeddedOptions, EmbeddedStore, SyncMode};
pub use error::{ReadError, SourceError, WriteError};
pub use identity::{
    AuditRecord, AuthorRecord, IdentityError, IdentityRecord, IdentityStore, TokenRecord,
    AUDIT_ENTRIES_MAX, AUTHORS_AGAIN_MAX,
};
pub use links::{LinkPut, LinkRecord, LinkStore};
pub use postgres::{
    PostgresError, PostgresOptions, PostgresStore, ReplicationStats, SCHEMA_VERSION,
};
pub use store::{DatabaseStats, Page, PutOutcome, Store, StoreStats, StoredFact, SuccessorsQuery};
pub use timers::{DueTimers, TimerProgress, TimerPut, TimerRecord, TimerStore};

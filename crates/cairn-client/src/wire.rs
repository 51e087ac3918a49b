//! The SDK's side of API v1: the protocol's types come from `cairn-api`
//! (re-exported here), and the few option types of the SDK's own calls are
//! defined here with their translation into the protocol's request bodies.

pub use cairn_api::schemas::VERSION_FIELD;
pub use cairn_api::{format_utc_ms, CatchUp, TimerDefinition, TimerList, TimerView};
pub use cairn_api::{
    AckRequest, BackoffDefinition, DeadLetterQuery, ExtendRequest, GenerationPrecondition,
    LogQuery, NackRequest, PredecessorSelector, PullRequest, PutResult, ReplayRequest, Start,
    SubscriptionDefinition, SubscriptionView, SuccessorsQuery, TokenResult, TokenStatus,
};
pub use cairn_api::{
    Anchor, Bookmark, BoundariesAnswer, LinkDefinition, LinkList, LinkRepaired, LinkState,
    LinkView, ServiceDeclaration, ServiceList, ServiceView,
};
pub use cairn_api::{
    AuditEntry, AuditPage, Authorship, BlobAccess, IdentityView, Pattern, Permissions,
    TokenCreateRequest, TokenCreated, TokenRotateRequest, TokenView,
};
pub use cairn_api::{
    BreakingChange, Compatibility, RoleConstraint, SchemaList, SchemaRegistration, SchemaTypes,
    SchemaVersionSummary, SchemaVersionView, UpcastMarker, UpcastOperation, Violation,
};
pub use cairn_api::{ClaimAnswer, ClaimReleased, LeaseGrant};

/// What to do with a lease (`POST /v1/leases/{name}/…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// Acquire it for `holder` (a new grant, or the current holder's
    /// grant renewed).
    Acquire {
        /// Who asks.
        holder: String,
        /// Lease length, 100 to 3,600,000 ms.
        ttl_ms: u64,
    },
    /// Renew the grant `fence` of `holder` (for `ttl_ms`, or its own length).
    Renew {
        /// The grant's holder.
        holder: String,
        /// The grant's fence.
        fence: u64,
        /// A new lease length.
        ttl_ms: Option<u64>,
    },
    /// Release the grant `fence` of `holder`.
    Release {
        /// The grant's holder.
        holder: String,
        /// The grant's fence.
        fence: u64,
    },
}
use cairn_fact::Hash;

/// A stored fact as read back, its fact as a JSON value.
pub type StoredFact = cairn_api::StoredFact;
/// A page of facts (successors or log).
pub type FactPage = cairn_api::FactPage;
/// A delivered message, leased to the caller.
pub type Message = cairn_api::Message;
/// A delivered message whose fact is kept exactly as the server sent it:
/// the fact's canonical bytes, for callers that pass facts on unchanged
/// (reading them into a [`serde_json::Value`] may reorder keys and rewrite
/// numbers).
pub type RawMessage = cairn_api::Message<Box<serde_json::value::RawValue>>;
/// A message that exhausted its attempts.
pub type DeadLetter = cairn_api::DeadLetter;
/// A page of dead letters.
pub type DeadLetterPage = cairn_api::DeadLetterPage;

/// What putting a definition did to a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// It was created (`201`), at generation 1.
    Created,
    /// Its definition changed in what may change (`200`, `"updated":
    /// true`); its generation grew by one.
    Updated,
    /// The same definition was there (`200`, `"updated": false`).
    Unchanged,
}

/// The answer to putting a definition: what happened, and the
/// subscription as it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedSubscription {
    /// What happened.
    pub outcome: ApplyOutcome,
    /// The subscription (`view.generation` is its generation now).
    pub view: SubscriptionView,
}

impl AppliedSubscription {
    /// The definition's generation now.
    pub fn generation(&self) -> u64 {
        self.view.generation
    }
}

/// Options of one pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullOptions {
    /// Messages at most (1 to 1000).
    pub max: u32,
    /// Long-poll: wait up to this long for at least one message.
    pub wait_ms: u64,
    /// Lease of the pulled messages, instead of the subscription's.
    pub lease_ms: Option<u64>,
}

/// Options of a nack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NackOptions {
    /// Redeliver after this long instead of the subscription's backoff.
    pub delay_ms: Option<u64>,
    /// Why the handler failed; kept as the dead letter's `last_error`.
    pub error: Option<String>,
}

/// Which dead letters to deliver again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaySelection {
    /// Every dead letter of the subscription.
    All,
    /// These (unknown hashes are ignored).
    Hashes(Vec<Hash>),
}

impl PullOptions {
    /// The body of the pull request.
    pub fn request(&self) -> PullRequest {
        PullRequest {
            max: Some(u64::from(self.max)),
            wait_ms: Some(self.wait_ms),
            lease_ms: self.lease_ms,
        }
    }
}

impl ReplaySelection {
    /// The body of the replay request.
    pub fn request(&self) -> ReplayRequest {
        match self {
            ReplaySelection::All => ReplayRequest { hashes: None },
            ReplaySelection::Hashes(hashes) => ReplayRequest {
                hashes: Some(hashes.iter().map(Hash::to_hex).collect()),
            },
        }
    }
}

//! Cairn's wire protocol, API v1 (`docs/api-v1.md`), defined once: every
//! request and answer body, the limits a request is checked against, the
//! stable error codes with their HTTP statuses, and (feature `openapi`) the
//! OpenAPI document generated from these types.
//!
//! The server parses requests into these types and writes its answers from
//! them; the SDK writes requests and reads answers with them; the CLI goes
//! through the SDK. Requests are strict (unknown members are refused, and
//! `null` is the same as an absent optional member everywhere); answers are
//! read leniently (unknown members are ignored), so that a newer server
//! does not break an older client.
//!
//! *Boundary:* no I/O, no async: types, checks and documentation only.

#![forbid(unsafe_code)]

pub mod access;
pub mod coordination;
pub mod dead_letter_cause;
pub mod digests;
pub mod error_code;
pub mod facts;
pub mod hash_text;
pub mod limits;
pub mod links;
pub mod meta;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod precondition;
pub mod request_body;
pub mod schemas;
pub mod services;
pub mod subscriptions;
pub mod timers;
pub mod versioning;

pub use access::{
    AuditEntry, AuditPage, Authorship, BlobAccess, IdentityList, IdentityView, Pattern,
    PatternError, Permissions, Revoked, TokenCreateRequest, TokenCreated, TokenRotateRequest,
    TokenView, Whoami,
};
pub use coordination::{
    ClaimAnswer, ClaimReleased, ClaimRequest, LeaseAcquireRequest, LeaseGrant, LeaseGrantRequest,
    FENCE_HEADER,
};
pub use dead_letter_cause::dead_letter_cause;
pub use digests::{DigestBucket, DigestsAnswer};
pub use error_code::{ErrorBody, ErrorCode, ErrorObject};
pub use facts::{FactPage, LogQuery, PutFactsAnswer, PutResult, StoredFact, SuccessorsQuery};
pub use links::{Anchor, Bookmark, LinkDefinition, LinkList, LinkRepaired, LinkState, LinkView};
pub use meta::{BlobStored, Health, Versions};
pub use precondition::{entity_tag, GenerationPrecondition, MalformedIfMatch};
pub use request_body::{parse_body, RequestBody};
pub use schemas::{
    BreakingChange, Compatibility, RoleConstraint, SchemaList, SchemaRegistration, SchemaTypes,
    SchemaVersionSummary, SchemaVersionView, UpcastMarker, UpcastOperation, Violation,
};
pub use services::{
    BoundariesAnswer, BoundaryRule, BoundaryViolation, EdgeKind, EdgeView, FlowKind, FlowView,
    ServiceDeclaration, ServiceList, ServiceView,
};
pub use subscriptions::{
    AckRequest, BackoffDefinition, DeadLetter, DeadLetterCause, DeadLetterCauses, DeadLetterPage,
    DeadLetterQuery, Deleted, DeliveryState, Discarded, EmptyRequest, ExtendRequest,
    FactDeliveries, FactDelivery, Message, NackRequest, PredecessorSelector, PullAnswer,
    PullRequest, ReplayAnswer, ReplayRequest, Start, SubscriptionDefinition, SubscriptionList,
    SubscriptionPutAnswer, SubscriptionView, TokenResult, TokenResults, TokenStatus,
};
pub use timers::{format_utc_ms, CatchUp, TimerDefinition, TimerList, TimerView};

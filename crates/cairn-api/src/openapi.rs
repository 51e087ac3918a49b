//! The OpenAPI 3.1 document of API v1, generated from the protocol's types
//! (feature `openapi`). The server serves it at `GET /v1/openapi.json`; a
//! copy is committed as `docs/openapi.json`, and a test fails when the two
//! differ. Clients in other languages are generated from it.
//!
//! The operations are declared here, beside the types they use, by the
//! `#[utoipa::path]` attributes of the empty functions below: each function
//! stands for one operation of the contract (`docs/api-v1.md`), including
//! every error status it can answer.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::OpenApi;

use crate::access::{
    AuditEntry, AuditPage, Authorship, BlobAccess, IdentityList, IdentityView, Permissions,
    Revoked, TokenCreateRequest, TokenCreated, TokenRotateRequest, TokenView, Whoami,
};
use crate::coordination::{
    ClaimAnswer, ClaimReleased, ClaimRequest, LeaseAcquireRequest, LeaseGrant, LeaseGrantRequest,
};
use crate::digests::{DigestBucket, DigestsAnswer};
use crate::error_code::ErrorBody;
use crate::facts::{FactPage, PutFactsAnswer, StoredFact};
use crate::links::{Anchor, Bookmark, LinkDefinition, LinkList, LinkRepaired, LinkState, LinkView};
use crate::meta::{BlobStored, Health, Versions};
use crate::schemas::{
    BreakingChange, Compatibility, RoleConstraint, SchemaList, SchemaRegistration, SchemaTypes,
    SchemaVersionSummary, SchemaVersionView, UpcastMarker, UpcastOperation, Violation,
};
use crate::services::{
    BoundariesAnswer, BoundaryRule, BoundaryViolation, EdgeKind, EdgeView, FlowKind, FlowView,
    ServiceDeclaration, ServiceList, ServiceView,
};
use crate::subscriptions::*;
use crate::timers::{CatchUp, TimerDefinition, TimerList, TimerView};
use crate::versioning::{ApiVersion, DeprecatedRouteView, VersionStatus};

/// A hash: BLAKE3-256 as 64 lowercase hexadecimal characters.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(
    value_type = String,
    pattern = "^[0-9a-f]{64}$",
    example = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
)]
pub struct HashText(String);

/// A predecessor of a fact: one hash, or a non-empty set of hashes.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Predecessor {
    /// One fact.
    One(HashText),
    /// Several facts (sorted and deduplicated before hashing).
    Many(Vec<HashText>),
}

/// A fact: immutable, content-addressed. Its hash is BLAKE3-256 of its RFC
/// 8785 canonical form (`docs/api-v1.md`, "Facts"); at most 64 KiB
/// canonical (configurable), nesting at most 64 levels.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    /// The type: `Name(.Name)*`, each name `[A-Za-z][A-Za-z0-9_]*`.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$",
        min_length = 1,
        max_length = 200
    )]
    pub type_name: String,
    /// Any JSON object; numbers are doubles, integer literals within
    /// ±(2^53−1).
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Role name (`[A-Za-z][A-Za-z0-9_]*`) to predecessor.
    pub predecessors: BTreeMap<String, Predecessor>,
}

/// The body of `POST /v1/facts`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutFactsRequest {
    /// 1 to 10,000 facts; each predecessor must be stored or earlier in
    /// the batch.
    #[schema(min_items = 1, max_items = 10000)]
    pub facts: Vec<Fact>,
}

/// What any operation may answer when the server cannot take it now.
#[derive(utoipa::IntoResponses)]
enum Busy {
    /// `overloaded`: too many requests at once; retry with backoff. Or
    /// `rate_limited`: the identity's rate limit (with `Retry-After`).
    #[response(status = 429)]
    Overloaded(ErrorBody),
    /// `store_unavailable`, `store_poisoned`, `storage_failure`,
    /// `shutting_down` or `timeout`: retry later or on another server.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What an operation with a JSON body may answer about the body itself.
#[derive(utoipa::IntoResponses)]
enum BodyRefused {
    /// The body is larger than 32 MiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body declares a type other than `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

/// `unknown_subscription`: no subscription has that name.
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
struct UnknownSubscription(ErrorBody);

/// Every operation of API v1 and the types they use.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn API v1",
        description = "Immutable, content-addressed facts and their durable delivery. The contract in prose is docs/api-v1.md; every error answer carries {\"error\": {\"code\", \"message\"}} with a stable code.",
        license(name = "MIT OR Apache-2.0")
    ),
    servers((url = "http://127.0.0.1:7710", description = "the default address")),
    paths(
        post_facts, get_fact, get_fact_deliveries, get_successors, get_log, get_digests,
        put_blob, put_blob_with_hash, get_blob, head_blob,
        list_subscriptions, put_subscription, get_subscription, delete_subscription,
        pull, ack, nack, extend, pause, resume, stream,
        list_dead, list_dead_causes, get_dead, replay, discard,
        health, versions, metrics, openapi_document,
        create_token, list_tokens, rotate_token, revoke_token, audit, whoami,
        claim, get_claim, release_claim, get_lease, acquire_lease, renew_lease, release_lease,
        list_timers, put_timer, get_timer, delete_timer,
        list_links, put_link, get_link, delete_link, pause_link, resume_link, repair_link,
        list_schema_types, list_schema_versions, put_schema, get_schema,
        list_services, put_service, get_service, get_boundaries,
    ),
    components(schemas(
        HashText, Predecessor, Fact, PutFactsRequest, ErrorBody, PutFactsAnswer,
        StoredFact<Fact>, FactPage<Fact>, BlobStored, Health, Versions,
        SubscriptionDefinition, SubscriptionView, SubscriptionPutAnswer, SubscriptionList, Deleted,
        PullRequest, PullAnswer<Fact>, Message<Fact>, AckRequest, NackRequest, ExtendRequest,
        EmptyRequest, TokenStatus, TokenResult, TokenResults, DeadLetter<Fact>,
        DeadLetterPage<Fact>, ReplayRequest, ReplayAnswer, Discarded,
        DeadLetterCause, DeadLetterCauses, DeliveryState, FactDelivery, FactDeliveries, Whoami,
        Permissions, BlobAccess, TokenCreateRequest, TokenRotateRequest, TokenCreated, TokenView,
        IdentityView, IdentityList, Revoked, Authorship, AuditEntry, AuditPage,
        ClaimRequest, ClaimAnswer, ClaimReleased, LeaseAcquireRequest, LeaseGrantRequest,
        LeaseGrant, CatchUp, TimerDefinition, TimerView, TimerList,
        LinkDefinition, LinkView, LinkList, LinkState, Bookmark, Anchor, LinkRepaired,
        DigestsAnswer, DigestBucket,
        SchemaRegistration, Compatibility, UpcastOperation, RoleConstraint, SchemaVersionSummary,
        SchemaList, SchemaTypes, SchemaVersionView, BreakingChange, Violation, UpcastMarker,
        ApiVersion, VersionStatus, DeprecatedRouteView,
        ServiceDeclaration, ServiceView, ServiceList, FlowKind, FlowView, EdgeKind, EdgeView,
        BoundaryRule, BoundaryViolation, BoundariesAnswer,
    )),
    tags(
        (name = "facts", description = "Write and read facts"),
        (name = "blobs", description = "Content-addressed bytes"),
        (name = "subscriptions", description = "Durable delivery"),
        (name = "meta", description = "Health, versions, metrics, this document"),
        (name = "timers", description = "Durable timers that write a fact when due"),
        (name = "access", description = "Identities, access tokens and the audit trail (servers with --auth)"),
        (name = "collaboration", description = "Claims and leases with fencing tokens"),
        (name = "replication", description = "Replication links from other deployments (admin)"),
        (name = "schemas", description = "Schemas per fact type and version, and upcasting"),
        (name = "boundaries", description = "Service declarations and the observed flow map (admin)"),
    )
)]
struct ApiDocument;

/// The OpenAPI document of API v1, as JSON.
pub fn document() -> serde_json::Value {
    let mut document =
        serde_json::to_value(ApiDocument::openapi()).expect("the document serializes");
    // A view flattens the definition of the request into itself (inline).
    // The request refuses unknown members, which closes its schema
    // (`additionalProperties: false`); in the view that would forbid the
    // view's own members, so the view's copy is opened again.
    remove_closed_objects(&mut document["components"]["schemas"]["SubscriptionView"]["allOf"]);
    remove_closed_objects(&mut document["components"]["schemas"]["TimerView"]["allOf"]);
    // The schema view flattens the registration, a component of its own:
    // its copy is inlined and opened the same way.
    let registration = document["components"]["schemas"]["SchemaRegistration"].clone();
    for part in document["components"]["schemas"]["SchemaVersionView"]["allOf"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if part["$ref"] == "#/components/schemas/SchemaRegistration" {
            *part = registration.clone();
        }
    }
    remove_closed_objects(&mut document["components"]["schemas"]["SchemaVersionView"]["allOf"]);
    add_access_control(&mut document);
    for deprecated in crate::versioning::DEPRECATED_ROUTES {
        let operation =
            &mut document["paths"][deprecated.route][deprecated.method.to_ascii_lowercase()];
        if operation.is_object() {
            operation["deprecated"] = serde_json::Value::Bool(true);
        }
    }
    document
}

/// The operations open to everyone, even with `--auth`.
pub const OPEN_OPERATIONS: [(&str, &str); 3] = [
    ("get", "/v1/health"),
    ("get", "/versions"),
    ("get", "/v1/openapi.json"),
];

/// Declares the bearer scheme and, on every operation but the open ones,
/// that it needs it and may answer 401 and 403 (on a server with `--auth`;
/// see "Access control" in `docs/api-v1.md`). Done once here rather than
/// on each operation, so no operation can miss it.
fn add_access_control(document: &mut serde_json::Value) {
    document["components"]["securitySchemes"] = serde_json::json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token, cairn_<id>_<secret>, on a server that runs with --auth"
        }
    });
    let error_body = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            if OPEN_OPERATIONS.contains(&(method.as_str(), path.as_str())) {
                operation["security"] = serde_json::json!([{}]);
                continue;
            }
            operation["security"] = serde_json::json!([{"bearer": []}]);
            let responses = &mut operation["responses"];
            responses["401"] = error_body(
                "unauthenticated: no access token, or one that is malformed, unknown, expired or revoked (WWW-Authenticate: Bearer)",
            );
            responses["403"] = error_body(
                "forbidden: the identity lacks the permission the message names; nothing changed",
            );
        }
    }
}

/// The document as pretty JSON with a final newline, as served and as
/// committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut json = serde_json::to_string_pretty(&document()).expect("the document serializes");
    json.push('\n');
    json
}

/// Removes `"additionalProperties": false` from every schema inside `schema`.
fn remove_closed_objects(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(members) => {
            if members.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
                members.remove("additionalProperties");
            }
            members.values_mut().for_each(remove_closed_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(remove_closed_objects),
        _ => {}
    }
}

#[utoipa::path(
    post, path = "/v1/facts", tag = "facts",
    params(("Cairn-Fence" = Option<String>, Header, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]*=[1-9][0-9]*$", description = "<lease name>=<fence>: write only if that grant of the lease is current, checked atomically with the write")),
    request_body(content = PutFactsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Every fact is durable; results in request order", body = PutFactsAnswer),
        (status = 400, description = "Malformed JSON, an invalid fact, a reserved type (Cairn.*), an invalid Cairn-Fence, or an empty batch; nothing was written", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "stale_fence: a later grant of the lease exists, or it was released; nothing was written", body = ErrorBody),
        (status = 413, description = "Body, batch or fact too large; nothing was written", body = ErrorBody),
        (status = 415, description = "A body that does not declare Content-Type: application/json", body = ErrorBody),
        (status = 422, description = "missing_predecessors; schema_violation (a fact does not conform to its type's schema: violations lists each error); schema_required (--require-schemas and a type without one); nothing was written", body = ErrorBody),
        Busy,
    )
)]
fn post_facts() {}

#[utoipa::path(
    get, path = "/v1/facts/{hash}", tag = "facts",
    params(
        ("hash" = HashText, Path, description = "The fact's hash"),
        ("as_version" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "Read facts written at older schema versions upcast to this version of their type (see Schemas and upcasting)"),
    ),
    responses(
        (status = 200, description = "The fact (with as_version, an older one upcast: upcast and original added)", body = StoredFact<Fact>),
        (status = 400, description = "Not a hash, or an unknown or out-of-range query parameter", body = ErrorBody),
        (status = 404, description = "not_found: no such fact; unknown_schema: its type has no schema version as_version", body = ErrorBody),
        (status = 422, description = "upcast_failed: an upcast operation does not apply to this fact", body = ErrorBody),
        Busy,
    )
)]
fn get_fact() {}

#[utoipa::path(
    get, path = "/v1/facts/{hash}/deliveries", tag = "facts",
    params(("hash" = HashText, Path, description = "The fact's hash")),
    responses(
        (status = 200, description = "Addition (issue 17): how each subscription that selects the fact, and that the caller may consume, has carried it, by name; reading changes nothing", body = FactDeliveries),
        (status = 400, description = "Not a hash, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "not_found: no such fact (or one the caller may not read)", body = ErrorBody),
        Busy,
    )
)]
fn get_fact_deliveries() {}

#[utoipa::path(
    get, path = "/v1/facts/{hash}/successors", tag = "facts",
    params(
        ("hash" = HashText, Path, description = "The predecessor (need not be stored: then the page is empty)"),
        ("type" = String, Query, pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$", description = "Type of the successors"),
        ("role" = Option<String>, Query, pattern = "^[A-Za-z][A-Za-z0-9_]*$", description = "Only successors naming the fact in this role"),
        ("without" = Option<Vec<String>>, Query, explode = true, description = "Leave out successors that have a successor of this type (up to 16 types, each as `type`)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000, description = "Facts at most (default 1000)"),
        ("after" = Option<u64>, Query, minimum = 0, description = "Only facts with a seq above this"),
        ("wait_ms" = Option<u64>, Query, minimum = 0, maximum = 60000, description = "Long-poll until at least one fact or this long"),
        ("as_version" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "Read facts written at older schema versions upcast to this version of their type (see Schemas and upcasting)"),
    ),
    responses(
        (status = 200, description = "Successors in seq order", body = FactPage<Fact>),
        (status = 400, description = "A malformed, missing, repeated, unknown or out-of-range parameter", body = ErrorBody),
        (status = 404, description = "unknown_schema: the type has no schema version as_version", body = ErrorBody),
        (status = 422, description = "upcast_failed: an upcast operation does not apply to one of the facts", body = ErrorBody),
        Busy,
    )
)]
fn get_successors() {}

#[utoipa::path(
    get, path = "/v1/log", tag = "facts",
    params(
        ("after" = Option<u64>, Query, minimum = 0, description = "Only facts with a seq above this (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000, description = "Facts at most (default 1000)"),
        ("wait_ms" = Option<u64>, Query, minimum = 0, maximum = 60000, description = "Long-poll until at least one fact or this long"),
        ("types" = Option<Vec<String>>, Query, explode = true, description = "Only facts whose type matches one of these patterns (repeatable, at most 64; default every type); next still moves past the others"),
        ("as_version" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "Facts of types that have this schema version, written at an older one, are upcast to it; others are as stored"),
    ),
    responses(
        (status = 200, description = "Facts in seq order, with the store's identity (store) and last seq (head)", body = FactPage<Fact>),
        (status = 400, description = "A malformed, repeated, unknown or out-of-range parameter", body = ErrorBody),
        (status = 422, description = "upcast_failed: an upcast operation does not apply to one of the facts", body = ErrorBody),
        Busy,
    )
)]
fn get_log() {}

#[utoipa::path(
    get, path = "/v1/digests", tag = "facts",
    params(
        ("prefix" = Option<String>, Query, pattern = "^[0-9a-f]{0,63}$", description = "A prefix of the hash in lowercase hexadecimal digits (default empty: every fact)"),
        ("types" = Option<Vec<String>>, Query, description = "Type patterns (repeatable, at most 64; default every type): only facts of matching types are counted, and of those only the ones the caller may read"),
    ),
    responses(
        (status = 200, description = "The digests of the prefix and its 16 sub-prefixes; the hashes when few", body = DigestsAnswer),
        (status = 400, description = "A malformed, repeated, unknown or out-of-range parameter", body = ErrorBody),
        Busy,
    )
)]
fn get_digests() {}

#[utoipa::path(
    put, path = "/v1/blobs", tag = "blobs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored (idempotent). Deprecated since 2026-12-06, served until 2027-12-06 with Deprecation, Sunset and Link headers: use PUT /v1/blobs/{hash}, which refuses bytes damaged on the way", body = BlobStored),
        (status = 400, description = "The body ended early, or an unknown query parameter", body = ErrorBody),
        (status = 413, description = "Larger than the blob limit", body = ErrorBody),
        Busy,
    )
)]
fn put_blob() {}

#[utoipa::path(
    put, path = "/v1/blobs/{hash}", tag = "blobs",
    params(("hash" = HashText, Path, description = "The hash the bytes must have")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored (idempotent)", body = BlobStored),
        (status = 400, description = "Not a hash, the body ended early, or an unknown query parameter", body = ErrorBody),
        (status = 413, description = "Larger than the blob limit", body = ErrorBody),
        (status = 422, description = "blob_hash_mismatch: the bytes hash otherwise; nothing was stored", body = ErrorBody),
        Busy,
    )
)]
fn put_blob_with_hash() {}

#[utoipa::path(
    get, path = "/v1/blobs/{hash}", tag = "blobs",
    params(("hash" = HashText, Path, description = "The blob's hash")),
    responses(
        (status = 200, description = "The bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a hash, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        Busy,
    )
)]
fn get_blob() {}

#[utoipa::path(
    head, path = "/v1/blobs/{hash}", tag = "blobs",
    params(("hash" = HashText, Path, description = "The blob's hash")),
    responses(
        (status = 200, description = "The blob exists; Content-Length is its size"),
        (status = 400, description = "Not a hash"),
        (status = 404, description = "No such blob"),
        (status = 429, description = "Overloaded"),
        (status = 503, description = "Unavailable"),
    )
)]
fn head_blob() {}

#[utoipa::path(
    get, path = "/v1/subscriptions", tag = "subscriptions",
    responses(
        (status = 200, description = "Every subscription, by name", body = SubscriptionList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        Busy,
    )
)]
fn list_subscriptions() {}

#[utoipa::path(
    put, path = "/v1/subscriptions/{name}", tag = "subscriptions",
    params(
        ("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description = "The subscription's name"),
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|\"(0|[1-9][0-9]*)\"|0|[1-9][0-9]*)$", description = "Only if the subscription exists at this generation (\"3\", or 3), or at all (*); never creates"),
    ),
    request_body(content = SubscriptionDefinition, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (generation 1)", body = SubscriptionPutAnswer,
            headers(("ETag" = String, description = "The generation, quoted"))),
        (status = 200, description = "The same definition was there (updated false), or what may change was changed (updated true, the generation grew by one); the cursor, messages, leases, attempts and dead letters are kept", body = SubscriptionPutAnswer,
            headers(("ETag" = String, description = "The generation, quoted"))),
        (status = 400, description = "invalid_definition (name or definition), invalid_if_match, or malformed JSON", body = ErrorBody),
        (status = 409, description = "subscription_conflict: type, predecessor, ordering_key or start differ (listed in fields); or too_many_subscriptions", body = ErrorBody),
        (status = 412, description = "generation_mismatch: If-Match names another generation, or there is no subscription (the current generation, or null, in generation); nothing changed", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn put_subscription() {}

#[utoipa::path(
    get, path = "/v1/subscriptions/{name}", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Definition, generation and counters", body = SubscriptionView,
            headers(("ETag" = String, description = "The generation, quoted"))),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        UnknownSubscription,
        Busy,
    )
)]
fn get_subscription() {}

#[utoipa::path(
    delete, path = "/v1/subscriptions/{name}", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        UnknownSubscription,
        Busy,
    )
)]
fn delete_subscription() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/pull", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = PullRequest, content_type = "application/json", description = "May be empty: {} is assumed"),
    responses(
        (status = 200, description = "Leased messages (possibly none)", body = PullAnswer<Fact>),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn pull() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/ack", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = AckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Durable; one result per token, in request order", body = TokenResults),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn ack() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/nack", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = NackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Durable; one result per token, in request order", body = TokenResults),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn nack() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/extend", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = ExtendRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per token, in request order", body = TokenResults),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn extend() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/pause", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = EmptyRequest, content_type = "application/json", description = "Empty, or {}"),
    responses(
        (status = 200, description = "Paused (durable)", body = SubscriptionView),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn pause() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/resume", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = EmptyRequest, content_type = "application/json", description = "Empty, or {}"),
    responses(
        (status = 200, description = "Resumed (durable)", body = SubscriptionView),
        (status = 400, description = "invalid_request, or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn resume() {}

#[utoipa::path(
    get, path = "/v1/subscriptions/{name}/stream", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 101, description = "Switched to a WebSocket: credit, message, ack, nack and results frames (docs/api-v1.md)"),
        (status = 400, description = "websocket_required: not a WebSocket upgrade request", body = ErrorBody),
        UnknownSubscription,
        Busy,
    )
)]
fn stream() {}

#[utoipa::path(
    get, path = "/v1/subscriptions/{name}/dead", tag = "subscriptions",
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Entries at most (default 100)"),
        ("after" = Option<u64>, Query, minimum = 0, description = "Only entries with a seq above this"),
        ("discarded" = Option<bool>, Query, description = "List the discarded dead letters instead"),
        ("cause" = Option<String>, Query, max_length = 200, description = "Addition (issue 17): only the dead letters with exactly this cause; next is then the highest seq examined (at most 100,000 per request), and a page may hold fewer than limit entries"),
    ),
    responses(
        (status = 200, description = "Dead letters in seq order", body = DeadLetterPage<Fact>),
        (status = 400, description = "A malformed, repeated, unknown or out-of-range parameter (a cause over 200 characters)", body = ErrorBody),
        UnknownSubscription,
        Busy,
    )
)]
fn list_dead() {}

#[utoipa::path(
    get, path = "/v1/subscriptions/{name}/dead/causes", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Addition (issue 17): the dead letters grouped by cause, most frequent first (at most 100,000 examined, 1,000 causes listed)", body = DeadLetterCauses),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        UnknownSubscription,
        Busy,
    )
)]
fn list_dead_causes() {}

#[utoipa::path(
    get, path = "/v1/subscriptions/{name}/dead/{hash}", tag = "subscriptions",
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("hash" = HashText, Path, description = "The message's hash"),
    ),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetter<Fact>),
        (status = 400, description = "Not a hash, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "unknown_subscription, or not_a_dead_letter", body = ErrorBody),
        Busy,
    )
)]
fn get_dead() {}

#[utoipa::path(
    post, path = "/v1/subscriptions/{name}/dead/replay", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body(content = ReplayRequest, content_type = "application/json", description = "Empty or {} replays every dead letter"),
    responses(
        (status = 200, description = "Replayed (durable); unknown hashes are ignored", body = ReplayAnswer),
        (status = 400, description = "invalid_request, invalid_hash (a malformed hash), or malformed JSON", body = ErrorBody),
        UnknownSubscription,
        BodyRefused,
        Busy,
    )
)]
fn replay() {}

#[utoipa::path(
    delete, path = "/v1/subscriptions/{name}/dead/{hash}", tag = "subscriptions",
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("hash" = HashText, Path, description = "The message's hash"),
    ),
    responses(
        (status = 200, description = "Discarded (kept on record)", body = Discarded),
        (status = 400, description = "Not a hash, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "unknown_subscription, or not_a_dead_letter", body = ErrorBody),
        Busy,
    )
)]
fn discard() {}

#[utoipa::path(
    get, path = "/v1/health", tag = "meta",
    responses(
        (status = 200, description = "The server can serve", body = Health),
        Busy,
    )
)]
fn health() {}

#[utoipa::path(
    get, path = "/versions", tag = "meta",
    responses(
        (status = 200, description = "The API versions spoken, each with its status and deprecated routes", body = Versions),
        Busy,
    )
)]
fn versions() {}

#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
        Busy,
    )
)]
fn metrics() {}

#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "This document", body = Object),
        Busy,
    )
)]
fn openapi_document() {}

#[utoipa::path(
    post, path = "/v1/tokens", tag = "access",
    request_body(content = TokenCreateRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The identity and its first token, shown this once", body = TokenCreated),
        (status = 400, description = "A malformed body, name, pattern or limit", body = ErrorBody),
        (status = 404, description = "Access control is off on this server", body = ErrorBody),
        (status = 409, description = "identity_exists", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn create_token() {}

#[utoipa::path(
    get, path = "/v1/whoami", tag = "access",
    responses(
        (status = 200, description = "Addition (issue 17): the caller's identity and permissions (never a token); without --auth, auth false and every permission", body = Whoami),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 401, description = "unauthenticated: no valid access token (servers with --auth)", body = ErrorBody),
        Busy,
    )
)]
fn whoami() {}

#[utoipa::path(
    get, path = "/v1/tokens", tag = "access",
    responses(
        (status = 200, description = "Every identity, never a secret", body = IdentityList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 404, description = "Access control is off on this server", body = ErrorBody),
        Busy,
    )
)]
fn list_tokens() {}

#[utoipa::path(
    post, path = "/v1/tokens/{name}/rotate", tag = "access",
    params(("name" = String, Path, description = "The identity")),
    request_body(content = TokenRotateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new token, shown this once; the earlier ones work for the overlap", body = TokenCreated),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 404, description = "unknown_identity, or access control is off", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn rotate_token() {}

#[utoipa::path(
    delete, path = "/v1/tokens/{name}", tag = "access",
    params(("name" = String, Path, description = "The identity")),
    responses(
        (status = 200, description = "Revoked with all its tokens", body = Revoked),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 404, description = "unknown_identity, or access control is off", body = ErrorBody),
        Busy,
    )
)]
fn revoke_token() {}

#[utoipa::path(
    get, path = "/v1/audit", tag = "access",
    params(
        ("after" = Option<u64>, Query, minimum = 0, description = "Only entries with a seq above this (default 0)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Entries at most (default 100)"),
    ),
    responses(
        (status = 200, description = "The audit trail, oldest first", body = AuditPage),
        (status = 400, description = "A malformed, unknown or out-of-range parameter", body = ErrorBody),
        (status = 404, description = "Access control is off on this server", body = ErrorBody),
        Busy,
    )
)]
fn audit() {}

/// `unknown_timer`: no timer has that name (or the caller may not read its
/// template's type).
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
struct UnknownTimer(ErrorBody);

#[utoipa::path(
    get, path = "/v1/timers", tag = "timers",
    params(
        ("after" = Option<String>, Query, description = "Only timers named after this (the next of the previous page)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000, description = "Timers at most (default 1000)"),
    ),
    responses(
        (status = 200, description = "The timers the caller may read, by name; next is set when there may be more", body = TimerList),
        (status = 400, description = "A malformed, unknown or out-of-range parameter", body = ErrorBody),
        Busy,
    )
)]
fn list_timers() {}

#[utoipa::path(
    put, path = "/v1/timers/{name}", tag = "timers",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description = "The timer's name")),
    request_body(content = TimerDefinition, content_type = "application/json", description = "At most 65,536 bytes"),
    responses(
        (status = 201, description = "Created", body = TimerView),
        (status = 200, description = "Replaced (a changed definition is scheduled anew), or the same definition was there (nothing changed)", body = TimerView),
        (status = 400, description = "invalid_timer (name, schedule, zone, cron, template, reserved type), or malformed JSON", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn put_timer() {}

#[utoipa::path(
    get, path = "/v1/timers/{name}", tag = "timers",
    params(("name" = String, Path, description = "The timer's name")),
    responses(
        (status = 200, description = "Definition, next due and last fired occurrence", body = TimerView),
        (status = 400, description = "invalid_timer (the name), or an unknown query parameter", body = ErrorBody),
        UnknownTimer,
        Busy,
    )
)]
fn get_timer() {}

#[utoipa::path(
    delete, path = "/v1/timers/{name}", tag = "timers",
    params(("name" = String, Path, description = "The timer's name")),
    responses(
        (status = 200, description = "Deleted: it never fires again", body = Deleted),
        (status = 400, description = "invalid_timer (the name), or an unknown query parameter", body = ErrorBody),
        UnknownTimer,
        Busy,
    )
)]
fn delete_timer() {}

/// `unknown_link`: no replication link has that name.
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
struct UnknownLink(ErrorBody);

#[utoipa::path(
    get, path = "/v1/links", tag = "replication",
    responses(
        (status = 200, description = "Every link of this deployment, by name", body = LinkList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        Busy,
    )
)]
fn list_links() {}

#[utoipa::path(
    put, path = "/v1/links/{name}", tag = "replication",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description = "The link's name")),
    request_body(content = LinkDefinition, content_type = "application/json", description = "At most 65,536 bytes"),
    responses(
        (status = 201, description = "Created: the link starts following its source", body = LinkView),
        (status = 200, description = "The link existed with the same source and types: its token is replaced (rotated), or nothing changed", body = LinkView),
        (status = 400, description = "invalid_link (name, URL, type patterns, token), or malformed JSON", body = ErrorBody),
        (status = 409, description = "link_conflict (another source or other types), too_many_links", body = ErrorBody),
        (status = 422, description = "link_to_self: the source answers with this deployment's identity", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn put_link() {}

#[utoipa::path(
    get, path = "/v1/links/{name}", tag = "replication",
    params(("name" = String, Path, description = "The link's name")),
    responses(
        (status = 200, description = "State, bookmark, lag and last error", body = LinkView),
        (status = 400, description = "invalid_link (the name), or an unknown query parameter", body = ErrorBody),
        UnknownLink,
        Busy,
    )
)]
fn get_link() {}

#[utoipa::path(
    delete, path = "/v1/links/{name}", tag = "replication",
    params(("name" = String, Path, description = "The link's name")),
    responses(
        (status = 200, description = "Deleted: the link stops; the facts it received stay", body = Deleted),
        (status = 400, description = "invalid_link (the name), or an unknown query parameter", body = ErrorBody),
        UnknownLink,
        Busy,
    )
)]
fn delete_link() {}

#[utoipa::path(
    post, path = "/v1/links/{name}/pause", tag = "replication",
    params(("name" = String, Path, description = "The link's name")),
    responses(
        (status = 200, description = "Paused: it receives nothing until resumed", body = LinkView),
        (status = 400, description = "invalid_link (the name), or an unknown query parameter", body = ErrorBody),
        UnknownLink,
        Busy,
    )
)]
fn pause_link() {}

#[utoipa::path(
    post, path = "/v1/links/{name}/resume", tag = "replication",
    params(("name" = String, Path, description = "The link's name")),
    responses(
        (status = 200, description = "Resumed: it catches up from its bookmark", body = LinkView),
        (status = 400, description = "invalid_link (the name), or an unknown query parameter", body = ErrorBody),
        UnknownLink,
        Busy,
    )
)]
fn resume_link() {}

#[utoipa::path(
    post, path = "/v1/links/{name}/repair", tag = "replication",
    params(("name" = String, Path, description = "The link's name")),
    responses(
        (status = 200, description = "Compared by digests; what was missing here is stored (at most 100,000 facts per call: see remaining)", body = LinkRepaired),
        (status = 400, description = "invalid_link (the name), or an unknown query parameter", body = ErrorBody),
        UnknownLink,
        (status = 422, description = "link_to_self", body = ErrorBody),
        (status = 502, description = "source_unavailable: the source could not be reached, refused, or answered something invalid", body = ErrorBody),
        Busy,
    )
)]
fn repair_link() {}

#[utoipa::path(
    post, path = "/v1/claims", tag = "collaboration",
    request_body(content = ClaimRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The key's winner; `won` says whether it is the claimed fact. A first claim writes Cairn.Claimed", body = ClaimAnswer),
        (status = 400, description = "A malformed body or key", body = ErrorBody),
        (status = 422, description = "missing_predecessors: the fact is not stored; nothing changed", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn claim() {}

#[utoipa::path(
    get, path = "/v1/claims/{key}", tag = "collaboration",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "The key's winner", body = ClaimAnswer),
        (status = 400, description = "A malformed key, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "Nobody holds the key", body = ErrorBody),
        Busy,
    )
)]
fn get_claim() {}

#[utoipa::path(
    post, path = "/v1/claims/release", tag = "collaboration",
    request_body(content = ClaimRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Released (again, for a retry); Cairn.ClaimReleased written", body = ClaimReleased),
        (status = 400, description = "A malformed body or key", body = ErrorBody),
        (status = 409, description = "not_claim_holder; nothing changed", body = ErrorBody),
        (status = 422, description = "missing_predecessors: the fact is not stored", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn release_claim() {}

#[utoipa::path(
    get, path = "/v1/leases/{name}", tag = "collaboration",
    params(("name" = String, Path, description = "The lease")),
    responses(
        (status = 200, description = "The lease's last grant", body = LeaseGrant),
        (status = 400, description = "A malformed name, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "Never granted", body = ErrorBody),
        Busy,
    )
)]
fn get_lease() {}

#[utoipa::path(
    post, path = "/v1/leases/{name}/acquire", tag = "collaboration",
    params(("name" = String, Path, description = "The lease")),
    request_body(content = LeaseAcquireRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Granted (a new fence, and Cairn.LeaseGranted), or renewed for its current holder", body = LeaseGrant),
        (status = 400, description = "A malformed name or body", body = ErrorBody),
        (status = 409, description = "lease_held: another holder's grant is current", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn acquire_lease() {}

#[utoipa::path(
    post, path = "/v1/leases/{name}/renew", tag = "collaboration",
    params(("name" = String, Path, description = "The lease")),
    request_body(content = LeaseGrantRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Renewed", body = LeaseGrant),
        (status = 400, description = "A malformed name or body", body = ErrorBody),
        (status = 409, description = "stale_fence: that grant is no longer current", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn renew_lease() {}

#[utoipa::path(
    post, path = "/v1/leases/{name}/release", tag = "collaboration",
    params(("name" = String, Path, description = "The lease")),
    request_body(content = LeaseGrantRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Released (again, for a retry); Cairn.LeaseReleased written", body = LeaseGrant),
        (status = 400, description = "A malformed name or body", body = ErrorBody),
        (status = 409, description = "stale_fence: that grant is no longer current", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn release_lease() {}

/// `unknown_service`: no service declaration has that name.
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
struct UnknownService(ErrorBody);

#[utoipa::path(
    get, path = "/v1/services", tag = "boundaries",
    responses(
        (status = 200, description = "Every current service declaration, by name", body = ServiceList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        Busy,
    )
)]
fn list_services() {}

#[utoipa::path(
    put, path = "/v1/services/{name}", tag = "boundaries",
    params(
        ("name" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$", description = "The service's name (the same as the declaration's)"),
        ("allow_unknown_types" = Option<bool>, Query, description = "Accept types this deployment has never seen written nor another service declare (default false): for a first deployment"),
    ),
    request_body(content = ServiceDeclaration, content_type = "application/json", description = "At most 61,440 bytes"),
    responses(
        (status = 201, description = "Registered: the first declaration of this service", body = ServiceView),
        (status = 200, description = "Replaced the current declaration, or the same declaration again (unchanged, keeping its registration time)", body = ServiceView),
        (status = 400, description = "invalid_service (name, identity, a type, a list too long, a name unlike the path's, an unknown member), malformed JSON, or a bad query parameter; nothing changed", body = ErrorBody),
        (status = 409, description = "too_many_services", body = ErrorBody),
        (status = 422, description = "unknown_type: types never seen written nor declared by another service (`types` lists them); nothing changed", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn put_service() {}

#[utoipa::path(
    get, path = "/v1/services/{name}", tag = "boundaries",
    params(("name" = String, Path, description = "The service's name")),
    responses(
        (status = 200, description = "The current declaration", body = ServiceView),
        (status = 400, description = "invalid_service (the name), or an unknown query parameter", body = ErrorBody),
        UnknownService,
        Busy,
    )
)]
fn get_service() {}

#[utoipa::path(
    get, path = "/v1/boundaries", tag = "boundaries",
    params(("unseen_for_ms" = Option<u64>, Query, minimum = 1, maximum = 34560000000u64, description = "The window (default 7 days): flows last seen longer ago do not count, and a declared flow not seen within it is a violation once its declaration is older")),
    responses(
        (status = 200, description = "The declarations, the observed flows, the map's edges and every violation", body = BoundariesAnswer),
        (status = 400, description = "A malformed, repeated, unknown or out-of-range parameter", body = ErrorBody),
        Busy,
    )
)]
fn get_boundaries() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed copy, relative to this crate.
    const COMMITTED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = document_json();
        if std::env::var_os("CAIRN_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED_PATH, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED_PATH).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the document generated from cairn-api; \
             regenerate it with `CAIRN_WRITE_OPENAPI=1 cargo test -p cairn-api --features openapi`"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_error_status_with_a_body() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        let view = document["components"]["schemas"]["SubscriptionView"].to_string();
        assert!(
            !view.contains("additionalProperties"),
            "a view is open: {view}"
        );
        let definition = &document["components"]["schemas"]["SubscriptionDefinition"];
        assert_eq!(
            definition["additionalProperties"], false,
            "a request is closed"
        );
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.len() >= 20, "{}", paths.len());
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            method == "head" || response["content"]["application/json"].is_object(),
                            "{method} {path} {status} has no JSON error body"
                        );
                    }
                }
                assert!(
                    responses.contains_key("429"),
                    "{method} {path} answers 429 too"
                );
            }
        }
    }
}

/// `unknown_schema`: the type has no schema (at that version).
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
struct UnknownSchema(ErrorBody);

#[utoipa::path(
    get, path = "/v1/schemas", tag = "schemas",
    responses(
        (status = 200, description = "Every type with a schema that the caller may read, sorted, with its versions", body = SchemaTypes),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        Busy,
    )
)]
fn list_schema_types() {}

#[utoipa::path(
    get, path = "/v1/schemas/{type}", tag = "schemas",
    params(("type" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$", description = "The fact type")),
    responses(
        (status = 200, description = "The type's versions, oldest first", body = SchemaList),
        (status = 400, description = "An invalid type, or an unknown query parameter", body = ErrorBody),
        UnknownSchema,
        Busy,
    )
)]
fn list_schema_versions() {}

#[utoipa::path(
    put, path = "/v1/schemas/{type}/{version}", tag = "schemas",
    params(
        ("type" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$", description = "The fact type (not one of Cairn's own, Cairn.*)"),
        ("version" = u32, Path, minimum = 1, maximum = 1000000, description = "The version: 1, or the latest registered plus one"),
    ),
    request_body(content = SchemaRegistration, content_type = "application/json", description = "At most 61,440 bytes"),
    responses(
        (status = 201, description = "Registered: stored as a Cairn.Schema fact", body = SchemaVersionView),
        (status = 200, description = "This very registration was already stored", body = SchemaVersionView),
        (status = 400, description = "invalid_schema (not a draft 2020-12 schema, a reference that is not local, an invalid upcast or predecessor constraint), reserved_type, an invalid type or version, or malformed JSON", body = ErrorBody),
        (status = 409, description = "incompatible_schema (breaking lists each breaking change); schema_conflict (another schema at that version, or a version that does not follow the latest)", body = ErrorBody),
        BodyRefused,
        Busy,
    )
)]
fn put_schema() {}

#[utoipa::path(
    get, path = "/v1/schemas/{type}/{version}", tag = "schemas",
    params(
        ("type" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)*$", description = "The fact type"),
        ("version" = u32, Path, minimum = 1, maximum = 1000000, description = "The version"),
    ),
    responses(
        (status = 200, description = "The registration and the hash of its fact", body = SchemaVersionView),
        (status = 400, description = "An invalid type or version, or an unknown query parameter", body = ErrorBody),
        UnknownSchema,
        Busy,
    )
)]
fn get_schema() {}

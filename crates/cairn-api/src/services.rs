//! Service declarations and the flow map over the wire (`/v1/services`,
//! `/v1/boundaries`, "Service boundaries" in `docs/api-v1.md`).
//!
//! A service declares which types it owns (is the only writer of), which
//! it consumes, which request types it sends and which it answers. The
//! server records which identity actually wrote and consumed which types
//! (on a server with `--auth`), and `GET /v1/boundaries` compares the two:
//! the flow map, its edges, and every violation of the declared
//! boundaries. The declaration is stored as a `Cairn.Service` fact, an
//! observation per day as a `Cairn.Flow` fact, both found through an
//! anchor fact (the constants below), so they live on any store and
//! replicate like any fact.

use cairn_fact::Hash;
use serde::{Deserialize, Deserializer, Serialize};

use crate::access::validate_identity_name;
use crate::facts::is_reserved_type;
use crate::limits::{SERVICE_DESCRIPTION_BYTES_MAX, SERVICE_NAME_BYTES_MAX, SERVICE_TYPES_MAX};
use crate::request_body::RequestBody;

/// The fact type a service declaration is stored as.
pub const SERVICE_FACT_TYPE: &str = "Cairn.Service";
/// The type of the anchor every declaration names as `registry`.
pub const SERVICE_REGISTRY_TYPE: &str = "Cairn.ServiceRegistry";
/// The fact type of one observed flow on one UTC day.
pub const FLOW_FACT_TYPE: &str = "Cairn.Flow";
/// The type of the anchor every flow fact names as `registry`.
pub const FLOW_REGISTRY_TYPE: &str = "Cairn.FlowRegistry";
/// The role in which declarations and flows name their anchor.
pub const REGISTRY_ROLE: &str = "registry";
/// The role in which a declaration names the ones it replaces, and a flow
/// fact the previous day's fact of the same flow.
pub const PREVIOUS_ROLE: &str = "previous";

/// The body of `PUT /v1/services/{name}`, and what a `cairn-service.toml`
/// holds (the CLI reads TOML or JSON into this type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceDeclaration {
    /// The service's name, like one segment of a type name
    /// (`[A-Za-z][A-Za-z0-9_]*`, at most 64 characters); the same as in
    /// the path.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$"))]
    pub name: String,
    /// The Cairn identity the service writes and reads with.
    pub identity: String,
    /// Exact type names it writes, and no other service may.
    #[serde(default, deserialize_with = "empty_if_null")]
    pub owns: Vec<String>,
    /// Exact type names it reads (subscriptions, successor queries).
    #[serde(default, deserialize_with = "empty_if_null")]
    pub consumes: Vec<String>,
    /// Request types it sends, answered by another service (it may write
    /// them without owning them).
    #[serde(default, deserialize_with = "empty_if_null")]
    pub requests: Vec<String>,
    /// Request types it answers (it consumes them; its replies are in
    /// `owns`).
    #[serde(default, deserialize_with = "empty_if_null")]
    pub answers: Vec<String>,
    /// What the service does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `null` is the same as an absent list (as everywhere in API v1).
fn empty_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Checks a service name: `[A-Za-z][A-Za-z0-9_]*`, 1 to 64 characters.
pub fn validate_service_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && name.len() <= SERVICE_NAME_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "a service name is 1 to {SERVICE_NAME_BYTES_MAX} characters of [A-Za-z0-9_], \
             starting with a letter"
        ))
    }
}

impl ServiceDeclaration {
    /// The lists of types by their member name, in declaration order.
    pub fn type_lists(&self) -> [(&'static str, &[String]); 4] {
        [
            ("owns", &self.owns),
            ("consumes", &self.consumes),
            ("requests", &self.requests),
            ("answers", &self.answers),
        ]
    }

    /// Every type it names, each once, sorted.
    pub fn named_types(&self) -> std::collections::BTreeSet<&str> {
        self.type_lists()
            .into_iter()
            .flat_map(|(_, types)| types.iter().map(String::as_str))
            .collect()
    }
}

impl RequestBody for ServiceDeclaration {
    fn check(&self) -> Result<(), String> {
        validate_service_name(&self.name).map_err(|error| format!("name: {error}"))?;
        validate_identity_name(&self.identity).map_err(|error| format!("identity: {error}"))?;
        for (list, types) in self.type_lists() {
            if types.len() > SERVICE_TYPES_MAX {
                return Err(format!(
                    "{list} holds {} types, more than {SERVICE_TYPES_MAX}",
                    types.len()
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for type_name in types {
                cairn_fact::validate_type_name(type_name)
                    .map_err(|error| format!("{list}: {error}"))?;
                if !seen.insert(type_name) {
                    return Err(format!("{list} names {type_name} twice"));
                }
                // Only the server writes `Cairn.*` facts, so no service
                // can own, request or answer one; it may consume them.
                if list != "consumes" && is_reserved_type(type_name) {
                    return Err(format!(
                        "{list}: {type_name} is written by the Cairn server only; a service may \
                         only consume it"
                    ));
                }
            }
        }
        if let Some(description) = &self.description {
            if description.len() > SERVICE_DESCRIPTION_BYTES_MAX {
                return Err(format!(
                    "description is longer than {SERVICE_DESCRIPTION_BYTES_MAX} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// A stored declaration: the answer of `PUT` and `GET /v1/services/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceView {
    /// The declaration as registered.
    pub declaration: ServiceDeclaration,
    /// When it was registered (ms since the Unix epoch); registering the
    /// same declaration again keeps it.
    pub registered_at_ms: u64,
    /// The `Cairn.Service` fact that holds it.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub fact: Hash,
}

/// The answer of `GET /v1/services`: every current declaration, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceList {
    /// The declarations.
    pub services: Vec<ServiceView>,
}

/// What an identity did with a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Wrote facts of it (`POST /v1/facts`).
    Writes,
    /// Read it through a subscription (pull, stream) or a successors query.
    Consumes,
}

impl FlowKind {
    /// The kind as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            FlowKind::Writes => "writes",
            FlowKind::Consumes => "consumes",
        }
    }
}

/// One observed flow: an identity wrote or consumed a type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowView {
    /// The type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Writes or consumes.
    pub kind: FlowKind,
    /// The identity that did it.
    pub identity: String,
    /// The service that declares that identity, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// First seen (ms since the Unix epoch; to the UTC day for what was
    /// seen before the server last started).
    pub first_seen_ms: u64,
    /// Last seen (as precise as `first_seen_ms`).
    pub last_seen_ms: u64,
}

/// What an edge of the map carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Facts of a type, from the service that writes them to one that
    /// consumes them.
    Event,
    /// Requests of a type, from the service that sends them to the one
    /// that answers them.
    Request,
}

/// One edge of the flow map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EdgeView {
    /// The writing (or requesting) node: a service's name, or
    /// `identity:<name>` for an identity no service declares.
    pub from: String,
    /// The consuming (or answering) node, named the same way.
    pub to: String,
    /// The type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Event or request.
    pub kind: EdgeKind,
    /// Both ends declare it.
    pub declared: bool,
    /// Both ends were observed doing it within the window.
    pub seen: bool,
}

/// A rule of the boundaries check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BoundaryRule {
    /// An identity no service declares wrote a type.
    UndeclaredWriter,
    /// An identity wrote a type its service neither owns nor requests.
    WriterDoesNotOwn,
    /// Two or more services own the same type.
    OwnedTwice,
    /// A type is consumed (declared or observed) but no service owns or
    /// requests it.
    ConsumedButUnowned,
    /// A declared owns or consumes was not observed within the window,
    /// although the declaration is older than the window.
    DeclaredFlowUnseen,
    /// Services request from each other in a cycle.
    RequestCycle,
}

impl BoundaryRule {
    /// The rule as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            BoundaryRule::UndeclaredWriter => "undeclared_writer",
            BoundaryRule::WriterDoesNotOwn => "writer_does_not_own",
            BoundaryRule::OwnedTwice => "owned_twice",
            BoundaryRule::ConsumedButUnowned => "consumed_but_unowned",
            BoundaryRule::DeclaredFlowUnseen => "declared_flow_unseen",
            BoundaryRule::RequestCycle => "request_cycle",
        }
    }
}

/// One violation of the declared boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoundaryViolation {
    /// The rule broken.
    pub rule: BoundaryRule,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The type concerned.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    /// The service concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The identity concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// The answer of `GET /v1/boundaries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoundariesAnswer {
    /// Every current declaration, by name.
    pub services: Vec<ServiceView>,
    /// Every observed flow, by type, kind and identity.
    pub flows: Vec<FlowView>,
    /// The map: declared and observed edges between services.
    pub edges: Vec<EdgeView>,
    /// Every violation; empty when the boundaries hold.
    pub violations: Vec<BoundaryViolation>,
    /// Whether this server records flows: only with `--auth` (without it
    /// there are no identities), so without it nothing is observed and
    /// `declared_flow_unseen` is not judged.
    pub observing: bool,
    /// Observations not recorded because the server's table of flows was
    /// full (the flows are then incomplete).
    pub observations_dropped: u64,
    /// The window judged: flows seen longer ago than this count as unseen.
    pub unseen_for_ms: u64,
    /// The server's time of the answer (ms since the Unix epoch).
    pub now_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_body;

    fn declaration(json: &str) -> Result<ServiceDeclaration, String> {
        parse_body(json.as_bytes())
    }

    #[test]
    fn a_declaration_parses_with_absent_or_null_lists() {
        let parsed = declaration(
            r#"{"name":"shop","identity":"shop-svc","owns":["Shop.Order"],"consumes":null}"#,
        )
        .unwrap();
        assert_eq!(parsed.owns, ["Shop.Order"]);
        assert!(parsed.consumes.is_empty() && parsed.requests.is_empty());
    }

    #[test]
    fn bad_declarations_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"name":"shop","identity":"s","colour":"red"}"#,
                "unknown field",
            ),
            (r#"{"name":"1shop","identity":"s"}"#, "name:"),
            (r#"{"name":"sh.op","identity":"s"}"#, "name:"),
            (r#"{"name":"shop","identity":"bad name"}"#, "identity:"),
            (
                r#"{"name":"shop","identity":"s","owns":["Shop..Order"]}"#,
                "owns:",
            ),
            (
                r#"{"name":"shop","identity":"s","owns":["A","A"]}"#,
                "twice",
            ),
            (
                r#"{"name":"shop","identity":"s","owns":["Cairn.Claimed"]}"#,
                "server only",
            ),
            (
                r#"{"name":"shop","identity":"s","owns":"Shop.Order"}"#,
                "invalid body",
            ),
            (r#"["shop"]"#, "object"),
        ];
        for (json, expected) in cases {
            let error = declaration(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let many: Vec<String> = (0..=SERVICE_TYPES_MAX).map(|n| format!("T{n}")).collect();
        let json = serde_json::json!({"name": "shop", "identity": "s", "consumes": many});
        let error = declaration(&json.to_string()).unwrap_err();
        assert!(error.contains("more than"), "{error}");
        // Consuming the server's facts is allowed.
        declaration(r#"{"name":"shop","identity":"s","consumes":["Cairn.Claimed"]}"#).unwrap();
    }
}

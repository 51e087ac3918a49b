//! Service declarations as facts: the `Cairn.Service` fact a registration
//! writes, and the current declaration of every service, read back
//! through the `Cairn.ServiceRegistry` anchor.
//!
//! A new declaration of a service names the ones it replaces as
//! `previous`, so the current declarations are the anchor's successors
//! that no later declaration follows (`without: Cairn.Service`): reading
//! them costs one per service, however often services re-register. Two
//! registrations of one service at once both stay current until the
//! next; the later by `seq` counts.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn_api::limits::SERVICES_MAX;
use cairn_api::services::{
    ServiceDeclaration, ServiceView, PREVIOUS_ROLE, REGISTRY_ROLE, SERVICE_FACT_TYPE,
    SERVICE_REGISTRY_TYPE,
};
use cairn_fact::{CanonicalFact, Hash};
use cairn_store::{ReadError, Store, StoredFact, SuccessorsQuery};

use super::server_fact;
use crate::limits::SUCCESSORS_LIMIT_MAX;

/// The anchor every `Cairn.Service` fact names as `registry`.
pub fn service_registry_anchor() -> &'static CanonicalFact {
    static ANCHOR: OnceLock<CanonicalFact> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        server_fact(serde_json::json!({
            "type": SERVICE_REGISTRY_TYPE, "fields": {}, "predecessors": {}
        }))
    })
}

/// The current declarations, by name, each with every fact that is still
/// current for it (more than one only after concurrent registrations).
pub struct CurrentServices {
    /// The latest declaration of each service, by name.
    pub views: Vec<ServiceView>,
    /// Per service name, the current facts a new declaration replaces.
    pub facts_by_name: BTreeMap<String, Vec<Hash>>,
}

/// Reads the current declarations.
pub async fn current_services<S: Store>(store: &S) -> Result<CurrentServices, ReadError> {
    let mut latest: BTreeMap<String, (u64, ServiceView)> = BTreeMap::new();
    let mut facts_by_name: BTreeMap<String, Vec<Hash>> = BTreeMap::new();
    let mut after_seq = 0;
    // Current facts are at most a few per service; the bound only stops a
    // store that somehow holds more from being read without end.
    for _ in 0..=(2 * SERVICES_MAX / SUCCESSORS_LIMIT_MAX + 1) {
        let page = store
            .successors(&SuccessorsQuery {
                predecessor: service_registry_anchor().hash,
                type_name: SERVICE_FACT_TYPE.to_string(),
                role: Some(REGISTRY_ROLE.to_string()),
                without_types: vec![SERVICE_FACT_TYPE.to_string()],
                after_seq,
                limit: SUCCESSORS_LIMIT_MAX,
            })
            .await?;
        for fact in &page.facts {
            let Some(view) = parse_service_fact(fact) else {
                tracing::warn!(hash = %fact.hash, "a Cairn.Service fact is not one this server reads; skipped");
                continue;
            };
            let name = view.declaration.name.clone();
            facts_by_name
                .entry(name.clone())
                .or_default()
                .push(fact.hash);
            latest.insert(name, (fact.seq, view));
        }
        if page.facts.is_empty() || page.next_seq <= after_seq {
            break;
        }
        after_seq = page.next_seq;
    }
    Ok(CurrentServices {
        views: latest.into_values().map(|(_, view)| view).collect(),
        facts_by_name,
    })
}

/// The `Cairn.Service` fact of `declaration`, registered at
/// `registered_at_ms`, replacing the facts `replaces`.
pub fn service_fact(
    declaration: &ServiceDeclaration,
    registered_at_ms: u64,
    replaces: &[Hash],
) -> CanonicalFact {
    let mut fields = match serde_json::to_value(declaration) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => unreachable!("a declaration serializes to an object"),
    };
    fields.insert("registered_at_ms".to_string(), registered_at_ms.into());
    let mut predecessors = serde_json::Map::new();
    predecessors.insert(
        REGISTRY_ROLE.to_string(),
        service_registry_anchor().hash.to_hex().into(),
    );
    if !replaces.is_empty() {
        let hashes: Vec<serde_json::Value> =
            replaces.iter().map(|hash| hash.to_hex().into()).collect();
        predecessors.insert(PREVIOUS_ROLE.to_string(), hashes.into());
    }
    server_fact(serde_json::json!({
        "type": SERVICE_FACT_TYPE,
        "fields": fields,
        "predecessors": predecessors,
    }))
}

/// The declaration a stored `Cairn.Service` fact holds.
pub fn parse_service_fact(fact: &StoredFact) -> Option<ServiceView> {
    let mut value: serde_json::Value = serde_json::from_slice(&fact.canonical).ok()?;
    let fields = value.get_mut("fields")?.as_object_mut()?;
    let registered_at_ms = fields.remove("registered_at_ms")?.as_u64()?;
    let declaration: ServiceDeclaration =
        serde_json::from_value(serde_json::Value::Object(std::mem::take(fields))).ok()?;
    Some(ServiceView {
        declaration,
        registered_at_ms,
        fact: fact.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_fact_reads_back_as_its_declaration() {
        let declaration = ServiceDeclaration {
            name: "shop".into(),
            identity: "shop-svc".into(),
            owns: vec!["Shop.Order".into()],
            consumes: vec![],
            requests: vec!["Billing.Charge".into()],
            answers: vec![],
            description: Some("sells".into()),
        };
        let previous = [Hash::of_bytes(b"a"), Hash::of_bytes(b"b")];
        let fact = service_fact(&declaration, 42, &previous);
        let stored = StoredFact {
            hash: fact.hash,
            seq: 7,
            canonical: fact.canonical,
        };
        let view = parse_service_fact(&stored).unwrap();
        assert_eq!(view.declaration, declaration);
        assert_eq!(view.registered_at_ms, 42);
        assert_eq!(view.fact, fact.hash);
    }
}

//! The boundaries check, pure: from the current service declarations and
//! the observed flows, the flow map's edges and every violation of the
//! declared boundaries (`GET /v1/boundaries`). No I/O and no clock: the
//! caller passes the time, so the rules are tested on plain values.

use std::collections::{BTreeMap, BTreeSet};

use cairn_api::facts::is_reserved_type;
use cairn_api::services::{
    BoundaryRule, BoundaryViolation, EdgeKind, EdgeView, FlowKind, FlowView, ServiceView,
};

/// What the check judges.
pub struct CheckInput<'a> {
    /// The current declarations.
    pub services: &'a [ServiceView],
    /// Every observed flow (its `service` is filled in by the check).
    pub flows: Vec<FlowView>,
    /// Whether flows are observed at all (`--auth`); without, the unseen
    /// rule is not judged (nothing could be seen).
    pub observing: bool,
    /// The time of the check (ms since the Unix epoch).
    pub now_ms: u64,
    /// The window: flows last seen longer ago than this do not count.
    pub unseen_for_ms: u64,
}

/// What the check finds.
#[derive(Debug, Default)]
pub struct CheckOutput {
    /// The flows, each with the service of its identity, sorted.
    pub flows: Vec<FlowView>,
    /// The map's edges, sorted.
    pub edges: Vec<EdgeView>,
    /// Every violation, by rule, then type, service and identity.
    pub violations: Vec<BoundaryViolation>,
}

/// The node of the map an identity stands for: its service, or
/// `identity:<name>` when no service declares it.
fn node_of(identity: &str, services_of: &BTreeMap<&str, Vec<&str>>) -> String {
    match services_of.get(identity).and_then(|names| names.first()) {
        Some(service) => (*service).to_string(),
        None => format!("identity:{identity}"),
    }
}

fn violation(
    rule: BoundaryRule,
    message: String,
    type_name: Option<&str>,
    service: Option<&str>,
    identity: Option<&str>,
) -> BoundaryViolation {
    BoundaryViolation {
        rule,
        message,
        type_name: type_name.map(str::to_string),
        service: service.map(str::to_string),
        identity: identity.map(str::to_string),
    }
}

/// Runs every rule; see "Service boundaries" in `docs/api-v1.md`.
pub fn check(input: CheckInput<'_>) -> CheckOutput {
    let CheckInput {
        services,
        mut flows,
        observing,
        now_ms,
        unseen_for_ms,
    } = input;
    let window_start_ms = now_ms.saturating_sub(unseen_for_ms);
    let mut services_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut requesters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut answerers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut consumers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for view in services {
        let declaration = &view.declaration;
        let name = declaration.name.as_str();
        services_of
            .entry(declaration.identity.as_str())
            .or_default()
            .push(name);
        for (map, types) in [
            (&mut owners, &declaration.owns),
            (&mut requesters, &declaration.requests),
            (&mut answerers, &declaration.answers),
            (&mut consumers, &declaration.consumes),
        ] {
            for type_name in types {
                map.entry(type_name.as_str()).or_default().push(name);
            }
        }
    }
    for names in services_of
        .values_mut()
        .chain(owners.values_mut())
        .chain(requesters.values_mut())
        .chain(answerers.values_mut())
        .chain(consumers.values_mut())
    {
        names.sort_unstable();
    }
    for flow in &mut flows {
        flow.service = services_of
            .get(flow.identity.as_str())
            .and_then(|names| names.first())
            .map(|name| name.to_string());
    }
    flows.sort_by(|a, b| {
        (&a.type_name, a.kind, &a.identity).cmp(&(&b.type_name, b.kind, &b.identity))
    });
    let recent: Vec<&FlowView> = flows
        .iter()
        .filter(|flow| flow.last_seen_ms >= window_start_ms)
        .collect();
    // (identity, kind, type) seen within the window.
    let seen: BTreeSet<(&str, FlowKind, &str)> = recent
        .iter()
        .map(|flow| (flow.identity.as_str(), flow.kind, flow.type_name.as_str()))
        .collect();
    let provided = |type_name: &str| {
        is_reserved_type(type_name)
            || owners.contains_key(type_name)
            || requesters.contains_key(type_name)
    };
    let mut violations = Vec::new();

    // Writers: every recent write by an identity whose service does not
    // own (or request) the type.
    for flow in recent.iter().filter(|flow| flow.kind == FlowKind::Writes) {
        let type_name = flow.type_name.as_str();
        let identity = flow.identity.as_str();
        match services_of.get(identity) {
            None => violations.push(violation(
                BoundaryRule::UndeclaredWriter,
                format!("identity {identity} wrote {type_name}, but no service declares identity {identity}"),
                Some(type_name),
                None,
                Some(identity),
            )),
            Some(names) => {
                let allowed = names.iter().any(|name| {
                    owners.get(type_name).is_some_and(|o| o.contains(name))
                        || requesters.get(type_name).is_some_and(|r| r.contains(name))
                });
                if !allowed {
                    let owned_by = owners
                        .get(type_name)
                        .map_or("no service".to_string(), |o| o.join(", "));
                    violations.push(violation(
                        BoundaryRule::WriterDoesNotOwn,
                        format!(
                            "identity {identity} (service {}) wrote {type_name}, which it does not own (owned by {owned_by})",
                            names.join(", ")
                        ),
                        Some(type_name),
                        Some(names[0]),
                        Some(identity),
                    ));
                }
            }
        }
    }

    for (type_name, names) in &owners {
        if names.len() > 1 {
            violations.push(violation(
                BoundaryRule::OwnedTwice,
                format!(
                    "{type_name} is owned by {} services: {}",
                    names.len(),
                    names.join(", ")
                ),
                Some(type_name),
                None,
                None,
            ));
        }
    }

    // Consumers of types nobody provides: declared (consumes, answers),
    // then observed, each consumer and type once.
    let mut reported: BTreeSet<(String, &str)> = BTreeSet::new();
    for (map, how) in [(&consumers, "consumes"), (&answerers, "answers")] {
        for (type_name, names) in map {
            if provided(type_name) {
                continue;
            }
            for name in names {
                if reported.insert((name.to_string(), type_name)) {
                    violations.push(violation(
                        BoundaryRule::ConsumedButUnowned,
                        format!(
                            "service {name} {how} {type_name}, which no service owns or requests"
                        ),
                        Some(type_name),
                        Some(name),
                        None,
                    ));
                }
            }
        }
    }
    for flow in recent.iter().filter(|flow| flow.kind == FlowKind::Consumes) {
        let type_name = flow.type_name.as_str();
        if provided(type_name) {
            continue;
        }
        let node = node_of(&flow.identity, &services_of);
        if reported.insert((node.clone(), type_name)) {
            violations.push(violation(
                BoundaryRule::ConsumedButUnowned,
                format!(
                    "identity {} consumed {type_name}, which no service owns or requests",
                    flow.identity
                ),
                Some(type_name),
                flow.service.as_deref(),
                Some(&flow.identity),
            ));
        }
    }

    // Declared flows never seen within the window, once the declaration
    // is older than the window (a new service has had no time yet).
    if observing {
        for view in services {
            if view.registered_at_ms > window_start_ms {
                continue;
            }
            let declaration = &view.declaration;
            let identity = declaration.identity.as_str();
            for (kind, types, verb) in [
                (FlowKind::Writes, &declaration.owns, "written"),
                (FlowKind::Consumes, &declaration.consumes, "consumed"),
            ] {
                for type_name in types {
                    if !seen.contains(&(identity, kind, type_name.as_str())) {
                        violations.push(violation(
                            BoundaryRule::DeclaredFlowUnseen,
                            format!(
                                "service {} declares it {} {type_name}, but identity {identity} has not {verb} it within {} ms",
                                declaration.name,
                                kind.as_str(),
                                unseen_for_ms
                            ),
                            Some(type_name),
                            Some(&declaration.name),
                            Some(identity),
                        ));
                    }
                }
            }
        }
    }

    // Request edges between services, then their cycles.
    let mut request_edges: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (type_name, senders) in &requesters {
        for sender in senders {
            for answerer in answerers.get(type_name).into_iter().flatten() {
                request_edges
                    .entry(sender)
                    .or_default()
                    .entry(answerer)
                    .or_default()
                    .push(type_name);
            }
        }
    }
    for component in cycles(&request_edges) {
        let mut hops = Vec::new();
        for from in &component {
            for (to, types) in request_edges.get(from).into_iter().flatten() {
                if component.contains(to) {
                    hops.push(format!("{from} → {to} ({})", types.join(", ")));
                }
            }
        }
        violations.push(violation(
            BoundaryRule::RequestCycle,
            format!(
                "services {} request from each other in a cycle: {}",
                component.join(", "),
                hops.join("; ")
            ),
            None,
            Some(component[0]),
            None,
        ));
    }
    violations.sort_by(|a, b| {
        (a.rule, &a.type_name, &a.service, &a.identity).cmp(&(
            b.rule,
            &b.type_name,
            &b.service,
            &b.identity,
        ))
    });

    let edges = edges(
        &owners,
        &consumers,
        &request_edges,
        &flows,
        &seen,
        &services_of,
        services,
    );
    CheckOutput {
        flows,
        edges,
        violations,
    }
}

/// The strongly connected components of the request graph that hold a
/// cycle (more than one service, or a service that answers its own
/// requests), each sorted, in order of their first service. Tarjan's
/// algorithm, iterative so a long chain cannot overflow the stack.
fn cycles<'a>(graph: &BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>) -> Vec<Vec<&'a str>> {
    let mut nodes: BTreeSet<&str> = graph.keys().copied().collect();
    nodes.extend(graph.values().flat_map(|targets| targets.keys().copied()));
    let nodes: Vec<&str> = nodes.into_iter().collect();
    let position: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let successors: Vec<Vec<usize>> = nodes
        .iter()
        .map(|node| {
            graph
                .get(node)
                .into_iter()
                .flat_map(|targets| targets.keys().map(|to| position[to]))
                .collect()
        })
        .collect();
    let n_nodes = nodes.len();
    let mut index = vec![usize::MAX; n_nodes];
    let mut low = vec![0; n_nodes];
    let mut on_stack = vec![false; n_nodes];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut components = Vec::new();
    for root in 0..n_nodes {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next successor to look at)
        let mut work = vec![(root, 0)];
        while let Some(&mut (node, ref mut next)) = work.last_mut() {
            if *next == 0 && index[node] == usize::MAX {
                index[node] = next_index;
                low[node] = next_index;
                next_index += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&successor) = successors[node].get(*next) {
                *next += 1;
                if index[successor] == usize::MAX {
                    work.push((successor, 0));
                } else if on_stack[successor] {
                    low[node] = low[node].min(index[successor]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                let cyclic = component.len() > 1 || successors[node].contains(&node);
                if cyclic {
                    let mut names: Vec<&str> = component.iter().map(|&i| nodes[i]).collect();
                    names.sort_unstable();
                    components.push(names);
                }
            }
        }
    }
    components.sort();
    components
}

/// The nodes at one end of a type's edges, each with whether it declares
/// its side of the flow.
type EdgeEnds = BTreeMap<String, bool>;

/// The map's edges: per type, from each writer (owner, or identity seen
/// writing) to each consumer (declared, or identity seen consuming), and
/// each request from sender to answerer.
fn edges(
    owners: &BTreeMap<&str, Vec<&str>>,
    consumers: &BTreeMap<&str, Vec<&str>>,
    request_edges: &BTreeMap<&str, BTreeMap<&str, Vec<&str>>>,
    flows: &[FlowView],
    seen: &BTreeSet<(&str, FlowKind, &str)>,
    services_of: &BTreeMap<&str, Vec<&str>>,
    services: &[ServiceView],
) -> Vec<EdgeView> {
    let identity_of: BTreeMap<&str, &str> = services
        .iter()
        .map(|view| {
            (
                view.declaration.name.as_str(),
                view.declaration.identity.as_str(),
            )
        })
        .collect();
    // Whether `node` (a service or `identity:<name>`) was seen doing `kind`.
    let node_seen = |node: &str, kind: FlowKind, type_name: &str| {
        let identity = node
            .strip_prefix("identity:")
            .or_else(|| identity_of.get(node).copied());
        identity.is_some_and(|identity| seen.contains(&(identity, kind, type_name)))
    };
    // type → (writers, consumers), each node with whether it is declared.
    let mut ends: BTreeMap<&str, (EdgeEnds, EdgeEnds)> = BTreeMap::new();
    for (type_name, names) in owners {
        let entry = ends.entry(type_name).or_default();
        entry
            .0
            .extend(names.iter().map(|name| (name.to_string(), true)));
    }
    for (type_name, names) in consumers {
        let entry = ends.entry(type_name).or_default();
        entry
            .1
            .extend(names.iter().map(|name| (name.to_string(), true)));
    }
    for flow in flows {
        let entry = ends.entry(flow.type_name.as_str()).or_default();
        let side = match flow.kind {
            FlowKind::Writes => &mut entry.0,
            FlowKind::Consumes => &mut entry.1,
        };
        side.entry(node_of(&flow.identity, services_of))
            .or_insert(false);
    }
    let mut edges = Vec::new();
    for (type_name, (writers, readers)) in &ends {
        for (from, from_declared) in writers {
            for (to, to_declared) in readers {
                if from == to {
                    continue;
                }
                edges.push(EdgeView {
                    from: from.clone(),
                    to: to.clone(),
                    type_name: type_name.to_string(),
                    kind: EdgeKind::Event,
                    declared: *from_declared && *to_declared,
                    seen: node_seen(from, FlowKind::Writes, type_name)
                        && node_seen(to, FlowKind::Consumes, type_name),
                });
            }
        }
    }
    for (from, targets) in request_edges {
        for (to, types) in targets {
            for type_name in types {
                edges.push(EdgeView {
                    from: from.to_string(),
                    to: to.to_string(),
                    type_name: type_name.to_string(),
                    kind: EdgeKind::Request,
                    declared: true,
                    seen: node_seen(from, FlowKind::Writes, type_name)
                        && node_seen(to, FlowKind::Consumes, type_name),
                });
            }
        }
    }
    edges.sort_by(|a, b| {
        (&a.from, &a.to, a.kind, &a.type_name).cmp(&(&b.from, &b.to, b.kind, &b.type_name))
    });
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::services::ServiceDeclaration;
    use cairn_fact::Hash;

    const DAY_MS: u64 = 86_400_000;
    const NOW_MS: u64 = 100 * DAY_MS;

    fn service(name: &str, lists: [&[&str]; 4], registered_at_ms: u64) -> ServiceView {
        let strings = |types: &[&str]| types.iter().map(|t| t.to_string()).collect();
        ServiceView {
            declaration: ServiceDeclaration {
                name: name.to_string(),
                identity: format!("{name}-id"),
                owns: strings(lists[0]),
                consumes: strings(lists[1]),
                requests: strings(lists[2]),
                answers: strings(lists[3]),
                description: None,
            },
            registered_at_ms,
            fact: Hash::of_bytes(name.as_bytes()),
        }
    }

    fn flow(identity: &str, kind: FlowKind, type_name: &str, last_seen_ms: u64) -> FlowView {
        FlowView {
            type_name: type_name.to_string(),
            kind,
            identity: identity.to_string(),
            service: None,
            first_seen_ms: 0,
            last_seen_ms,
        }
    }

    fn run(services: &[ServiceView], flows: Vec<FlowView>) -> CheckOutput {
        check(CheckInput {
            services,
            flows,
            observing: true,
            now_ms: NOW_MS,
            unseen_for_ms: 7 * DAY_MS,
        })
    }

    fn rules(output: &CheckOutput) -> Vec<(BoundaryRule, Option<String>)> {
        output
            .violations
            .iter()
            .map(|v| (v.rule, v.type_name.clone()))
            .collect()
    }

    /// Shop owns orders, billing consumes them and owns invoices, shipping
    /// consumes both; every flow is seen.
    fn healthy() -> (Vec<ServiceView>, Vec<FlowView>) {
        let services = vec![
            service("shop", [&["Shop.Order"], &[], &[], &[]], 0),
            service(
                "billing",
                [&["Billing.Invoice"], &["Shop.Order"], &[], &[]],
                0,
            ),
            service(
                "shipping",
                [&[], &["Shop.Order", "Billing.Invoice"], &[], &[]],
                0,
            ),
        ];
        let flows = vec![
            flow("shop-id", FlowKind::Writes, "Shop.Order", NOW_MS),
            flow("billing-id", FlowKind::Consumes, "Shop.Order", NOW_MS),
            flow("billing-id", FlowKind::Writes, "Billing.Invoice", NOW_MS),
            flow("shipping-id", FlowKind::Consumes, "Shop.Order", NOW_MS),
            flow("shipping-id", FlowKind::Consumes, "Billing.Invoice", NOW_MS),
        ];
        (services, flows)
    }

    #[test]
    fn a_healthy_system_has_no_violation_and_seen_declared_edges() {
        let (services, flows) = healthy();
        let output = run(&services, flows);
        assert!(output.violations.is_empty(), "{:?}", output.violations);
        assert_eq!(output.edges.len(), 3);
        assert!(output.edges.iter().all(|e| e.declared && e.seen));
        assert!(output.flows.iter().all(|f| f.service.is_some()));
    }

    #[test]
    fn a_service_writing_another_s_type_is_caught() {
        let (services, mut flows) = healthy();
        flows.push(flow("billing-id", FlowKind::Writes, "Shop.Order", NOW_MS));
        let output = run(&services, flows);
        assert_eq!(
            rules(&output),
            [(BoundaryRule::WriterDoesNotOwn, Some("Shop.Order".into()))]
        );
        let violation = &output.violations[0];
        assert_eq!(violation.identity.as_deref(), Some("billing-id"));
        assert!(
            violation.message.contains("owned by shop"),
            "{}",
            violation.message
        );
        // The edge it made is marked as not declared.
        assert!(output
            .edges
            .iter()
            .any(|e| e.from == "billing" && e.to == "shipping" && !e.declared));
    }

    #[test]
    fn an_old_misbehaviour_outside_the_window_no_longer_counts() {
        let (services, mut flows) = healthy();
        flows.push(flow(
            "billing-id",
            FlowKind::Writes,
            "Shop.Order",
            NOW_MS - 8 * DAY_MS,
        ));
        assert!(run(&services, flows).violations.is_empty());
    }

    #[test]
    fn an_undeclared_writer_and_an_unowned_consumption_are_caught() {
        let (services, mut flows) = healthy();
        flows.push(flow("rogue", FlowKind::Writes, "Shop.Order", NOW_MS));
        flows.push(flow(
            "shipping-id",
            FlowKind::Consumes,
            "Nobody.Owns",
            NOW_MS,
        ));
        // Server facts are owned by the server.
        flows.push(flow(
            "shipping-id",
            FlowKind::Consumes,
            "Cairn.Claimed",
            NOW_MS,
        ));
        let output = run(&services, flows);
        assert_eq!(
            rules(&output),
            [
                (BoundaryRule::UndeclaredWriter, Some("Shop.Order".into())),
                (BoundaryRule::ConsumedButUnowned, Some("Nobody.Owns".into())),
            ]
        );
        assert!(output.edges.iter().any(|e| e.from == "identity:rogue"));
    }

    #[test]
    fn ownership_twice_and_declared_unowned_consumption_are_caught() {
        let (mut services, flows) = healthy();
        services.push(service(
            "fraud",
            [&["Shop.Order"], &["Fraud.Score"], &[], &[]],
            0,
        ));
        let output = run(&services, flows);
        let found = rules(&output);
        assert!(found.contains(&(BoundaryRule::OwnedTwice, Some("Shop.Order".into()))));
        assert!(found.contains(&(BoundaryRule::ConsumedButUnowned, Some("Fraud.Score".into()))));
        // Fraud declared writing orders but never did.
        assert!(found.contains(&(BoundaryRule::DeclaredFlowUnseen, Some("Shop.Order".into()))));
    }

    #[test]
    fn unseen_flows_count_only_for_declarations_older_than_the_window() {
        let (mut services, flows) = healthy();
        services.push(service(
            "late",
            [&[], &["Shop.Order"], &[], &[]],
            NOW_MS - DAY_MS,
        ));
        assert!(run(&services, flows.clone()).violations.is_empty());
        services.pop();
        services.push(service(
            "late",
            [&[], &["Shop.Order"], &[], &[]],
            NOW_MS - 8 * DAY_MS,
        ));
        assert_eq!(
            rules(&run(&services, flows.clone())),
            [(BoundaryRule::DeclaredFlowUnseen, Some("Shop.Order".into()))]
        );
        // Without observations the rule is not judged.
        let output = check(CheckInput {
            services: &services,
            flows: Vec::new(),
            observing: false,
            now_ms: NOW_MS,
            unseen_for_ms: 7 * DAY_MS,
        });
        assert!(output.violations.is_empty(), "{:?}", output.violations);
    }

    #[test]
    fn request_cycles_are_caught_and_requests_may_be_written() {
        let services = vec![
            service("a", [&["A.Reply"], &[], &["B.Ask"], &["A.Ask"]], 0),
            service("b", [&["B.Reply"], &[], &["C.Ask"], &["B.Ask"]], 0),
            service("c", [&["C.Reply"], &[], &["A.Ask"], &["C.Ask"]], 0),
            service("d", [&[], &[], &["A.Ask"], &["D.Ask"]], 0),
            service("e", [&[], &[], &["D.Ask", "E.Ask"], &["E.Ask"]], 0),
        ];
        let flows = vec![flow("a-id", FlowKind::Writes, "B.Ask", NOW_MS)];
        let output = check(CheckInput {
            services: &services,
            flows,
            observing: false,
            now_ms: NOW_MS,
            unseen_for_ms: 7 * DAY_MS,
        });
        let cycles: Vec<&BoundaryViolation> = output
            .violations
            .iter()
            .filter(|v| v.rule == BoundaryRule::RequestCycle)
            .collect();
        assert_eq!(cycles.len(), 2, "{:?}", output.violations);
        assert!(
            cycles[0].message.contains("a, b, c"),
            "{}",
            cycles[0].message
        );
        assert!(
            cycles[0].message.contains("a → b (B.Ask)"),
            "{}",
            cycles[0].message
        );
        assert_eq!(cycles[1].service.as_deref(), Some("e"), "a self-loop");
        // a wrote its own request type: allowed.
        assert!(output
            .violations
            .iter()
            .all(|v| v.rule == BoundaryRule::RequestCycle));
        assert!(output
            .edges
            .iter()
            .any(|e| e.kind == EdgeKind::Request && e.from == "a" && e.to == "b" && e.declared));
    }

    #[test]
    fn a_long_request_chain_is_no_cycle_and_does_not_overflow() {
        let names: Vec<String> = (0..5_000).map(|n| format!("s{n}")).collect();
        let services: Vec<ServiceView> = names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let asks = format!("T.Ask{n}");
                let next = format!("T.Ask{}", n + 1);
                let mut view = service(name, [&[], &[], &[], &[]], 0);
                view.declaration.answers = vec![asks];
                view.declaration.requests = vec![next];
                view
            })
            .collect();
        let output = run(&services, Vec::new());
        assert!(output
            .violations
            .iter()
            .all(|v| v.rule != BoundaryRule::RequestCycle));
    }
}

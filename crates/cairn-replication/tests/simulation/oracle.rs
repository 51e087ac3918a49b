//! The oracle: what every store must hold once the links have healed,
//! computed independently of the engine — its own pattern matcher, its
//! own closure — from what the writers made durable and the link graph.
//!
//! Store X must hold exactly: its own durable local writes, and for each
//! link L from S into X, every fact of S's set whose type L's filter
//! matches together with that fact's predecessors, transitively — a
//! least fixpoint over the link graph (cycles included). Nothing less
//! (convergence) and nothing more (no phantom: no lost write, no fact a
//! filter did not select unless a selected fact needs it). Each log also
//! holds every fact once, each after its predecessors (so every store is
//! closed under predecessors at every moment, not only at the end).

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_fact::{CanonicalFact, Hash};

use super::world::World;

/// Whether `name` matches `pattern`: `*` matches any run of characters
/// (written here on purpose apart from `cairn_api::access::Pattern`,
/// which the engine and the simulated source use).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(tail) = name.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len()).any(|skipped| glob_matches(rest, &tail[skipped..]))
        }
    }
}

/// Whether any of `patterns` matches `name`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| glob_matches(pattern, name))
}

/// Adds `hash` and its predecessors, transitively, to `set`; answers
/// whether anything was new.
fn add_closed(set: &mut HashSet<Hash>, hash: Hash, facts: &HashMap<Hash, CanonicalFact>) -> bool {
    let mut added = false;
    let mut stack = vec![hash];
    while let Some(hash) = stack.pop() {
        if !set.insert(hash) {
            continue;
        }
        added = true;
        let fact = &facts[&hash];
        stack.extend(
            fact.fact
                .all_predecessors()
                .map(|(_, predecessor)| *predecessor),
        );
    }
    added
}

/// What each store must hold: the least fixpoint.
pub fn expected_sets(world: &World) -> Vec<HashSet<Hash>> {
    let mut expected: Vec<HashSet<Hash>> = world
        .stores
        .iter()
        .map(|store| store.local_writes.iter().copied().collect())
        .collect();
    loop {
        let mut changed = false;
        for link in &world.links {
            let definition = &link.definition;
            let selected: Vec<Hash> = expected[definition.source]
                .iter()
                .filter(|hash| matches_any(&definition.types, &world.created[*hash].fact.type_name))
                .copied()
                .collect();
            for hash in selected {
                changed |= add_closed(&mut expected[definition.target], hash, &world.created);
            }
        }
        if !changed {
            return expected;
        }
    }
}

fn describe(world: &World, hashes: &BTreeSet<Hash>) -> String {
    let shown: Vec<String> = hashes
        .iter()
        .take(3)
        .map(|hash| match world.created.get(hash) {
            Some(fact) => format!("{} ({})", hash, fact.fact.type_name),
            None => format!("{hash} (never written)"),
        })
        .collect();
    format!("{} fact(s), e.g. {}", hashes.len(), shown.join(", "))
}

/// Checks the healed world; answers what is wrong.
pub fn check(world: &World) -> Vec<String> {
    let mut problems = Vec::new();
    for store in &world.stores {
        let mut seen: HashSet<Hash> = HashSet::new();
        for (position, fact) in store.log().iter().enumerate() {
            let seq = position + 1;
            if !world.created.contains_key(&fact.hash) {
                problems.push(format!(
                    "{} holds {} at seq {seq}, which no writer wrote (a phantom)",
                    store.id, fact.hash
                ));
            }
            for (_, predecessor) in fact.fact.all_predecessors() {
                if !seen.contains(predecessor) {
                    problems.push(format!(
                        "{} holds {} ({}) at seq {seq} without its predecessor {predecessor} before it",
                        store.id, fact.hash, fact.fact.type_name
                    ));
                }
            }
            if !seen.insert(fact.hash) {
                problems.push(format!(
                    "{} holds {} twice (again at seq {seq})",
                    store.id, fact.hash
                ));
            }
        }
    }
    if !problems.is_empty() {
        // The sets below assume facts the writers made.
        return problems;
    }
    let expected = expected_sets(world);
    for (store, expected) in world.stores.iter().zip(&expected) {
        let actual: HashSet<Hash> = store.log().iter().map(|fact| fact.hash).collect();
        let missing: BTreeSet<Hash> = expected.difference(&actual).copied().collect();
        let extra: BTreeSet<Hash> = actual.difference(expected).copied().collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} misses what its links allow: {}",
                store.id,
                describe(world, &missing)
            ));
        }
        if !extra.is_empty() {
            problems.push(format!(
                "{} holds what neither its writers nor its links' filters allow: {}",
                store.id,
                describe(world, &extra)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn the_glob_matches_as_patterns_do() {
        assert!(glob_matches("*", "A.x"));
        assert!(glob_matches("A.*", "A.x"));
        assert!(!glob_matches("A.*", "B.x"));
        assert!(glob_matches("*.x", "B.x"));
        assert!(!glob_matches("*.x", "B.y"));
        assert!(glob_matches("B.x", "B.x"));
        assert!(!glob_matches("B.x", "B.xy"));
        assert!(glob_matches("A*x", "A.x"));
    }
}

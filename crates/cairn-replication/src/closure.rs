//! Predecessors first: puts facts fetched to close a batch under
//! predecessors into an order in which each comes after those of its
//! predecessors that are in the same set. Pure, no I/O.

use std::collections::{HashMap, HashSet};

use cairn_fact::{CanonicalFact, Hash};

/// Orders `facts` so that every fact comes after each of its predecessors
/// that is also in `facts` (a depth-first order, stable in the input
/// order otherwise). Facts are content-addressed, so the predecessor
/// graph has no cycles; a duplicate hash is kept once.
pub fn predecessors_first(facts: Vec<CanonicalFact>) -> Vec<CanonicalFact> {
    let mut by_hash: HashMap<Hash, CanonicalFact> = HashMap::with_capacity(facts.len());
    let mut input_order = Vec::with_capacity(facts.len());
    for fact in facts {
        if let std::collections::hash_map::Entry::Vacant(slot) = by_hash.entry(fact.hash) {
            input_order.push(fact.hash);
            slot.insert(fact);
        }
    }
    let mut placed: HashSet<Hash> = HashSet::with_capacity(input_order.len());
    let mut ordered = Vec::with_capacity(input_order.len());
    for root in input_order {
        // An explicit stack: a chain of predecessors may be long.
        let mut stack = vec![(root, false)];
        while let Some((hash, expanded)) = stack.pop() {
            if placed.contains(&hash) {
                continue;
            }
            if expanded {
                placed.insert(hash);
                ordered.push(hash);
                continue;
            }
            stack.push((hash, true));
            let fact = &by_hash[&hash];
            for (_, predecessor) in fact.fact.all_predecessors() {
                if by_hash.contains_key(predecessor) && !placed.contains(predecessor) {
                    stack.push((*predecessor, false));
                }
            }
        }
    }
    ordered
        .into_iter()
        .map(|hash| by_hash.remove(&hash).expect("every ordered hash is a fact"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_fact::{parse_json, JSON_DEPTH_MAX};

    fn fact(json: &str) -> CanonicalFact {
        CanonicalFact::from_value(
            &parse_json(json.as_bytes(), JSON_DEPTH_MAX).unwrap(),
            1 << 20,
        )
        .unwrap()
    }

    fn successor(n: u32, of: &[&CanonicalFact]) -> CanonicalFact {
        let list: Vec<String> = of.iter().map(|fact| format!("\"{}\"", fact.hash)).collect();
        fact(&format!(
            r#"{{"type":"T","fields":{{"n":{n}}},"predecessors":{{"of":[{}]}}}}"#,
            list.join(",")
        ))
    }

    #[test]
    fn every_fact_follows_its_predecessors_in_the_set() {
        let root = fact(r#"{"type":"T","fields":{"n":0},"predecessors":{}}"#);
        let left = successor(1, &[&root]);
        let right = successor(2, &[&root]);
        let join = successor(3, &[&left, &right]);
        let ordered = predecessors_first(vec![
            join.clone(),
            right.clone(),
            join.clone(),
            left.clone(),
            root.clone(),
        ]);
        let position = |fact: &CanonicalFact| {
            ordered
                .iter()
                .position(|candidate| candidate.hash == fact.hash)
                .unwrap()
        };
        assert_eq!(ordered.len(), 4, "the duplicate is kept once");
        assert!(position(&root) < position(&left));
        assert!(position(&root) < position(&right));
        assert!(position(&left) < position(&join));
        assert!(position(&right) < position(&join));
    }

    #[test]
    fn a_long_chain_is_ordered_without_recursion() {
        let mut chain = vec![fact(r#"{"type":"T","fields":{"n":0},"predecessors":{}}"#)];
        for n in 1..20_000 {
            let next = successor(n, &[chain.last().unwrap()]);
            chain.push(next);
        }
        let hashes: Vec<Hash> = chain.iter().map(|fact| fact.hash).collect();
        chain.reverse();
        let ordered: Vec<Hash> = predecessors_first(chain)
            .iter()
            .map(|fact| fact.hash)
            .collect();
        assert_eq!(ordered, hashes);
    }
}

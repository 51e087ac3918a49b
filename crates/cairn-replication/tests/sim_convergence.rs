//! Convergence of replication links, checked over seeded simulations
//! (see `simulation/mod.rs`): after heal, every store holds exactly its
//! own durable writes and, for each link into it, what the link's filter
//! selects from its source together with the predecessors of that, and
//! no bookmark was ever saved ahead of what its store held. Negative
//! controls show the oracle fails when a store breaks its contract.

mod simulation;

use simulation::random::SplitMix64;
use simulation::run::{run_config, simulate, simulate_with};
use simulation::sweep::sweep;
use simulation::world::{Breakage, Config, Event, Faults, LinkDefinition, Topology};

#[test]
fn every_store_converges_to_what_its_links_allow() {
    sweep("sim_convergence");
}

#[test]
fn a_seed_replays_identically() {
    for seed in [3, 17, 101] {
        let first = simulate(seed);
        let second = simulate(seed);
        assert_eq!(first.logs, second.logs, "seed {seed}: the logs differ");
        assert_eq!(
            first.counters, second.counters,
            "seed {seed}: the counters differ"
        );
    }
}

/// Two stores, one link `0 → 1` with `types`, no faults: the writer at
/// store 0 writes `n_writes` facts.
fn two_stores(types: &[&str], n_writes: usize, predecessors_max: usize) -> Config {
    Config {
        n_stores: 2,
        topology: Topology::Chain,
        links: vec![LinkDefinition {
            source: 0,
            target: 1,
            types: types.iter().map(|text| text.to_string()).collect(),
        }],
        n_writes,
        predecessors_max,
        n_events: 400,
        faults: Faults::default(),
        event_weights: vec![(Event::Poll, 10), (Event::Start, 3), (Event::Write, 3)],
        page_facts_max: 4,
        fetches_in_flight_max: 2,
    }
}

#[test]
fn the_oracle_sees_a_store_that_drops_a_fact() {
    let report = run_config(
        two_stores(&["*"], 10, 0),
        SplitMix64::new(1),
        Breakage::DropsOneFact,
    );
    let all = report.violations.join("\n");
    assert!(
        all.contains("the bookmark ran ahead"),
        "the save's check must see it:\n{all}"
    );
    assert!(
        all.contains("store-1 misses what its links allow: 1 fact(s)"),
        "the oracle must see it:\n{all}"
    );
}

#[test]
fn the_oracle_sees_a_store_without_predecessors() {
    // Facts of every type, naming up to three earlier ones; the link takes
    // `C.*` only, so a store that skips the predecessor check ends with
    // facts whose predecessors it lacks.
    let mut found = false;
    for seed in 0..20 {
        let report = run_config(
            two_stores(&["C.*"], 40, 3),
            SplitMix64::new(seed),
            Breakage::AcceptsMissingPredecessors,
        );
        let all = report.violations.join("\n");
        if all.contains("without its predecessor") {
            found = true;
            break;
        }
        assert!(all.is_empty(), "seed {seed}: {all}");
    }
    assert!(
        found,
        "no seed broke the closure: the control proves nothing"
    );
}

#[test]
fn a_broken_store_fails_random_seeds_too() {
    let failed = (0..30)
        .filter(|seed| {
            !simulate_with(*seed, Breakage::DropsOneFact)
                .violations
                .is_empty()
        })
        .count();
    assert!(
        failed > 0,
        "a store that drops a fact failed no seed: the oracle proves nothing"
    );
}

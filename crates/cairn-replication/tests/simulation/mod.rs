//! The deterministic simulation of replication links (issue 15's proof of
//! convergence): seeded stores, writers and links with filters in random
//! topologies, under partitions, duplicated and stale pages, reordering,
//! short pages, garbage, runner crashes at any await and store crashes
//! that lose unsynced writes — driving the real `Follower` through
//! in-memory `Source` and `Sink` implementations — and an oracle that
//! checks, after heal, that every store holds exactly what its writers
//! and its links' filters allow, closed under predecessors.
//!
//! `store` is the store model, `world` the shared state and the seed's
//! configuration, `network` the links' sources and sinks with their
//! faults, `run` the scheduler and the heal, `oracle` the independent
//! check, `sweep` the seed loop, `random` the seeded generator.

pub mod network;
pub mod oracle;
pub mod random;
pub mod run;
pub mod store;
pub mod sweep;
pub mod world;

//! The reliability checker behind `cairn check`: it drives a real Cairn
//! deployment with a seeded mixed workload while injecting faults, records
//! every operation and its outcome, and verifies the history with an oracle.

pub mod proxy;

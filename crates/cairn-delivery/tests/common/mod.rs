//! Test support shared by the integration tests: a model of a delivery
//! backend (`model_store`), and the deterministic simulation harness
//! (`simulation` runs a seed and records its history, `oracle` holds the
//! bookkeeping the checkers share, `sweep` runs a checker over many seeds
//! within a budget) that each `sim_*` test file checks one invariant with.
//!
//! Each test file compiles this module on its own and uses a part of it,
//! hence `dead_code` is allowed here.

#![allow(dead_code)]

pub mod model_store;
pub mod oracle;
pub mod simulation;
pub mod sweep;

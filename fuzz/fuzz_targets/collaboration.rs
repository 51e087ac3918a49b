//! Fuzz target `collaboration`: the `Cairn-Fence` header against a model,
//! and the bodies of claims and leases against their limits.
//! The check is [`cairn_fuzz_checks::check_collaboration`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/collaboration/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_collaboration(data));

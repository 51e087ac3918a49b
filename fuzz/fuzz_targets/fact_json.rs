//! Fuzz target `fact_json`: the fact parser; an accepted fact's canonical form is
//! accepted again with the same hash and verifies as stored, and any parsed
//! JSON canonicalizes idempotently.
//! The check is [`cairn_fuzz_checks::check_fact_json`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/fact_json/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_fact_json(data));

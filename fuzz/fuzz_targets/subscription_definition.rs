//! Fuzz target `subscription_definition`: the subscription definition parser of
//! `PUT /v1/subscriptions/{name}`; it never panics and an accepted
//! definition round-trips through JSON unchanged.
//! The check is [`cairn_fuzz_checks::check_subscription_definition`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/subscription_definition/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_subscription_definition(data));

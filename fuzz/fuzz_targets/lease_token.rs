//! Fuzz target `lease_token`: the lease token parser of ack, nack and extend; it
//! matches a model of the token grammar and round-trips.
//! The check is [`cairn_fuzz_checks::check_lease_token`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/lease_token/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_lease_token(data));

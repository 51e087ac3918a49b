//! Fuzz target `query_params`: the query-string parser every endpoint runs; it
//! matches a model of urlencoded decoding and of the accessors' contract.
//! The check is [`cairn_fuzz_checks::check_query_params`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/query_params/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_query_params(data));

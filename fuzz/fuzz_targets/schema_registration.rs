//! Fuzz target `schema_registration`: the body of `PUT
//! /v1/schemas/{type}/{version}` through the server's whole path — strict
//! JSON, the wire type, compilation, the compatibility judgement, then
//! validating facts and upcasting them with the schema; nothing panics or
//! stalls, and answers stay within their limits.
//! The check is [`cairn_fuzz_checks::check_schema_registration`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/schema_registration/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_schema_registration(data));

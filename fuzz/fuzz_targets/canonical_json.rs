//! Fuzz target `canonical_json`: the RFC 8785 canonical form; idempotent, read alike
//! by serde_json, and numbers written as ECMAScript writes them.
//! The check is [`cairn_fuzz_checks::check_canonical_json`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/canonical_json/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_canonical_json(data));

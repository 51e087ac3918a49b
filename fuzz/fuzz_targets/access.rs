//! Fuzz target `access`: the `Authorization` header parser and permission
//! patterns; they match models of their grammars, and `*` matching agrees
//! with a recursive model. The check is [`cairn_fuzz_checks::check_access`],
//! which `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every
//! file of `fuzz/regressions/access/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_access(data));

//! Fuzz target `hash_hex`: the hash text parser of URL paths and bodies; exactly
//! the 64-lowercase-hex spelling is a hash.
//! The check is [`cairn_fuzz_checks::check_hash_hex`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/hash_hex/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_hash_hex(data));

//! Fuzz target `source_page`: what a replication link decodes from its
//! source (a `/v1/log` page, a `/v1/facts/{hash}` answer) never panics and
//! lets only verified, canonical facts through. The check is
//! [`cairn_fuzz_checks::check_source_page`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/source_page/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_source_page(data));

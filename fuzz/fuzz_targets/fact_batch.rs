//! Fuzz target `fact_batch`: a `POST /v1/facts` body; each fact accepted from the
//! batch is accepted, with the same hash, from its canonical bytes.
//! The check is [`cairn_fuzz_checks::check_fact_batch`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/fact_batch/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_fact_batch(data));

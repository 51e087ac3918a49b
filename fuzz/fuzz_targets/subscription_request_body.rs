//! Fuzz target `subscription_request_body`: the JSON bodies of pull, ack,
//! nack, extend, pause, resume and dead-letter replay; accepted bodies
//! respect the limits, round-trip, and agree with the stream's parser.
//! The check is [`cairn_fuzz_checks::check_subscription_request_body`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/subscription_request_body/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_subscription_request_body(data));

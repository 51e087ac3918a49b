//! Fuzz target `stream_frame`: the client's frames on a subscription's
//! WebSocket stream; accepted frames respect the limits, round-trip, and
//! agree with the HTTP ack and nack bodies.
//! The check is [`cairn_fuzz_checks::check_stream_frame`], which
//! `crates/cairn-fuzz-checks/tests/regressions.rs` also runs on every file
//! of `fuzz/regressions/stream_frame/`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzz_checks::check_stream_frame(data));

//! Cairn Rust SDK.

//! HTTP handlers, one file per resource.

pub mod blobs;
pub mod facts;
pub mod meta;
mod wait;

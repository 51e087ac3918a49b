//! A checkout saga across separate processes: the saga runner, a stock
//! service, a payment service and a shipping service, each talking only to
//! Cairn (request and reply over facts), each with its own identity when
//! Cairn runs with `--auth`. See README.md beside this crate.

pub mod effects;
pub mod facts;
pub mod limits;
pub mod saga;
pub mod services;

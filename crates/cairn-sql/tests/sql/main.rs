//! Integration tests of cairn-sql against a real Cairn server in-process,
//! a real SQLite file and a real PostgreSQL (127.0.0.1:5432, database
//! `test`, user postgres; `CAIRN_TEST_POSTGRES=skip` skips those tests when
//! it is unreachable). One test binary, so that the harness compiles once.

mod client_publisher;
mod common;
mod dead_letters;
mod inbox;
mod inbox_handler;
mod outbox;
mod service_task;

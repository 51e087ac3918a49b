//! The tables the tool writes into: the same columns, keys and indexes as Cairn's
//! `cairn_facts` and `cairn_predecessors` (crates/cairn-store/src/postgres/migrations/
//! 0001_facts.sql), so that a direct write maintains exactly the B-trees a Cairn write does.
//! With `--method function` the tool applies Cairn's own migration file instead and writes
//! through its `cairn_put_facts` function, which isolates the cost of the function from the
//! cost of the HTTP server.

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

/// The shape of Cairn's fact tables, without the log head and the write function.
const TABLES_SQL: &str = "
CREATE TABLE cairn_facts (
    seq bigint PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    type_name text NOT NULL,
    canonical bytea NOT NULL
);
CREATE INDEX cairn_facts_by_type ON cairn_facts (type_name, seq);
CREATE TABLE cairn_predecessors (
    predecessor bytea NOT NULL,
    successor_type text NOT NULL,
    successor_seq bigint NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (predecessor, successor_type, successor_seq, role)
);
CREATE INDEX cairn_predecessors_of_successor ON cairn_predecessors (successor_seq);
";

/// Creates the tables in an empty database: Cairn's shape, or (with `cairn_migration`) the
/// contents of Cairn's migration file.
pub async fn create(client: &Client, cairn_migration: Option<&str>) -> Result<()> {
    let exists: bool = client
        .query_one("SELECT to_regclass('cairn_facts') IS NOT NULL", &[])
        .await?
        .get(0);
    if exists {
        bail!("cairn_facts already exists: give the tool a fresh, empty database");
    }
    client
        .batch_execute(cairn_migration.unwrap_or(TABLES_SQL))
        .await
        .context("creating the tables")
}

/// The settings that decide whether a commit is durable, as `key=value` words; fails if a
/// commit could return before its WAL is flushed.
pub async fn durability_settings(client: &Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT split_part(current_setting('server_version'), ' ', 1), \
             current_setting('synchronous_commit'), current_setting('fsync'), \
             current_setting('wal_sync_method'), current_setting('full_page_writes')",
            &[],
        )
        .await?;
    let synchronous_commit: String = row.get(1);
    let fsync: String = row.get(2);
    if synchronous_commit == "off" || fsync != "on" {
        bail!("commits are not durable (synchronous_commit={synchronous_commit}, fsync={fsync})");
    }
    Ok(format!(
        "server_version={} synchronous_commit={synchronous_commit} fsync={fsync} \
         wal_sync_method={} full_page_writes={}",
        row.get::<_, String>(0),
        row.get::<_, String>(3),
        row.get::<_, String>(4)
    ))
}

/// Bytes of both tables with their indexes and TOAST.
pub async fn tables_bytes(client: &Client) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT pg_total_relation_size('cairn_facts') + pg_total_relation_size('cairn_predecessors')",
            &[],
        )
        .await?
        .get(0))
}

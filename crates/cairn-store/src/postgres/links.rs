//! Replication links on PostgreSQL (`migrations/0010_links.sql`): the
//! `LinkStore` implementation.
//!
//! Every change is one statement, so it is atomic without a transaction
//! of its own. A put is `INSERT … ON CONFLICT DO UPDATE … WHERE the
//! definition differs`, so concurrent puts of one name create it once and
//! each changed definition takes the next generation. Which server runs a
//! link is a claim on its row (`runner`, `runner_until`) judged by the
//! database's clock, so servers agree on when a claim runs out: a claim is
//! granted by an `UPDATE` only where the row is unclaimed, claimed by the
//! same runner, or its claim ran out; progress is saved only by the runner
//! that holds the claim, on the incarnation it runs.

use futures_util::future::BoxFuture;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::errors::{read_error, write_error};
use super::PostgresStore;
use crate::error::{ReadError, WriteError};
use crate::links::{LinkPut, LinkRecord, LinkStore};

/// The columns of a record; `runner` only while its claim lasts.
const COLUMNS: &str = "name, definition_json, incarnation, generation, paused, progress_json,
     CASE WHEN runner_until >= clock_timestamp() THEN runner END AS runner";

type LinkQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn record_of(row: &PgRow) -> Result<LinkRecord, ReadError> {
    let column = |error: sqlx::Error| read_error(error);
    let generation: i64 = row.try_get("generation").map_err(column)?;
    Ok(LinkRecord {
        name: row.try_get("name").map_err(column)?,
        definition_json: row.try_get("definition_json").map_err(column)?,
        incarnation: row.try_get("incarnation").map_err(column)?,
        generation: u64::try_from(generation)
            .map_err(|_| ReadError::corrupt(format!("negative generation: {generation}")))?,
        paused: row.try_get("paused").map_err(column)?,
        progress_json: row.try_get("progress_json").map_err(column)?,
        runner: row.try_get("runner").map_err(column)?,
    })
}

fn corrupt_write(error: ReadError) -> WriteError {
    WriteError::storage_caused_by(error.to_string(), error)
}

impl PostgresStore {
    async fn select_link(&self, name: &str) -> Result<Option<LinkRecord>, ReadError> {
        let row = self
            .timed(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM cairn_links WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        row.as_ref().map(record_of).transpose()
    }

    async fn upsert_link(
        &self,
        name: &str,
        definition_json: &str,
        incarnation: &str,
    ) -> Result<(LinkPut, LinkRecord), WriteError> {
        // The row changes only when the definition does; `xmax = 0` tells
        // an insert from an update.
        let statement = format!(
            "INSERT INTO cairn_links AS l (name, definition_json, incarnation, generation, paused)
             VALUES ($1, $2, $3, 1, false)
             ON CONFLICT (name) DO UPDATE SET
                 definition_json = EXCLUDED.definition_json,
                 generation = l.generation + 1
             WHERE l.definition_json <> EXCLUDED.definition_json
             RETURNING {COLUMNS}, (xmax = 0) AS created"
        );
        for _ in 0..3 {
            let row = self
                .timed(
                    sqlx::query(&statement)
                        .bind(name)
                        .bind(definition_json)
                        .bind(incarnation)
                        .fetch_optional(self.pool()),
                )
                .await
                .map_err(write_error)?;
            if let Some(row) = row {
                let created: bool = row.try_get("created").map_err(write_error)?;
                let stored = record_of(&row).map_err(corrupt_write)?;
                let put = if created {
                    LinkPut::Created
                } else {
                    LinkPut::Replaced
                };
                return Ok((put, stored));
            }
            // Same definition: unchanged, unless it was deleted meanwhile
            // (then the next attempt creates it).
            if let Some(stored) = self.select_link(name).await.map_err(corrupt_write)? {
                return Ok((LinkPut::Unchanged, stored));
            }
        }
        Err(WriteError::storage(
            "the link changed under three attempts to put it",
        ))
    }

    /// Runs one statement changing a link; answers whether it changed a row.
    async fn update_link(&self, query: LinkQuery<'_>) -> Result<bool, WriteError> {
        let result = self
            .timed(query.execute(self.pool()))
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected() > 0)
    }
}

impl LinkStore for PostgresStore {
    fn put_link<'a>(
        &'a self,
        name: &'a str,
        definition_json: &'a str,
        incarnation: &'a str,
    ) -> BoxFuture<'a, Result<(LinkPut, LinkRecord), WriteError>> {
        Box::pin(self.upsert_link(name, definition_json, incarnation))
    }

    fn link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkRecord>, ReadError>> {
        Box::pin(self.select_link(name))
    }

    fn links<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<LinkRecord>, ReadError>> {
        Box::pin(async move {
            let rows = self
                .rows_by_name("cairn_links", COLUMNS, after, limit)
                .await?;
            rows.iter().map(record_of).collect()
        })
    }

    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(
            self.update_link(sqlx::query("DELETE FROM cairn_links WHERE name = $1").bind(name)),
        )
    }

    fn set_link_paused<'a>(
        &'a self,
        name: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<Option<LinkRecord>, WriteError>> {
        Box::pin(async move {
            let row = self
                .timed(
                    sqlx::query(&format!(
                        "UPDATE cairn_links SET paused = $2 WHERE name = $1 RETURNING {COLUMNS}"
                    ))
                    .bind(name)
                    .bind(paused)
                    .fetch_optional(self.pool()),
                )
                .await
                .map_err(write_error)?;
            row.as_ref()
                .map(record_of)
                .transpose()
                .map_err(corrupt_write)
        })
    }

    fn save_link_progress<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        runner: &'a str,
        progress_json: &'a str,
    ) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(
            self.update_link(
                sqlx::query(
                    "UPDATE cairn_links SET progress_json = $4
                     WHERE name = $1 AND incarnation = $2 AND runner = $3",
                )
                .bind(name)
                .bind(incarnation)
                .bind(runner)
                .bind(progress_json),
            ),
        )
    }

    fn claim_link<'a>(
        &'a self,
        name: &'a str,
        incarnation: &'a str,
        runner: &'a str,
        claim_ms: u64,
    ) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(
            self.update_link(
                sqlx::query(
                    "UPDATE cairn_links SET
                         runner = $3,
                         runner_until = clock_timestamp() + $4::float8 * interval '1 millisecond'
                     WHERE name = $1 AND incarnation = $2
                       AND (runner IS NULL OR runner = $3 OR runner_until < clock_timestamp())",
                )
                .bind(name)
                .bind(incarnation)
                .bind(runner)
                .bind(to_i64(claim_ms)),
            ),
        )
    }

    fn release_link<'a>(
        &'a self,
        name: &'a str,
        runner: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async move {
            self.update_link(
                sqlx::query(
                    "UPDATE cairn_links SET runner = NULL, runner_until = NULL
                     WHERE name = $1 AND runner = $2",
                )
                .bind(name)
                .bind(runner),
            )
            .await
            .map(|_| ())
        })
    }
}

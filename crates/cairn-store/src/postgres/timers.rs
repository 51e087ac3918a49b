//! Durable timers on PostgreSQL (`migrations/0008_timers.sql`): the
//! `TimerStore` implementation.
//!
//! "Now" is the database's clock, so every server sharing the database
//! agrees on what is due. A claim is one statement: it locks the earliest
//! due rows that no other claim holds (`FOR UPDATE SKIP LOCKED`) and moves
//! their `attempt_at_ms` on by the claim's length, so servers share the
//! due timers and a server that dies mid-pass is replaced once its claim
//! runs out. Progress is a compare-and-set on (generation, next_due_ms).

use futures_util::future::BoxFuture;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::errors::{read_error, write_error};
use super::PostgresStore;
use crate::error::{ReadError, WriteError};
use crate::timers::{DueTimers, TimerProgress, TimerPut, TimerRecord, TimerStore};

const COLUMNS: &str =
    "name, definition_json, generation, next_due_ms, attempt_at_ms, last_fired_ms, last_error";

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64, what: &str) -> Result<u64, ReadError> {
    u64::try_from(value).map_err(|_| ReadError::corrupt(format!("negative {what}: {value}")))
}

fn optional(value: Option<i64>, what: &str) -> Result<Option<u64>, ReadError> {
    value.map(|value| to_u64(value, what)).transpose()
}

fn record_of(row: &PgRow) -> Result<TimerRecord, ReadError> {
    let column = |error: sqlx::Error| read_error(error);
    Ok(TimerRecord {
        name: row.try_get("name").map_err(column)?,
        definition_json: row.try_get("definition_json").map_err(column)?,
        generation: to_u64(row.try_get("generation").map_err(column)?, "generation")?,
        next_due_ms: optional(row.try_get("next_due_ms").map_err(column)?, "next_due_ms")?,
        attempt_at_ms: optional(
            row.try_get("attempt_at_ms").map_err(column)?,
            "attempt_at_ms",
        )?,
        last_fired_ms: optional(
            row.try_get("last_fired_ms").map_err(column)?,
            "last_fired_ms",
        )?,
        last_error: row.try_get("last_error").map_err(column)?,
    })
}

fn corrupt_write(error: ReadError) -> WriteError {
    WriteError::storage_caused_by(error.to_string(), error)
}

impl PostgresStore {
    async fn select_timer(&self, name: &str) -> Result<Option<TimerRecord>, ReadError> {
        let row = self
            .timed(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM cairn_timers WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(self.pool()),
            )
            .await
            .map_err(read_error)?;
        row.as_ref().map(record_of).transpose()
    }

    async fn upsert_timer(
        &self,
        record: TimerRecord,
    ) -> Result<(TimerPut, TimerRecord), WriteError> {
        // The row changes only when the definition does; `xmax = 0` tells
        // an insert from an update.
        let statement = format!(
            "INSERT INTO cairn_timers AS t
                 (name, definition_json, generation, next_due_ms, attempt_at_ms)
             VALUES ($1, $2, 1, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
                 definition_json = EXCLUDED.definition_json,
                 generation = t.generation + 1,
                 next_due_ms = EXCLUDED.next_due_ms,
                 attempt_at_ms = EXCLUDED.attempt_at_ms,
                 last_error = NULL
             WHERE t.definition_json <> EXCLUDED.definition_json
             RETURNING {COLUMNS}, (xmax = 0) AS created"
        );
        for _ in 0..3 {
            let row = self
                .timed(
                    sqlx::query(&statement)
                        .bind(&record.name)
                        .bind(&record.definition_json)
                        .bind(record.next_due_ms.map(to_i64))
                        .bind(record.attempt_at_ms.map(to_i64))
                        .fetch_optional(self.pool()),
                )
                .await
                .map_err(write_error)?;
            if let Some(row) = row {
                let created: bool = row.try_get("created").map_err(write_error)?;
                let stored = record_of(&row).map_err(corrupt_write)?;
                let put = if created {
                    TimerPut::Created
                } else {
                    TimerPut::Replaced
                };
                return Ok((put, stored));
            }
            // Same definition: unchanged, unless it was deleted meanwhile.
            if let Some(stored) = self
                .select_timer(&record.name)
                .await
                .map_err(corrupt_write)?
            {
                return Ok((TimerPut::Unchanged, stored));
            }
        }
        Err(WriteError::storage(
            "the timer changed under three attempts to put it",
        ))
    }

    async fn claim(&self, claim_ms: u64, limit: usize) -> Result<DueTimers, ReadError> {
        let now_ms: i64 = self
            .timed(
                sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                    .fetch_one(self.pool()),
            )
            .await
            .map_err(read_error)?;
        let rows = self
            .timed(
                sqlx::query(&format!(
                    "WITH due AS (
                         SELECT name FROM cairn_timers
                         WHERE attempt_at_ms <= $1
                         ORDER BY attempt_at_ms
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED)
                     UPDATE cairn_timers t SET attempt_at_ms = $1 + $3
                     FROM due WHERE t.name = due.name
                     RETURNING {}",
                    COLUMNS
                        .split(", ")
                        .map(|column| format!("t.{column}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .bind(now_ms)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(to_i64(claim_ms))
                .fetch_all(self.pool()),
            )
            .await
            .map_err(read_error)?;
        let mut timers = rows.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
        timers.sort_by_key(|timer| (timer.next_due_ms, timer.name.clone()));
        Ok(DueTimers {
            now_ms: to_u64(now_ms, "database time")?,
            timers,
        })
    }

    async fn record_progress(&self, progress: Vec<TimerProgress>) -> Result<usize, WriteError> {
        let names: Vec<&str> = progress.iter().map(|p| p.name.as_str()).collect();
        let generations: Vec<i64> = progress.iter().map(|p| to_i64(p.generation)).collect();
        let from_due: Vec<Option<i64>> =
            progress.iter().map(|p| p.from_due_ms.map(to_i64)).collect();
        let fired: Vec<Option<i64>> = progress.iter().map(|p| p.fired_ms.map(to_i64)).collect();
        let next_due: Vec<Option<i64>> =
            progress.iter().map(|p| p.next_due_ms.map(to_i64)).collect();
        let attempt: Vec<Option<i64>> = progress
            .iter()
            .map(|p| p.attempt_at_ms.map(to_i64))
            .collect();
        let errors: Vec<Option<&str>> = progress.iter().map(|p| p.last_error.as_deref()).collect();
        let result = self
            .timed(
                sqlx::query(
                    "UPDATE cairn_timers t SET
                         next_due_ms = p.next_due_ms,
                         attempt_at_ms = p.attempt_at_ms,
                         last_fired_ms = GREATEST(t.last_fired_ms, p.fired_ms),
                         last_error = p.last_error
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                                 $5::bigint[], $6::bigint[], $7::text[])
                          AS p(name, generation, from_due_ms, fired_ms, next_due_ms,
                               attempt_at_ms, last_error)
                     WHERE t.name = p.name AND t.generation = p.generation
                       AND t.next_due_ms IS NOT DISTINCT FROM p.from_due_ms",
                )
                .bind(&names)
                .bind(&generations)
                .bind(&from_due)
                .bind(&fired)
                .bind(&next_due)
                .bind(&attempt)
                .bind(&errors)
                .execute(self.pool()),
            )
            .await
            .map_err(write_error)?;
        Ok(result.rows_affected() as usize)
    }
}

impl TimerStore for PostgresStore {
    fn put_timer(
        &self,
        record: TimerRecord,
    ) -> BoxFuture<'_, Result<(TimerPut, TimerRecord), WriteError>> {
        Box::pin(self.upsert_timer(record))
    }

    fn timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerRecord>, ReadError>> {
        Box::pin(self.select_timer(name))
    }

    fn timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TimerRecord>, ReadError>> {
        Box::pin(async move {
            let rows = self
                .rows_by_name("cairn_timers", COLUMNS, after, limit)
                .await?;
            rows.iter().map(record_of).collect()
        })
    }

    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>> {
        Box::pin(async move {
            let result = self
                .timed(
                    sqlx::query("DELETE FROM cairn_timers WHERE name = $1")
                        .bind(name)
                        .execute(self.pool()),
                )
                .await
                .map_err(write_error)?;
            Ok(result.rows_affected() > 0)
        })
    }

    fn claim_due_timers(
        &self,
        _now_ms: u64,
        claim_ms: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<DueTimers, ReadError>> {
        Box::pin(self.claim(claim_ms, limit))
    }

    fn record_timer_progress(
        &self,
        progress: Vec<TimerProgress>,
    ) -> BoxFuture<'_, Result<usize, WriteError>> {
        if progress.is_empty() {
            return Box::pin(std::future::ready(Ok(0)));
        }
        Box::pin(self.record_progress(progress))
    }

    fn next_timer_attempt_ms(&self) -> BoxFuture<'_, Result<Option<u64>, ReadError>> {
        Box::pin(async move {
            let next: Option<i64> = self
                .timed(
                    sqlx::query_scalar("SELECT min(attempt_at_ms) FROM cairn_timers")
                        .fetch_one(self.pool()),
                )
                .await
                .map_err(read_error)?;
            optional(next, "attempt_at_ms")
        })
    }

    fn pending_timers(&self) -> BoxFuture<'_, Result<u64, ReadError>> {
        Box::pin(async move {
            let count: i64 = self
                .timed(
                    sqlx::query_scalar(
                        "SELECT count(*) FROM cairn_timers WHERE attempt_at_ms IS NOT NULL",
                    )
                    .fetch_one(self.pool()),
                )
                .await
                .map_err(read_error)?;
            to_u64(count, "count")
        })
    }
}

//! The PostgreSQL store's digests (see `crate::digests` and migration 11).
//!
//! The per-type digests of the 4,096 three-digit prefixes are a table,
//! `cairn_digests`, that writes never touch: a query of a short prefix
//! first brings it up to the head of the log, folding in the facts after
//! `cairn_digest_head.covered_seq` (read by seq, in transactions of at
//! most [`CATCH_UP_FACTS_MAX`] facts, each under the lock of that row so
//! that servers never fold a fact in twice), then sums the rows of the
//! prefix in SQL (`bit_xor`). So writes pay nothing, and a query pays for
//! the facts written since the last query plus a read of at most 4,096
//! rows per type. A query of a longer prefix reads the hashes and types
//! under it through the unique index on `hash` (about n / 4,096 rows).
//! Why not on-demand SQL alone, or a table kept by `cairn_put_facts`: see
//! `docs/design.md`, "Digests".

use std::collections::HashMap;
use std::time::Duration;

use cairn_fact::Hash;
use futures_util::future::BoxFuture;
use sqlx::{PgPool, Row};

use super::errors::read_error;
use super::transaction::{self, TransactionConnection};
use super::PostgresStore;
use crate::digests::{
    maintained_bucket, Digest, DigestAnswer, DigestQuery, DigestStore, MAINTAINED_DIGITS,
};
use crate::error::ReadError;

/// Facts folded into the digests per transaction at most, so that each
/// transaction stays short (and within the statement timeout) even when a
/// million facts were written since the last query.
pub const CATCH_UP_FACTS_MAX: i64 = 50_000;

fn words(xor: &[u8; 32]) -> [i64; 4] {
    std::array::from_fn(|word| {
        i64::from_be_bytes(xor[word * 8..word * 8 + 8].try_into().expect("8 bytes"))
    })
}

fn xor_from_words(words: [i64; 4]) -> [u8; 32] {
    let mut xor = [0u8; 32];
    for (word, value) in words.iter().enumerate() {
        xor[word * 8..word * 8 + 8].copy_from_slice(&value.to_be_bytes());
    }
    xor
}

/// Folds the facts after the covered seq into the digests, up to the head
/// of the log as it stands now, one transaction per
/// [`CATCH_UP_FACTS_MAX`] facts. Each transaction is bounded by
/// `timeout`.
async fn catch_up(pool: &PgPool, timeout: Duration) -> Result<(), ReadError> {
    let (covered, head): (i64, i64) = tokio::time::timeout(
        timeout,
        sqlx::query_as(
            "SELECT (SELECT covered_seq FROM cairn_digest_head),
                    (SELECT last_seq FROM cairn_log_head)",
        )
        .fetch_one(pool),
    )
    .await
    .map_err(|_| timed_out(timeout))?
    .map_err(read_error)?;
    if covered >= head {
        return Ok(());
    }
    loop {
        let done = tokio::time::timeout(timeout, catch_up_once(pool, head))
            .await
            .map_err(|_| timed_out(timeout))??;
        if done {
            return Ok(());
        }
    }
}

fn timed_out(timeout: Duration) -> ReadError {
    read_error(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from the database within {} ms",
            timeout.as_millis()
        ),
    )))
}

/// One transaction of [`catch_up`]; true once the digests cover `target`.
async fn catch_up_once(pool: &PgPool, target: i64) -> Result<bool, ReadError> {
    let mut connection = TransactionConnection::acquire(pool)
        .await
        .map_err(read_error)?;
    let mut transaction = connection.begin().await.map_err(read_error)?;
    let covered: i64 = sqlx::query_scalar("SELECT covered_seq FROM cairn_digest_head FOR UPDATE")
        .fetch_one(&mut *transaction)
        .await
        .map_err(read_error)?;
    if covered >= target {
        transaction::commit(transaction).await.map_err(read_error)?;
        return Ok(true);
    }
    let up_to = target.min(covered + CATCH_UP_FACTS_MAX);
    // Facts up to the head of the log are committed (seqs are assigned
    // under the head's lock until commit), so the range is gap-free.
    let rows = sqlx::query(
        "SELECT hash, type_name FROM cairn_facts WHERE seq > $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(covered)
    .bind(up_to)
    .fetch_all(&mut *transaction)
    .await
    .map_err(read_error)?;
    if rows.len() as i64 != up_to - covered {
        return Err(ReadError::corrupt(format!(
            "the log has a gap between seq {covered} and seq {up_to}: {} facts found",
            rows.len()
        )));
    }
    let mut deltas: HashMap<(String, u16), Digest> = HashMap::new();
    for row in &rows {
        let hash_bytes: Vec<u8> = row.try_get("hash").map_err(read_error)?;
        let hash = Hash(
            hash_bytes
                .try_into()
                .map_err(|_| ReadError::corrupt("a stored hash is not 32 bytes"))?,
        );
        let type_name: String = row.try_get("type_name").map_err(read_error)?;
        deltas
            .entry((type_name, maintained_bucket(&hash)))
            .or_default()
            .add(&hash);
    }
    let mut type_names = Vec::with_capacity(deltas.len());
    let mut buckets = Vec::with_capacity(deltas.len());
    let mut counts = Vec::with_capacity(deltas.len());
    let mut columns: [Vec<i64>; 4] = Default::default();
    for ((type_name, bucket), digest) in deltas {
        type_names.push(type_name);
        buckets.push(i32::from(bucket));
        counts.push(digest.count as i64);
        for (column, word) in columns.iter_mut().zip(words(&digest.xor)) {
            column.push(word);
        }
    }
    let [x0, x1, x2, x3] = columns;
    sqlx::query(
        "INSERT INTO cairn_digests AS d (type_name, bucket, count, x0, x1, x2, x3)
         SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[],
                              $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
         ON CONFLICT (bucket, type_name) DO UPDATE SET
             count = d.count + excluded.count,
             x0 = d.x0 # excluded.x0, x1 = d.x1 # excluded.x1,
             x2 = d.x2 # excluded.x2, x3 = d.x3 # excluded.x3",
    )
    .bind(&type_names)
    .bind(&buckets)
    .bind(&counts)
    .bind(&x0)
    .bind(&x1)
    .bind(&x2)
    .bind(&x3)
    .execute(&mut *transaction)
    .await
    .map_err(read_error)?;
    sqlx::query("UPDATE cairn_digest_head SET covered_seq = $1")
        .bind(up_to)
        .execute(&mut *transaction)
        .await
        .map_err(read_error)?;
    transaction::commit(transaction).await.map_err(read_error)?;
    Ok(up_to >= target)
}

/// A prefix shorter than [`MAINTAINED_DIGITS`], from the table.
async fn maintained_answer(
    store: &PostgresStore,
    query: &DigestQuery,
) -> Result<DigestAnswer, ReadError> {
    catch_up(store.pool(), store.operation_timeout).await?;
    let range = query.prefix.maintained_range();
    let shift = 4 * (MAINTAINED_DIGITS - query.prefix.len() - 1);
    let rows = store
        .timed(
            sqlx::query(
                "SELECT type_name, (bucket >> $3) & 15 AS child, sum(count)::bigint AS count,
                        bit_xor(x0) AS x0, bit_xor(x1) AS x1, bit_xor(x2) AS x2, bit_xor(x3) AS x3
                 FROM cairn_digests WHERE bucket >= $1 AND bucket < $2
                 GROUP BY type_name, child",
            )
            .bind(i32::from(range.start))
            .bind(i32::from(range.end))
            .bind(shift as i32)
            .fetch_all(store.pool()),
        )
        .await
        .map_err(read_error)?;
    let mut buckets = [Digest::default(); 16];
    for row in &rows {
        let type_name: String = row.try_get("type_name").map_err(read_error)?;
        if !(query.types)(&type_name) {
            continue;
        }
        let child: i32 = row.try_get("child").map_err(read_error)?;
        let count: i64 = row.try_get("count").map_err(read_error)?;
        let mut xor_words = [0i64; 4];
        for (word, column) in xor_words.iter_mut().zip(["x0", "x1", "x2", "x3"]) {
            *word = row.try_get(column).map_err(read_error)?;
        }
        buckets[child as usize & 15].merge(&Digest {
            count: count as u64,
            xor: xor_from_words(xor_words),
        });
    }
    Ok(DigestAnswer::from_buckets(buckets))
}

/// A prefix of [`MAINTAINED_DIGITS`] digits or more, from the facts.
async fn scanned_answer(
    store: &PostgresStore,
    query: &DigestQuery,
) -> Result<DigestAnswer, ReadError> {
    let lower = query.prefix.lower_bound();
    let upper = query.prefix.upper_bound();
    let rows = store
        .timed(
            sqlx::query(
                "SELECT hash, type_name FROM cairn_facts
                 WHERE hash >= $1 AND ($2::bytea IS NULL OR hash < $2)",
            )
            .bind(lower.as_slice())
            .bind(upper.as_ref().map(|upper| upper.as_slice()))
            .fetch_all(store.pool()),
        )
        .await
        .map_err(read_error)?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in &rows {
        let hash_bytes: Vec<u8> = row.try_get("hash").map_err(read_error)?;
        let hash = Hash(
            hash_bytes
                .try_into()
                .map_err(|_| ReadError::corrupt("a stored hash is not 32 bytes"))?,
        );
        let type_name: String = row.try_get("type_name").map_err(read_error)?;
        facts.push((hash, type_name));
    }
    Ok(DigestAnswer::from_facts(
        query,
        facts
            .iter()
            .map(|(hash, type_name)| (*hash, type_name.as_str())),
    ))
}

impl DigestStore for PostgresStore {
    fn digests<'a>(
        &'a self,
        query: &'a DigestQuery,
    ) -> BoxFuture<'a, Result<DigestAnswer, ReadError>> {
        Box::pin(async move {
            if query.prefix.len() < MAINTAINED_DIGITS {
                maintained_answer(self, query).await
            } else {
                scanned_answer(self, query).await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let xor: [u8; 32] = std::array::from_fn(|n| (n * 37 + 200) as u8);
        assert_eq!(xor_from_words(words(&xor)), xor);
    }
}

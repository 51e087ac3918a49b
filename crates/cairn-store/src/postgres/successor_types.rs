//! The distinct types of a fact's successors on PostgreSQL
//! ([`crate::Store::successor_types`]), by a loose index scan: a recursive
//! query that asks the primary key of `cairn_predecessors` (predecessor,
//! successor type, seq, role) for the first type after the previous one,
//! one index probe per type, instead of a `DISTINCT` over every successor.
//!
//! The index sorts types in the database's collation, and the contract
//! wants byte order. Where the two agree (C, POSIX, C.UTF-8, ucs_basic: a
//! probe at connect tells), the scan stops after `limit` types and starts
//! after `after_type`. Where they do not (a database created with a
//! natural-language collation), the scan lists every type of the fact in
//! the index's order — still one probe per type, never one row per
//! successor — and the store sorts, skips and cuts them by bytes.

use sqlx::PgPool;

/// Every distinct successor type of `$1` after `$2` (none: from the first)
/// in the index's order, at most `$3`.
const LOOSE_INDEX_SCAN: &str = "
    WITH RECURSIVE types(type_name) AS (
        (SELECT successor_type FROM cairn_predecessors
         WHERE predecessor = $1 AND successor_type > coalesce($2::text, '')
         ORDER BY successor_type LIMIT 1)
        UNION ALL
        SELECT (SELECT p.successor_type FROM cairn_predecessors p
                WHERE p.predecessor = $1 AND p.successor_type > t.type_name
                ORDER BY p.successor_type LIMIT 1)
        FROM types t
        WHERE t.type_name IS NOT NULL
    )
    SELECT type_name FROM types WHERE type_name IS NOT NULL LIMIT $3";

/// Whether the database sorts type names as bytes do, asked once at
/// connect: it sorts probes that tell the common collations apart (case
/// before or beside each other, punctuation ignored or not, digits, and
/// prefixes) and compares the order with Rust's. Type names hold only
/// `[A-Za-z0-9_.]`, so a collation that orders these by code point orders
/// every type name by bytes.
pub(super) async fn sorts_type_names_as_bytes(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let probes = type_name_probes();
    let sorted: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(array_agg(probe ORDER BY probe), '{}') FROM unnest($1::text[]) AS probe",
    )
    .bind(&probes)
    .fetch_one(pool)
    .await?;
    let mut expected = probes;
    expected.sort();
    Ok(sorted == expected)
}

/// Single characters of type names, every pair of them, and triples
/// around `.` and `_` (which natural-language collations skip at first).
fn type_name_probes() -> Vec<String> {
    let alphabet: Vec<char> = ('0'..='9')
        .chain('A'..='Z')
        .chain('a'..='z')
        .chain(['.', '_'])
        .collect();
    let mut probes: Vec<String> = alphabet.iter().map(char::to_string).collect();
    for first in &alphabet {
        for second in &alphabet {
            probes.push(format!("{first}{second}"));
        }
    }
    for middle in ['.', '_'] {
        for last in ['A', 'a', 'B', 'b', '0'] {
            probes.push(format!("A{middle}{last}"));
            probes.push(format!("A{last}{middle}"));
        }
    }
    probes
}

/// See [`crate::Store::successor_types`] and the module documentation.
pub(super) async fn successor_types(
    pool: &PgPool,
    sorts_as_bytes: bool,
    predecessor: &cairn_fact::Hash,
    after_type: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, sqlx::Error> {
    let limit_rows = i64::try_from(limit).unwrap_or(i64::MAX);
    if sorts_as_bytes {
        return sqlx::query_scalar(LOOSE_INDEX_SCAN)
            .bind(predecessor.as_bytes().as_slice())
            .bind(after_type)
            .bind(limit_rows)
            .fetch_all(pool)
            .await;
    }
    let mut types: Vec<String> = sqlx::query_scalar(LOOSE_INDEX_SCAN)
        .bind(predecessor.as_bytes().as_slice())
        .bind(None::<&str>)
        .bind(i64::MAX)
        .fetch_all(pool)
        .await?;
    types.sort();
    types.retain(|type_name| after_type.is_none_or(|after_type| type_name.as_str() > after_type));
    types.truncate(limit);
    Ok(types)
}

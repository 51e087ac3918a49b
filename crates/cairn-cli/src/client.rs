//! Client commands: `hash` (offline) and `put`, `get`, `successors`, `log`,
//! `tail`, which talk to a server through the SDK and print its answers as
//! JSON.
//!
//! `put` reads its input with the same strict parser as `hash` and the
//! server (`cairn_fact`: duplicate keys, number ranges, nesting), so input
//! the server would refuse is refused here with the same message and code,
//! before anything is sent; the facts go out in their canonical form.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use cairn_api::{ErrorCode, LogQuery, PutFactsAnswer, SuccessorsQuery};
use cairn_client::limits::FACT_CANONICAL_BYTES_MAX;
use cairn_fact::{
    parse_json, CanonicalFact, FactError, Hash, JsonError, FACT_CANONICAL_BYTES_MAX_DEFAULT,
    JSON_DEPTH_MAX,
};
use serde::Serialize;

use crate::connection::{explain, ServerArg};

/// Long-poll of each request of `cairn tail`.
const TAIL_WAIT_MS: u64 = 30_000;
/// Facts per page of `cairn tail`.
const TAIL_PAGE_FACTS_MAX: u32 = 1_000;

const _: () = assert!(TAIL_WAIT_MS <= cairn_api::limits::WAIT_MS_MAX);
const _: () = assert!(TAIL_PAGE_FACTS_MAX as usize <= cairn_api::limits::LOG_LIMIT_MAX);

/// Options of `cairn successors`.
#[derive(clap::Args)]
pub struct SuccessorsArgs {
    /// The predecessor's hash.
    #[arg(value_parser = parse_hash)]
    hash: Hash,
    /// Successor type.
    #[arg(long = "type")]
    type_name: String,
    /// Only successors naming the fact in this role.
    #[arg(long)]
    role: Option<String>,
    /// Exclude successors that have a successor of this type (repeatable).
    #[arg(long)]
    without: Vec<String>,
    /// At most this many facts.
    #[arg(long)]
    limit: Option<u32>,
    /// Only successors after this seq.
    #[arg(long)]
    after: Option<u64>,
    /// Long-poll up to this many milliseconds for a first result.
    #[arg(long)]
    wait_ms: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

/// A hash given on the command line, refused here (with the server's code)
/// when it is not one, rather than sent.
pub fn parse_hash(text: &str) -> Result<Hash, String> {
    Hash::from_hex(text).map_err(|_| {
        format!(
            "a hash is 64 lowercase hexadecimal characters ({})",
            ErrorCode::InvalidHash
        )
    })
}

/// Prints an answer as indented JSON.
pub fn print_pretty(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        None => std::io::stdin().read_to_end(&mut bytes).map(|_| ())?,
        Some(path) if path == Path::new("-") => {
            std::io::stdin().read_to_end(&mut bytes).map(|_| ())?
        }
        Some(path) => {
            bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
    }
    Ok(bytes)
}

/// Why a fact was refused, worded the same by `hash` and `put`: the reason
/// and its stable code.
fn refused(error: FactError) -> anyhow::Error {
    anyhow!("{error} ({})", error.code())
}

/// Why `put`'s input was refused: as [`refused`], after a plain "not JSON"
/// when the input is not JSON at all.
fn refused_input(error: FactError) -> anyhow::Error {
    let is_not_json = matches!(
        error,
        FactError::Json(JsonError::Syntax { .. } | JsonError::InvalidUtf8 { .. })
    );
    let described = refused(error);
    if is_not_json {
        described.context("the input is not JSON (a fact, or an array of facts)")
    } else {
        described
    }
}

/// `cairn hash`: prints the hash of one fact, computed offline.
pub fn hash(file: Option<&Path>) -> anyhow::Result<()> {
    let bytes = read_input(file)?;
    let fact =
        CanonicalFact::from_json(&bytes, FACT_CANONICAL_BYTES_MAX_DEFAULT).map_err(refused)?;
    println!("{}", fact.hash);
    Ok(())
}

/// The facts of `put`'s input: one fact, read as `hash` reads it, or an
/// array of facts. Facts are checked against the SDK's size ceiling
/// only; the server applies its own (configurable) limit.
fn facts_of_input(bytes: &[u8]) -> anyhow::Result<Vec<CanonicalFact>> {
    let first_byte = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first_byte != Some(&b'[') {
        let fact =
            CanonicalFact::from_json(bytes, FACT_CANONICAL_BYTES_MAX).map_err(refused_input)?;
        return Ok(vec![fact]);
    }
    // The array is one level of nesting around the facts.
    let parsed = parse_json(bytes, JSON_DEPTH_MAX + 1)
        .map_err(|error| refused_input(FactError::Json(error)))?;
    let Some(values) = parsed.as_array() else {
        unreachable!("a JSON text that starts with [ is an array");
    };
    if values.is_empty() {
        bail!(
            "the input is an empty array: there is no fact to store ({})",
            ErrorCode::EmptyBatch
        );
    }
    values
        .iter()
        .enumerate()
        .map(|(fact_idx, value)| {
            CanonicalFact::from_value(value, FACT_CANONICAL_BYTES_MAX)
                .map_err(|error| refused(error).context(format!("facts[{fact_idx}]")))
        })
        .collect()
}

/// `cairn put`: stores one fact or an array of facts (in order, in batches
/// within the server's limits) and prints the results.
pub async fn put(server: &ServerArg, file: Option<&Path>) -> anyhow::Result<()> {
    let facts = facts_of_input(&read_input(file)?)?;
    let results = server.client()?.put_facts(facts).await.map_err(explain)?;
    print_pretty(&PutFactsAnswer { results })
}

/// `cairn get`.
pub async fn get(server: &ServerArg, hash: &Hash) -> anyhow::Result<()> {
    let stored = server
        .client()?
        .get_fact(hash)
        .await
        .map_err(explain)?
        .ok_or_else(|| anyhow!("{}: no fact with hash {hash}", ErrorCode::NotFound))?;
    print_pretty(&stored)
}

/// `cairn successors`.
pub async fn successors(args: &SuccessorsArgs) -> anyhow::Result<()> {
    let query = SuccessorsQuery {
        of: args.hash,
        type_name: args.type_name.clone(),
        role: args.role.clone(),
        without: args.without.clone(),
        limit: args.limit,
        after: args.after,
        wait_ms: args.wait_ms,
    };
    let page = args
        .server
        .client()?
        .successors_page(&query)
        .await
        .map_err(explain)?;
    print_pretty(&page)
}

/// `cairn log`.
pub async fn log(server: &ServerArg, after: u64, limit: u32) -> anyhow::Result<()> {
    let query = LogQuery {
        after: Some(after),
        limit: Some(limit),
        wait_ms: None,
    };
    let page = server.client()?.log(query).await.map_err(explain)?;
    print_pretty(&page)
}

/// `cairn tail`: follows the log with long-polls until interrupted, from
/// `after` or else from the log's current end.
pub async fn tail(server: &ServerArg, after: Option<u64>) -> anyhow::Result<()> {
    let client = server.client()?;
    let mut after = match after {
        Some(after) => after,
        None => client.log_last_seq().await.map_err(explain)?,
    };
    loop {
        let query = LogQuery {
            after: Some(after),
            limit: Some(TAIL_PAGE_FACTS_MAX),
            wait_ms: Some(TAIL_WAIT_MS),
        };
        let page = client.log(query).await.map_err(explain)?;
        for entry in &page.facts {
            println!("{}", serde_json::to_string(entry)?);
        }
        after = page.next;
    }
}

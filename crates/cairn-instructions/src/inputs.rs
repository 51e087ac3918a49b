//! The fixed inputs every path measures: facts as JSON text, the same on
//! every run (drawn from one seed, with no timestamps), and their parsed
//! forms and batches for the paths that start from validated facts.
//!
//! The data set is a small shop: orders, lines that name their order
//! (role `order`), and returns that name a line (role `line`), so the
//! store's predecessor checks and successors index have work, and a
//! successors query `without` returns has something to exclude. Fields mix
//! what canonicalization has to handle: members out of order, whitespace,
//! integers and decimals, non-ASCII text and escapes, nested objects and
//! arrays.

use anyhow::Context;
use cairn_delivery::SplitMix64;
use cairn_fact::{CanonicalFact, Hash};

/// Facts in the data set.
pub const FACTS: usize = 5_000;
/// Orders among them (the first facts); lines name them in turn.
pub const ORDERS: usize = 10;
/// Every this many lines, the line is returned (a `Bench.Return` fact
/// follows it).
pub const LINES_PER_RETURN: usize = 50;
/// Facts per batch of the store paths.
pub const BATCH_FACTS: usize = 100;
/// The limit of one fact's canonical bytes the paths parse with (the
/// server's default).
pub const CANONICAL_BYTES_MAX: usize = 64 * 1024;
/// The type of lines, whose successors queries `store-read` runs.
pub const LINE_TYPE: &str = "Bench.Line";
/// The type of returns, which a successors query excludes.
pub const RETURN_TYPE: &str = "Bench.Return";

const SEED: u64 = 0x00C0_FFEE_CA12_0018;

/// The data set as JSON texts, in an order that names predecessors first.
pub fn facts_json() -> anyhow::Result<Vec<String>> {
    let mut random = SplitMix64::new(SEED);
    let mut texts = Vec::with_capacity(FACTS);
    let mut order_hashes = Vec::with_capacity(ORDERS);
    for order in 0..ORDERS {
        let text = order_json(order, &mut random);
        order_hashes.push(hash_of(&text)?);
        texts.push(text);
    }
    let mut line = 0;
    while texts.len() < FACTS {
        let text = line_json(line, &order_hashes[line % ORDERS], &mut random);
        let line_hash = hash_of(&text)?;
        texts.push(text);
        if line % LINES_PER_RETURN == LINES_PER_RETURN - 1 && texts.len() < FACTS {
            texts.push(return_json(line, &line_hash, &mut random));
        }
        line += 1;
    }
    Ok(texts)
}

/// The data set parsed, in batches of [`BATCH_FACTS`].
pub fn fact_batches() -> anyhow::Result<Vec<Vec<CanonicalFact>>> {
    let facts = facts_json()?
        .iter()
        .map(|text| parse(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(facts
        .chunks(BATCH_FACTS)
        .map(<[CanonicalFact]>::to_vec)
        .collect())
}

/// The hashes of the orders (the first [`ORDERS`] facts).
pub fn order_hashes(batches: &[Vec<CanonicalFact>]) -> Vec<Hash> {
    batches
        .iter()
        .flatten()
        .take(ORDERS)
        .map(|fact| fact.hash)
        .collect()
}

/// Parses one fact of the data set.
pub fn parse(text: &str) -> anyhow::Result<CanonicalFact> {
    CanonicalFact::from_json(text.as_bytes(), CANONICAL_BYTES_MAX)
        .with_context(|| format!("a fact of the data set is refused: {text}"))
}

fn hash_of(text: &str) -> anyhow::Result<Hash> {
    Ok(parse(text)?.hash)
}

const COLOURS: [&str; 6] = ["red", "grün", "bleu", "黒", "white", "naranja"];
const WORDS: [&str; 8] = [
    "sturdy",
    "linen",
    "café",
    "\\\"quoted\\\"",
    "tab\\there",
    "naïve",
    "√2",
    "emoji 🙂",
];

/// One of `choices`, drawn uniformly.
fn pick(random: &mut SplitMix64, choices: &[&'static str]) -> &'static str {
    choices[(random.next_u64() % choices.len() as u64) as usize]
}

fn order_json(order: usize, random: &mut SplitMix64) -> String {
    let customer = random.in_range(0, 100_000);
    let total_cents = random.in_range(100, 1_000_000);
    format!(
        "{{\"type\":\"Bench.Order\",\"fields\":{{\"order_id\":\"order-{order:05}\",\
         \"customer\":\"customer-{customer}\",\"total\":{}.{:02},\
         \"placed_at\":\"2026-01-01T00:{:02}:00Z\",\"channel\":\"web\"}},\"predecessors\":{{}}}}",
        total_cents / 100,
        total_cents % 100,
        order % 60
    )
}

fn line_json(line: usize, order: &Hash, random: &mut SplitMix64) -> String {
    let sku = random.in_range(0, 10_000);
    let quantity = random.in_range(1, 10);
    let price_cents = random.in_range(1, 100_000);
    let colour = pick(random, &COLOURS);
    let words: Vec<&str> = (0..6).map(|_| pick(random, &WORDS)).collect();
    let weight = random.next_u64() % 1_000_000;
    format!(
        "{{ \"predecessors\": {{ \"order\": \"{order}\" }},\n  \"type\": \"Bench.Line\",\n  \
         \"fields\": {{ \"sku\": \"SKU-{sku:05}\", \"quantity\": {quantity}, \
         \"unit_price\": {}.{:02}, \"line\": {line}, \"weight_kg\": {weight}e-3, \
         \"description\": \"{}\", \"attributes\": {{ \"size\": \"M\", \"colour\": \"{colour}\", \
         \"gift\": {} }}, \"tags\": [\"{}\", \"{}\", null] }} }}",
        price_cents / 100,
        price_cents % 100,
        words.join(" "),
        line % 7 == 0,
        words[0],
        words[1],
    )
}

fn return_json(line: usize, line_hash: &Hash, random: &mut SplitMix64) -> String {
    let reason = pick(random, &WORDS);
    format!(
        "{{\"type\":\"Bench.Return\",\"predecessors\":{{\"line\":\"{line_hash}\"}},\
         \"fields\":{{\"line\":{line},\"reason\":\"{reason}\"}}}}"
    )
}

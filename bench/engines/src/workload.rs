//! The fact-like records every candidate ingests, generated deterministically from their
//! index so reads can name a random existing hash without keeping 32 bytes per fact in memory
//! (that would distort the peak RSS being measured).

use rand::{Rng, SeedableRng};

/// Distinct type names, about as many as a real deployment has.
pub const TYPE_NAMES_COUNT: u64 = 20;
/// One fact in `PREDECESSOR_ONE_IN` names one earlier fact.
const PREDECESSOR_ONE_IN: u64 = 10;
/// Printable characters for the random parts of a body (JSON-safe).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.";
const WORDS: [&str; 16] = [
    "order",
    "placed",
    "shipped",
    "customer",
    "invoice",
    "paid",
    "warehouse",
    "berlin",
    "express",
    "standard",
    "refund",
    "pending",
    "item",
    "quantity",
    "priority",
    "note",
];

/// One fact as the store sees it: its hash, type, canonical JSON and at most one predecessor.
pub struct Record {
    pub seq: u64,
    pub hash: [u8; 32],
    pub type_name: String,
    pub body: Vec<u8>,
    pub predecessor: Option<[u8; 32]>,
}

/// The hash of fact `index`: a random-looking 32-byte BLAKE3 output, as a content hash is.
pub fn hash_of(index: u64) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cairn-engines-bench");
    hasher.update(&index.to_le_bytes());
    *hasher.finalize().as_bytes()
}

pub fn type_name_of(index: u64) -> String {
    format!("Shop.Orders.Event{:02}", index % TYPE_NAMES_COUNT)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Fact `index` (its seq is `index + 1`): a canonical-JSON-like body of about 330 bytes with a
/// mix of repeated structure (keys, a small vocabulary) and random text, so compression sees
/// something like real facts.
pub fn record_of(index: u64) -> Record {
    let mut random = rand::rngs::SmallRng::seed_from_u64(index ^ 0x9e37_79b9_7f4a_7c15);
    let hash = hash_of(index);
    let type_name = type_name_of(index);
    let predecessor = (index > 0 && random.gen_range(0..PREDECESSOR_ONE_IN) == 0)
        .then(|| hash_of(random.gen_range(0..index)));
    let note: String = (0..90)
        .map(|_| ALPHABET[random.gen_range(0..ALPHABET.len())] as char)
        .collect();
    let words: Vec<&str> = (0..6)
        .map(|_| WORDS[random.gen_range(0..WORDS.len())])
        .collect();
    let predecessors = match &predecessor {
        Some(predecessor) => format!(r#"{{"order":"{}"}}"#, hex(predecessor)),
        None => "{}".to_string(),
    };
    let body = format!(
        r#"{{"fields":{{"amount_cents":{},"customer":"customer-{}","note":"{}","quantity":{},"tags":["{}"]}},"predecessors":{},"type":"{}"}}"#,
        random.gen_range(0..1_000_000u32),
        random.gen_range(0..50_000u32),
        note,
        random.gen_range(1..100u32),
        words.join("\",\""),
        predecessors,
        type_name,
    );
    Record {
        seq: index + 1,
        hash,
        type_name,
        body: body.into_bytes(),
        predecessor,
    }
}

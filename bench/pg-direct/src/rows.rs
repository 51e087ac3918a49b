//! The rows a Cairn server stores for the facts of `cairn bench --workload write`, built on
//! the client so that they can be written straight into PostgreSQL.
//!
//! `cairn bench` sends `{"type":"Bench.Item","predecessors":{},"fields":{"run":R,"client":C,
//! "n":N,"payload":"…"}}`, whose `fields` object is exactly `--fields-bytes` long (the random
//! payload fills what the other fields leave). Cairn stores the RFC 8785 canonical form: the
//! same characters with the keys sorted, so its length is 48 + fields bytes + 1 (305 bytes for
//! the default 256). The hash is BLAKE3 of the canonical bytes (32 bytes), the type name
//! `Bench.Item`, and there are no predecessor edges. `--edges-per-fact E` adds E predecessors
//! per fact (roles `p0`…, naming the E facts before it, written into the canonical JSON too),
//! for runs that want the successors index to carry load; `cairn bench` itself sends none.

use std::collections::VecDeque;

/// The type name of every benchmark fact (as `cairn bench` writes it).
pub const TYPE_NAME: &str = "Bench.Item";
/// Characters of the random payload (as `cairn bench` draws them).
const PAYLOAD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Predecessor edges per fact at most.
pub const EDGES_PER_FACT_MAX: usize = 8;

/// One batch in columns, ready to be bound as arrays or copied row by row.
#[derive(Default)]
pub struct Batch {
    /// Sequence numbers the direct methods write (the function assigns its own).
    pub seqs: Vec<i64>,
    /// BLAKE3 of each canonical form, 32 bytes.
    pub hashes: Vec<Vec<u8>>,
    /// `Bench.Item` per fact.
    pub type_names: Vec<&'static str>,
    /// The canonical JSON of each fact.
    pub canonicals: Vec<Vec<u8>>,
    /// Per edge: the named fact's hash.
    pub edge_predecessors: Vec<Vec<u8>>,
    /// Per edge: the naming fact's seq.
    pub edge_successor_seqs: Vec<i64>,
    /// Per edge: the naming fact's 1-based position in the batch (for `cairn_put_facts`).
    pub edge_positions: Vec<i32>,
    /// Per edge: the role.
    pub edge_roles: Vec<String>,
    /// Predecessors that are not in this batch, each once (for `cairn_put_facts`).
    pub external_predecessors: Vec<Vec<u8>>,
}

impl Batch {
    /// Facts in the batch.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Bytes of canonical JSON in the batch.
    pub fn canonical_bytes(&self) -> usize {
        self.canonicals.iter().map(Vec::len).sum()
    }
}

/// Produces unique benchmark facts, numbered from 1, one batch at a time.
pub struct FactSource {
    run_id: u64,
    fields_bytes: usize,
    edges_per_fact: usize,
    /// The number of the last fact produced (`n` in its fields; also its seq).
    last_n: u64,
    /// Hashes of the last `edges_per_fact` facts, newest first.
    recent_hashes: VecDeque<[u8; 32]>,
}

impl FactSource {
    /// A source whose facts carry `run_id` (so that two runs never produce the same fact).
    pub fn new(run_id: u64, fields_bytes: usize, edges_per_fact: usize) -> Self {
        assert!(edges_per_fact <= EDGES_PER_FACT_MAX);
        FactSource {
            run_id,
            fields_bytes,
            edges_per_fact,
            last_n: 0,
            recent_hashes: VecDeque::with_capacity(edges_per_fact + 1),
        }
    }

    /// The next `n_facts` facts. Fact n names the facts n-1, n-2, … (as many as exist, up to
    /// `edges_per_fact`), so every predecessor is stored before the fact that names it.
    pub fn next_batch(&mut self, n_facts: usize) -> Batch {
        let mut batch = Batch::default();
        let first_n = self.last_n + 1;
        for _ in 0..n_facts {
            self.last_n += 1;
            let n = self.last_n;
            let position = batch.seqs.len() as i32 + 1;
            let predecessors: Vec<[u8; 32]> = self.recent_hashes.iter().copied().collect();
            let canonical = self.canonical_json(n, &predecessors);
            let hash = *blake3::hash(canonical.as_bytes()).as_bytes();
            for (edge_idx, predecessor) in predecessors.iter().enumerate() {
                batch.edge_predecessors.push(predecessor.to_vec());
                batch.edge_successor_seqs.push(n as i64);
                batch.edge_positions.push(position);
                batch.edge_roles.push(format!("p{edge_idx}"));
                // Fact n names n-1-edge_idx; it is outside the batch if that is before first_n.
                let external = n - 1 - (edge_idx as u64) < first_n;
                if external && !batch.external_predecessors.iter().any(|e| e == predecessor) {
                    batch.external_predecessors.push(predecessor.to_vec());
                }
            }
            batch.seqs.push(n as i64);
            batch.hashes.push(hash.to_vec());
            batch.type_names.push(TYPE_NAME);
            batch.canonicals.push(canonical.into_bytes());
            if self.edges_per_fact > 0 {
                self.recent_hashes.push_front(hash);
                self.recent_hashes.truncate(self.edges_per_fact);
            }
        }
        batch
    }

    /// The canonical form of fact `n`: keys sorted, no white space, `fields` exactly
    /// `fields_bytes` long (as long as the fixed fields leave room for a payload).
    fn canonical_json(&self, n: u64, predecessors: &[[u8; 32]]) -> String {
        let client = 0;
        let run_id = self.run_id;
        let fields_start = format!("{{\"client\":{client},\"n\":{n},\"payload\":\"");
        let fields_end = format!("\",\"run\":{run_id}}}");
        let payload_len = self
            .fields_bytes
            .saturating_sub(fields_start.len() + fields_end.len());
        let mut json = String::with_capacity(self.fields_bytes + 64 + predecessors.len() * 80);
        json.push_str("{\"fields\":");
        json.push_str(&fields_start);
        // The same payload `cairn bench` draws for client 0, fact n of this run.
        let mut state = run_id ^ (client << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..payload_len {
            let index = (next_random(&mut state) % PAYLOAD_ALPHABET.len() as u64) as usize;
            json.push(char::from(PAYLOAD_ALPHABET[index]));
        }
        json.push_str(&fields_end);
        json.push_str(",\"predecessors\":{");
        for (edge_idx, predecessor) in predecessors.iter().enumerate() {
            if edge_idx > 0 {
                json.push(',');
            }
            let hex = blake3::Hash::from(*predecessor).to_hex();
            json.push_str(&format!("\"p{edge_idx}\":\"{hex}\""));
        }
        json.push_str("},\"type\":\"");
        json.push_str(TYPE_NAME);
        json.push_str("\"}");
        json
    }
}

/// The xorshift step `cairn bench` uses for payloads.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_length_matches_cairn_bench_facts() {
        let mut source = FactSource::new(0x1F_FFFF_FFFF_FFFF, 256, 0);
        let batch = source.next_batch(1_000);
        assert!(batch.canonicals.iter().all(|c| c.len() == 48 + 256 + 1));
        assert!(batch.hashes.iter().all(|h| h.len() == 32));
        assert!(batch.edge_predecessors.is_empty());
        assert_eq!(batch.seqs.first(), Some(&1));
        assert_eq!(batch.seqs.last(), Some(&1_000));
    }

    #[test]
    fn edges_name_earlier_facts_and_mark_external_ones() {
        let mut source = FactSource::new(7, 256, 2);
        let first = source.next_batch(3);
        // fact 1 names nothing, fact 2 names 1, fact 3 names 2 and 1.
        assert_eq!(first.edge_successor_seqs, vec![2, 3, 3]);
        assert!(first.external_predecessors.is_empty());
        assert_eq!(first.edge_predecessors[0], first.hashes[0]);
        let second = source.next_batch(2);
        // fact 4 names 3 and 2 (both outside), fact 5 names 4 (inside) and 3 (outside again).
        assert_eq!(second.edge_positions, vec![1, 1, 2, 2]);
        assert_eq!(
            second.external_predecessors,
            vec![first.hashes[2].clone(), first.hashes[1].clone()]
        );
    }
}

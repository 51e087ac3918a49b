//! The facts a run tried to write, kept compactly for an hour of writes:
//! each fact is its 32-byte hash and a few numbers, never its bytes (its
//! hash stands for them: it is the BLAKE3 of the canonical bytes, so two
//! canonical forms are equal exactly when their hashes are). Facts are
//! numbered in the order they were registered, and everything else in the
//! history refers to a fact by that number.

use std::collections::HashMap;
use std::ops::Range;

use cairn_fact::Hash;

/// What the client knows about a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Answered with the fact's `seq`: it must be durable.
    Acked {
        /// The `seq` the server answered.
        seq: u64,
    },
    /// Refused with a 4xx: it must not be stored (unless another attempt
    /// of the same fact was acknowledged).
    Refused {
        /// The error code of the refusal.
        code: Box<str>,
    },
    /// No definite answer: stored or not, the oracle may not assume either.
    Unknown,
    /// Registered before its first attempt; no answer yet.
    Pending,
}

/// A hash the history refers to: a written fact, or another hash (an
/// ordering key, a predecessor that was never written), kept once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashRef {
    /// The fact at this index of the [`FactTable`].
    Fact(u32),
    /// The hash at this index of the table's other hashes.
    Other(u32),
}

/// Where a read saw a fact: each must stay durable at the `seq` it was
/// read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The `seq` the fact was read at.
    pub seq: u64,
    /// The server it was read through.
    pub server_idx: usize,
}

/// One fact the workload tried to write.
#[derive(Clone, Debug)]
pub struct WrittenFact {
    /// Its hash, as the client computed it from its canonical bytes.
    pub hash: Hash,
    /// Its predecessors: a range of [`FactTable::predecessors`].
    predecessors: Range<u32>,
    /// Its ordering key (the hash of its `key` predecessor).
    pub key: HashRef,
    /// Consumers always fail it, so it must end in the dead letters.
    pub poison: bool,
    /// The store it was written to: the index of the server whose `seq`
    /// its acknowledgement and reads at home carry (0 when every server
    /// shares one store; its writer's server in a ring of deployments).
    pub store_idx: u8,
    /// The best outcome seen over all attempts (acked beats unknown beats
    /// refused beats pending).
    pub outcome: WriteOutcome,
    /// The first read that returned it, if any.
    pub observed: Option<Observation>,
}

/// The facts of a run, by index and by hash.
#[derive(Default)]
pub struct FactTable {
    facts: Vec<WrittenFact>,
    idx_by_hash: HashMap<Hash, u32>,
    /// Every fact's predecessors, one range per fact, so that a fact needs
    /// no allocation of its own.
    predecessor_refs: Vec<HashRef>,
    /// Hashes that are not facts of the table (ordering keys, missing
    /// predecessors), each once.
    other_hashes: Vec<Hash>,
    other_idx_by_hash: HashMap<Hash, u32>,
}

impl FactTable {
    /// Registers a fact about to be written to store `store_idx` (as
    /// pending) and returns its index. Registering a hash again replaces its record in place, as a
    /// map keyed by hash would.
    pub fn register(
        &mut self,
        hash: Hash,
        predecessors: impl IntoIterator<Item = Hash>,
        key: Hash,
        poison: bool,
        store_idx: u8,
    ) -> u32 {
        let start = self.predecessor_refs.len();
        for predecessor in predecessors {
            let predecessor_ref = self.hash_ref(predecessor);
            self.predecessor_refs.push(predecessor_ref);
        }
        let fact = WrittenFact {
            hash,
            predecessors: to_u32(start)..to_u32(self.predecessor_refs.len()),
            key: self.hash_ref(key),
            poison,
            store_idx,
            outcome: WriteOutcome::Pending,
            observed: None,
        };
        if let Some(&fact_idx) = self.idx_by_hash.get(&hash) {
            // What reads saw of the fact stays: it is not about this write.
            let observed = self.facts[fact_idx as usize].observed;
            self.facts[fact_idx as usize] = WrittenFact { observed, ..fact };
            return fact_idx;
        }
        let fact_idx = to_u32(self.facts.len());
        self.facts.push(fact);
        self.idx_by_hash.insert(hash, fact_idx);
        fact_idx
    }

    /// A reference to `hash`: a fact if one is registered under it, else
    /// another hash (kept once).
    fn hash_ref(&mut self, hash: Hash) -> HashRef {
        if let Some(&fact_idx) = self.idx_by_hash.get(&hash) {
            return HashRef::Fact(fact_idx);
        }
        let next_idx = to_u32(self.other_hashes.len());
        let other_idx = *self.other_idx_by_hash.entry(hash).or_insert(next_idx);
        if other_idx == next_idx {
            self.other_hashes.push(hash);
        }
        HashRef::Other(other_idx)
    }

    /// The index of the fact registered under `hash`.
    pub fn idx_of(&self, hash: &Hash) -> Option<u32> {
        self.idx_by_hash.get(hash).copied()
    }

    /// The index of the fact registered under the hash spelled `hash_text`
    /// (64 lowercase hex digits, the only spelling of a hash).
    pub fn idx_of_text(&self, hash_text: &str) -> Option<u32> {
        Hash::from_hex(hash_text)
            .ok()
            .and_then(|hash| self.idx_of(&hash))
    }

    /// The fact at `fact_idx`.
    pub fn get(&self, fact_idx: u32) -> &WrittenFact {
        &self.facts[fact_idx as usize]
    }

    /// The fact at `fact_idx`, to update.
    pub fn get_mut(&mut self, fact_idx: u32) -> &mut WrittenFact {
        &mut self.facts[fact_idx as usize]
    }

    /// The fact registered under `hash`.
    pub fn by_hash(&self, hash: &Hash) -> Option<&WrittenFact> {
        self.idx_of(hash).map(|fact_idx| self.get(fact_idx))
    }

    /// Every fact with its index, in order of registration.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &WrittenFact)> {
        self.facts
            .iter()
            .enumerate()
            .map(|(fact_idx, fact)| (to_u32(fact_idx), fact))
    }

    /// How many facts were registered.
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    /// True when no fact was registered.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// The predecessors of `fact`.
    pub fn predecessors(&self, fact: &WrittenFact) -> &[HashRef] {
        &self.predecessor_refs[fact.predecessors.start as usize..fact.predecessors.end as usize]
    }

    /// The hash `hash_ref` stands for.
    pub fn hash_of(&self, hash_ref: HashRef) -> Hash {
        match hash_ref {
            HashRef::Fact(fact_idx) => self.get(fact_idx).hash,
            HashRef::Other(other_idx) => self.other_hashes[other_idx as usize],
        }
    }

    /// The fact `hash_ref` is now: another hash may have been registered
    /// as a fact after it was referred to.
    pub fn fact_idx_of_ref(&self, hash_ref: HashRef) -> Option<u32> {
        match hash_ref {
            HashRef::Fact(fact_idx) => Some(fact_idx),
            HashRef::Other(other_idx) => self.idx_of(&self.other_hashes[other_idx as usize]),
        }
    }
}

/// Fact indexes are `u32` to halve the history's references; a run writes
/// a few million facts at most.
fn to_u32(idx: usize) -> u32 {
    u32::try_from(idx).expect("fewer than 2^32 facts in a run")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash::of_bytes(&[byte])
    }

    #[test]
    fn facts_refer_to_each_other_by_index_and_to_other_hashes_once() {
        let mut facts = FactTable::default();
        let key = hash(0);
        let missing = hash(9);
        let first = facts.register(hash(1), [key], key, false, 0);
        let second = facts.register(hash(2), [key, hash(1)], key, true, 0);
        let bad = facts.register(hash(3), [key, missing], key, false, 0);
        assert_eq!((first, second, bad), (0, 1, 2));
        assert_eq!(
            facts.predecessors(facts.get(second))[1],
            HashRef::Fact(first)
        );
        let key_refs: Vec<HashRef> = [first, second, bad]
            .iter()
            .map(|&fact_idx| facts.get(fact_idx).key)
            .collect();
        assert_eq!(key_refs, vec![HashRef::Other(0); 3]);
        assert_eq!(
            facts.hash_of(facts.predecessors(facts.get(bad))[1]),
            missing
        );
        assert_eq!(facts.idx_of_text(&hash(2).to_hex()), Some(second));
        assert_eq!(facts.idx_of_text(&hash(2).to_hex().to_uppercase()), None);
        // A hash referred to before it was written is that fact from then on.
        let late = facts.register(missing, [key], key, false, 0);
        let missing_ref = facts.predecessors(facts.get(bad))[1];
        assert_eq!(facts.fact_idx_of_ref(missing_ref), Some(late));
    }

    #[test]
    fn registering_a_hash_again_replaces_its_record_but_keeps_what_reads_saw() {
        let mut facts = FactTable::default();
        let fact_idx = facts.register(hash(1), [hash(0)], hash(0), false, 0);
        let fact = facts.get_mut(fact_idx);
        fact.outcome = WriteOutcome::Acked { seq: 4 };
        fact.observed = Some(Observation {
            seq: 4,
            server_idx: 1,
        });
        assert_eq!(
            facts.register(hash(1), [hash(0)], hash(0), true, 0),
            fact_idx
        );
        assert_eq!(facts.len(), 1);
        let fact = facts.get(fact_idx);
        assert!(fact.poison);
        assert_eq!(fact.outcome, WriteOutcome::Pending);
        assert_eq!(fact.observed.map(|observed| observed.seq), Some(4));
    }
}

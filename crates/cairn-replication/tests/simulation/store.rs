//! A store of the simulation: an in-memory fact log that keeps the
//! store contract a link relies on (`Sink::put`'s doc comment), and
//! answers log pages the way `GET /v1/log?types=` does.
//!
//! The contract: a batch is stored all or nothing; each fact's
//! predecessors must be stored already or earlier in the batch, else
//! nothing is stored and the answer lists the missing ones; storing a
//! fact again is a no-op; the log only grows, one `seq` per new fact.
//! Local writes wait unsynced (invisible, unacknowledged) until a sync;
//! a crash keeps a prefix of them and loses the rest. What a `put`
//! acknowledged is durable: a crash never takes it back.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_api::access::{any_matches, Pattern};
use cairn_fact::{CanonicalFact, Hash};
use cairn_replication::{Progress, SourceEntry, SourcePage};

/// One simulated store.
#[derive(Debug)]
pub struct MemoryStore {
    /// Its store identity (what a log page answers as `store`).
    pub id: String,
    /// The durable log: the fact at index `i` has `seq` `i + 1`.
    log: Vec<CanonicalFact>,
    /// Where each stored fact is in the log (its `seq`).
    index: HashMap<Hash, u64>,
    /// Facts written locally (not replicated) that became durable, in
    /// the order they did.
    pub local_writes: Vec<Hash>,
    /// Local writes not synced yet: neither visible nor acknowledged.
    pending: Vec<CanonicalFact>,
    /// Each link's progress, as last saved, by the link's index.
    pub saved_progress: BTreeMap<usize, Progress>,
    /// Ticks until the store is back after a crash (0: up).
    pub down_ticks: u64,
    /// Negative control only: accept facts whose predecessors are
    /// missing (a store that breaks the contract).
    pub accepts_missing_predecessors: bool,
}

impl MemoryStore {
    /// An empty store named `id`.
    pub fn new(id: String) -> MemoryStore {
        MemoryStore {
            id,
            log: Vec::new(),
            index: HashMap::new(),
            local_writes: Vec::new(),
            pending: Vec::new(),
            saved_progress: BTreeMap::new(),
            down_ticks: 0,
            accepts_missing_predecessors: false,
        }
    }

    /// Whether the store is up.
    pub fn is_up(&self) -> bool {
        self.down_ticks == 0
    }

    /// The durable log in `seq` order.
    pub fn log(&self) -> &[CanonicalFact] {
        &self.log
    }

    /// The last `seq` (0 when empty).
    pub fn head(&self) -> u64 {
        self.log.len() as u64
    }

    /// Whether the fact `hash` is durable here.
    pub fn holds(&self, hash: &Hash) -> bool {
        self.index.contains_key(hash)
    }

    /// The durable fact `hash`.
    pub fn fact(&self, hash: &Hash) -> Option<&CanonicalFact> {
        let seq = *self.index.get(hash)?;
        Some(&self.log[(seq - 1) as usize])
    }

    /// Durable facts and unsynced local writes: what a local writer may
    /// name as predecessors.
    pub fn writable_predecessors(&self) -> impl Iterator<Item = &CanonicalFact> {
        self.log.iter().chain(self.pending.iter())
    }

    /// Stores `facts` under the contract: all or nothing, predecessors
    /// stored or earlier in the batch, idempotent. Answers how many were
    /// new, or the missing predecessors (in the order first named).
    pub fn put(&mut self, facts: &[CanonicalFact]) -> Result<u64, Vec<Hash>> {
        let mut in_batch: HashSet<Hash> = HashSet::new();
        let mut missing = Vec::new();
        let mut missing_set: HashSet<Hash> = HashSet::new();
        for fact in facts {
            for (_, predecessor) in fact.fact.all_predecessors() {
                if !self.index.contains_key(predecessor)
                    && !in_batch.contains(predecessor)
                    && missing_set.insert(*predecessor)
                {
                    missing.push(*predecessor);
                }
            }
            in_batch.insert(fact.hash);
        }
        if !missing.is_empty() && !self.accepts_missing_predecessors {
            return Err(missing);
        }
        let mut inserted = 0;
        for fact in facts {
            if !self.index.contains_key(&fact.hash) {
                self.log.push(fact.clone());
                self.index.insert(fact.hash, self.log.len() as u64);
                inserted += 1;
            }
        }
        Ok(inserted)
    }

    /// A local write, unsynced until the next [`MemoryStore::sync`].
    pub fn write_local(&mut self, fact: CanonicalFact) {
        self.pending.push(fact);
    }

    /// Local writes waiting for a sync.
    pub fn n_pending(&self) -> usize {
        self.pending.len()
    }

    /// Makes the first `n_synced` unsynced local writes durable (all of
    /// them with `usize::MAX`).
    pub fn sync(&mut self, n_synced: usize) {
        let n_synced = n_synced.min(self.pending.len());
        let synced: Vec<CanonicalFact> = self.pending.drain(..n_synced).collect();
        for fact in &synced {
            // A local write names durable facts or earlier local writes,
            // so each one alone keeps the contract.
            match self.put(std::slice::from_ref(fact)) {
                Ok(1) => self.local_writes.push(fact.hash),
                // Each local write is unique (it names its store and a
                // counter) and invisible until now: no one replicated it.
                Ok(_) => panic!("local write {} was stored already in {}", fact.hash, self.id),
                Err(missing) => panic!(
                    "the simulation wrote a fact whose predecessors {missing:?} are not in store {}",
                    self.id
                ),
            }
        }
    }

    /// A crash: the first `n_synced` unsynced writes reached the disk,
    /// the others are lost; the store is down for `down_ticks`.
    pub fn crash(&mut self, n_synced: usize, down_ticks: u64) {
        self.sync(n_synced);
        self.pending.clear();
        self.down_ticks = down_ticks;
    }

    /// The page `GET /v1/log?after=…&limit=…&types=…` answers over the
    /// first `visible` entries of the log: the server examines up to
    /// `examined_max` entries after `after`, keeps those whose type
    /// matches (every type when `patterns` is empty), and answers `next` =
    /// the last one examined (`after` when none was), its hash, and
    /// `head` = the log's end, never below `next`.
    pub fn page(
        &self,
        after: u64,
        patterns: &[Pattern],
        examined_max: usize,
        visible: u64,
    ) -> SourcePage {
        let end = visible.min(self.head()) as usize;
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(end);
        let examined_to = start.saturating_add(examined_max).min(end);
        let entries = self.log[start..examined_to]
            .iter()
            .enumerate()
            .filter(|(_, fact)| patterns.is_empty() || any_matches(patterns, &fact.fact.type_name))
            .map(|(offset, fact)| SourceEntry {
                seq: (start + offset + 1) as u64,
                fact: fact.clone(),
            })
            .collect();
        let next = if examined_to > start {
            examined_to as u64
        } else {
            after
        };
        // Like `/v1/log`: the hash of the entry at `next` when it was
        // examined (every reader may read every type here).
        let next_hash = (examined_to > start).then(|| self.log[examined_to - 1].hash);
        SourcePage {
            store: self.id.clone(),
            head: (end as u64).max(next),
            entries,
            next,
            next_hash,
        }
    }
}

//! Facts for the disk-fault tests: sizes from a few bytes to tens of KiB,
//! so that one batch spans several disk sectors and pages and one fact can
//! hold a whole sector; some facts name an earlier one as their parent, so
//! that the successors index is written and checked too.

use cairn_fact::{CanonicalFact, Hash};

/// The type of every fact these tests write.
pub const FACT_TYPE: &str = "Disk.Fact";
/// The role in which a fact names its parent.
pub const PARENT_ROLE: &str = "parent";
const CANONICAL_BYTES_MAX: usize = 64 * 1024;

/// A fact to write, with the parent it names (if any).
#[derive(Clone, Debug)]
pub struct NewFact {
    /// The fact as the store receives it.
    pub fact: CanonicalFact,
    /// The predecessor named in the role [`PARENT_ROLE`].
    pub parent: Option<Hash>,
}

/// A fact the store acknowledged, with the seq it answered.
#[derive(Clone, Debug)]
pub struct AcknowledgedFact {
    /// The fact that was written.
    pub fact: CanonicalFact,
    /// Its parent, if it names one.
    pub parent: Option<Hash>,
    /// The sequence number the store acknowledged it with.
    pub seq: u64,
}

/// Makes distinct facts: each carries its case seed and a counter.
pub struct FactSource {
    seed: u64,
    n_made: u64,
}

impl FactSource {
    /// A source for the case `seed`.
    pub fn new(seed: u64) -> FactSource {
        FactSource { seed, n_made: 0 }
    }

    /// A batch of 1 to `facts_max` new facts; each may name as parent one of
    /// `earlier` (facts stored before the batch) or a fact earlier in it.
    pub fn batch(
        &mut self,
        rng: &mut super::seeded_rng::SeededRng,
        earlier: &[Hash],
        facts_max: u64,
    ) -> Vec<NewFact> {
        let n_facts = rng.in_range(1, facts_max + 1);
        let mut candidates = earlier.to_vec();
        let mut batch = Vec::new();
        for _ in 0..n_facts {
            let parent = (!candidates.is_empty() && rng.one_in(2)).then(|| *rng.pick(&candidates));
            let fact = self.fact(rng, parent);
            candidates.push(fact.hash);
            batch.push(NewFact { fact, parent });
        }
        batch
    }

    fn fact(
        &mut self,
        rng: &mut super::seeded_rng::SeededRng,
        parent: Option<Hash>,
    ) -> CanonicalFact {
        self.n_made += 1;
        // Mostly small facts, some a few sectors long, a few spanning pages.
        let text_bytes = match rng.in_range(0, 20) {
            0..=9 => rng.in_range(0, 200),
            10..=16 => rng.in_range(200, 3_000),
            _ => rng.in_range(3_000, 24_000),
        };
        let mut text = vec![0u8; text_bytes as usize];
        rng.fill(&mut text);
        let text: String = text
            .iter()
            .map(|byte| char::from(b'a' + byte % 26))
            .collect();
        let predecessors = match parent {
            Some(parent) => format!(r#""{PARENT_ROLE}":"{parent}""#),
            None => String::new(),
        };
        let json = format!(
            r#"{{"type":"{FACT_TYPE}","fields":{{"seed":{},"n":{},"text":"{text}"}},"predecessors":{{{predecessors}}}}}"#,
            self.seed, self.n_made
        );
        CanonicalFact::from_json(json.as_bytes(), CANONICAL_BYTES_MAX).expect("a valid fact")
    }
}

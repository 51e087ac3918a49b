//! A small seeded generator (SplitMix64): the same seed gives the same
//! numbers on every platform and in every version of the demo, which a
//! general-purpose generator does not promise across its releases. The
//! schedule of faults and the customers' choices come from it.

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits of state, passes
/// BigCrush, and every seed is a good one.
#[derive(Clone, Debug)]
pub struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (0 if `bound` is 0); the tiny bias of the
    /// modulo does not matter for a demo.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.next_u64() % bound
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let mut first = SeededRandom::new(7);
        let mut second = SeededRandom::new(7);
        let numbers: Vec<u64> = (0..5).map(|_| first.next_u64()).collect();
        assert_eq!(
            numbers,
            (0..5).map(|_| second.next_u64()).collect::<Vec<_>>()
        );
        // The published first output of SplitMix64 for seed 0.
        assert_eq!(SeededRandom::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn numbers_stay_in_their_range() {
        let mut random = SeededRandom::new(1);
        for _ in 0..1_000 {
            let number = random.between(3, 9);
            assert!((3..=9).contains(&number));
        }
        assert_eq!(random.below(0), 0);
        assert_eq!(random.between(5, 5), 5);
    }
}

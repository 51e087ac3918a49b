//! A small seeded random source (SplitMix64), so that a failing disk-fault
//! case is reproduced exactly from the one seed it prints. The crate has no
//! random-number dev-dependency, and this generator is a dozen lines.

/// A deterministic stream of pseudo-random numbers.
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `start..end` (`start < end`).
    pub fn in_range(&mut self, start: u64, end: u64) -> u64 {
        assert!(start < end, "empty range {start}..{end}");
        start + self.next_u64() % (end - start)
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.in_range(0, n) == 0
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.in_range(0, items.len() as u64) as usize]
    }

    /// Fills `bytes` with random bytes.
    pub fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.next_u64() as u8;
        }
    }
}

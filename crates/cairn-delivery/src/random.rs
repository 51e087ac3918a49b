//! A tiny seeded pseudo-random generator (SplitMix64) for backoff jitter and
//! lease ids.
//!
//! Written here rather than taken from `rand` because the state machine must
//! be reproducible from one `u64` seed across versions, needs nothing more
//! than uniform `u64`s, and should stay free of dependencies.

/// SplitMix64 (Steele, Lea, Flood 2014): fast, full-period, and good enough
/// for jitter; not for secrets.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next uniformly distributed `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `low..=high` (`low` if the range is empty).
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low + 1;
        low + self.next_u64() % span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_stay_in_range() {
        let mut first = SplitMix64::new(7);
        let mut second = SplitMix64::new(7);
        for _ in 0..1_000 {
            assert_eq!(first.next_u64(), second.next_u64());
            let value = first.in_range(10, 20);
            assert!((10..=20).contains(&value));
            second.in_range(10, 20);
        }
        assert_eq!(first.in_range(5, 5), 5);
        assert_eq!(first.in_range(9, 3), 9);
    }
}

//! A seeded pseudo-random generator (xorshift64*): enough to pick delays and
//! commands, and repeatable from a printed seed.

use std::time::Duration;

/// A small seeded generator. Not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; zero is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// A generator derived from this one, for another task.
    pub fn fork(&mut self, salt: u64) -> Self {
        Self::new(self.next_u64() ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// A duration between `low` and `high`, both included, to the millisecond.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let (low_ms, high_ms) = (low.as_millis() as u64, high.as_millis() as u64);
        Duration::from_millis(low_ms + self.below(high_ms.saturating_sub(low_ms) + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;
    use std::time::Duration;

    #[test]
    fn one_seed_gives_one_sequence_and_values_stay_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(7) < 7);
            let d = a.between(Duration::from_millis(5), Duration::from_millis(9));
            assert!((5..=9).contains(&(d.as_millis() as u64)));
            b.below(7);
            b.between(Duration::from_millis(5), Duration::from_millis(9));
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}

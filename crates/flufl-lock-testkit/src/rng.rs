//! A small seeded random generator.

use std::time::Duration;

/// xorshift64*: reproducible from a printed seed, no dependency. For jitter and random
/// schedules, not cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A seed from the clock and pid, for runs not given one.
    pub fn fresh_seed() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ (u64::from(std::process::id()) << 32)
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

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A duration uniform in `[lo, hi]` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator is reproducible and stays in range.
    #[test]
    fn rng() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let n = a.below(10);
            assert!(n < 10);
            assert_eq!(n, b.below(10));
            let d = a.millis(3, 5);
            assert_eq!(d, b.millis(3, 5));
            assert!(d >= Duration::from_millis(3) && d <= Duration::from_millis(5));
        }
    }

    /// `below(0)` is 0, not a division by zero; fresh seeds differ between calls.
    #[test]
    fn edges() {
        let mut r = Rng::new(0);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        let a = Rng::fresh_seed();
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, Rng::fresh_seed());
    }
}

//! Waiting: the backoff between attempts.

use std::time::Duration;

/// An exponential backoff with jitter.
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

/// `d × f`, saturating at `cap` (`Duration::mul_f64` panics past `Duration::MAX`).
fn scaled(d: Duration, f: f64, cap: Duration) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * f).map_or(cap, |d| d.min(cap))
}

impl Backoff {
    /// Starts at `min`, grows to `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next pause: ×1.5 each time up to the cap, with ±20 % jitter (from `random`) so
    /// that waiters woken together spread out.
    pub(crate) fn step(&mut self, random: u64) -> Duration {
        let base = self.next;
        self.next = scaled(base, 1.5, self.max);
        jitter(base, random).min(self.max)
    }
}

/// `d` ± 20 % (from `random`), so that waiters that polled together spread out.
pub(crate) fn jitter(d: Duration, random: u64) -> Duration {
    scaled(d, (random % 401) as f64 / 1000.0 + 0.8, Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backoff grows ×1.5 to its cap, with jitter, and never overflows, whatever its
    /// bounds.
    #[test]
    fn backoff_grows_to_the_cap_and_saturates() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let first = b.step(crate::builder::random_u64());
        assert!(first >= Duration::from_millis(8) && first <= Duration::from_millis(12));
        for _ in 0..20 {
            assert!(b.step(crate::builder::random_u64()) <= Duration::from_millis(100));
        }
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(huge.step(u64::MAX) > Duration::from_secs(1 << 40));
        assert!(huge.step(u64::MAX) > Duration::from_secs(1 << 40));
    }
}

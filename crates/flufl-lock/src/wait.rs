//! Waiting: the backoff between attempts.

use crate::builder::random_u64;
use std::time::Duration;

/// An exponential backoff with jitter.
pub(crate) struct Backoff {
    pub(crate) next: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
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

    pub(crate) fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (base.mul_f64(1.5)).min(self.max);
        // Jitter of +-20% so that waiters woken together spread out.
        let j = (random_u64() % 401) as f64 / 1000.0 + 0.8;
        base.mul_f64(j).min(self.max)
    }
}

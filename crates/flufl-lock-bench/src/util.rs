//! Small helpers: the shared monotonic clock, statistics, a jitter source.

use std::time::Duration;

pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// CLOCK_MONOTONIC in nanoseconds: one clock for all processes on the machine (Python's
/// `time.clock_gettime_ns(time.CLOCK_MONOTONIC)` reads the same one).
pub fn mono_ns() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

pub fn sleep_until_ns(t: i64) {
    loop {
        let left = t - mono_ns();
        if left <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_nanos(left as u64));
    }
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::max)
}

/// xorshift64*, seeded from the clock and pid: jitter only, not cryptography.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

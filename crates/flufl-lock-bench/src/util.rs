//! Small helpers: the error type, statistics, and waiting for a time on the shared clock
//! (`flufl_lock_testkit::mono_ns`).

use flufl_lock_testkit::mono_ns;
use std::time::Duration;

pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Sleeps until `mono_ns()` reaches `t`.
pub fn sleep_until_ns(t: u64) {
    loop {
        let left = t.saturating_sub(mono_ns());
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_nanos(left));
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

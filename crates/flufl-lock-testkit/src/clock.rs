//! The machine-wide monotonic clock.

/// Nanoseconds on `CLOCK_MONOTONIC`: one clock for every process of the machine, in every
/// pid namespace (Python's `time.clock_gettime_ns(time.CLOCK_MONOTONIC)` reads the same
/// one), so that times reported by different processes can be subtracted.
///
/// Read with a raw vDSO call (rustix), not through libc, so that libfaketime, which
/// intercepts libc's `clock_gettime`, never shifts it.
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock never goes back, and it moves.
    #[test]
    fn monotonic() {
        let a = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = mono_ns();
        assert!(b >= a + 1_000_000, "{a} then {b}");
    }
}

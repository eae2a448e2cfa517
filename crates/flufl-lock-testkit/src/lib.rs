//! Helpers shared by flufl-lock's test harnesses (not published): the library's integration
//! tests, the interoperability tests (`flufl-lock-interop`), the stress harness
//! (`flufl-lock-stress`) and the benchmark (`flufl-lock-bench`).
//!
//! * [`mono_ns`]: `CLOCK_MONOTONIC` in nanoseconds, one clock for every process of the
//!   machine (Unix only).
//! * [`Rng`]: a small seeded generator for jitter and random schedules.
//! * [`check_sections`]: the overlap checker over an `E id i` / `X id i` log.
//! * [`files_in`], [`leftovers`], [`assert_no_leftovers`]: what a run left in a lock's
//!   directory.
//!
//! Std only, plus `rustix` on Unix for the clock; no dependency on `flufl-lock` itself.

#[cfg(unix)]
mod clock;
mod files;
mod rng;
mod sections;

#[cfg(unix)]
pub use clock::mono_ns;
pub use files::{assert_no_leftovers, files_in, leftovers};
pub use rng::Rng;
pub use sections::{check_sections, Section};

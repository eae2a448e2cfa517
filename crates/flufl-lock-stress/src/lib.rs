//! The reliability harness of flufl-lock (issue 5, items 3 and 4), as a library behind the
//! `flufl-lock-stress` binary:
//!
//! * [`coordinator`]: starts worker processes that contend for one lock, SIGKILLs holders
//!   inside their critical sections, SIGSTOPs and SIGCONTs waiters, respawns the killed, and
//!   checks the shared log ([`check`]) for overlaps, lost updates and slow recovery.
//! * [`worker`]: one contending process.
//! * [`probe`]: a single holder or waiter that reports what it did and when, on the
//!   monotonic clock; the namespace and clock-skew tests run it under `unshare` and
//!   `faketime`.
//!
//! Linux only: it relies on `/proc`, signals and `CLOCK_MONOTONIC` being shared by every
//! process of the machine (pid and UTS namespaces do not change that clock).

#![cfg(target_os = "linux")]

pub mod check;
pub mod coordinator;
pub mod probe;
pub mod util;
pub mod worker;

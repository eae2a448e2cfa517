//! Reliability tests of flufl-lock (issue 5, items 3 and 4), run as root on Linux:
//!
//! * `stress`: the multi-process stress run with kills and stops, at CI size.
//! * `namespaces`: holders and waiters in their own UTS and PID namespaces (simulated
//!   hosts), with colliding pids.
//! * `skew`: holders and waiters under libfaketime, 30 s ahead and behind.
//! * `liveness`: holders that look dead but are not (a thread-exited leader, another time
//!   namespace, `hidepid`), and another user's dead holder (issue 12).
//! * `clock`: a suspend imitated by an LD_PRELOAD shim, and 1-second timestamps on a
//!   loop-mounted ext4 (issue 12).
//!
//! Every wait has a time limit. Missing root, `unshare`, `setpriv`, `faketime`, gcc or
//! `mkfs.ext4` is a failure with a message saying what is needed, never a skip (`setup.sh`
//! installs `faketime`; the test command installs the rest).

#![cfg(target_os = "linux")]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod clock;
mod liveness;
mod namespaces;
mod pairs;
mod skew;
mod stress;
mod support;

//! Integration tests of the library in real temporary directories: one binary (see
//! STYLE.md), with a faulty filesystem for the fault and race tests and re-runs of this
//! executable as separate processes for the contention and crash tests.

// Test children talk to their parent on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Tests plant lock files as other processes (or flufl.lock) would, with plain std calls.
#![allow(clippy::disallowed_methods)]

#[cfg(feature = "tokio")]
mod asynk;
#[cfg(all(unix, feature = "tokio"))]
mod attack;
mod attack2;
#[cfg(unix)]
mod attack3;
#[cfg(unix)]
mod attack4;
mod basic;
#[cfg(unix)]
mod faults;
mod hostile;
#[cfg(unix)]
mod processes;
#[cfg(unix)]
mod review;
#[cfg(all(unix, feature = "tokio"))]
mod shape;
mod support;
#[cfg(unix)]
mod waiting;
#[cfg(windows)]
mod windows;

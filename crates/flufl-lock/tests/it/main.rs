//! Integration tests of the library in real temporary directories: one binary (see
//! STYLE.md), with a faulty filesystem for the fault and race tests and re-runs of this
//! executable as separate processes for the contention and crash tests.

mod basic;
#[cfg(unix)]
mod faults;
mod hostile;
#[cfg(unix)]
mod processes;
mod support;
#[cfg(windows)]
mod windows;

//! Deterministic simulation of flufl-lock.
//!
//! The real `Lock` code runs, unmodified, in a simulated world through the library's
//! seams (`flufl_lock::sys::Fs` with the `fault-injection` feature, and the `clock` hook):
//! a file server with inodes, hard links, exclusive creation, renames and server-stamped
//! times at a chosen granularity; hosts with skewed wall clocks, boot clocks and monotonic
//! clocks that a suspend stops; processes that crash, pause, or see lost replies and
//! `ESTALE`; and a scheduler that owns every step. A run is a pure function of its
//! decisions, so any failing run replays exactly from its seed (random exploration) or its
//! schedule (exhaustive exploration), and prints as readable steps.
//!
//! See `README.md` for the invariants, the scenarios and the commands.

#![cfg(unix)]

pub mod decide;
pub mod explore;
mod flufl;
pub mod scenario;
mod simfs;
pub mod world;

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
mod asynk;
mod claim;
mod error;
mod lock;
#[cfg(feature = "fault-injection")]
pub mod sys;
#[cfg(not(feature = "fault-injection"))]
mod sys;

#[cfg(feature = "tokio")]
pub use asynk::AsyncKeepAlive;
pub use claim::{Details, LockState};
pub use error::{Error, ErrorKind, Result};
pub use lock::{
    BreakOutcome, Clock, KeepAlive, Lock, LockBuilder, LockGuard, SystemClock, WaitStatus,
    DEFAULT_FOREIGN_SLOP, DEFAULT_LIFETIME, SEP,
};

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
mod asynk;
mod builder;
mod claim;
mod config;
mod error;
mod keep_alive;
mod lock;
mod protocol;
#[cfg(feature = "fault-injection")]
pub mod sys;
#[cfg(not(feature = "fault-injection"))]
mod sys;
mod wait;

#[cfg(feature = "tokio")]
pub use asynk::AsyncKeepAlive;
pub use builder::LockBuilder;
pub use claim::{Details, LockState};
pub use config::{Clock, SystemClock, WaitStatus, DEFAULT_FOREIGN_SLOP, DEFAULT_LIFETIME, SEP};
pub use error::{Error, ErrorKind, Result};
pub use keep_alive::KeepAlive;
pub use lock::{BreakOutcome, Lock, LockGuard};

//! Tunables and the types users give the builder: the clock hook, the wait callback, the
//! defaults.

use crate::claim::Details;
#[cfg(doc)]
use crate::{Lock, LockBuilder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// flufl.lock's default lifetime: 15 seconds.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(15);

/// flufl.lock's clock slop, applied to locks written by flufl.lock itself, whose expiry is
/// in the writer's own clock.
pub const DEFAULT_FOREIGN_SLOP: Duration = Duration::from_secs(10);

/// The claim separator of this platform: `|` on POSIX, `^` on Windows (as flufl.lock).
pub const SEP: char = if cfg!(windows) { '^' } else { '|' };

/// A source of wall-clock time: flufl.lock's `_now()` hook.
///
/// Timeouts always run on the monotonic clock; this clock is used only to compute and judge
/// expiry times, and for locks written by this library only through the offset to the file
/// server's clock learned from our own claim file.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

impl<F: Fn() -> SystemTime + Send + Sync> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The real clock, `SystemTime::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What a waiter knows while it waits, given to the [`LockBuilder::on_wait`] callback.
#[derive(Debug, Clone)]
pub struct WaitStatus {
    /// The lock file waited on.
    pub lockfile: PathBuf,
    /// Who holds it, when its claim could be read.
    pub holder: Option<Details>,
    /// How long this acquisition has waited so far.
    pub waited: Duration,
    /// How long until the holder's lock expires and may be broken; zero once it has.
    pub expires_in: Option<Duration>,
}

pub(crate) type WaitCallback = Arc<dyn Fn(&WaitStatus) + Send + Sync>;

/// Tunables; see the [`LockBuilder`] methods.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) retry_errnos: Vec<i32>,
    pub(crate) max_retries: u32,
    pub(crate) min_poll: Duration,
    pub(crate) max_poll: Duration,
    pub(crate) foreign_slop: Duration,
    pub(crate) clock_margin: Duration,
    pub(crate) marker_lifetime: Duration,
    pub(crate) notify: bool,
    pub(crate) pid_check: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            default_timeout: None,
            // ESTALE on NFS; on Windows, a sharing violation from a reader such as Python's
            // open(), which does not share delete access.
            retry_errnos: crate::sys::DEFAULT_RETRY_ERRNOS.to_vec(),
            max_retries: 10,
            min_poll: Duration::from_millis(1),
            max_poll: Duration::from_millis(100),
            foreign_slop: DEFAULT_FOREIGN_SLOP,
            clock_margin: Duration::from_millis(500),
            marker_lifetime: Duration::from_secs(5),
            notify: true,
            pid_check: true,
        }
    }
}

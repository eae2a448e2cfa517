//! Targets that are neither POSIX nor Windows (WASI, bare metal, ...): the crate compiles,
//! and every filesystem call fails with [`io::ErrorKind::Unsupported`], as tempfile's
//! `other.rs` and same-file's `unknown.rs` do. Nothing here panics.
//!
//! Locking fails at its first step (creating the claim), so the waiting code is never
//! reached; [`WaiterImpl::wait`] returns at once all the same, because `std::thread::sleep`
//! panics on some of these targets.

use super::{Fs, HostIdentity, Meta, ProcState};
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The real filesystem, which this target does not support.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// Nothing is retried by default here.
pub const DEFAULT_RETRY_ERRNOS: &[i32] = &[];

/// Never.
pub fn is_stale(_e: &io::Error) -> bool {
    false
}

/// Never.
pub fn is_sharing_violation(_e: &io::Error) -> bool {
    false
}

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "flufl-lock does not support this platform",
    ))
}

impl Fs for RealFs {
    fn create_new(&self, _path: &Path) -> io::Result<File> {
        unsupported()
    }

    fn write_all(&self, _file: &File, _data: &[u8]) -> io::Result<()> {
        unsupported()
    }

    fn fstat(&self, _file: &File) -> io::Result<Meta> {
        unsupported()
    }

    fn set_times(&self, _file: &File, _time: SystemTime) -> io::Result<()> {
        unsupported()
    }

    fn set_path_times(&self, _path: &Path, _time: SystemTime) -> io::Result<()> {
        unsupported()
    }

    fn open_read(&self, _path: &Path) -> io::Result<File> {
        unsupported()
    }

    fn read_head(&self, _file: &File, _max: usize) -> io::Result<Vec<u8>> {
        unsupported()
    }

    fn lstat(&self, _path: &Path) -> io::Result<Meta> {
        unsupported()
    }

    fn link(&self, _src: &Path, _dst: &Path) -> io::Result<()> {
        unsupported()
    }

    fn rename(&self, _src: &Path, _dst: &Path) -> io::Result<()> {
        unsupported()
    }

    fn unlink(&self, _path: &Path) -> io::Result<()> {
        unsupported()
    }

    fn is_remote(&self, _dir: &Path) -> io::Result<bool> {
        unsupported()
    }

    fn process(&self, _pid: u32) -> ProcState {
        ProcState::Unknown
    }

    fn wait(&self, waiter: &mut super::Waiter, timeout: Duration) {
        waiter.inner.wait(timeout)
    }
}

/// No host name is available here.
pub fn hostname() -> String {
    "localhost".to_string()
}

pub fn inode_of(_entry: &std::fs::DirEntry) -> u64 {
    0
}

/// Nothing proves a holder's identity here.
pub fn host_identity() -> HostIdentity {
    HostIdentity::default()
}

/// The monotonic clock, from the first call: no boot clock is known here.
pub fn boot_clock() -> std::time::Duration {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(std::time::Instant::now).elapsed()
}

/// No change notification, no process handles.
#[derive(Debug, Default)]
pub struct WaiterImpl;

impl WaiterImpl {
    pub fn new(_lock: &Path, _notify: bool) -> WaiterImpl {
        WaiterImpl
    }

    pub fn watch_process(&mut self, _pid: Option<u32>) {}

    pub fn watching(&self) -> Option<u32> {
        None
    }

    pub fn notifies(&self) -> bool {
        false
    }

    /// Returns at once (see the module docs).
    pub fn wait(&mut self, _timeout: Duration) {}
}

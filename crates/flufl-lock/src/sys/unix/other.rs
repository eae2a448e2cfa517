//! Other POSIX systems (macOS, the BSDs): no process checks, no change notification.
//! Crashed holders are recovered by expiry, and waiters poll.

use crate::sys::{HostIdentity, ProcState};
use std::io;
use std::path::Path;
use std::time::Duration;

pub fn is_remote(_dir: &Path) -> io::Result<bool> {
    Ok(true)
}

pub fn process(pid: u32) -> ProcState {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return ProcState::Unknown;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => ProcState::Running { start: None },
        Err(rustix::io::Errno::SRCH) => ProcState::Gone,
        Err(_) => ProcState::Unknown,
    }
}

pub fn host_identity() -> HostIdentity {
    HostIdentity::default()
}

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
    pub fn wait(&mut self, timeout: Duration) {
        std::thread::sleep(timeout)
    }
}

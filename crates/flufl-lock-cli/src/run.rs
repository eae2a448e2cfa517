//! `flufl-lock run`: hold the lock while COMMAND runs, and never let COMMAND (or what it
//! started) run on without it.
//!
//! On POSIX, COMMAND runs in its own process group, guarded by the [`watchdog`] (a fork of
//! this process that kills the group when we die, even by SIGKILL) and, on Linux, by a
//! parent-death signal (SIGKILL). SIGINT, SIGTERM and SIGHUP are forwarded to the group.
//! When COMMAND exits, what is left of its group is stopped (SIGTERM, then SIGKILL after
//! 2 s) before the lock is released. If the keep-alive finds the lock lost, COMMAND's group
//! gets SIGTERM, then SIGKILL after 5 s, and we exit with 76. On Windows COMMAND is a plain
//! child process.
//!
//! [`watchdog`]: crate::watchdog

use crate::args::Timing;
use crate::commands::wait_for;
use crate::exit::{self, lock_error, Exit};
use crate::output;
use anyhow::Result;
use flufl_lock::Lock;
use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitCode, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

/// `run`: waits for the lock (at most `timing.timeout`), runs COMMAND under it
/// (refreshing it every lifetime/3 if `refresh`), releases it and returns COMMAND's
/// exit status.
pub fn run(
    lockfile: &Path,
    timing: &Timing,
    refresh: bool,
    quiet: bool,
    command: &[OsString],
) -> Result<ExitCode> {
    let lock = Lock::builder(lockfile)
        .lifetime(timing.lifetime)
        .on_wait(output::status_line(quiet))
        .build()
        .map_err(lock_error)?;
    wait_for(&lock, timing.timeout)?;
    let result = supervise(&lock, refresh, command);
    // Release whatever happened; a lost lock is not ours to remove.
    let released = lock.unlock();
    let code = result?;
    if code != exit::LOST {
        released.map_err(lock_error)?;
    }
    Ok(ExitCode::from(code))
}

/// Our exit code for COMMAND's exit status: its own code, or 128+N for signal N.
fn status_code(status: ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return c as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return exit::SIGNAL_BASE.wrapping_add(sig as u8);
        }
    }
    exit::FAILURE
}

/// COMMAND could not be started: 127 if it was not found, else 126.
fn spawn_error(cmd: &OsString, e: std::io::Error) -> anyhow::Error {
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => exit::NOT_FOUND,
        _ => exit::CANNOT_EXECUTE,
    };
    Exit(code, format!("cannot run {}: {e}", cmd.to_string_lossy())).into()
}

/// Runs COMMAND in its own process group, with the watchdog, forwarding signals and
/// keeping the lock alive; stops the group when COMMAND exits or the lock is lost. Returns
/// the exit code.
///
/// One thread waits for everything: the signals we forward, SIGCHLD and a lost lock all
/// write to one socket that it polls. The keep-alive thread starts only once COMMAND has
/// run for [`keep_alive_delay`], so a short COMMAND costs no thread at all.
#[cfg(unix)]
fn supervise(lock: &Lock, refresh: bool, command: &[OsString]) -> Result<u8> {
    use rustix::process::Signal;
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::backend::SignalDelivery;
    use signal_hook::iterator::exfiltrator::SignalOnly;
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::Instant;

    // The watchdog first, while we have a single thread (it is a fork of this process).
    let watchdog = crate::watchdog::Watchdog::start()
        .map_err(|e| anyhow::anyhow!("cannot start the watchdog process: {e}"))?;
    // Signals are caught from now on, so none is lost between spawning and forwarding.
    let (wake, wake_tx) = UnixStream::pair()?;
    let lost_wake = wake_tx.try_clone()?;
    let mut signals = SignalDelivery::with_pipe(
        wake,
        wake_tx,
        SignalOnly,
        [SIGINT, SIGTERM, SIGHUP, SIGCHLD],
    )?;
    // The handlers stay until we exit: a signal while we release the lock is swallowed
    // rather than cutting the release short.
    std::mem::forget(signals.handle());
    let spawned = {
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..]).process_group(0);
        watchdog.guard(&mut cmd);
        cmd.spawn()
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            // Nothing of COMMAND ran (a child that failed to exec has been reaped).
            watchdog.disarm();
            return Err(spawn_error(&command[0], e));
        }
    };
    let pgid = child.id() as i32;
    // Forwards the signals that came (after clearing the socket, so none is missed).
    let forward = |signals: &mut SignalDelivery<UnixStream, SignalOnly>| {
        for sig in signals.pending().filter(|&s| s != SIGCHLD) {
            log::info!("forwarding signal {sig} to COMMAND");
            if let Some(s) = Signal::from_named_raw(sig) {
                kill_group(pgid, s);
            }
        }
    };

    let (lost_tx, lost) = mpsc::channel();
    let mut keep_start = refresh.then(|| {
        let at = Instant::now() + keep_alive_delay(lock.lifetime());
        (at, lost_tx, lost_wake)
    });
    let mut keep = None;
    let code = loop {
        forward(&mut signals);
        if let Ok(msg) = lost.try_recv() {
            output::say(&format!(
                "lost the lock {} while COMMAND ran ({msg}); stopping COMMAND",
                lock.lockfile().display()
            ));
            kill_group(pgid, Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait()?.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    kill_group(pgid, Signal::KILL);
                    break;
                }
                wait_for_wakeup(signals.get_read(), Some(left));
                forward(&mut signals);
            }
            stop_group(pgid, Duration::ZERO);
            break exit::LOST;
        }
        if let Some(status) = child.try_wait()? {
            stop_group(pgid, Duration::from_secs(2));
            break status_code(status);
        }
        let mut timeout = None;
        if let Some((at, lost_tx, lost_wake)) = keep_start.take() {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                keep = Some(lock.keep_alive(move |e| {
                    // The message first, then the wake-up (read in the other order).
                    let _ = lost_tx.send(e.to_string());
                    let _ = rustix::io::write(&lost_wake, b"L");
                }));
            } else {
                timeout = Some(left);
                keep_start = Some((at, lost_tx, lost_wake));
            }
        }
        wait_for_wakeup(signals.get_read(), timeout);
    };
    drop(keep);
    // If the group is gone, the watchdog can go; else it stays armed and kills what is left
    // of the group when we exit.
    if group_gone(pgid) {
        watchdog.disarm();
    }
    Ok(code)
}

/// How long COMMAND runs before the keep-alive thread starts: a tenth of the lifetime, at
/// most 100 ms. Its first refresh comes that much later than lifetime/3, far before expiry.
#[cfg(unix)]
fn keep_alive_delay(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_millis(100))
}

/// Sleeps until `wake` is readable (a signal, or a lost lock), or `timeout` passed. It may
/// return early (EINTR), which the callers' loops allow for.
#[cfg(unix)]
fn wait_for_wakeup(wake: &std::os::unix::net::UnixStream, timeout: Option<Duration>) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    // (A timeout too large for a timespec is no timeout.)
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    let mut fds = [PollFd::new(wake, PollFlags::IN)];
    let _ = rustix::event::poll(&mut fds, timeout.as_ref());
}

/// Sends `sig` to process group `pgid`. Only system calls: the watchdog calls it too.
/// (Never for a `pgid` of 1 or less: `kill(-1)` would signal every process we may signal.)
#[cfg(unix)]
pub(crate) fn kill_group(pgid: i32, sig: rustix::process::Signal) {
    if pgid <= 1 {
        return;
    }
    if let Some(p) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(p, sig);
    }
}

/// No process is left in group `pgid`.
#[cfg(unix)]
fn group_gone(pgid: i32) -> bool {
    rustix::process::Pid::from_raw(pgid).is_some_and(|p| {
        rustix::process::test_kill_process_group(p) == Err(rustix::io::Errno::SRCH)
    })
}

/// Stops what is left of COMMAND's group: SIGTERM, then SIGKILL after `grace`.
#[cfg(unix)]
fn stop_group(pgid: i32, grace: Duration) {
    let Some(p) = rustix::process::Pid::from_raw(pgid).filter(|_| pgid > 1) else {
        return;
    };
    if rustix::process::test_kill_process_group(p).is_err() {
        return;
    }
    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::TERM);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if rustix::process::test_kill_process_group(p).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
}

/// Runs COMMAND as a plain child process, keeping the lock alive; kills it if the lock is
/// lost. Returns the exit code.
#[cfg(not(unix))]
fn supervise(lock: &Lock, refresh: bool, command: &[OsString]) -> Result<u8> {
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()
        .map_err(|e| spawn_error(&command[0], e))?;
    let (tx, rx) = mpsc::channel();
    let keep = refresh.then(|| {
        lock.keep_alive(move |e| {
            let _ = tx.send(e.to_string());
        })
    });
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status_code(status);
        }
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(50)) {
            output::say(&format!(
                "lost the lock {} while COMMAND ran ({msg}); stopping COMMAND",
                lock.lockfile().display()
            ));
            let _ = child.kill();
            let _ = child.wait();
            break exit::LOST;
        }
    };
    drop(keep);
    Ok(code)
}

//! `flufl-lock run`: hold the lock while COMMAND runs, and never let COMMAND (or what it
//! started) run on without it.
//!
//! On Linux, COMMAND runs in its own process group, with a parent-death signal (SIGKILL),
//! and a watchdog process (this binary's hidden `__watchdog`) holds a pipe from us: when we
//! die, even by SIGKILL, the pipe closes and the watchdog kills COMMAND's whole group.
//! SIGINT, SIGTERM and SIGHUP are forwarded to the group. When COMMAND exits, what is left
//! of its group is stopped (SIGTERM, then SIGKILL after 2 s) before the lock is released.
//! If the keep-alive finds the lock lost, COMMAND's group gets SIGTERM, then SIGKILL after
//! 5 s, and we exit with 76. Other POSIX systems lack the parent-death signal; the
//! watchdog and process group still apply. On Windows COMMAND is a plain child process.

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

enum Event {
    // (On Windows the child is polled with try_wait instead.)
    #[cfg_attr(not(unix), allow(dead_code))]
    Exited(std::io::Result<ExitStatus>),
    Lost(String),
    #[cfg(unix)]
    Signal(i32),
}

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
#[cfg(unix)]
fn supervise(lock: &Lock, refresh: bool, command: &[OsString]) -> Result<u8> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    // Signals are caught from now on, so none is lost between spawning and forwarding.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).process_group(0);
    set_parent_death_signal(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| spawn_error(&command[0], e))?;
    let pgid = child.id() as i32;
    // The watchdog: kills the group if our end of its stdin closes, i.e. when we die.
    let watchdog = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("__watchdog")
            .arg(pgid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
    });
    let watchdog = match watchdog {
        Ok(w) => w,
        Err(e) => {
            kill_group(pgid, rustix::process::Signal::KILL);
            let _ = child.wait();
            return Err(anyhow::anyhow!("cannot start the watchdog process: {e}"));
        }
    };

    let (tx, rx) = mpsc::channel();
    let keep = refresh.then(|| {
        let tx = tx.clone();
        lock.keep_alive(move |e| {
            let _ = tx.send(Event::Lost(e.to_string()));
        })
    });
    {
        let tx = tx.clone();
        let handle = signals.handle();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if tx.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        });
        // The thread ends with the process; `handle` keeps registration alive until then.
        std::mem::forget(handle);
    }
    std::thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });
    let code = loop {
        match rx.recv() {
            Ok(Event::Exited(status)) => {
                stop_group(pgid, Duration::from_secs(2));
                break status_code(status?);
            }
            Ok(Event::Signal(sig)) => {
                log::info!("forwarding signal {sig} to COMMAND");
                if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                    kill_group(pgid, s);
                }
            }
            Ok(Event::Lost(msg)) => {
                output::say(&format!(
                    "lost the lock {} while COMMAND ran ({msg}); stopping COMMAND",
                    lock.lockfile().display()
                ));
                kill_group(pgid, rustix::process::Signal::TERM);
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(Event::Exited(_)) => break,
                        Ok(_) => continue,
                        Err(_) => {
                            kill_group(pgid, rustix::process::Signal::KILL);
                            break;
                        }
                    }
                }
                stop_group(pgid, Duration::ZERO);
                break exit::LOST;
            }
            Err(_) => break exit::FAILURE,
        }
    };
    drop(keep);
    // Closing its stdin ends the watchdog (the group is already gone).
    drop(watchdog);
    Ok(code)
}

#[cfg(unix)]
fn kill_group(pgid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(p, sig);
    }
}

/// Stops what is left of COMMAND's group: SIGTERM, then SIGKILL after `grace`.
#[cfg(unix)]
fn stop_group(pgid: i32, grace: Duration) {
    let Some(p) = rustix::process::Pid::from_raw(pgid) else {
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

/// On Linux, COMMAND gets SIGKILL when we die, even before the watchdog acts.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec; it only makes the raw
    // prctl and getppid system calls (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // If we died before prctl took effect, the child was reparented: give up.
            if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
                return Err(std::io::Error::other("parent died"));
            }
            Ok(())
        });
    }
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn set_parent_death_signal(_cmd: &mut std::process::Command) {}

/// `__watchdog PGID`: waits for EOF on stdin (our parent exited or died), then kills the
/// process group, in case anything of it is left.
pub fn watchdog(pgid: i32) {
    use std::io::Read;
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    #[cfg(unix)]
    kill_group(pgid, rustix::process::Signal::KILL);
    #[cfg(not(unix))]
    let _ = pgid;
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
        let tx = tx.clone();
        lock.keep_alive(move |e| {
            let _ = tx.send(Event::Lost(e.to_string()));
        })
    });
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status_code(status);
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Lost(msg)) => {
                output::say(&format!(
                    "lost the lock {} while COMMAND ran ({msg}); stopping COMMAND",
                    lock.lockfile().display()
                ));
                let _ = child.kill();
                let _ = child.wait();
                break exit::LOST;
            }
            Ok(Event::Exited(_)) | Err(_) => {}
        }
    };
    drop(keep);
    Ok(code)
}

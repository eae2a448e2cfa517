//! The subcommands that manage a lock from a script (`acquire`, `release`, `refresh`,
//! `status`, `break`) and those that print the command's own documentation (`completions`,
//! `man`). `run` has its own module.
//!
//! `acquire` holds the lock for an owner process (default: our parent, e.g. the calling
//! shell script), so that `release` and `refresh` from the same script find it again and
//! waiters on this host break it as soon as the owner is gone.

use crate::args::{Cli, Shell, Timing};
use crate::exit::{self, lock_error};
use crate::output;
use anyhow::Result;
use clap::CommandFactory;
use flufl_lock::{BreakOutcome, ErrorKind, Lock, LockState};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// `acquire`: waits for the lock (at most `timing.timeout`) for `owner_pid` (default: the
/// parent), and exits leaving it held. Refuses if it is already held for that owner.
pub fn acquire(lockfile: &Path, timing: &Timing, owner_pid: Option<u32>) -> Result<()> {
    let owner = owner_pid.unwrap_or_else(parent_pid);
    if adopt(lockfile, owner)?.is_some() {
        return Err(exit::failure(format!(
            "{} is already held for pid {owner}",
            lockfile.display()
        )));
    }
    let lock = Lock::builder(lockfile)
        .lifetime(timing.lifetime)
        .owner_pid(owner)
        .on_wait(output::status_line(false))
        .build()
        .map_err(lock_error)?;
    wait_for(&lock, timing.timeout)?;
    log::info!("acquired {} for pid {owner}", lockfile.display());
    lock.leak();
    Ok(())
}

/// `release`: releases the lock held for `owner_pid` (default: the parent). Someone
/// else's lock is refused unless `force`, which breaks it.
pub fn release(lockfile: &Path, force: bool, owner_pid: Option<u32>) -> Result<()> {
    let owner = owner_pid.unwrap_or_else(parent_pid);
    if let Some(lock) = adopt(lockfile, owner)? {
        return lock.unlock().map_err(lock_error);
    }
    let lock = Lock::new(lockfile).map_err(lock_error)?;
    match lock.details() {
        Err(e) if e.kind() == ErrorKind::NotLocked => Err(exit::failure(format!(
            "{} is not locked",
            lockfile.display()
        ))),
        Err(e) => Err(lock_error(e)),
        Ok(d) if !force => Err(exit::failure(format!(
            "refusing to release {}: it is held by {} pid {}, not for pid {owner} (use --force)",
            lockfile.display(),
            d.hostname,
            d.pid
        ))),
        Ok(_) => break_held(&lock, true),
    }
}

/// `refresh`: the lock held for `owner_pid` (default: the parent) now expires `lifetime`
/// from now, and stays held.
pub fn refresh(lockfile: &Path, lifetime: Duration, owner_pid: Option<u32>) -> Result<()> {
    let owner = owner_pid.unwrap_or_else(parent_pid);
    let Some(lock) = adopt(lockfile, owner)? else {
        return Err(exit::failure(format!(
            "{} is not held for pid {owner}",
            lockfile.display()
        )));
    };
    lock.refresh(Some(lifetime), false).map_err(lock_error)?;
    lock.leak();
    Ok(())
}

/// `status`: the state, holder and expiry on stdout, as text or JSON.
pub fn status(lockfile: &Path, json: bool) -> Result<()> {
    let lock = Lock::new(lockfile).map_err(lock_error)?;
    let state = lock.state().map_err(lock_error)?;
    let (holder, expiration) = match state {
        LockState::Unlocked => (None, None),
        _ => (lock.details().ok(), lock.expiration().ok()),
    };
    let status = output::Status {
        lockfile: lock.lockfile(),
        state,
        holder,
        expiration,
        now: SystemTime::now(),
    };
    let out = std::io::stdout().lock();
    if json {
        output::status_json(&status, out)?;
    } else {
        output::status_text(&status, out)?;
    }
    Ok(())
}

/// `break`: breaks an expired or stale lock, or a live one if `force`, and says what it
/// broke.
pub fn break_lock(lockfile: &Path, force: bool) -> Result<()> {
    let lock = Lock::new(lockfile).map_err(lock_error)?;
    break_held(&lock, force)
}

fn break_held(lock: &Lock, force: bool) -> Result<()> {
    let path = lock.lockfile().display();
    match lock.break_lock(force).map_err(lock_error)? {
        BreakOutcome::Unlocked => {
            output::say(&format!("{path} is not locked; nothing to break"));
            Ok(())
        }
        BreakOutcome::Broken(d) => {
            output::say(&format!(
                "broke {path}, held by {} pid {}",
                d.hostname, d.pid
            ));
            Ok(())
        }
        BreakOutcome::Live(d) => Err(exit::failure(format!(
            "refusing to break {path}: held by {} pid {} and live{} (use --force)",
            d.hostname,
            d.pid,
            lock.expires_in()
                .ok()
                .flatten()
                .map(|t| format!(", expires in {}", output::human(t)))
                .unwrap_or_default()
        ))),
    }
}

/// `completions SHELL`: the completion script on stdout.
pub fn completions(shell: Shell) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "flufl-lock", &mut std::io::stdout());
}

/// `man`: the man page (roff) on stdout.
pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(())
}

/// Waits for `lock`, at most `timeout` (exit 75 after it), showing the status line set up
/// by the builder's `on_wait` until it ends.
pub fn wait_for(lock: &Lock, timeout: Option<Duration>) -> Result<()> {
    let taken = match timeout {
        Some(t) => lock.lock_timeout(t),
        None => lock.lock(),
    };
    output::clear_status_line();
    taken.map_err(lock_error)
}

/// The lock at `lockfile` if it is held for `owner`.
fn adopt(lockfile: &Path, owner: u32) -> Result<Option<Lock>> {
    Lock::builder(lockfile)
        .owner_pid(owner)
        .adopt()
        .map_err(lock_error)
}

/// The default owner of `acquire`, `release` and `refresh`: on POSIX our parent process
/// (the script that runs us); elsewhere this process (std offers no parent pid).
fn parent_pid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::getppid().map_or(1, |p| p.as_raw_nonzero().get() as u32)
    }
    #[cfg(not(unix))]
    {
        std::process::id()
    }
}

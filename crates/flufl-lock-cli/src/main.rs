//! `flufl-lock`: run a command under an NFS-safe lock, and manage flufl.lock-compatible
//! locks from shell scripts. See `flufl-lock --help`.

mod args;
mod output;
mod run;

use anyhow::Result;
use args::{Cli, Command};
use clap::{CommandFactory, Parser};
use flufl_lock::{BreakOutcome, ErrorKind, Lock, LockState};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    /// Failure: refused, I/O error, not a lock.
    pub const FAILURE: u8 = 1;
    /// Timed out waiting for the lock (EX_TEMPFAIL).
    pub const TIMEOUT: u8 = 75;
    /// The lock was lost while COMMAND ran.
    pub const LOST: u8 = 76;
    /// COMMAND could not be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// COMMAND was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// A failure whose message has been printed, or should be printed, with this exit code.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    output::init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = match e.downcast::<Exit>() {
                Ok(Exit(code, msg)) => (code, msg),
                Err(e) => (exit::FAILURE, format!("{e:#}")),
            };
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "flufl-lock: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Maps a library error to our exit codes: timeouts are 75, the rest 1.
pub fn lock_error(e: flufl_lock::Error) -> anyhow::Error {
    let code = if e.kind() == ErrorKind::TimedOut {
        exit::TIMEOUT
    } else {
        exit::FAILURE
    };
    Exit(code, e.to_string()).into()
}

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

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Run {
            timing,
            no_refresh,
            quiet,
            lockfile,
            command,
        } => run::run(
            &lockfile,
            timing.lifetime,
            timing.timeout,
            !no_refresh,
            quiet,
            &command,
        ),
        Command::Acquire {
            timing,
            owner_pid,
            lockfile,
        } => {
            let owner = owner_pid.unwrap_or_else(parent_pid);
            if Lock::builder(&lockfile)
                .owner_pid(owner)
                .adopt()
                .map_err(lock_error)?
                .is_some()
            {
                return Err(Exit(
                    exit::FAILURE,
                    format!("{} is already held for pid {owner}", lockfile.display()),
                )
                .into());
            }
            let lock = Lock::builder(&lockfile)
                .lifetime(timing.lifetime)
                .owner_pid(owner)
                .on_wait(output::status_line(false))
                .build()
                .map_err(lock_error)?;
            let r = match timing.timeout {
                Some(t) => lock.lock_timeout(t),
                None => lock.lock(),
            };
            output::clear_status_line();
            r.map_err(lock_error)?;
            log::info!("acquired {} for pid {owner}", lockfile.display());
            lock.leak();
            Ok(ExitCode::SUCCESS)
        }
        Command::Release {
            force,
            owner_pid,
            lockfile,
        } => {
            let owner = owner_pid.unwrap_or_else(parent_pid);
            if let Some(lock) = Lock::builder(&lockfile)
                .owner_pid(owner)
                .adopt()
                .map_err(lock_error)?
            {
                lock.unlock().map_err(lock_error)?;
                return Ok(ExitCode::SUCCESS);
            }
            let lock = Lock::new(&lockfile).map_err(lock_error)?;
            match lock.details() {
                Err(e) if e.kind() == ErrorKind::NotLocked => {
                    Err(Exit(exit::FAILURE, format!("{} is not locked", lockfile.display())).into())
                }
                Err(e) => Err(lock_error(e)),
                Ok(d) if !force => Err(Exit(
                    exit::FAILURE,
                    format!(
                        "refusing to release {}: it is held by {} pid {}, not for pid {owner} (use --force)",
                        lockfile.display(),
                        d.hostname,
                        d.pid
                    ),
                )
                .into()),
                Ok(_) => break_lock(&lock, true),
            }
        }
        Command::Refresh {
            lifetime,
            owner_pid,
            lockfile,
        } => {
            let owner = owner_pid.unwrap_or_else(parent_pid);
            let Some(lock) = Lock::builder(&lockfile)
                .owner_pid(owner)
                .adopt()
                .map_err(lock_error)?
            else {
                return Err(Exit(
                    exit::FAILURE,
                    format!("{} is not held for pid {owner}", lockfile.display()),
                )
                .into());
            };
            lock.refresh(Some(lifetime), false).map_err(lock_error)?;
            lock.leak();
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, lockfile } => status(&lockfile, json),
        Command::Break { force, lockfile } => {
            let lock = Lock::new(&lockfile).map_err(lock_error)?;
            break_lock(&lock, force)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let shell = match shell {
                args::Shell::Bash => clap_complete::Shell::Bash,
                args::Shell::Zsh => clap_complete::Shell::Zsh,
                args::Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "flufl-lock", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watchdog { pgid } => run::watchdog(pgid),
    }
}

fn break_lock(lock: &Lock, force: bool) -> Result<ExitCode> {
    let path = lock.lockfile().display();
    match lock.break_lock(force).map_err(lock_error)? {
        BreakOutcome::Unlocked => {
            output::say(&format!("{path} is not locked; nothing to break"));
            Ok(ExitCode::SUCCESS)
        }
        BreakOutcome::Broken(d) => {
            output::say(&format!(
                "broke {path}, held by {} pid {}",
                d.hostname, d.pid
            ));
            Ok(ExitCode::SUCCESS)
        }
        BreakOutcome::Live(d) => Err(Exit(
            exit::FAILURE,
            format!(
                "refusing to break {path}: held by {} pid {} and live{} (use --force)",
                d.hostname,
                d.pid,
                lock.expires_in()
                    .ok()
                    .flatten()
                    .map(|t| format!(", expires in {}", output::human(t)))
                    .unwrap_or_default()
            ),
        )
        .into()),
    }
}

fn status(lockfile: &Path, json: bool) -> Result<ExitCode> {
    let lock = Lock::new(lockfile).map_err(lock_error)?;
    let state = lock.state().map_err(lock_error)?;
    let details = match state {
        LockState::Unlocked => None,
        _ => lock.details().ok(),
    };
    let expiration = match state {
        LockState::Unlocked => None,
        _ => lock.expiration().ok(),
    };
    let now = std::time::SystemTime::now();
    let expires_in_ms: Option<i128> = expiration.map(|e| match e.duration_since(now) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    });
    let mut out = std::io::stdout().lock();
    if json {
        let holder = match &details {
            Some(d) => format!(
                "{{\"hostname\": {}, \"pid\": {}, \"claimfile\": {}}}",
                output::json_str(&d.hostname),
                d.pid,
                output::json_str(&d.claimfile.to_string_lossy())
            ),
            None => "null".into(),
        };
        writeln!(
            out,
            "{{\"lockfile\": {}, \"state\": \"{}\", \"holder\": {}, \"expires_at\": {}, \"expires_in_ms\": {}}}",
            output::json_str(&lock.lockfile().to_string_lossy()),
            state.as_str(),
            holder,
            expiration.map_or("null".into(), |e| output::json_str(&output::rfc3339(e))),
            expires_in_ms.map_or("null".into(), |n| n.to_string())
        )?;
    } else {
        let path = lock.lockfile().display();
        match (&details, expiration, expires_in_ms) {
            (Some(d), Some(e), Some(ms)) => {
                let when = if ms >= 0 {
                    format!(
                        "expires in {}",
                        output::human(Duration::from_millis(ms as u64))
                    )
                } else {
                    format!(
                        "expired {} ago",
                        output::human(Duration::from_millis((-ms) as u64))
                    )
                };
                writeln!(
                    out,
                    "{path}: {state}, held by {} pid {}; {when} ({})",
                    d.hostname,
                    d.pid,
                    output::rfc3339(e)
                )?;
            }
            _ => writeln!(out, "{path}: {state}")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// Timeouts map to 75, everything else to 1.
    #[test]
    fn error_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let a = flufl_lock::Lock::new(&p).unwrap();
        a.lock().unwrap();
        let b = flufl_lock::Lock::new(&p).unwrap();
        let e = super::lock_error(b.try_lock().unwrap_err());
        assert_eq!(
            e.downcast_ref::<super::Exit>().unwrap().0,
            super::exit::TIMEOUT
        );
        let e = super::lock_error(b.unlock().unwrap_err());
        assert_eq!(
            e.downcast_ref::<super::Exit>().unwrap().0,
            super::exit::FAILURE
        );
    }
}

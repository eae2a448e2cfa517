//! The exit codes, defined once: the code returns these constants, and the "Exit codes"
//! section of `--help` ([`help`]) is written from them.

use flufl_lock::ErrorKind;

/// Success (`run`: COMMAND succeeded).
pub const SUCCESS: u8 = 0;
/// Failure: refused, an I/O error, a lock file that is not a lock.
pub const FAILURE: u8 = 1;
/// A usage error (reported by clap).
pub const USAGE: u8 = 2;
/// Timed out waiting for the lock (EX_TEMPFAIL).
pub const TIMEOUT: u8 = 75;
/// `run`: the lock was lost while COMMAND ran.
pub const LOST: u8 = 76;
/// `run`: COMMAND could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: COMMAND was not found.
pub const NOT_FOUND: u8 = 127;
/// `run`: COMMAND was killed by signal N, exit `SIGNAL_BASE + N` (the shell's convention).
pub const SIGNAL_BASE: u8 = 128;

/// The "Exit codes" section of `flufl-lock --help`.
pub fn help() -> String {
    format!(
        "\
Exit codes:
  {SUCCESS:<4} success (run: COMMAND succeeded)
  {FAILURE:<4} failure: the lock is held by someone else (release, break), an I/O error, a lock
       file that is not a lock
  {USAGE:<4} usage error
  {TIMEOUT:<4} timed out waiting for the lock (EX_TEMPFAIL)
  {LOST:<4} run: the lock was lost while COMMAND ran; COMMAND was stopped
  {CANNOT_EXECUTE:<4} run: COMMAND could not be executed; {NOT_FOUND}: COMMAND was not found
  N    run: COMMAND's own exit status; {SIGNAL_BASE}+N when it was killed by signal N"
    )
}

/// A failure with the exit code it ends the command with, and its one-line message.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl Exit {
    /// The exit code and message for an error that ends the command: an [`Exit`]'s own,
    /// or [`FAILURE`] with the error and its causes for any other error.
    pub fn from_error(e: anyhow::Error) -> Exit {
        match e.downcast::<Exit>() {
            Ok(exit) => exit,
            Err(e) => Exit(FAILURE, format!("{e:#}")),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

/// A refusal or other failure: exit [`FAILURE`] with `msg`.
pub fn failure(msg: String) -> anyhow::Error {
    Exit(FAILURE, msg).into()
}

/// Maps a library error to our exit codes: timeouts are [`TIMEOUT`], the rest [`FAILURE`].
pub fn lock_error(e: flufl_lock::Error) -> anyhow::Error {
    let code = if e.kind() == ErrorKind::TimedOut {
        TIMEOUT
    } else {
        FAILURE
    };
    Exit(code, e.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts map to 75, everything else to 1.
    #[test]
    fn error_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let a = flufl_lock::Lock::new(&p).unwrap();
        a.lock().unwrap();
        let b = flufl_lock::Lock::new(&p).unwrap();
        let e = lock_error(b.try_lock().unwrap_err());
        assert_eq!(e.downcast_ref::<Exit>().unwrap().0, TIMEOUT);
        let e = lock_error(b.unlock().unwrap_err());
        assert_eq!(e.downcast_ref::<Exit>().unwrap().0, FAILURE);
    }

    /// The help text names every code, as the README's table does.
    #[test]
    fn help_names_the_codes() {
        let help = help();
        for line in ["  0    success", "  2    usage error", "  75   timed out"] {
            assert!(help.contains(line), "{line:?} in {help}");
        }
        assert!(help.contains("126  run: COMMAND could not be executed; 127: COMMAND"));
        assert!(help.contains("128+N when it was killed by signal N"));
    }
}

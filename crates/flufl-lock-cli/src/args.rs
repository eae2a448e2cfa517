//! The command line, as clap definitions; also the source of `--help`, the shell
//! completions and the man page.

use crate::exit;
use clap::{Args, Parser, Subcommand, ValueEnum};
use humantime::DurationError;
use std::path::PathBuf;
use std::time::Duration;

/// The text after the options in `flufl-lock --help`: the exit codes and examples.
fn after_help() -> String {
    format!(
        "{}

Examples:
  flufl-lock run /var/lock/backup.lck -- /usr/local/bin/backup --full
  flufl-lock status --json /shared/jobs/ingest.lck",
        exit::help()
    )
}

/// NFS-safe lock files with lifetimes, compatible with Python's flufl.lock.
#[derive(Debug, Parser)]
#[command(name = "flufl-lock", version, about, after_help = after_help())]
pub struct Cli {
    /// More log messages on stderr (-v: waiting and breaking, -vv: every step).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Timing {
    /// How long the lock stays valid without a refresh (15, 15s, 1m30s, 2h, 250ms).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "15s")]
    pub lifetime: Duration,
    /// Give up waiting after DUR with exit code 75. Default: wait forever.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for the lock, run COMMAND while holding it (refreshing it every lifetime/3),
    /// release it when COMMAND ends, and exit with COMMAND's status.
    #[command(after_help = "\
Examples:
  # A cron job that never runs twice at once, even from two hosts sharing /shared:
  flufl-lock run --timeout 0 /shared/locks/report.lck -- /usr/local/bin/report
  # Wait at most five minutes, with a one-minute lifetime refreshed while it runs:
  flufl-lock run --lifetime 1m --timeout 5m /srv/mail/spool.lck -- process-spool")]
    Run {
        #[command(flatten)]
        timing: Timing,
        /// Do not refresh the lock while COMMAND runs (it may be broken after its lifetime).
        #[arg(long)]
        no_refresh: bool,
        /// No status line while waiting.
        #[arg(short, long)]
        quiet: bool,
        /// The lock file.
        lockfile: PathBuf,
        /// The command to run, and its arguments.
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Take the lock on behalf of a long-lived owner process (default: the parent, e.g. the
    /// calling shell script), and exit leaving it held.
    #[command(after_help = "\
Examples:
  flufl-lock acquire --lifetime 10m /shared/db.lck || exit 1
  ... work ...
  flufl-lock release /shared/db.lck")]
    Acquire {
        #[command(flatten)]
        timing: Timing,
        /// The process the lock is held for; waiters on this host break the lock as soon as
        /// it is gone. Default: the parent process.
        #[arg(long, value_name = "PID")]
        owner_pid: Option<u32>,
        /// The lock file.
        lockfile: PathBuf,
    },
    /// Release a lock taken by `acquire` for the same owner. Refuses (exit 1) to release
    /// someone else's lock unless --force.
    #[command(after_help = "Example:\n  flufl-lock release /shared/db.lck")]
    Release {
        /// Release the lock even if another process holds it (breaks it).
        #[arg(long)]
        force: bool,
        /// The owner the lock was acquired for. Default: the parent process.
        #[arg(long, value_name = "PID")]
        owner_pid: Option<u32>,
        /// The lock file.
        lockfile: PathBuf,
    },
    /// Extend a lock taken by `acquire` for the same owner: it now expires DUR from now.
    #[command(after_help = "Example:\n  flufl-lock refresh --lifetime 10m /shared/db.lck")]
    Refresh {
        /// The new lifetime (15, 15s, 1m30s, 2h, 250ms).
        #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "15s")]
        lifetime: Duration,
        /// The owner the lock was acquired for. Default: the parent process.
        #[arg(long, value_name = "PID")]
        owner_pid: Option<u32>,
        /// The lock file.
        lockfile: PathBuf,
    },
    /// Show who holds the lock and when it expires (exit 0 whenever it could be read).
    #[command(after_help = "\
Examples:
  flufl-lock status /shared/db.lck
  flufl-lock status --json /shared/db.lck | jq -r .state")]
    Status {
        /// Print one JSON object: lockfile, state, holder, expires_at, expires_in_ms.
        #[arg(long)]
        json: bool,
        /// The lock file.
        lockfile: PathBuf,
    },
    /// Break an expired or stale lock (exit 0, saying what it broke); refuses a live one
    /// (exit 1) unless --force.
    #[command(after_help = "Example:\n  flufl-lock break /shared/db.lck")]
    Break {
        /// Break the lock even if it is live.
        #[arg(long)]
        force: bool,
        /// The lock file.
        lockfile: PathBuf,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  flufl-lock completions bash > /etc/bash_completion.d/flufl-lock"
    )]
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  flufl-lock man > /usr/local/share/man/man1/flufl-lock.1")]
    Man,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The longest duration accepted (about 31,700 years), so that now + DUR stays a time the
/// system can represent.
const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000_000);

/// Parses `15`, `15s`, `1m30s`, `2h`, `250ms`, `1.5s`: a bare number is seconds; the
/// rest is humantime's syntax (units ms, s, m, h, d and their long forms).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let invalid = |why: String| format!("invalid duration {s:?}: {why}");
    let duration = match t.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
        Err(_) => match humantime::parse_duration(t) {
            Ok(d) => Some(d),
            Err(DurationError::NumberOverflow) => None,
            Err(e) => return Err(invalid(describe(t, e))),
        },
    };
    duration
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| invalid("out of range".into()))
}

/// What is wrong with duration `t`, in the command's words (which name the units the
/// README documents).
fn describe(t: &str, e: DurationError) -> String {
    let rest = |offset: usize| t.get(offset..).unwrap_or(t);
    match e {
        DurationError::NumberExpected(at) => format!("expected a number at {:?}", rest(at)),
        DurationError::InvalidCharacter(at) => format!("unexpected character at {:?}", rest(at)),
        DurationError::UnknownUnit { unit, start, .. } if unit.is_empty() => {
            // The number as written (humantime's `value` drops a fraction).
            let before = t.get(..start).unwrap_or(t).trim_end();
            let mut number = before.rsplit(|c: char| !(c.is_ascii_digit() || c == '.'));
            format!(
                "a unit (ms, s, m, h, d) must follow {}",
                number.next().unwrap_or(before)
            )
        }
        DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit {unit:?} (use ms, s, m, h or d)")
        }
        DurationError::NumberOverflow => "out of range".into(),
        DurationError::Empty => "empty duration".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented duration forms parse; junk does not.
    #[test]
    fn durations() {
        let ok = [
            ("15", 15_000),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("250ms", 250),
            ("1.5s", 1500),
            ("0", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for bad in ["", "abc", "5x", "s", "-1", "1m30", "1e400", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// The errors name the input and what is wrong with it, in the README's units.
    #[test]
    fn duration_messages() {
        let cases = [
            ("", "empty duration"),
            (
                "abc",
                r#"invalid duration "abc": expected a number at "abc""#,
            ),
            (
                "5x",
                r#"invalid duration "5x": unknown unit "x" (use ms, s, m, h or d)"#,
            ),
            (
                "1m30",
                r#"invalid duration "1m30": a unit (ms, s, m, h, d) must follow 30"#,
            ),
            ("1m30.5", r#"a unit (ms, s, m, h, d) must follow 30.5"#),
            (
                "5-3s",
                r#"invalid duration "5-3s": unexpected character at "-3s""#,
            ),
            ("1e400", r#"invalid duration "1e400": out of range"#),
            ("-1", r#"invalid duration "-1": out of range"#),
            ("99999999999999s", "out of range"),
        ];
        for (input, message) in cases {
            let e = parse_duration(input).unwrap_err();
            assert!(e.ends_with(message), "{input:?}: {e}");
        }
        assert_eq!(parse_duration("1e12").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration("10d").unwrap(), Duration::from_secs(864_000));
    }

    /// The clap definition is consistent.
    #[test]
    fn cli_definition() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

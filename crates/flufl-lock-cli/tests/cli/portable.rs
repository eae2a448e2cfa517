//! CLI tests that run on every platform, including Windows under Wine: exit status
//! passthrough, timeouts, status JSON, break, usage errors. (`posix` has the POSIX ones:
//! signals, process groups, shell scripts.)

use super::{run, s, stderr, stdout, tmp};
use flufl_lock::Lock;
use std::time::Duration;

/// A command that exits with status 3, on this platform.
fn exit3() -> Vec<&'static str> {
    if cfg!(windows) {
        vec!["cmd", "/c", "exit 3"]
    } else {
        vec!["sh", "-c", "exit 3"]
    }
}

/// `run` passes COMMAND's exit status through and leaves no file behind.
#[test]
fn run_exit_status_and_cleanup() {
    let (dir, lock) = tmp();
    let mut args = vec!["run", s(&lock), "--"];
    args.extend(exit3());
    let o = run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Timing out is exit 75 with one line naming the lock.
#[test]
fn timeout_75() {
    let (_d, lock) = tmp();
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    let mut args = vec!["run", "--timeout", "200ms", s(&lock), "--"];
    args.extend(exit3());
    let o = run(&args);
    assert_eq!(o.status.code(), Some(75));
    let err = stderr(&o);
    assert!(
        err.contains("job.lck") && err.contains("timed out"),
        "{err}"
    );
}

/// status --json for unlocked and held locks; break refuses a live lock, --force breaks it.
#[test]
fn status_and_break() {
    let (_d, lock) = tmp();
    let o = run(&["status", "--json", s(&lock)]);
    assert!(stdout(&o).contains("\"state\": \"unlocked\""));
    let holder = Lock::builder(&lock)
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let o = run(&["status", "--json", s(&lock)]);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("\"pid\": {}", std::process::id())),
        "{out}"
    );
    assert_eq!(run(&["break", s(&lock)]).status.code(), Some(1));
    assert_eq!(run(&["break", "--force", s(&lock)]).status.code(), Some(0));
    assert!(!holder.is_locked().unwrap());
}

/// Usage errors are exit 2 and name the bad argument.
#[test]
fn usage_errors() {
    let o = run(&["run", "--lifetime", "5x", "x.lck", "--", "y"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("5x"));
}

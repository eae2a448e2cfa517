//! A cron-style job guarded by a lock: if the previous run still holds it, skip this run
//! (exit 75, like `flufl-lock run --timeout 0`) instead of piling up.
//!
//! `cargo run --example cron_job [LOCKFILE]`

// An example program talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use flufl_lock::{ErrorKind, Lock};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join("report-job.lck")
            .display()
            .to_string()
    });
    let lock = match Lock::builder(&path)
        .lifetime(Duration::from_secs(60))
        .build()
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cron_job: {e}");
            return ExitCode::from(1);
        }
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            eprintln!("cron_job: previous run still going, skipping: {e}");
            return ExitCode::from(75);
        }
        Err(e) => {
            eprintln!("cron_job: {e}");
            return ExitCode::from(1);
        }
    }
    println!(
        "cron_job: running the report under {}",
        lock.lockfile().display()
    );
    std::thread::sleep(Duration::from_millis(100));
    match lock.unlock() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cron_job: {e}");
            ExitCode::from(1)
        }
    }
}

//! A long job with a short lifetime kept alive in the background. If the lock is lost (a
//! pause longer than the lifetime let someone break it), the job stops at its next safe
//! point instead of running on unprotected.
//!
//! `cargo run --example long_job`

// An example program talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use flufl_lock::Lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), flufl_lock::Error> {
    let dir = std::env::temp_dir();
    let lock = Lock::builder(dir.join("long-job.lck"))
        .lifetime(Duration::from_secs(2))
        .build()?;
    lock.lock()?;
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let keep = lock.keep_alive(move |err| {
        eprintln!("long_job: lost the lock: {err}");
        flag.store(true, Ordering::SeqCst);
    });
    for step in 1..=5 {
        if lost.load(Ordering::SeqCst) {
            eprintln!("long_job: stopping before step {step}");
            std::process::exit(76);
        }
        println!("long_job: step {step} of 5 (the lock is refreshed every ~0.7 s)");
        std::thread::sleep(Duration::from_millis(600));
    }
    drop(keep);
    lock.unlock()?;
    println!("long_job: done; the lock outlived its 2 s lifetime by being kept alive");
    Ok(())
}

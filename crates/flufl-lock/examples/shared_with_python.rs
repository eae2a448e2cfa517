//! A lock shared with Python's flufl.lock: the same file works from both. This example
//! holds the lock and prints what a Python process would see; run the Python side with
//! the interop venv (`bash testbed/interop/setup.sh`):
//!
//! ```sh
//! cargo run --example shared_with_python /tmp/shared.lck &
//! target/interop-venv/bin/python -c 'from flufl.lock import Lock; l = Lock("/tmp/shared.lck"); print(l.details, l.state)'
//! ```

// An example program talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use flufl_lock::Lock;
use std::time::Duration;

fn main() -> Result<(), flufl_lock::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join("shared.lck")
            .display()
            .to_string()
    });
    let hold: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_secs(30))
        .build()?;
    lock.lock_timeout(Duration::from_secs(30))?;
    let d = lock.details()?;
    println!(
        "held: Python's Lock({path:?}).details == ({:?}, {}, {:?})",
        d.hostname, d.pid, d.lockfile
    );
    println!(
        "claim file (the lock file's content): {}",
        lock.claimfile().display()
    );
    std::thread::sleep(Duration::from_secs(hold));
    lock.unlock()?;
    Ok(())
}

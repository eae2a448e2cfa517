//! An async service that takes a lock without blocking its runtime, keeps it alive while it
//! serves, and gives it up on shutdown. A timed-out acquisition is cancellation-safe.
//!
//! `cargo run --example async_service --features tokio`

// An example program talks to its user.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use flufl_lock::Lock;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), flufl_lock::Error> {
    let path = std::env::temp_dir().join("async-service.lck");
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_secs(3))
        .build()?;
    lock.lock_timeout_async(Duration::from_secs(10)).await?;
    let keep = lock.keep_alive_async(|err| eprintln!("async_service: lost the lock: {err}"));
    println!("async_service: leader; serving");
    // Another instance would wait without blocking its runtime; show it timing out.
    let rival = Lock::new(&path)?;
    match tokio::time::timeout(Duration::from_millis(200), rival.lock_async()).await {
        Err(_) => println!("async_service: a rival's acquisition was cancelled cleanly"),
        Ok(r) => println!("async_service: unexpected: {r:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!keep.is_lost());
    drop(keep);
    lock.unlock()?;
    println!("async_service: shut down, lock released");
    Ok(())
}

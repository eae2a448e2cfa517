//! The `tokio` feature: async acquisition that never blocks the runtime, cancellation
//! safety (no claim file, no lock left by a dropped future), and the async keep-alive.

use crate::support::{files_in, lock_path, Fault, FaultyFs, Op};
use flufl_lock::{ErrorKind, Lock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// On a single-threaded runtime, other tasks keep running while we wait for a held lock,
/// and the lock is taken once it is released.
#[tokio::test(flavor = "current_thread")]
async fn waiting_does_not_block_the_runtime() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t2 = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            t2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        holder.unlock().unwrap();
    });
    let waiter = Lock::new(&path).unwrap();
    waiter
        .lock_timeout_async(Duration::from_secs(10))
        .await
        .unwrap();
    assert!(waiter.is_locked().unwrap());
    assert!(
        ticks.load(Ordering::SeqCst) >= 10,
        "the runtime was blocked: {} ticks",
        ticks.load(Ordering::SeqCst)
    );
    ticker.abort();
    releaser.join().unwrap();
    waiter.unlock().unwrap();
}

/// A timed-out async acquisition leaves no claim file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_leaves_nothing() {
    let (dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let waiter = Lock::new(&path).unwrap();
    let e = waiter
        .lock_timeout_async(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert_eq!(files_in(dir.path()).len(), 2, "{:?}", files_in(dir.path()));
}

/// Dropping the future between attempts, and in the middle of an attempt that then takes
/// the lock, leaves no claim file and no lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_is_safe() {
    // Between attempts.
    let (dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let waiter = Lock::new(&path).unwrap();
    let r = tokio::time::timeout(Duration::from_millis(100), waiter.lock_async()).await;
    assert!(r.is_err(), "should still be waiting");
    holder.unlock().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_locked().unwrap());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    // In the middle of an attempt: the link is slow (paused), the future is dropped, then
    // the attempt succeeds; it must give the lock back.
    let (dir, path) = lock_path();
    let fs = FaultyFs::new();
    fs.rule(
        Op::Link,
        Some("test.lck"),
        Fault::Hook(Arc::new(|| std::thread::sleep(Duration::from_millis(300)))),
        1,
    );
    let waiter = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let r = tokio::time::timeout(Duration::from_millis(50), waiter.lock_async()).await;
    assert!(r.is_err(), "the attempt should still be paused");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(fs.count(Op::Link), 1, "the paused attempt ran");
    assert!(!path.exists(), "a cancelled acquisition left the lock held");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    let other = Lock::new(&path).unwrap();
    other.try_lock().unwrap();
}

/// The async keep-alive refreshes a short lifetime so a waiter cannot break it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_keep_alive() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_millis(300))
        .clock_margin(Duration::from_millis(50))
        .build()
        .unwrap();
    lock.lock_async().await.unwrap();
    let keep = lock.keep_alive_async(|_| {});
    let other = Lock::new(&path).unwrap();
    let e = other
        .lock_timeout_async(Duration::from_millis(1200))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(!keep.is_lost());
    drop(keep);
    lock.unlock().unwrap();
}

/// A malformed lock file is reported after the same one-second grace as in `lock()`, not
/// waited on forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_malformed_lock_is_an_error() {
    let (_dir, path) = lock_path();
    std::fs::write(&path, b"garbage").unwrap();
    let waiter = Lock::new(&path).unwrap();
    let t = std::time::Instant::now();
    let e = waiter
        .lock_timeout_async(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(std::fs::read(&path).unwrap(), b"garbage");
}

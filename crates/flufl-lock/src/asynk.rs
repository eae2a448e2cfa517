//! The `tokio` feature: acquiring without blocking the runtime, and an async keep-alive.
//!
//! Each attempt (a `try_lock`: a handful of filesystem calls, which on NFS are network round
//! trips) runs on tokio's blocking pool; between attempts the task sleeps on tokio's timer
//! with the same adaptive backoff as [`Lock::lock`]. Dropping the future is safe at any
//! point: an attempt still running when the future is dropped releases the lock it takes,
//! and removes its claim file.

use crate::error::{Error, ErrorKind, Result};
use crate::lock::Lock;
use crate::protocol::Inner;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Running,
    /// The future was dropped while the attempt ran: the attempt gives back what it took.
    Cancelled,
    /// The attempt ended; `true` if it took the lock.
    Done(bool),
}

/// Gives back a lock taken by an attempt whose future was dropped.
struct CancelGuard {
    inner: Arc<Inner>,
    attempt: Arc<Mutex<Attempt>>,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut a = self.attempt.lock().unwrap_or_else(|e| e.into_inner());
        match *a {
            Attempt::Running => *a = Attempt::Cancelled,
            Attempt::Done(true) => {
                // Taken, but no one will receive it: release off the runtime's workers.
                let inner = self.inner.clone();
                let release = move || {
                    if let Err(e) = inner.release(true) {
                        log::warn!("releasing a lock whose acquisition was cancelled: {e}");
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => drop(h.spawn_blocking(release)),
                    Err(_) => release(),
                }
            }
            _ => {}
        }
    }
}

async fn acquire(inner: Arc<Inner>, timeout: Option<Duration>) -> Result<()> {
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let (min, max) = inner.poll_bounds();
    let mut pause = min;
    loop {
        let attempt = Arc::new(Mutex::new(Attempt::Running));
        let mut guard = CancelGuard {
            inner: inner.clone(),
            attempt: attempt.clone(),
            armed: true,
        };
        let i2 = inner.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = i2.acquire(Some(Duration::ZERO));
            let mut a = attempt.lock().unwrap_or_else(|e| e.into_inner());
            if *a == Attempt::Cancelled {
                if r.is_ok() {
                    let _ = i2.release(true);
                }
            } else {
                *a = Attempt::Done(r.is_ok());
            }
            r
        })
        .await;
        guard.armed = false;
        let result = joined.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                &inner.lockfile,
                format!("lock attempt on {} failed: {e}", inner.lockfile.display()),
            )
        })?;
        match result {
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(e);
                }
                let mut sleep = pause;
                if let Some(d) = deadline {
                    sleep = sleep.min(d - now);
                }
                tokio::time::sleep(sleep).await;
                pause = pause.mul_f64(1.5).min(max);
            }
            other => return other,
        }
    }
}

impl Lock {
    /// Takes the lock without blocking the async runtime, waiting for the builder's default
    /// timeout (default: forever). Cancellation-safe: dropping the future leaves no claim
    /// file and no lock.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), flufl_lock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("svc.lck"))?;
    /// lock.lock_async().await?;
    /// assert!(lock.is_locked()?);
    /// lock.unlock()?;
    /// # Ok(()) }
    /// ```
    pub async fn lock_async(&self) -> Result<()> {
        acquire(self.inner.clone(), self.inner.default_timeout()).await
    }

    /// Takes the lock without blocking the async runtime, waiting at most `timeout`.
    /// Cancellation-safe, as [`Lock::lock_async`].
    ///
    /// # Errors
    ///
    /// As [`Lock::lock_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), flufl_lock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let path = dir.path().join("svc.lck");
    /// let a = flufl_lock::Lock::new(&path)?;
    /// let b = flufl_lock::Lock::new(&path)?;
    /// a.lock_async().await?;
    /// let err = b.lock_timeout_async(Duration::from_millis(50)).await.unwrap_err();
    /// assert_eq!(err.kind(), flufl_lock::ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    pub async fn lock_timeout_async(&self, timeout: Duration) -> Result<()> {
        acquire(self.inner.clone(), Some(timeout)).await
    }

    /// An async keep-alive: a tokio task that refreshes the held lock every lifetime/3
    /// (each refresh on the blocking pool) until the returned handle is dropped, and calls
    /// `on_lost` once if the lock is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), flufl_lock::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("svc.lck"))?;
    /// lock.lock_async().await?;
    /// let keep = lock.keep_alive_async(|err| log::error!("lost: {err}"));
    /// assert!(!keep.is_lost());
    /// drop(keep);
    /// lock.unlock()?;
    /// # Ok(()) }
    /// ```
    pub fn keep_alive_async(
        &self,
        on_lost: impl Fn(&Error) + Send + Sync + 'static,
    ) -> AsyncKeepAlive {
        let inner = self.inner.clone();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost2 = lost.clone();
        let task = tokio::spawn(async move {
            loop {
                let interval = (inner.lifetime() / 3).max(Duration::from_millis(10));
                tokio::time::sleep(interval).await;
                let i2 = inner.clone();
                let r = tokio::task::spawn_blocking(move || i2.refresh(None, false)).await;
                let err = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e,
                    Err(_) => return,
                };
                if err.kind() == ErrorKind::NotLocked || inner.expired_locally() {
                    log::error!("lost the lock {}: {err}", inner.lockfile.display());
                    lost2.store(true, std::sync::atomic::Ordering::SeqCst);
                    on_lost(&err);
                    return;
                }
                log::warn!(
                    "refreshing {} failed, will retry: {err}",
                    inner.lockfile.display()
                );
            }
        });
        AsyncKeepAlive { task, lost }
    }
}

/// A running [`Lock::keep_alive_async`]; dropping it stops the refreshes.
#[derive(Debug)]
pub struct AsyncKeepAlive {
    task: tokio::task::JoinHandle<()>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl AsyncKeepAlive {
    /// Whether a refresh found the lock lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for AsyncKeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

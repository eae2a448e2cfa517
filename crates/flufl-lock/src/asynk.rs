//! The `tokio` feature: acquiring without blocking the runtime, and an async keep-alive.
//!
//! An async acquisition is the blocking one's: [`Inner::begin_acquire`], then
//! [`Inner::attempt`] (a handful of filesystem calls, which on NFS are network round trips,
//! run on tokio's blocking pool) until it says `Acquired`, with the same claim throughout and
//! the same calls, sleeping on tokio's timer for what each attempt says (no inotify or
//! pidfd: the runtime's timer wakes the task). Dropping the future is safe at any point: the
//! acquisition is ended, its claim file removed, and a lock it took released.

use crate::error::{Error, ErrorKind, Result};
use crate::keep_alive::KEEP_ALIVE_SLICE;
use crate::lock::Lock;
use crate::protocol::{Acquisition, Inner, Next};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An acquisition shared between the task and the blocking pool.
#[derive(Default)]
struct Shared {
    /// The acquisition, between attempts (taken out while an attempt runs).
    acquisition: Option<Acquisition>,
    /// The future was dropped: whoever holds the acquisition ends it.
    cancelled: bool,
    /// The lock was taken and not yet handed to the caller.
    taken: bool,
}

/// Ends the acquisition if the future is dropped before it returns.
struct Cancel {
    inner: Arc<Inner>,
    shared: Arc<Mutex<Shared>>,
    returned: bool,
}

fn lock_shared(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn cancelled(inner: &Inner) -> Error {
    Error::new(
        ErrorKind::Io,
        &inner.lockfile,
        format!("acquiring {} was cancelled", inner.lockfile.display()),
    )
}

impl Drop for Cancel {
    fn drop(&mut self) {
        if self.returned {
            return;
        }
        let mut s = lock_shared(&self.shared);
        s.cancelled = true;
        let (acquisition, taken) = (s.acquisition.take(), std::mem::take(&mut s.taken));
        drop(s);
        if acquisition.is_none() && !taken {
            return; // an attempt is running on the blocking pool: it ends the acquisition
        }
        // End it off the runtime's workers: a few filesystem calls.
        let inner = self.inner.clone();
        let end = move || {
            if let Some(a) = acquisition {
                let _ = inner.end_acquire(a, Err(cancelled(&inner)));
            }
            if taken {
                if let Err(e) = inner.release(true) {
                    log::warn!("releasing a lock whose acquisition was cancelled: {e}");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(end)),
            Err(_) => end(),
        }
    }
}

/// Runs `f` on the blocking pool; a panic or a shut-down runtime is an error naming the lock.
async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::new(
            ErrorKind::Io,
            &inner.lockfile,
            format!("lock attempt on {} failed: {e}", inner.lockfile.display()),
        )
    })?
}

async fn acquire(inner: Arc<Inner>, timeout: Option<Duration>) -> Result<()> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut guard = Cancel {
        inner: inner.clone(),
        shared: shared.clone(),
        returned: false,
    };
    let (i2, s2) = (inner.clone(), shared.clone());
    blocking(&inner, move || {
        let a = i2.begin_acquire(timeout, false)?;
        let mut s = lock_shared(&s2);
        if s.cancelled {
            drop(s);
            return i2.end_acquire(a, Err(cancelled(&i2)));
        }
        s.acquisition = Some(a);
        Ok(())
    })
    .await?;
    let result = loop {
        let (i2, s2) = (inner.clone(), shared.clone());
        let next = blocking(&inner, move || {
            let Some(mut a) = lock_shared(&s2).acquisition.take() else {
                return Err(cancelled(&i2));
            };
            let next = i2.attempt(&mut a);
            let mut s = lock_shared(&s2);
            match next {
                Ok(Next::Acquired) => {
                    let r = i2.end_acquire(a, Ok(()));
                    if r.is_ok() && s.cancelled {
                        drop(s);
                        let _ = i2.release(true);
                        return Err(cancelled(&i2));
                    }
                    s.taken = r.is_ok();
                    r.map(|()| Next::Acquired)
                }
                Ok(_) if s.cancelled => {
                    drop(s);
                    i2.end_acquire(a, Err(cancelled(&i2))).map(|()| Next::Again)
                }
                Ok(next) => {
                    s.acquisition = Some(a);
                    Ok(next)
                }
                Err(e) => {
                    drop(s);
                    i2.end_acquire(a, Err(e)).map(|()| Next::Again)
                }
            }
        })
        .await;
        match next {
            Ok(Next::Acquired) => break Ok(()),
            Ok(Next::Again) => {}
            Ok(Next::Wait(pause)) => tokio::time::sleep(pause).await,
            Err(e) => break Err(e),
        }
    };
    lock_shared(&shared).taken = false;
    guard.returned = true;
    result
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
                // Due a lifetime/3 from now on the boot clock, looked at every
                // KEEP_ALIVE_SLICE: tokio's timer runs on the monotonic clock, which stops
                // during a suspend, so after a resume the refresh comes at once.
                let interval = (inner.lifetime() / 3).max(Duration::from_millis(10));
                let due = inner.fs.boot_clock().saturating_add(interval);
                loop {
                    let left = due.saturating_sub(inner.fs.boot_clock());
                    if left.is_zero() {
                        break;
                    }
                    tokio::time::sleep(left.min(KEEP_ALIVE_SLICE)).await;
                }
                if !inner.lock_state().held {
                    return; // unlocked by its owner: nothing is lost
                }
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

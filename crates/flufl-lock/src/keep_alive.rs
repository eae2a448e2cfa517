//! [`KeepAlive`]: a thread that refreshes a held lock every lifetime/3.

use crate::error::{Error, ErrorKind};
use crate::protocol::Inner;
#[cfg(doc)]
use crate::Lock;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest the keep-alive thread sleeps before looking at the boot clock again.
pub(crate) const KEEP_ALIVE_SLICE: Duration = Duration::from_millis(250);

/// A background refresh of a held lock; see [`Lock::keep_alive`]. Dropping it stops it.
pub struct KeepAlive {
    stop: Arc<(Mutex<bool>, Condvar)>,
    lost: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive")
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl KeepAlive {
    pub(crate) fn start(inner: Arc<Inner>, on_lost: Box<dyn Fn(&Error) + Send>) -> KeepAlive {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let lost = Arc::new(AtomicBool::new(false));
        let (stop2, lost2) = (stop.clone(), lost.clone());
        let thread = std::thread::Builder::new()
            .name("flufl-lock-keepalive".into())
            .spawn(move || {
                let (m, cv) = &*stop2;
                loop {
                    // Due a lifetime/3 from now on the boot clock. The wait itself runs on the
                    // monotonic clock, which stops during a suspend, so it is cut into slices
                    // of at most KEEP_ALIVE_SLICE: after a resume the refresh comes at once
                    // (and finds the lock lost, if it was broken meanwhile).
                    let interval = (inner.lock_state().lifetime / 3).max(Duration::from_millis(10));
                    let due = inner.fs.boot_clock().saturating_add(interval);
                    loop {
                        let left = due.saturating_sub(inner.fs.boot_clock());
                        if left.is_zero() {
                            break;
                        }
                        let guard = m.lock().unwrap_or_else(|e| e.into_inner());
                        let (guard, _) = cv
                            .wait_timeout_while(guard, left.min(KEEP_ALIVE_SLICE), |stopped| {
                                !*stopped
                            })
                            .unwrap_or_else(|e| e.into_inner());
                        if *guard {
                            return;
                        }
                    }
                    if !inner.lock_state().held {
                        return; // unlocked by its owner: nothing is lost
                    }
                    match inner.refresh(None, false) {
                        Ok(()) => log::debug!("refreshed {}", inner.lockfile.display()),
                        Err(e) => {
                            if e.kind() == ErrorKind::NotLocked || inner.expired_locally() {
                                log::error!("lost the lock {}: {e}", inner.lockfile.display());
                                lost2.store(true, Ordering::SeqCst);
                                on_lost(&e);
                                return;
                            }
                            log::warn!(
                                "refreshing {} failed, will retry: {e}",
                                inner.lockfile.display()
                            );
                        }
                    }
                }
            })
            .ok();
        KeepAlive { stop, lost, thread }
    }

    /// Whether a refresh found the lock lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// let keep = lock.keep_alive(|_| {});
    /// assert!(!keep.is_lost());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! [`Lock`]'s public API and its rustdoc, [`LockGuard`] and [`BreakOutcome`]: thin
//! delegations to the algorithm in [`crate::protocol`].

use crate::builder::LockBuilder;
use crate::claim::{self, Details, LockState};
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::keep_alive::KeepAlive;
use crate::protocol::{is_not_found, Inner};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An NFS-safe lock file with a lifetime, compatible with Python's flufl.lock 10.0.0.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = flufl_lock::Lock::new(dir.path().join("spool.lck"))?;
/// lock.lock()?;
/// assert!(lock.is_locked()?);
/// // ... work on what the lock guards ...
/// lock.unlock()?;
/// # Ok::<(), flufl_lock::Error>(())
/// ```
pub struct Lock {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Lock {
    /// `Lock { path, locked, lifetime, pid }`, from memory only: it never touches the lock.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (locked, lifetime) = match self.inner.state.try_lock() {
            Ok(s) => (if s.held { "locked" } else { "unlocked" }, Some(s.lifetime)),
            Err(_) => ("busy", None),
        };
        f.debug_struct("Lock")
            .field("path", &self.inner.lockfile)
            .field("state", &locked)
            .field("lifetime", &lifetime)
            .field("pid", &std::process::id())
            .finish()
    }
}

impl Lock {
    /// A lock on `path` with flufl.lock's defaults: a 15 s lifetime, wait forever.
    ///
    /// # Errors
    ///
    /// As [`LockBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert!(lock.lockfile().is_absolute());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn new(path: impl AsRef<Path>) -> Result<Lock> {
        Lock::builder(path).build()
    }

    /// A [`LockBuilder`] for `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).separator('^').build()?;
    /// assert!(lock.claimfile().to_string_lossy().contains('^'));
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> LockBuilder {
        LockBuilder::new(path.as_ref())
    }

    /// Takes the lock, waiting for the builder's default timeout (default: forever).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyLocked`] if this `Lock` already holds it, [`ErrorKind::TimedOut`]
    /// if the default timeout passes, [`ErrorKind::Io`] if a filesystem call fails (a
    /// missing or read-only directory fails at once) or the lock file is not a claim.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// assert_eq!(lock.lock().unwrap_err().kind(), flufl_lock::ErrorKind::AlreadyLocked);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn lock(&self) -> Result<()> {
        self.inner.acquire(self.inner.cfg.default_timeout)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock`]; [`ErrorKind::TimedOut`] names the holder and its expiry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let a = flufl_lock::Lock::new(&path)?;
    /// let b = flufl_lock::Lock::new(&path)?;
    /// a.lock()?;
    /// let err = b.lock_timeout(Duration::from_millis(50)).unwrap_err();
    /// assert_eq!(err.kind(), flufl_lock::ErrorKind::TimedOut);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<()> {
        self.inner.acquire(Some(timeout))
    }

    /// Takes the lock if it is free (or breakable) now, without waiting.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] if another process holds it; otherwise as [`Lock::lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.try_lock()?;
    /// lock.unlock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<()> {
        self.inner.acquire(Some(Duration::ZERO))
    }

    /// Takes the lock and returns a guard that releases it when dropped.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// {
    ///     let _guard = lock.guard()?;
    ///     assert!(lock.is_locked()?);
    /// }
    /// assert!(!lock.is_locked()?);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn guard(&self) -> Result<LockGuard<'_>> {
        self.lock()?;
        Ok(LockGuard { lock: self })
    }

    /// Takes the lock, waiting at most `timeout`, and returns a guard.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// let guard = lock.guard_timeout(std::time::Duration::from_secs(1))?;
    /// guard.unlock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn guard_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        self.lock_timeout(timeout)?;
        Ok(LockGuard { lock: self })
    }

    /// Releases the lock. Only our own lock file is ever removed: if ours was broken and
    /// taken by another process, that process keeps it and this returns `NotLocked`.
    /// Our claim file is removed in every case.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotLocked`] if we do not hold the lock (any more); [`ErrorKind::Io`] if
    /// a removal fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.unlock().unwrap_err().kind(), flufl_lock::ErrorKind::NotLocked);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn unlock(&self) -> Result<()> {
        self.inner.release(false)
    }

    /// Releases the lock if we hold it and removes our claim file, without complaining
    /// when we do not hold it (flufl.lock's `unlock(unconditionally=True)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if a removal fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.unlock_unconditionally()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn unlock_unconditionally(&self) -> Result<()> {
        self.inner.release(true)
    }

    /// Extends the lock: it now expires `lifetime` (or the current lifetime) from now.
    /// A new `lifetime` becomes the lock's lifetime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotLocked`] if we do not hold the lock, unless `unconditionally`;
    /// [`ErrorKind::Io`] if the time cannot be set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// lock.refresh(Some(Duration::from_secs(120)), false)?;
    /// assert_eq!(lock.lifetime(), Duration::from_secs(120));
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn refresh(&self, lifetime: Option<Duration>, unconditionally: bool) -> Result<()> {
        self.inner.refresh(lifetime, unconditionally)
    }

    /// Whether we hold the lock: the lock file is our claim file. Unlike flufl.lock's
    /// `is_locked`, this does **not** extend the lock's lifetime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the lock file cannot be examined.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert!(!lock.is_locked()?);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn is_locked(&self) -> Result<bool> {
        let st = self.inner.lock_state();
        self.inner.is_ours(&st)
    }

    /// Who holds the lock, as its lock file says.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotLocked`] if there is no lock file or it does not hold a claim.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// let d = lock.details()?;
    /// assert_eq!(d.pid, std::process::id());
    /// assert_eq!(d.hostname, lock.hostname());
    /// assert_eq!(d.lockfile, lock.lockfile());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn details(&self) -> Result<Details> {
        match self.inner.read_lock(&self.inner.lockfile) {
            Ok(Some((_, Some(c)))) => Ok(c.details),
            Ok(_) => Err(Error::no_details(&self.inner.lockfile)),
            Err(e) => Err(e),
        }
    }

    /// flufl.lock's six-valued state of the lock, read without changing anything.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the lock file cannot be examined.
    ///
    /// # Examples
    ///
    /// ```
    /// use flufl_lock::LockState;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.state()?, LockState::Unlocked);
    /// lock.lock()?;
    /// assert_eq!(lock.state()?, LockState::Ours);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn state(&self) -> Result<LockState> {
        self.inner.state()
    }

    /// When the lock file says the lock expires (its modification time). For locks written
    /// by this library the time is in the file server's clock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotLocked`] if there is no lock file; [`ErrorKind::Io`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// assert!(lock.expiration()? > std::time::SystemTime::now());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn expiration(&self) -> Result<SystemTime> {
        let path = &self.inner.lockfile;
        match self.inner.fs.lstat(path) {
            Ok(m) => Ok(m.modified),
            Err(e) if is_not_found(&e) => Err(Error::no_lock_file(path)),
            Err(e) => Err(Error::io("stat lock file", path, e)),
        }
    }

    /// How long until the lock (whoever holds it) expires, judged in the clock it was
    /// written in; `None` when there is no lock file or it holds no claim.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the lock file cannot be examined.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.expires_in()?, None);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn expires_in(&self) -> Result<Option<Duration>> {
        let inner = &self.inner;
        let Some((meta, Some(holder))) = inner.read_lock(&inner.lockfile)? else {
            return Ok(None);
        };
        let now = inner.now_for(&inner.lock_state(), &holder);
        Ok(Some(claim::time_left(meta.modified, now, Duration::ZERO)))
    }

    /// The lifetime each acquisition or refresh gives the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.lifetime(), flufl_lock::DEFAULT_LIFETIME);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn lifetime(&self) -> Duration {
        self.inner.lock_state().lifetime
    }

    /// Sets the lifetime for the next acquisition or refresh (it does not touch the lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.set_lifetime(std::time::Duration::from_secs(30));
    /// assert_eq!(lock.lifetime().as_secs(), 30);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.inner.lock_state().lifetime = lifetime;
    }

    /// The lock file's absolute path.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.lockfile(), dir.path().join("x.lck"));
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn lockfile(&self) -> &Path {
        &self.inner.lockfile
    }

    /// Our claim file's absolute path (it exists only while we lock or hold the lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// assert!(lock.claimfile().exists());
    /// assert_eq!(std::fs::read(lock.lockfile()).unwrap(), std::fs::read(lock.claimfile()).unwrap());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn claimfile(&self) -> &Path {
        &self.inner.claimfile
    }

    /// The host name written into our claims.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert!(!lock.hostname().is_empty());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// The claim separator in use.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.separator(), flufl_lock::SEP);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn separator(&self) -> char {
        self.inner.sep
    }

    /// Starts refreshing the held lock in a background thread every lifetime/3, until the
    /// returned [`KeepAlive`] is dropped. If a refresh finds the lock lost (broken and
    /// taken by another process, or expired without a successful refresh), `on_lost` is
    /// called once and [`KeepAlive::is_lost`] turns true.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// lock.lock()?;
    /// let keep = lock.keep_alive(|err| log::error!("lost the lock: {err}"));
    /// assert!(!keep.is_lost());
    /// drop(keep);
    /// lock.unlock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn keep_alive(&self, on_lost: impl Fn(&Error) + Send + 'static) -> KeepAlive {
        KeepAlive::start(self.inner.clone(), Box::new(on_lost))
    }
}

impl Lock {
    /// Breaks the lock if it has expired or its holder is proven dead; with `force`, breaks
    /// it whatever its state. Only the exact lock file judged is removed (see
    /// `docs/protocol.md`), with its holder's claim file. A lock file that is not a claim is
    /// never touched.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyLocked`] if this `Lock` holds it; [`ErrorKind::Io`] if a call
    /// fails or the lock file is not a claim.
    ///
    /// # Examples
    ///
    /// ```
    /// use flufl_lock::{BreakOutcome, Lock};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let holder = Lock::new(&path)?;
    /// holder.lock()?;
    /// let other = Lock::new(&path)?;
    /// assert!(matches!(other.break_lock(false)?, BreakOutcome::Live(_)));
    /// assert!(matches!(other.break_lock(true)?, BreakOutcome::Broken(_)));
    /// assert!(!holder.is_locked()?);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn break_lock(&self, force: bool) -> Result<BreakOutcome> {
        self.inner.break_now(force)
    }

    /// The pid written into our claims: ours, or the owner's ([`LockBuilder::owner_pid`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
    /// assert_eq!(lock.pid(), std::process::id());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Leaves the lock held (and its claim file in place) and forgets it, so that it
    /// outlives this process: for holding a lock on behalf of another process
    /// ([`LockBuilder::owner_pid`]); [`LockBuilder::adopt`] takes it back.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let lock = flufl_lock::Lock::new(&path)?;
    /// lock.lock()?;
    /// lock.leak();
    /// assert!(path.exists(), "still held");
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn leak(self) {
        let mut st = self.inner.lock_state();
        st.claim = None;
        st.held = false;
    }
}

impl Drop for Lock {
    /// Best effort: releases a held lock and removes our claim file. Never panics.
    fn drop(&mut self) {
        let held = self
            .inner
            .state
            .lock()
            .map(|s| s.claim.is_some() && !s.adopted)
            .unwrap_or(false);
        if held {
            if let Err(e) = self.inner.release(true) {
                log::warn!("releasing {} on drop: {e}", self.inner.lockfile.display());
            }
        }
    }
}

/// What [`Lock::break_lock`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakOutcome {
    /// There was no lock to break.
    Unlocked,
    /// The lock held by this holder was broken.
    Broken(Details),
    /// The lock is live (unexpired, holder not proven dead) and was left alone.
    Live(Details),
}

/// Holds a [`Lock`] until dropped. Dropping releases it, best effort; [`LockGuard::unlock`]
/// releases it and reports errors.
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl LockGuard<'_> {
    /// Releases the lock now, reporting any error.
    ///
    /// # Errors
    ///
    /// As [`Lock::unlock`].
    pub fn unlock(self) -> Result<()> {
        let lock = self.lock;
        std::mem::forget(self);
        lock.unlock()
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        self.lock
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.unlock() {
            log::warn!(
                "releasing {} when its guard dropped: {e}",
                self.lock.lockfile().display()
            );
        }
    }
}

//! [`LockBuilder`]: a lock's path, lifetime, separator and waiting policy; `build` and
//! `adopt`.

use crate::claim;
use crate::config::{Clock, Config, SystemClock, WaitCallback, WaitStatus, DEFAULT_LIFETIME, SEP};
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::protocol::{ClaimState, Inner, State};
use crate::sys::{self, FileKind, Fs, ProcState, RealFs};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Builds a [`Lock`] with a lifetime, default timeout, separator and waiting policy.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = flufl_lock::Lock::builder(dir.path().join("db.lck"))
///     .lifetime(Duration::from_secs(60))
///     .default_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(lock.lifetime(), Duration::from_secs(60));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LockBuilder {
    path: PathBuf,
    lifetime: Duration,
    separator: char,
    hostname: Option<String>,
    clock: Arc<dyn Clock>,
    fs: Arc<dyn Fs>,
    on_wait: Option<WaitCallback>,
    owner_pid: Option<u32>,
    cfg: Config,
}

impl fmt::Debug for LockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockBuilder")
            .field("path", &self.path)
            .field("lifetime", &self.lifetime)
            .field("separator", &self.separator)
            .finish_non_exhaustive()
    }
}

impl LockBuilder {
    /// The defaults: flufl.lock's lifetime and separator, the system clock, the real
    /// filesystem.
    pub(crate) fn new(path: &Path) -> LockBuilder {
        LockBuilder {
            path: path.to_path_buf(),
            lifetime: DEFAULT_LIFETIME,
            separator: SEP,
            hostname: None,
            clock: Arc::new(SystemClock),
            fs: Arc::new(RealFs),
            on_wait: None,
            owner_pid: None,
            cfg: Config::default(),
        }
    }

    /// The lock's lifetime: how long it stays valid after each acquisition or refresh before
    /// others may break it. Default 15 s, as flufl.lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).lifetime(std::time::Duration::from_secs(90)).build()?;
    /// assert_eq!(lock.lifetime().as_secs(), 90);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long [`Lock::lock`] waits before giving up with [`ErrorKind::TimedOut`].
    /// Default: forever.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let a = flufl_lock::Lock::new(&path)?;
    /// a.lock()?;
    /// let b = flufl_lock::Lock::builder(&path).default_timeout(std::time::Duration::from_millis(20)).build()?;
    /// assert_eq!(b.lock().unwrap_err().kind(), flufl_lock::ErrorKind::TimedOut);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.default_timeout = Some(timeout);
        self
    }

    /// The separator between the claim's fields. Default [`SEP`]. It must be a character
    /// that is legal in file names on every platform that shares the lock (`|` is not legal
    /// on Windows).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).separator('^').build()?;
    /// assert_eq!(lock.separator(), '^');
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn separator(mut self, separator: char) -> Self {
        self.separator = separator;
        self
    }

    /// Replaces the host name written into claims (default: what Python's
    /// `socket.getfqdn()` gives). Only the pid check compares it, and never alone.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).hostname("node7.example").build()?;
    /// assert_eq!(lock.hostname(), "node7.example");
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// flufl.lock's `_now()` hook: the wall clock used for expiry times.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// // A clock 30 s fast: the expiry is still written in the file server's clock.
    /// let fast = || std::time::SystemTime::now() + std::time::Duration::from_secs(30);
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).clock(fast).build()?;
    /// lock.lock()?;
    /// assert!(lock.expires_in()?.unwrap() <= flufl_lock::DEFAULT_LIFETIME);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Raw OS error numbers that are retried, a bounded number of times, when reading or
    /// linking (flufl.lock's `retry_errnos`). Default: `ESTALE`. `EINTR` is always retried.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// const EIO: i32 = 5;
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).retry_errnos([EIO]).max_retries(3).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn retry_errnos(mut self, errnos: impl IntoIterator<Item = i32>) -> Self {
        self.cfg.retry_errnos = errnos.into_iter().collect();
        self
    }

    /// How many times in a row a retryable error is retried before it is returned.
    /// Default 10.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).max_retries(2).build()?;
    /// lock.try_lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn max_retries(mut self, n: u32) -> Self {
        self.cfg.max_retries = n;
        self
    }

    /// The waiting backoff: the first pause and the cap it grows to (by 1.5x, with jitter),
    /// restarted when the lock changes hands. Defaults 1 ms and 100 ms. On local Linux
    /// filesystems a release wakes waiters at once, and polling is a safety net that backs
    /// off from at least 50 ms to at least once a second. On remote filesystems waiters take
    /// turns instead: the first in line polls every 40 ms, the others the slower the further
    /// back (docs/protocol.md: Waiting).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).poll_interval(Duration::from_millis(5), Duration::from_millis(50)).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.cfg.min_poll = min.max(Duration::from_micros(100));
        self.cfg.max_poll = max.max(self.cfg.min_poll);
        self
    }

    /// The slop added to the expiry of locks written by flufl.lock (Python), whose times
    /// are in their writer's clock. Default 10 s, flufl.lock's `CLOCK_SLOP`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).foreign_slop(std::time::Duration::from_secs(30)).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn foreign_slop(mut self, slop: Duration) -> Self {
        self.cfg.foreign_slop = slop;
        self
    }

    /// The margin for our own locks' expiry, whose times are in the file server's clock:
    /// covers the error of our estimate of that clock. An unlock with less than twice this
    /// left of its lifetime serialises with breakers. Default 500 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).clock_margin(std::time::Duration::from_secs(2)).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn clock_margin(mut self, margin: Duration) -> Self {
        self.cfg.clock_margin = margin;
        self
    }

    /// How long a break marker may stand before it is presumed left by a crashed breaker.
    /// Default 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).marker_lifetime(std::time::Duration::from_secs(10)).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn marker_lifetime(mut self, lifetime: Duration) -> Self {
        self.cfg.marker_lifetime = lifetime;
        self
    }

    /// Whether waiters use change notification (inotify) and process handles (pidfd) where
    /// available. Default true; they are never used on network filesystems.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// // Poll only, as on NFS.
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).notify(false).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn notify(mut self, on: bool) -> Self {
        self.cfg.notify = on;
        self
    }

    /// Whether a lock whose holder is proven dead on this host is broken before it expires.
    /// Default true.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).pid_check(false).build()?;
    /// lock.lock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn pid_check(mut self, on: bool) -> Self {
        self.cfg.pid_check = on;
        self
    }

    /// Holds the lock on behalf of process `pid` (default: this process), as
    /// `dotlockfile -p` does: the claim names that pid, so waiters on this host break the
    /// lock as soon as that process is gone. Used by `flufl-lock acquire`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let owner = std::process::id(); // e.g. the calling shell script's pid
    /// let lock = flufl_lock::Lock::builder(&path).owner_pid(owner).build()?;
    /// lock.lock()?;
    /// lock.leak(); // held for `owner` after this value is gone
    /// let again = flufl_lock::Lock::builder(&path).owner_pid(owner).adopt()?.expect("held for owner");
    /// again.unlock()?;
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn owner_pid(mut self, pid: u32) -> Self {
        self.owner_pid = Some(pid);
        self
    }

    /// Called while waiting, after each failed try, with what is known of the holder.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x.lck");
    /// let holder = flufl_lock::Lock::new(&path)?;
    /// holder.lock()?;
    /// let waiter = flufl_lock::Lock::builder(&path)
    ///     .on_wait(|w| log::info!("waiting {:?} for {:?}", w.waited, w.holder))
    ///     .build()?;
    /// assert!(waiter.lock_timeout(std::time::Duration::from_millis(20)).is_err());
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn on_wait(mut self, f: impl Fn(&WaitStatus) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(Arc::new(f));
        self
    }

    /// Puts a different filesystem under the algorithm, for fault injection.
    /// **Not a stable API.**
    #[cfg(feature = "fault-injection")]
    pub fn filesystem(mut self, fs: Arc<dyn Fs>) -> Self {
        self.fs = fs;
        self
    }

    /// Builds the lock. Nothing is written until it is locked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the path has no file name, cannot be made absolute, or contains
    /// a NUL byte, or if the separator is a path separator.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).build()?;
    /// assert!(!lock.is_locked()?);
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn build(self) -> Result<Lock> {
        Ok(Lock {
            inner: Arc::new(self.into_inner()?),
        })
    }

    /// Builds a lock and takes over the lock file's current claim if it was written on this
    /// host for our owner pid ([`LockBuilder::owner_pid`]): the way `flufl-lock release`
    /// and `refresh` act on a lock that an earlier `flufl-lock acquire` took for the same
    /// shell script. `Ok(None)` if the lock is not held for that pid (with the same boot,
    /// pid namespace and process start time, where the platform records them). An adopted
    /// lock is **not** released when dropped: call [`Lock::unlock`].
    ///
    /// # Errors
    ///
    /// As [`LockBuilder::build`], and [`ErrorKind::Io`] if the lock file cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let lock = flufl_lock::Lock::builder(dir.path().join("x.lck")).owner_pid(std::process::id()).adopt()?;
    /// assert!(lock.is_none(), "nothing to adopt yet");
    /// # Ok::<(), flufl_lock::Error>(())
    /// ```
    pub fn adopt(self) -> Result<Option<Lock>> {
        let mut inner = self.into_inner()?;
        let Some((meta, Some(holder))) = inner.read_lock(&inner.lockfile)? else {
            return Ok(None);
        };
        // Ours only with the same proof as the pid check: host name, pid, and (where this
        // platform writes them) boot, pid namespace and the owner's start time; and the
        // claim file must be this lock's own, in its directory, the very inode of the lock.
        let id = &inner.identity;
        let proof = match (&holder.origin, &id.boot_id, id.pid_ns, id.start_time) {
            (Some(o), Some(boot), Some(ns), Some(start)) => {
                o.boot_id == *boot
                    && o.pid_ns == ns
                    && Some(o.time_ns) == id.time_ns
                    && o.start_time == start
            }
            // Platforms without those facts (macOS, Windows) write none: host and pid only.
            (None, None, _, _) => true,
            _ => false,
        };
        let mine = proof
            && holder.details.hostname == inner.hostname
            && holder.details.pid == inner.pid
            && holder.details.lockfile == inner.lockfile
            && meta.kind == FileKind::Regular
            && inner.is_sibling_claim(&holder.path)
            && matches!(inner.fs.lstat(&holder.path), Ok(m) if m.id == meta.id && m.kind == FileKind::Regular);
        if !mine {
            return Ok(None);
        }
        inner.claim_bytes = claim::path_to_bytes(&holder.path);
        inner.claimfile = holder.path;
        let offset = inner.learn_offset()?;
        let now = inner.fs.boot_clock();
        let st = inner.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let deadline = offset.deadline(meta.modified);
        st.claim = Some(ClaimState {
            id: meta.id,
            stamped: now,
            deadline,
            born: meta.changed,
        });
        st.offset = Some(offset);
        st.held = true;
        st.adopted = true;
        st.expires_at = deadline;
        Ok(Some(Lock {
            inner: Arc::new(inner),
        }))
    }

    fn into_inner(self) -> Result<Inner> {
        let path = &self.path;
        if self.separator == '/' || self.separator == '\\' || self.separator == '\0' {
            return Err(Error::invalid(
                path,
                format!("invalid claim separator {:?}", self.separator),
            ));
        }
        let lockfile =
            std::path::absolute(path).map_err(|e| Error::io("make absolute the path", path, e))?;
        if lockfile.file_name().is_none() || claim::path_to_bytes(&lockfile).contains(&0) {
            return Err(Error::invalid(
                path,
                format!("not a usable lock file path: {}", path.display()),
            ));
        }
        let hostname = self.hostname.unwrap_or_else(sys::hostname);
        let mut identity = self.fs.host_identity();
        let pid = self.owner_pid.unwrap_or_else(std::process::id);
        if self.owner_pid.is_some() {
            identity.start_time = match self.fs.process(pid) {
                ProcState::Running { start } => start,
                _ => None,
            };
        }
        let origin = match (
            &identity.boot_id,
            identity.pid_ns,
            identity.time_ns,
            identity.start_time,
        ) {
            (Some(b), Some(ns), Some(tns), Some(st)) => Some(claim::Origin {
                boot_id: b.clone(),
                pid_ns: ns,
                time_ns: tns,
                start_time: st,
            }),
            _ => None,
        };
        let random = claim::random_field(self.fs.random(), origin.as_ref());
        let claimfile = claim::claim_path(&lockfile, self.separator, &hostname, pid, &random);
        Ok(Inner {
            claim_bytes: claim::path_to_bytes(&claimfile),
            marker: claim::marker_path(&lockfile),
            taken: claim::taken_path(&claimfile),
            lockfile,
            claimfile,
            sep: self.separator,
            hostname,
            identity,
            fs: self.fs,
            clock: self.clock,
            on_wait: self.on_wait,
            cfg: self.cfg,
            state: Mutex::new(State {
                lifetime: self.lifetime,
                claim: None,
                offset: None,
                held: false,
                expires_at: Duration::ZERO,
                waiter: None,
                adopted: false,
                busy: false,
                malformed: None,
                marker_taken: None,
                remote: None,
                unlisted: false,
            }),
            idle: std::sync::Condvar::new(),
            pid,
            built_in: std::process::id(),
        })
    }
}

pub(crate) fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

//! [`Lock`] and [`LockBuilder`]: the algorithm, as one piece of plain code over [`Fs`].
//! See `docs/protocol.md` for the why of every step.

use crate::claim::{self, Claim, Details, Facts, Liveness, LockState, ServerClock};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, FileId, FileKind, Fs, HostIdentity, Meta, ProcState, RealFs, Waiter};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// flufl.lock's default lifetime: 15 seconds.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(15);

/// flufl.lock's clock slop, applied to locks written by flufl.lock itself, whose expiry is
/// in the writer's own clock.
pub const DEFAULT_FOREIGN_SLOP: Duration = Duration::from_secs(10);

/// The claim separator of this platform: `|` on POSIX, `^` on Windows (as flufl.lock).
pub const SEP: char = if cfg!(windows) { '^' } else { '|' };

const ESTALE: i32 = 116;

/// A source of wall-clock time: flufl.lock's `_now()` hook.
///
/// Timeouts always run on the monotonic clock; this clock is used only to compute and judge
/// expiry times, and for locks written by this library only through the offset to the file
/// server's clock learned from our own claim file.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

impl<F: Fn() -> SystemTime + Send + Sync> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The real clock, `SystemTime::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What a waiter knows while it waits, given to the [`LockBuilder::on_wait`] callback.
#[derive(Debug, Clone)]
pub struct WaitStatus {
    /// The lock file waited on.
    pub lockfile: PathBuf,
    /// Who holds it, when its claim could be read.
    pub holder: Option<Details>,
    /// How long this acquisition has waited so far.
    pub waited: Duration,
    /// How long until the holder's lock expires and may be broken; zero once it has.
    pub expires_in: Option<Duration>,
}

type WaitCallback = Arc<dyn Fn(&WaitStatus) + Send + Sync>;

/// Tunables; see the [`LockBuilder`] methods.
#[derive(Clone)]
struct Config {
    default_timeout: Option<Duration>,
    retry_errnos: Vec<i32>,
    max_retries: u32,
    min_poll: Duration,
    max_poll: Duration,
    foreign_slop: Duration,
    clock_margin: Duration,
    marker_lifetime: Duration,
    notify: bool,
    pid_check: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            default_timeout: None,
            // ESTALE on NFS; on Windows, a sharing violation (error 32) from a reader such as
            // Python's open(), which does not share delete access.
            retry_errnos: if cfg!(windows) {
                vec![32]
            } else {
                vec![ESTALE]
            },
            max_retries: 10,
            min_poll: Duration::from_millis(1),
            max_poll: Duration::from_millis(100),
            foreign_slop: DEFAULT_FOREIGN_SLOP,
            clock_margin: Duration::from_millis(500),
            marker_lifetime: Duration::from_secs(5),
            notify: true,
            pid_check: true,
        }
    }
}

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
    /// filesystems a release wakes waiters at once, whatever these are.
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
        let mut identity = sys::host_identity();
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
        let random = claim::random_field(random_u64(), origin.as_ref());
        let claimfile = claim::claim_path(&lockfile, self.separator, &hostname, pid, &random);
        let with = |suffix: &str| {
            let mut s = claimfile.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let taken = with(".brk");
        let mut marker = lockfile.clone().into_os_string();
        marker.push(".break");
        Ok(Inner {
            claim_bytes: claim::path_to_bytes(&claimfile),
            marker: PathBuf::from(marker),
            lockfile,
            claimfile,
            taken,
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
                malformed: None,
            }),
            pid,
        })
    }
}

/// `t + d` on the monotonic clock, saturating at a far future.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365 * 100)))
        .unwrap_or(t)
}

fn random_u64() -> u64 {
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

/// Our claim file, while it exists.
#[derive(Debug, Clone, Copy)]
struct ClaimState {
    id: FileId,
    /// When we last wrote the claim's expiry, on the boot clock ([`Fs::boot_clock`]).
    stamped: Duration,
    /// Until when, on the boot clock, the expiry written is surely in the future of the
    /// server's clock ([`ServerClock::deadline`]).
    deadline: Duration,
}

#[derive(Debug)]
struct State {
    lifetime: Duration,
    claim: Option<ClaimState>,
    /// The server clock's offset, learned from our latest claim; kept after it is removed.
    offset: Option<ServerClock>,
    held: bool,
    /// Until when our lock is surely unexpired, on the boot clock: never later than what
    /// any waiter computes from the file.
    expires_at: Duration,
    /// Kept across acquisitions (see `acquire`).
    waiter: Option<Waiter>,
    /// Taken over by `adopt`: held for another process, so not released on drop.
    adopted: bool,
    /// A malformed lock file seen, and since when (kept across `try_lock` attempts).
    malformed: Option<(FileId, Instant)>,
}

pub(crate) struct Inner {
    pub(crate) lockfile: PathBuf,
    claimfile: PathBuf,
    claim_bytes: Vec<u8>,
    marker: PathBuf,
    taken: PathBuf,
    sep: char,
    hostname: String,
    identity: HostIdentity,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
    on_wait: Option<WaitCallback>,
    cfg: Config,
    state: Mutex<State>,
    /// The pid written into our claims.
    pid: u32,
}

/// The outcome of trying to take the break marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Taken,
    /// Another process holds it.
    Busy,
    /// Our claim file is gone (a breaker removed it with the lock it was).
    NoClaim,
}

/// The outcome of stamping our claim's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Stamped and read back; `State::claim` has the new deadline.
    Done,
    /// Our claim file is gone: a breaker removed it with the lock it was (flufl.lock's
    /// break removes the claim first, then the lock), or a cleaner did.
    Gone,
    /// The file read back is not our claim: the lock changed hands.
    NotOurs,
}

/// What the lock file is, read without following links.
#[derive(Debug)]
enum View {
    /// No lock file (or it vanished while we looked).
    Gone,
    /// The lock file is our claim: we hold the lock.
    Ours,
    /// Someone else's well-formed claim.
    Theirs(Meta, Box<Claim>),
    /// A regular file that does not hold a claim. flufl.lock rewrites its claim (so the
    /// lock) in place when it re-locks, so this can be a passing state; it is never broken.
    Malformed(Meta),
}

/// How long a lock file may stay the same malformed file before waiters give up on it.
const MALFORMED_GRACE: Duration = Duration::from_secs(1);

fn malformed_error(path: &Path, meta: &Meta) -> Error {
    Error::invalid(
        path,
        format!(
            "lock file {} ({} bytes) does not hold a flufl.lock claim; refusing to break it \
             (remove it by hand if no process uses it)",
            path.display(),
            meta.len
        ),
    )
}

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

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESTALE)
}

fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// An exponential backoff with jitter.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn reset(&mut self) {
        self.next = self.min;
    }

    fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (base.mul_f64(1.5)).min(self.max);
        // Jitter of +-20% so that waiters woken together spread out.
        let j = (random_u64() % 401) as f64 / 1000.0 + 0.8;
        base.mul_f64(j).min(self.max)
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
        LockBuilder {
            path: path.as_ref().to_path_buf(),
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
            Ok(_) => Err(Error::new(
                ErrorKind::NotLocked,
                &self.inner.lockfile,
                format!(
                    "details are unavailable: {} holds no claim",
                    self.inner.lockfile.display()
                ),
            )),
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
            Err(e) if is_not_found(&e) => Err(Error::new(
                ErrorKind::NotLocked,
                path,
                format!("no lock file {}", path.display()),
            )),
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

/// The longest the keep-alive thread sleeps before looking at the boot clock again.
const KEEP_ALIVE_SLICE: Duration = Duration::from_millis(250);

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
    fn start(inner: Arc<Inner>, on_lost: Box<dyn Fn(&Error) + Send>) -> KeepAlive {
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

impl Inner {
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_bounds(&self) -> (Duration, Duration) {
        (self.cfg.min_poll, self.cfg.max_poll)
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.cfg.default_timeout
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn lifetime(&self) -> Duration {
        self.lock_state().lifetime
    }

    /// Whether our own lease may have run out (by the boot clock, which counts a suspend).
    pub(crate) fn expired_locally(&self) -> bool {
        self.fs.boot_clock() >= self.lock_state().expires_at
    }

    /// Whether our lease has less than twice the clock margin left: a breaker may be judging
    /// it now, so removing or re-stamping it must serialise with breakers (the marker).
    fn near_expiry(&self, st: &State) -> bool {
        self.fs
            .boot_clock()
            .saturating_add(self.cfg.clock_margin.saturating_mul(2))
            >= st.expires_at
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one filesystem call, retrying `EINTR` transparently and the configured
    /// retryable errors up to `max_retries` times.
    fn call<T>(&self, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let mut retries = 0u32;
        let mut interrupts = 0u32;
        loop {
            match f() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < 1000 => {
                    interrupts += 1
                }
                Err(e)
                    if e.raw_os_error()
                        .is_some_and(|n| self.cfg.retry_errnos.contains(&n))
                        && retries < self.cfg.max_retries =>
                {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(1 << retries.min(3)));
                }
                r => return r,
            }
        }
    }

    /// Runs a removal by name (`unlink`, `rename`) of a file that may not be ours a moment
    /// later, retrying only errors that say the call was not made: `EINTR`, and on Windows a
    /// sharing or lock violation (32, 33) when configured as retryable. Others (`ESTALE`,
    /// `EIO`) are not retried: on NFS the server may have done it, and a retry could remove
    /// what has that name a moment later.
    fn call_removal(&self, mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
        let (mut interrupts, mut retries) = (0u32, 0u32);
        loop {
            match f() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < 1000 => {
                    interrupts += 1
                }
                Err(e)
                    if cfg!(windows)
                        && matches!(e.raw_os_error(), Some(32 | 33))
                        && e.raw_os_error()
                            .is_some_and(|n| self.cfg.retry_errnos.contains(&n))
                        && retries < self.cfg.max_retries =>
                {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(1 << retries.min(3)));
                }
                r => return r,
            }
        }
    }

    /// The least the file server's time can be now, by our estimate; the wall clock until
    /// we have one.
    fn server_now(&self, st: &State) -> SystemTime {
        match st.offset {
            Some(o) => o.now(self.fs.boot_clock()),
            None => self.clock.now(),
        }
    }

    /// The "now" a claim's expiry is judged against: the file server's clock for claims we
    /// wrote (their expiry is in it), the wall clock (the `clock` hook, flufl.lock's `_now`)
    /// for claims written by flufl.lock, whose expiry is in their writer's clock.
    fn now_for(&self, st: &State, c: &Claim) -> SystemTime {
        if c.ours {
            self.server_now(st)
        } else {
            self.clock.now()
        }
    }

    /// Creates our claim file: exclusive create, write its own path into it, learn the
    /// server's clock from the time it stamped, and set the expiry in that clock.
    fn create_claim(&self, st: &mut State) -> Result<()> {
        let path = &self.claimfile;
        // Taken before the create: the server stamped the claim after this moment.
        let before = self.fs.boot_clock();
        let file = match self.call(|| self.fs.create_new(path)) {
            Ok(f) => f,
            Err(e) if is_exists(&e) => {
                // A claim of ours left by an earlier failure in this process: replace it.
                match self.call(|| self.fs.unlink(path)) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(Error::io("remove stale claim file", path, e)),
                }
                self.call(|| self.fs.create_new(path))
                    .map_err(|e| Error::io("create claim file", path, e))?
            }
            Err(e) => return Err(Error::io("create claim file", path, e)),
        };
        let stamped = (|| {
            self.call(|| self.fs.write_all(&file, &self.claim_bytes))
                .map_err(|e| ("write claim file", e))?;
            let meta = self
                .call(|| self.fs.fstat(&file))
                .map_err(|e| ("stat claim file", e))?;
            let now = self.fs.boot_clock();
            let clock = ServerClock::learn(meta.modified, before, now);
            let expiry = clock.expiry(now, st.lifetime);
            self.call(|| self.fs.set_times(&file, expiry))
                .map_err(|e| ("set expiry of claim file", e))?;
            Ok::<_, (&str, io::Error)>((meta.id, clock, now, clock.deadline(expiry)))
        })();
        drop(file);
        match stamped {
            Ok((id, clock, now, deadline)) => {
                st.offset = Some(clock);
                st.claim = Some(ClaimState {
                    id,
                    stamped: now,
                    deadline,
                });
                Ok(())
            }
            Err((step, e)) => {
                let _ = self.call(|| self.fs.unlink(path));
                Err(Error::io(step, path, e))
            }
        }
    }

    /// Learns the server's clock without touching the lock: create a private probe file,
    /// read the time the server stamped on it, remove it.
    fn learn_offset(&self) -> Result<ServerClock> {
        let mut probe = self.claimfile.clone().into_os_string();
        probe.push(".clk");
        let probe = PathBuf::from(probe);
        let _ = self.fs.unlink(&probe);
        let before = self.fs.boot_clock();
        let file = self
            .call(|| self.fs.create_new(&probe))
            .map_err(|e| Error::io("create clock probe file", &probe, e))?;
        let meta = self.call(|| self.fs.fstat(&file));
        let after = self.fs.boot_clock();
        drop(file);
        let _ = self.call(|| self.fs.unlink(&probe));
        let meta = meta.map_err(|e| Error::io("stat clock probe file", &probe, e))?;
        Ok(ServerClock::learn(meta.modified, before, after))
    }

    /// Breaks the lock if it is expired or its holder is proven dead (or, with `force`,
    /// whatever its state), through the same safe path waiters use.
    fn break_now(&self, force: bool) -> Result<BreakOutcome> {
        let mut st = self.lock_state();
        if st.held {
            return Err(Error::new(
                ErrorKind::AlreadyLocked,
                &self.lockfile,
                format!(
                    "{} is held by this process; unlock it instead",
                    self.lockfile.display()
                ),
            ));
        }
        self.create_claim(&mut st)?;
        let r = (|| {
            for _ in 0..50 {
                let (meta, holder) = match self.view(&st)? {
                    View::Gone | View::Ours => return Ok(BreakOutcome::Unlocked),
                    View::Theirs(m, c) => (m, c),
                    View::Malformed(m) => return Err(malformed_error(&self.lockfile, &m)),
                };
                let live = self.liveness(&holder);
                let expired = claim::expired(
                    meta.modified,
                    self.now_for(&st, &holder),
                    self.slop(&holder),
                );
                if !(force || expired || live == Liveness::Dead) {
                    return Ok(BreakOutcome::Live(holder.details));
                }
                let why = if live == Liveness::Dead {
                    "its holder is dead"
                } else if expired {
                    "it expired"
                } else {
                    "forced"
                };
                let before = self.fs.lstat(&self.lockfile).ok().map(|m| m.id);
                self.break_lock(&mut st, (meta.id, &holder), why, force)?;
                let after = self.fs.lstat(&self.lockfile).ok().map(|m| m.id);
                if after != before || after.is_none() {
                    return Ok(BreakOutcome::Broken(holder.details));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Error::new(
                ErrorKind::Io,
                &self.marker,
                format!(
                    "could not take break marker {}: another process keeps breaking",
                    self.marker.display()
                ),
            ))
        })();
        let _ = self.remove_claim(&mut st);
        r
    }

    /// Re-stamps our (unlinked) claim with a fresh expiry after a long wait, so that the
    /// lock it becomes is not born expired. A claim removed meanwhile (a breaker took it with
    /// a lock it had become, a cleaner) is written again.
    fn restamp_claim(&self, st: &mut State) -> Result<()> {
        match self.stamp(st, &self.claimfile)? {
            Stamp::Done => Ok(()),
            Stamp::Gone | Stamp::NotOurs => self.create_claim(st),
        }
    }

    /// Writes our claim's expiry, a lifetime from the server's time now, then reads the
    /// attributes back through `check` (the claim, or the lock when we hold it: one inode).
    ///
    /// The read-back is also a fresh reading of the server's clock: the change time the
    /// server stamped while setting the times. If our estimate had fallen behind (a suspend
    /// our boot clock did not see, a step of the server's clock, or of the wall clock on a
    /// local filesystem), the expiry just written is short: it is written again from the
    /// fresh reading. Our deadline is computed from the expiry as stored.
    fn stamp(&self, st: &mut State, check: &Path) -> Result<Stamp> {
        let Some(id) = st.claim.map(|c| c.id) else {
            return Ok(Stamp::Gone);
        };
        let mut clock = match st.offset {
            Some(c) => c,
            None => self.learn_offset()?,
        };
        for again in [false, true] {
            let before = self.fs.boot_clock();
            let expiry = clock.expiry(before, st.lifetime);
            match self.call(|| self.fs.set_path_times(&self.claimfile, expiry)) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => return Ok(Stamp::Gone),
                Err(e) => return Err(Error::io("set expiry of claim file", &self.claimfile, e)),
            }
            let meta = match self.call(|| self.fs.lstat(check)) {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => return Ok(Stamp::NotOurs),
                Err(e) => return Err(Error::io("stat after setting expiry", check, e)),
            };
            if meta.id != id {
                return Ok(Stamp::NotOurs);
            }
            let after = self.fs.boot_clock();
            let fresh = if sys::CHANGE_TIME_IS_SERVER_TIME {
                ServerClock::learn(meta.changed, before, after)
            } else {
                clock
            };
            let behind = clock.behind(&fresh, after);
            st.offset = Some(fresh);
            if !again && behind > self.cfg.clock_margin + fresh.granularity() {
                log::warn!(
                    "the file server's clock is {behind:.1?} ahead of our estimate (a suspend, \
                     or a clock step); stamping {} again",
                    self.claimfile.display()
                );
                clock = fresh;
                continue;
            }
            st.claim = Some(ClaimState {
                id,
                stamped: before,
                deadline: fresh.deadline(meta.modified),
            });
            break;
        }
        Ok(Stamp::Done)
    }

    fn remove_claim(&self, st: &mut State) -> Result<()> {
        st.claim = None;
        match self.call(|| self.fs.unlink(&self.claimfile)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::io("remove claim file", &self.claimfile, e)),
        }
    }

    /// Opens and reads a lock-like file (the lock, the pin or the marker) without following
    /// links: its attributes and, if it holds one, its claim. `None` if it does not exist.
    fn read_lock(&self, path: &Path) -> Result<Option<(Meta, Option<Claim>)>> {
        let file = match self.call(|| self.fs.open_read(path)) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) if self.is_symlink(path) => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "{} is a symbolic link; refusing to follow it ({e})",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(Error::io("open lock file", path, e)),
        };
        let meta = match self.call(|| self.fs.fstat(&file)) {
            Ok(m) => m,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("stat lock file", path, e)),
        };
        if meta.kind != FileKind::Regular {
            return Ok(Some((meta, None)));
        }
        let bytes = match self.call(|| self.fs.read_head(&file, claim::MAX_CLAIM_LEN + 1)) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("read lock file", path, e)),
        };
        Ok(Some((meta, claim::parse_any(&bytes, self.sep))))
    }

    fn is_symlink(&self, path: &Path) -> bool {
        matches!(self.fs.lstat(path), Ok(m) if m.kind == FileKind::Symlink)
    }

    /// What the lock file is now.
    fn view(&self, st: &State) -> Result<View> {
        let path = &self.lockfile;
        let Some((meta, parsed)) = self.read_lock(path)? else {
            return Ok(View::Gone);
        };
        if st.claim.is_some_and(|c| c.id == meta.id) {
            return Ok(View::Ours);
        }
        match (meta.kind, parsed) {
            (FileKind::Regular, Some(c)) => Ok(View::Theirs(meta, Box::new(c))),
            (FileKind::Regular, None) => Ok(View::Malformed(meta)),
            (kind, _) => Err(Error::invalid(
                path,
                format!(
                    "lock file {} is a {}, not a regular file; refusing to touch it",
                    path.display(),
                    kind_name(kind)
                ),
            )),
        }
    }

    /// Whether the process that wrote `c` is alive. Dead only with proof: same host name,
    /// same boot, pid and time namespaces, and the kernel says the pid is gone or every
    /// thread of it has exited, or `/proc` shows a later process under that pid.
    fn liveness(&self, c: &Claim) -> Liveness {
        if !self.cfg.pid_check || c.details.hostname != self.hostname {
            return Liveness::Unknown;
        }
        let Some(o) = &c.origin else {
            return Liveness::Unknown;
        };
        let id = &self.identity;
        // The same boot and pid namespace, so the pid names the same process table; the same
        // time namespace, so start times read from /proc compare.
        if id.boot_id.as_deref() != Some(o.boot_id.as_str())
            || id.pid_ns != Some(o.pid_ns)
            || id.time_ns != Some(o.time_ns)
        {
            return Liveness::Unknown;
        }
        match self.fs.process(c.details.pid) {
            ProcState::Gone | ProcState::Zombie => Liveness::Dead,
            ProcState::Running { start: Some(s) } if s != o.start_time => Liveness::Dead,
            ProcState::Running { .. } => Liveness::Alive,
            ProcState::Unknown => Liveness::Unknown,
        }
    }

    fn slop(&self, c: &Claim) -> Duration {
        if c.ours {
            self.cfg.clock_margin
        } else {
            self.cfg.foreign_slop
        }
    }

    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut st = self.lock_state();
        if st.held {
            return Err(Error::new(
                ErrorKind::AlreadyLocked,
                &self.lockfile,
                format!(
                    "{} is already locked by this process (pid {})",
                    self.lockfile.display(),
                    std::process::id()
                ),
            ));
        }
        self.create_claim(&mut st)?;
        // The waiter (an inotify descriptor) is kept for the Lock's life: closing an inotify
        // descriptor waits for an RCU grace period (milliseconds), which would otherwise be
        // paid on every contended acquisition, between winning the lock and returning.
        let mut waiter = st.waiter.take();
        let result = self.acquire_loop(&mut st, start, deadline, &mut waiter);
        st.waiter = waiter;
        match result {
            Ok(()) => {
                st.held = true;
                st.expires_at = st.claim.map_or(Duration::ZERO, |c| c.deadline);
                log::debug!("acquired {}", self.lockfile.display());
                Ok(())
            }
            Err(e) => {
                if let Err(e2) = self.remove_claim(&mut st) {
                    log::warn!("{e2}");
                }
                Err(e)
            }
        }
    }

    fn acquire_loop(
        &self,
        st: &mut State,
        start: Instant,
        deadline: Option<Instant>,
        waiter: &mut Option<Waiter>,
    ) -> Result<()> {
        let mut backoff = Backoff {
            next: self.cfg.min_poll,
            min: self.cfg.min_poll,
            max: self.cfg.max_poll,
        };
        let mut last_holder: Option<FileId> = None;
        let mut transient = 0u32;
        let mut logged = false;
        let mut last_alive: Option<FileId> = None;
        loop {
            // Keep our claim's expiry fresh while we wait, so the lock is not born expired.
            if self.stamp_is_old(st) {
                self.restamp_claim(st)?;
            }
            match self.call(|| self.fs.link(&self.claimfile, &self.lockfile)) {
                Ok(()) => {
                    if self.confirm_fresh(st)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if is_exists(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The claim vanished (a cleaner?) or the directory entry cache lied:
                    // retry, bounded. (ESTALE was already retried by `call`.)
                    transient += 1;
                    if transient > self.cfg.max_retries {
                        return Err(Error::io("link claim file to lock file", &self.lockfile, e));
                    }
                    if matches!(self.fs.lstat(&self.claimfile), Err(ref e) if e.kind() == io::ErrorKind::NotFound)
                    {
                        log::warn!(
                            "claim file {} vanished; writing it again",
                            self.claimfile.display()
                        );
                        self.create_claim(st)?;
                    }
                    continue;
                }
                Err(e) => return Err(Error::io("link claim file to lock file", &self.lockfile, e)),
            }
            let (meta, holder) = match self.view(st)? {
                View::Ours => {
                    // The link succeeded on the server though it reported EEXIST (a lost NFS
                    // reply): the lock file is our claim, so the lock is ours.
                    log::info!(
                        "link reported EEXIST but {} is our claim: acquired",
                        self.lockfile.display()
                    );
                    if self.confirm_fresh(st)? {
                        return Ok(());
                    }
                    continue;
                }
                View::Gone => {
                    transient += 1;
                    if transient > 3 {
                        // A name that lingers (a delete pending on Windows): back off a little.
                        std::thread::sleep(Duration::from_micros(100 << transient.min(6)));
                    }
                    if transient > self.cfg.max_retries.max(100) {
                        return Err(Error::new(
                            ErrorKind::Io,
                            &self.lockfile,
                            format!(
                                "{} keeps changing; giving up after {transient} tries",
                                self.lockfile.display()
                            ),
                        ));
                    }
                    continue;
                }
                View::Theirs(meta, c) => (meta, c),
                View::Malformed(meta) => {
                    let since = match st.malformed {
                        Some((id, t)) if id == meta.id => t,
                        _ => Instant::now(),
                    };
                    st.malformed = Some((meta.id, since));
                    if since.elapsed() >= MALFORMED_GRACE {
                        return Err(malformed_error(&self.lockfile, &meta));
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::new(
                            ErrorKind::TimedOut,
                            &self.lockfile,
                            format!(
                                "timed out after {:.1?} waiting for {}: its content is being rewritten",
                                start.elapsed(),
                                self.lockfile.display()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            transient = 0;
            st.malformed = None;
            let server_now = self.now_for(st, &holder);
            let slop = self.slop(&holder);
            // A holder proven alive whose process we watch (pidfd) stays alive until the watch
            // says otherwise: no need to read /proc on every wake.
            let watched = waiter.as_ref().and_then(|w| w.watching());
            let live = match last_alive {
                Some(id) if id == meta.id && watched == Some(holder.details.pid) => Liveness::Alive,
                _ => self.liveness(&holder),
            };
            last_alive = (live == Liveness::Alive).then_some(meta.id);
            let expired = claim::expired(meta.modified, server_now, slop);
            if live == Liveness::Dead || expired {
                let why = if live == Liveness::Dead {
                    "its holder is dead"
                } else {
                    "it expired"
                };
                if self.break_lock(st, (meta.id, &holder), why, false)? {
                    backoff.reset();
                    continue;
                }
            }
            // We wait. Time out?
            let now = Instant::now();
            let expires_in = claim::time_left(meta.modified, server_now, slop);
            if deadline.is_some_and(|d| now >= d) {
                let waited = now - start;
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    &self.lockfile,
                    format!(
                        "timed out after {:.1?} waiting for {}: held by {} pid {}, {}",
                        waited,
                        self.lockfile.display(),
                        holder.details.hostname,
                        holder.details.pid,
                        if expires_in.is_zero() {
                            "expired".to_string()
                        } else {
                            format!("expires in {:.1?}", expires_in)
                        }
                    ),
                ));
            }
            if !logged {
                log::info!(
                    "waiting for {} held by {} pid {}",
                    self.lockfile.display(),
                    holder.details.hostname,
                    holder.details.pid
                );
                logged = true;
            }
            if last_holder != Some(meta.id) {
                backoff.reset();
                last_holder = Some(meta.id);
            }
            if let Some(cb) = &self.on_wait {
                cb(&WaitStatus {
                    lockfile: self.lockfile.clone(),
                    holder: Some(holder.details.clone()),
                    waited: now - start,
                    expires_in: Some(expires_in),
                });
            }
            let w = match waiter {
                Some(w) => w,
                None => {
                    let dir = self.lockfile.parent().unwrap_or(Path::new("/"));
                    let notify = self.cfg.notify && matches!(self.fs.is_remote(dir), Ok(false));
                    // Watch first, then try again at once, so a release in between is not missed.
                    *waiter = Some(Waiter::new(&self.lockfile, notify));
                    continue;
                }
            };
            w.watch_process(if self.cfg.pid_check && live == Liveness::Alive {
                Some(holder.details.pid)
            } else {
                None
            });
            let mut pause = backoff.step().min(expires_in + Duration::from_millis(1));
            if let Some(d) = deadline {
                pause = pause.min(d.saturating_duration_since(now));
            }
            self.fs.wait(w, pause);
        }
    }

    /// Whether our claim's expiry was stamped more than a quarter of the lifetime ago.
    fn stamp_is_old(&self, st: &State) -> bool {
        st.claim
            .is_some_and(|c| self.fs.boot_clock().saturating_sub(c.stamped) > st.lifetime / 4)
    }

    /// After our link succeeded: if our claim's expiry was stamped long ago (we were paused
    /// between stamping and linking), the lock may have been born expired, and a breaker may
    /// already have judged it so. Under the marker, which every breaker holds while it acts,
    /// confirm the lock is still ours and stamp a fresh expiry. `Ok(false)`: it was broken;
    /// go on waiting. Costs nothing when the stamp is fresh (always, uncontended).
    ///
    /// A claim file that vanished here means the lock was broken (flufl.lock's break
    /// removes the claim, then the lock): it is never written again in the confirmation.
    fn confirm_fresh(&self, st: &mut State) -> Result<bool> {
        if !self.stamp_is_old(st) {
            return Ok(true);
        }
        if !self.take_marker_patiently(st, "confirm a new lock")? {
            // A breaker removed our claim with the lock it was: broken. (The link loop
            // writes the claim again.)
            return Ok(false);
        }
        // The marker is released with the claim it was taken with, whatever `stamp` finds.
        let marker_claim = st.claim;
        let ours = match self.read_lock(&self.lockfile) {
            Ok(Some((m, _))) if st.claim.is_some_and(|c| c.id == m.id) => {
                self.stamp(st, &self.lockfile).map(|s| s == Stamp::Done)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        self.release_marker_of(marker_claim);
        let ours = ours?;
        if !ours {
            log::warn!(
                "{} was broken while we were paused after taking it; waiting again",
                self.lockfile.display()
            );
        }
        Ok(ours)
    }

    /// Takes the break marker, waiting (with backoff) while another process holds it, at
    /// most the marker's lifetime and a second. `Ok(false)`: our claim file is gone.
    fn take_marker_patiently(&self, st: &State, purpose: &str) -> Result<bool> {
        let give_up = later(
            Instant::now(),
            self.cfg
                .marker_lifetime
                .saturating_add(Duration::from_secs(1)),
        );
        let mut pause = Duration::from_millis(1);
        loop {
            match self.take_marker(st)? {
                Marker::Taken => return Ok(true),
                Marker::NoClaim => return Ok(false),
                Marker::Busy if Instant::now() < give_up => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Marker::Busy => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        &self.marker,
                        format!(
                            "could not take break marker {} to {purpose}",
                            self.marker.display()
                        ),
                    ))
                }
            }
        }
    }

    /// Takes the break marker `<lock>.break` with our claim (the same link protocol).
    fn take_marker(&self, st: &State) -> Result<Marker> {
        for _ in 0..3 {
            match self.call(|| self.fs.link(&self.claimfile, &self.marker)) {
                Ok(()) => return Ok(Marker::Taken),
                Err(e) if is_exists(&e) => {}
                Err(e) if is_not_found(&e) => return Ok(Marker::NoClaim),
                Err(e) => {
                    return Err(Error::io(
                        "link claim file to break marker",
                        &self.marker,
                        e,
                    ))
                }
            }
            let Some((meta, parsed)) = self.read_lock(&self.marker)? else {
                continue;
            };
            if st.claim.is_some_and(|c| c.id == meta.id) {
                return Ok(Marker::Taken); // lost reply
            }
            if meta.kind != FileKind::Regular {
                // No process of ours made it, and none will remove it: waiting would hang.
                return Err(Error::invalid(
                    &self.marker,
                    format!(
                        "break marker {} is a {}, not a regular file; refusing to touch it \
                         (remove it by hand if no process uses it)",
                        self.marker.display(),
                        kind_name(meta.kind)
                    ),
                ));
            }
            let dead = parsed
                .as_ref()
                .is_some_and(|c| self.liveness(c) == Liveness::Dead);
            let old = claim::expired(meta.changed, self.server_now(st), self.cfg.marker_lifetime);
            if dead || old {
                log::warn!(
                    "removing break marker {} left by a crashed breaker",
                    self.marker.display()
                );
                let content = parsed.map(|c| c.path);
                self.remove_exact(&self.marker, meta.id, |_, c| {
                    c.map(|c| &c.path) == content.as_ref()
                })?;
                continue;
            }
            return Ok(Marker::Busy);
        }
        Ok(Marker::Busy)
    }

    fn marker_is_ours(&self, st: &State) -> bool {
        matches!(self.fs.lstat(&self.marker), Ok(m) if st.claim.is_some_and(|c| c.id == m.id))
    }

    fn release_marker(&self, st: &State) {
        self.release_marker_of(st.claim);
    }

    /// Releases the marker taken with `claim`.
    fn release_marker_of(&self, claim: Option<ClaimState>) {
        // Under the marker protocol no one else removes a fresh marker; check anyway.
        match self.fs.lstat(&self.marker) {
            Ok(m) if claim.is_some_and(|c| c.id == m.id) => {
                if let Err(e) = self.call_removal(|| self.fs.unlink(&self.marker)) {
                    log::warn!(
                        "failed to remove break marker {}: {e}",
                        self.marker.display()
                    );
                }
            }
            _ => log::warn!(
                "break marker {} was not ours any more",
                self.marker.display()
            ),
        }
    }

    /// Removes `path` only if it is still the file `id` with the same content: rename it to
    /// a private name, read it there, and put back what was not ours to remove.
    ///
    /// `still` re-judges the file taken, on the attributes and claim read after the rename
    /// (which no one else can change by that name any more): a lock refreshed between our
    /// judgement and our rename is put back. The content (a claim's unique path) tells a
    /// recycled inode number from the file judged, so no pin is needed to hold the inode.
    fn remove_exact(
        &self,
        path: &Path,
        id: FileId,
        still: impl Fn(&Meta, Option<&Claim>) -> bool,
    ) -> Result<bool> {
        match self.call_removal(|| self.fs.rename(path, &self.taken)) {
            Ok(()) => {}
            // Gone, or a lost NFS reply to a RENAME that was done: look at the private name.
            Err(e) if is_not_found(&e) && self.fs.lstat(&self.taken).is_ok() => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(Error::io("rename away", path, e)),
        }
        let taken = self.read_lock(&self.taken);
        let same = matches!(&taken, Ok(Some((m, c))) if m.id == id && still(m, c.as_ref()));
        if !same {
            // A peer that ignores the marker (flufl.lock) replaced it, or its holder
            // refreshed it meanwhile: put it back, never over a name that exists again.
            match self.call(|| self.fs.link(&self.taken, path)) {
                Ok(()) => log::warn!("{} changed while being broken; put it back", path.display()),
                Err(e) => log::error!(
                    "{} changed while being broken and could not be put back: {e}",
                    path.display()
                ),
            }
        }
        let _ = self.call(|| self.fs.unlink(&self.taken));
        Ok(same)
    }

    /// Breaks the lock file we judged dead or expired (`judged`: its identity and its
    /// holder's claim), under the marker. `Ok(true)` if the lock changed (broken, or gone),
    /// so the caller should try again.
    fn break_lock(
        &self,
        st: &mut State,
        judged: (FileId, &Claim),
        why: &str,
        force: bool,
    ) -> Result<bool> {
        match self.take_marker(st)? {
            Marker::Taken => {}
            Marker::Busy => return Ok(false),
            Marker::NoClaim => return Ok(true), // the acquire loop writes it again
        }
        let r = self.break_under_marker(st, judged, why, force);
        self.release_marker(st);
        r
    }

    /// With the marker held (no breaker of ours can act): judge the lock file again as it is
    /// now, and remove it only if it is still the file judged, with the same claim, and
    /// still breakable. Nothing is linked to the lock: a third link would make a flufl.lock
    /// holder that took the lock meanwhile believe it lost it (its `is_locked` needs a link
    /// count of 2), and linking another user's claim is refused under
    /// `fs.protected_hardlinks`.
    fn break_under_marker(
        &self,
        st: &State,
        (judged, judged_claim): (FileId, &Claim),
        why: &str,
        force: bool,
    ) -> Result<bool> {
        // Taking the marker linked our claim, so the server stamped its change time then: a
        // fresh reading of the server's clock. Judged on the lesser of it and our estimate,
        // an estimate that ran ahead (the server's clock stepped back) breaks nothing early.
        let marker = match self.fs.lstat(&self.marker) {
            Ok(m) if st.claim.is_some_and(|c| c.id == m.id) => m,
            _ => return Ok(false), // displaced: leave it to the marker's new holder
        };
        let server_now = marker.changed;
        let now = |c: &Claim| {
            let estimate = self.now_for(st, c);
            if c.ours && sys::CHANGE_TIME_IS_SERVER_TIME {
                estimate.min(server_now)
            } else {
                estimate
            }
        };
        let Some((meta, parsed)) = self.read_lock(&self.lockfile)? else {
            return Ok(true);
        };
        let holder = match parsed {
            Some(c) if meta.id == judged && c.path == judged_claim.path => c,
            // Changed hands (or became something else): judge afresh.
            _ => return Ok(true),
        };
        if meta.kind != FileKind::Regular {
            return Ok(false);
        }
        let live = self.liveness(&holder);
        let expired = claim::expired(meta.modified, now(&holder), self.slop(&holder));
        if !(live == Liveness::Dead || expired || force) {
            return Ok(false); // refreshed meanwhile
        }
        // Still our marker, untouched since we took it? A stale-marker remover elsewhere may
        // have displaced it, even put it back after another breaker acted: either changes
        // its change time (rename and link do), and our judgement may then be stale.
        if !matches!(self.fs.lstat(&self.marker),
            Ok(m) if m.id == marker.id && m.changed == marker.changed && m.nlink == marker.nlink)
        {
            return Ok(false);
        }
        let still = |m: &Meta, c: Option<&Claim>| {
            c.is_some_and(|c| c.path == holder.path)
                && (force
                    || live == Liveness::Dead
                    || claim::expired(m.modified, now(&holder), self.slop(&holder)))
        };
        if !self.remove_exact(&self.lockfile, meta.id, still)? {
            return Ok(true);
        }
        log::warn!(
            "broke lock {} held by {} pid {}: {why}",
            self.lockfile.display(),
            holder.details.hostname,
            holder.details.pid
        );
        self.remove_holder_claim(&holder, meta.id);
        Ok(true)
    }

    /// Removes a broken holder's claim file: only the exact inode we broke, only in the lock's
    /// directory, only with a claim file's name for this lock.
    fn remove_holder_claim(&self, holder: &Claim, id: FileId) {
        let (Some(dir), Some(name)) = (self.lockfile.parent(), holder.path.file_name()) else {
            return;
        };
        if !self.is_claim_name(name) {
            return;
        }
        let path = dir.join(name);
        if matches!(self.fs.lstat(&path), Ok(m) if m.id == id && m.kind == FileKind::Regular) {
            if let Err(e) = self.call_removal(|| self.fs.unlink(&path)) {
                log::warn!(
                    "failed to remove broken holder's claim file {}: {e}",
                    path.display()
                );
            }
        }
    }

    /// Whether `name` is a claim file name for this lock: `<lock name><SEP>...`, with our
    /// separator or the other platform's.
    fn is_claim_name(&self, name: &std::ffi::OsStr) -> bool {
        let Some(lock_name) = self.lockfile.file_name() else {
            return false;
        };
        let lock = claim::path_to_bytes(Path::new(lock_name));
        let name = claim::path_to_bytes(Path::new(name));
        name.len() > lock.len() + 1
            && name.starts_with(&lock)
            && [self.sep, if self.sep == '|' { '^' } else { '|' }]
                .iter()
                .any(|c| name[lock.len()..].starts_with(c.to_string().as_bytes()))
    }

    /// Whether `path` is a claim file of this lock, in the lock's own directory.
    fn is_sibling_claim(&self, path: &Path) -> bool {
        path.parent() == self.lockfile.parent()
            && path.file_name().is_some_and(|n| self.is_claim_name(n))
    }

    fn is_ours(&self, st: &State) -> Result<bool> {
        let Some(c) = st.claim else { return Ok(false) };
        match self.call(|| self.fs.lstat(&self.lockfile)) {
            Ok(m) => Ok(m.id == c.id),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::io("stat lock file", &self.lockfile, e)),
        }
    }

    fn lost(&self, what: &str) -> Error {
        let holder = match self.read_lock(&self.lockfile) {
            Ok(Some((_, Some(c)))) => {
                format!("now held by {} pid {}", c.details.hostname, c.details.pid)
            }
            Ok(_) => "no one holds it now".to_string(),
            Err(e) => format!("its state cannot be read: {e}"),
        };
        Error::new(
            ErrorKind::NotLocked,
            &self.lockfile,
            format!(
                "{what}: {} was broken by another process after it expired; {holder}",
                self.lockfile.display()
            ),
        )
    }

    pub(crate) fn release(&self, unconditionally: bool) -> Result<()> {
        let mut st = self.lock_state();
        if !st.held {
            if st.claim.is_some() || unconditionally {
                self.remove_claim(&mut st)?;
            }
            if unconditionally {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::NotLocked,
                &self.lockfile,
                format!("{} is not locked by this process", self.lockfile.display()),
            ));
        }
        st.held = false;
        let Some(c) = st.claim else { return Ok(()) };
        let result = if !self.near_expiry(&st) {
            // Comfortably unexpired: no correct breaker touches it, so check and unlink.
            match self.call(|| self.fs.lstat(&self.lockfile)) {
                // (Unless the check itself was slow enough to bring the deadline near.)
                Ok(m) if m.id == c.id && self.near_expiry(&st) => self.release_near_expiry(&st),
                Ok(m) if m.id == c.id => self.unlink_lock(),
                Ok(_) => Err(self.lost("unlock")),
                Err(e) if is_not_found(&e) => Err(self.lost("unlock")),
                Err(e) => Err(Error::io("stat lock file", &self.lockfile, e)),
            }
        } else {
            self.release_near_expiry(&st)
        };
        let claim = self.remove_claim(&mut st);
        match (result, claim) {
            (Err(e), _) if unconditionally && e.kind() == ErrorKind::NotLocked => Ok(()),
            (Err(e), _) => Err(e),
            (Ok(()), r) => r.map(|()| log::debug!("released {}", self.lockfile.display())),
        }
    }

    /// Removes the lock file, which we have just confirmed is ours.
    fn unlink_lock(&self) -> Result<()> {
        match self.call_removal(|| self.fs.unlink(&self.lockfile)) {
            Ok(()) => Ok(()),
            // Confirmed ours an instant ago: a lost NFS reply to a REMOVE that was done.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::io("remove lock file", &self.lockfile, e)),
        }
    }

    /// An unlock near or after expiry: serialised with breakers by the marker, so that
    /// "check it is ours, then unlink" cannot remove a lock a breaker just handed on.
    fn release_near_expiry(&self, st: &State) -> Result<()> {
        let Some(c) = st.claim else { return Ok(()) };
        if !self.take_marker_patiently(st, "unlock safely")? {
            // A breaker removed our claim file, which was the lock: it is gone.
            return Err(self.lost("unlock"));
        }
        let r = match self.read_lock(&self.lockfile) {
            // (Re-check the marker: a stale-marker remover elsewhere may have displaced it,
            // and then a breaker may be acting; leave the lock to expire rather than race.)
            Ok(Some((m, _))) if m.id == c.id && !self.marker_is_ours(st) => Err(Error::new(
                ErrorKind::Io,
                &self.marker,
                format!(
                    "break marker {} was displaced while unlocking; {} left to expire",
                    self.marker.display(),
                    self.lockfile.display()
                ),
            )),
            Ok(Some((m, _))) if m.id == c.id => self.unlink_lock(),
            Ok(_) => Err(self.lost("unlock")),
            Err(e) => Err(e),
        };
        self.release_marker(st);
        r
    }

    /// Extends our lock by a lifetime from the server's time now: stamp our claim (the
    /// lock's inode), read it back through the lock's name to check it is still ours and to
    /// re-learn the server's clock ([`Inner::stamp`]). Near or past our deadline, under the
    /// marker, as an unlock is.
    pub(crate) fn refresh(&self, lifetime: Option<Duration>, unconditionally: bool) -> Result<()> {
        let mut st = self.lock_state();
        if let Some(l) = lifetime {
            st.lifetime = l;
        }
        if !st.held {
            if unconditionally {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::NotLocked,
                &self.lockfile,
                format!(
                    "cannot refresh {}: not locked by this process",
                    self.lockfile.display()
                ),
            ));
        }
        let stamped = if self.near_expiry(&st) {
            // Near or past expiry a breaker may be judging our lock right now: refresh under
            // the marker, as an unlock does, so its judgement and our new expiry cannot cross.
            if !self.take_marker_patiently(&st, "refresh safely")? {
                Ok(Stamp::Gone)
            } else {
                let marker_claim = st.claim;
                let r = match self.read_lock(&self.lockfile) {
                    Ok(Some((m, _))) if st.claim.is_some_and(|c| c.id == m.id) => {
                        self.stamp(&mut st, &self.lockfile)
                    }
                    Ok(_) => Ok(Stamp::NotOurs),
                    Err(e) => Err(e),
                };
                self.release_marker_of(marker_claim);
                r
            }
        } else {
            self.stamp(&mut st, &self.lockfile)
        };
        match stamped? {
            Stamp::Done => {
                st.expires_at = st.claim.map_or(Duration::ZERO, |c| c.deadline);
                Ok(())
            }
            // Our claim file gone (a breaker removed it with the lock it was), or the lock is
            // someone else's: lost.
            Stamp::Gone | Stamp::NotOurs if unconditionally => Ok(()),
            Stamp::Gone | Stamp::NotOurs => Err(self.lost("refresh")),
        }
    }

    fn state(&self) -> Result<LockState> {
        let st = self.lock_state();
        let Some((meta, parsed)) = self.read_lock(&self.lockfile)? else {
            return Ok(LockState::Unlocked);
        };
        if meta.kind != FileKind::Regular {
            return Err(Error::invalid(
                &self.lockfile,
                format!(
                    "lock file {} is a {}, not a regular file",
                    self.lockfile.display(),
                    kind_name(meta.kind)
                ),
            ));
        }
        let ours = st.claim.is_some_and(|c| c.id == meta.id);
        let now = match &parsed {
            Some(c) => self.now_for(&st, c),
            None => self.server_now(&st),
        };
        let liveness = match &parsed {
            Some(c) => match self.liveness(c) {
                // Like flufl.lock's report: same host name and no such pid reads as stale.
                Liveness::Unknown if c.details.hostname == self.hostname && c.origin.is_none() => {
                    match self.fs.process(c.details.pid) {
                        ProcState::Gone | ProcState::Zombie => Liveness::Dead,
                        _ => Liveness::Unknown,
                    }
                }
                l => l,
            },
            None => Liveness::Unknown,
        };
        Ok(claim::classify(Facts {
            present: true,
            parsed: parsed.is_some() && meta.kind == FileKind::Regular,
            ours,
            expired: claim::expired(meta.modified, now, Duration::ZERO),
            liveness,
        }))
    }
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Regular => "regular file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Other => "FIFO, socket or device",
    }
}

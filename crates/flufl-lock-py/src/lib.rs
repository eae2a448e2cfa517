//! The `flufl_lock_rs._native` extension module: the flufl-lock library's [`Lock`] for the
//! Python package `flufl_lock_rs`.
//!
//! This module is the thin native half. The Python half (`python/flufl_lock_rs/_lockfile.py`)
//! gives it flufl.lock 10.0.0's API: the `Lock` class, `LockState`, the exceptions,
//! `timedelta` and `datetime` values. Here each call releases the GIL around the library
//! call, and a waiting `lock()` wakes every 50 ms to let Python run its signal handlers,
//! so that Ctrl-C raises `KeyboardInterrupt` at once, with no claim file left behind.
//!
//! The library logs through the `log` crate; this module forwards those records to Python's
//! `flufl.lock` logger (flufl.lock's), at the level that logger is enabled for.
//!
//! The crate builds only as a cdylib, by maturin (`crates/flufl-lock-py/pyproject.toml`),
//! which sets `PYO3_BUILD_EXTENSION_MODULE` so that it does not link libpython. It has no
//! Rust tests: its tests are Python's (`tests/`, run by `scripts/test-python.sh`).

use flufl_lock::{Error, ErrorKind, Lock, LockState};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest a waiting `lock()` stays in the library without looking at Python's signals.
/// Ctrl-C is answered within this (plus the few system calls that end an attempt).
const SLICE: Duration = Duration::from_millis(50);

/// The errnos the library retries by default; a Python `retry_errnos` list adds to them
/// (flufl.lock always treats `ENOENT` and `ESTALE` as its `ERRORS`).
#[cfg(unix)]
const DEFAULT_RETRY_ERRNOS: &[i32] = &[libc::ESTALE];
/// `ERROR_SHARING_VIOLATION`, as the library retries on Windows.
#[cfg(windows)]
const DEFAULT_RETRY_ERRNOS: &[i32] = &[32];
#[cfg(not(any(unix, windows)))]
const DEFAULT_RETRY_ERRNOS: &[i32] = &[];

/// The library's `Lock`, for one Python `Lock` object.
#[pyclass(frozen, module = "flufl_lock_rs._native")]
#[derive(Debug)]
pub struct RawLock {
    /// `None` only while it is dropped.
    lock: Option<Lock>,
    /// The process that built it: a child forked from that process must neither use nor
    /// release it.
    built_in: u32,
    lockfile: String,
    claimfile: String,
    hostname: String,
    /// How a waiting `lock()` waits: [`WAIT_UNKNOWN`] until the first `lock()` looks at the
    /// lock's filesystem, then [`WAIT_BLOCKING`] or [`WAIT_ASYNC`].
    waiting: AtomicU8,
    /// Serialises [`RawLock::forget_if_lost`].
    retake: Mutex<()>,
}

/// Not decided yet.
const WAIT_UNKNOWN: u8 = 0;
/// On a local filesystem: the library's blocking acquisition, in slices of [`SLICE`]
/// between which Python's signal handlers run. Each slice is a whole acquisition (a claim
/// written and removed), which costs a few local system calls, and its waits are woken by
/// a release at once (inotify).
const WAIT_BLOCKING: u8 = 1;
/// On a remote filesystem (NFS and the like, where every call is a round trip and waiters
/// take turns in arrival order): one acquisition for the whole wait, the library's async
/// one, driven by a small tokio runtime in windows of [`SLICE`]; stopping it (dropping the
/// future) removes its claim. A wait cut into whole acquisitions would leave its place in
/// line at each slice.
const WAIT_ASYNC: u8 = 2;

/// What the caller of a failing call was doing: flufl.lock words its errors per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lock,
    Unlock,
    Details,
    Other,
}

#[pymethods]
impl RawLock {
    /// A lock on `lockfile` (made absolute). `lifetime` and `foreign_slop` are in seconds;
    /// `retry_errnos` are retried on top of the library's defaults; `now`, if given, is
    /// called for the wall-clock time (a POSIX timestamp), flufl.lock's `_now()` hook.
    #[new]
    #[pyo3(signature = (lockfile, lifetime, separator, retry_errnos, foreign_slop, now=None))]
    fn new(
        lockfile: PathBuf,
        lifetime: f64,
        separator: &str,
        retry_errnos: Vec<i32>,
        foreign_slop: f64,
        now: Option<Py<PyAny>>,
    ) -> PyResult<RawLock> {
        let mut chars = separator.chars();
        let sep = match (chars.next(), chars.next()) {
            (Some(c), None) => c,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "the separator must be one character, not {separator:?}"
                )))
            }
        };
        let mut builder = Lock::builder(&lockfile)
            .lifetime(seconds(lifetime, "lifetime")?)
            .separator(sep)
            .foreign_slop(seconds(foreign_slop, "CLOCK_SLOP")?);
        if !retry_errnos.is_empty() {
            builder =
                builder.retry_errnos(DEFAULT_RETRY_ERRNOS.iter().chain(&retry_errnos).copied());
        }
        if let Some(now) = now {
            builder = builder.clock(move || python_now(&now));
        }
        let lock = builder
            .build()
            .map_err(|e| Python::attach(|py| convert(py, e, Op::Other)))?;
        Ok(RawLock {
            lockfile: path_str(lock.lockfile()),
            claimfile: path_str(lock.claimfile()),
            hostname: lock.hostname().to_owned(),
            lock: Some(lock),
            built_in: std::process::id(),
            waiting: AtomicU8::new(WAIT_UNKNOWN),
            retake: Mutex::new(()),
        })
    }

    /// Takes the lock, waiting at most `timeout` seconds (`None`: forever), with the GIL
    /// released. Raises `AlreadyLockedError`, `TimeOutError`, `OSError`, or whatever a
    /// signal handler raises (`KeyboardInterrupt`): then the lock is not held and our claim
    /// file is gone.
    #[pyo3(signature = (timeout=None))]
    fn lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        sync_log_level(py);
        let lock = self.inner();
        let start = Instant::now();
        let deadline = match timeout {
            Some(t) if t.is_nan() => return Err(PyValueError::new_err("timeout is NaN")),
            // A negative timeout is one try; one too long for the clock is no timeout.
            Some(t) => Duration::try_from_secs_f64(t.max(0.0))
                .ok()
                .and_then(|d| start.checked_add(d)),
            None => None,
        };
        let mut retries = 0;
        let mut malformed_logged = false;
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = remaining.map_or(SLICE, |r| r.min(SLICE));
            let result = if self.wait_mode(lock) == WAIT_ASYNC {
                self.wait_async(py, lock, remaining)?
            } else {
                py.detach(|| lock.lock_timeout(slice))
            };
            let over = deadline.is_some_and(|d| Instant::now() >= d);
            match result {
                Ok(()) => {
                    // A signal that came while we took it: give the lock back, so that an
                    // exception from lock() always means "not held".
                    if let Err(e) = py.check_signals() {
                        let _ = py.detach(|| lock.unlock());
                        return Err(e);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::TimedOut && !over => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => return Err(timed_out(py, start, &e)),
                // flufl.lock waits on a lock file that holds no claim until its timeout (it
                // never breaks it); the library gives up on it after a second. Wait, as
                // flufl.lock does.
                Err(e) if is_malformed(&e, lock) => {
                    if !malformed_logged {
                        log::error!("lockfile exists but isn't safe to break: {}", self.lockfile);
                        malformed_logged = true;
                    }
                    if over {
                        return Err(timed_out(py, start, &e));
                    }
                    py.detach(|| std::thread::sleep(slice));
                }
                // Held, says the library. flufl.lock's lock() re-stamps a lock it holds before
                // saying so, and takes anew one that another process broke after it expired
                // (which the library still remembers holding): do both. (Another thread
                // sharing this object may also have released it meanwhile: try again.)
                Err(e) if e.kind() == ErrorKind::AlreadyLocked && retries < 100 => {
                    match py.detach(|| self.forget_if_lost(lock)) {
                        Ok(true) => return Err(convert(py, e, Op::Lock)),
                        Ok(false) => {
                            retries += 1;
                            continue;
                        }
                        Err(e) => return Err(convert(py, e, Op::Lock)),
                    }
                }
                Err(e) => return Err(convert(py, e, Op::Lock)),
            }
            py.check_signals()?;
        }
    }

    /// Releases the lock (`unconditionally`: without complaining that we do not hold it)
    /// and removes our claim file. Raises `NotLockedError` or `OSError`.
    #[pyo3(signature = (unconditionally=false))]
    fn unlock(&self, py: Python<'_>, unconditionally: bool) -> PyResult<()> {
        let lock = self.inner();
        py.detach(|| {
            if unconditionally {
                lock.unlock_unconditionally()
            } else {
                lock.unlock()
            }
        })
        .map_err(|e| convert(py, e, Op::Unlock))
    }

    /// Extends the lock by `lifetime` seconds (or its lifetime), which becomes its lifetime.
    /// Returns `None`, or the library's explanation when we do not hold the lock (the Python
    /// layer raises flufl.lock's `NotLockedError`). Raises `OSError`.
    #[pyo3(signature = (lifetime=None, unconditionally=false))]
    fn refresh(
        &self,
        py: Python<'_>,
        lifetime: Option<f64>,
        unconditionally: bool,
    ) -> PyResult<Option<String>> {
        let lifetime = lifetime.map(|l| seconds(l, "lifetime")).transpose()?;
        let lock = self.inner();
        match py.detach(|| lock.refresh(lifetime, unconditionally)) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotLocked => Ok(Some(e.to_string())),
            Err(e) => Err(convert(py, e, Op::Other)),
        }
    }

    /// Whether we hold the lock; with `refresh`, a lock we hold is also refreshed, as
    /// flufl.lock's `is_locked` does (a lock found lost meanwhile reads as not held).
    #[pyo3(signature = (refresh=false))]
    fn is_locked(&self, py: Python<'_>, refresh: bool) -> PyResult<bool> {
        let lock = self.inner();
        py.detach(|| {
            if !lock.is_locked()? {
                return Ok(false);
            }
            if !refresh {
                return Ok(true);
            }
            match lock.refresh(None, false) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotLocked => Ok(false),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| convert(py, e, Op::Other))
    }

    /// `(hostname, pid, lockfile, claimfile)` as the lock file says. Raises
    /// `NotLockedError('Details are unavailable')` when it holds no claim.
    fn details(&self, py: Python<'_>) -> PyResult<(String, u32, String, String)> {
        let lock = self.inner();
        let d = py
            .detach(|| lock.details())
            .map_err(|e| convert(py, e, Op::Details))?;
        Ok((
            d.hostname,
            d.pid,
            path_str(&d.lockfile),
            path_str(&d.claimfile),
        ))
    }

    /// flufl.lock's `LockState` value (1 to 6). The library calls the lock ours when the
    /// lock file is our claim's inode; flufl.lock reads its content, so a lock file of ours
    /// rewritten to say something else (a test does this) is `unknown`, as it says.
    fn state(&self, py: Python<'_>) -> PyResult<u8> {
        let lock = self.inner();
        let state = py.detach(|| -> flufl_lock::Result<LockState> {
            let s = lock.state()?;
            if matches!(s, LockState::Ours | LockState::OursExpired) {
                match lock.details() {
                    Ok(d) if d.claimfile == lock.claimfile() => {}
                    Ok(_) => return Ok(LockState::Unknown),
                    Err(e) if e.kind() == ErrorKind::NotLocked => return Ok(LockState::Unknown),
                    Err(e) => return Err(e),
                }
            }
            // flufl.lock calls a lock stale when no process has its pid on this host. The
            // library reads a pid that is now a thread of another process as that
            // process's (it asks /proc for the start time, which matches the holder's when
            // the thread started in the same clock tick); no process has that pid.
            if matches!(s, LockState::Unknown | LockState::TheirsExpired) {
                if let Ok(d) = lock.details() {
                    if d.hostname == lock.hostname() && pid_is_a_thread_only(d.pid) {
                        return Ok(LockState::Stale);
                    }
                }
            }
            Ok(s)
        });
        let state = state.map_err(|e| convert(py, e, Op::Other))?;
        Ok(match state {
            LockState::Unlocked => 1,
            LockState::Ours => 2,
            LockState::OursExpired => 3,
            LockState::Stale => 4,
            LockState::TheirsExpired => 5,
            // `LockState` may grow; anything else is flufl.lock's "cannot tell".
            _ => 6,
        })
    }

    /// The lock file's expiry (its modification time), a POSIX timestamp. Raises
    /// `FileNotFoundError` when there is no lock file, as flufl.lock's `os.stat` does.
    fn expiration(&self, py: Python<'_>) -> PyResult<f64> {
        let lock = self.inner();
        match py.detach(|| lock.expiration()) {
            Ok(t) => Ok(timestamp(t)),
            Err(e) if e.kind() == ErrorKind::NotLocked => Err(errno_error(py, libc_enoent(), &e)),
            Err(e) => Err(convert(py, e, Op::Other)),
        }
    }

    /// For tests: force how a waiting `lock()` waits (`"blocking"`, `"async"`), whatever the
    /// filesystem.
    fn _set_waiting(&self, mode: &str) -> PyResult<()> {
        let mode = match mode {
            "blocking" => WAIT_BLOCKING,
            "async" => WAIT_ASYNC,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown waiting mode {mode:?}"
                )))
            }
        };
        self.waiting.store(mode, Ordering::Relaxed);
        Ok(())
    }

    /// How a waiting `lock()` waits here: `"blocking"`, `"async"`, or `None` (not decided
    /// yet).
    #[getter]
    fn waiting(&self) -> Option<&'static str> {
        match self.waiting.load(Ordering::Relaxed) {
            WAIT_BLOCKING => Some("blocking"),
            WAIT_ASYNC => Some("async"),
            _ => None,
        }
    }

    /// The lifetime, in seconds.
    #[getter]
    fn lifetime(&self, py: Python<'_>) -> f64 {
        let lock = self.inner();
        py.detach(|| lock.lifetime().as_secs_f64())
    }

    /// Sets the lifetime for the next acquisition or refresh, in seconds.
    fn set_lifetime(&self, py: Python<'_>, lifetime: f64) -> PyResult<()> {
        let lifetime = seconds(lifetime, "lifetime")?;
        let lock = self.inner();
        py.detach(|| lock.set_lifetime(lifetime));
        Ok(())
    }

    /// The lock file's absolute path.
    #[getter]
    fn lockfile(&self) -> &str {
        &self.lockfile
    }

    /// Our claim file's absolute path.
    #[getter]
    fn claimfile(&self) -> &str {
        &self.claimfile
    }

    /// The host name written into our claims (Python's `socket.getfqdn()`).
    #[getter]
    fn hostname(&self) -> &str {
        &self.hostname
    }
}

impl RawLock {
    fn inner(&self) -> &Lock {
        self.lock
            .as_ref()
            .expect("the Lock is present until RawLock is dropped")
    }

    /// After the library said "already locked": `true` if the lock is ours (re-stamped now),
    /// `false` if it is not held by this object any more (released by another thread, or
    /// broken by another process, which the library is then told to forget).
    fn forget_if_lost(&self, lock: &Lock) -> flufl_lock::Result<bool> {
        // One thread at a time: two that both found it lost must not both forget it (the
        // second could release the lock the first has just taken again).
        let _one = self.retake.lock().unwrap_or_else(|e| e.into_inner());
        match lock.refresh(None, false) {
            Ok(()) => Ok(true),
            // The library's words for a lock broken by another process; any other
            // `NotLocked` from refresh means this object does not hold it.
            Err(e)
                if e.kind() == ErrorKind::NotLocked
                    && e.to_string().contains("was broken by another process") =>
            {
                lock.unlock_unconditionally()?;
                Ok(false)
            }
            Err(e) if e.kind() == ErrorKind::NotLocked => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How a waiting `lock()` waits here, decided at the first `lock()` whose lock
    /// directory can be looked at.
    fn wait_mode(&self, lock: &Lock) -> u8 {
        let mode = self.waiting.load(Ordering::Relaxed);
        if mode != WAIT_UNKNOWN {
            return mode;
        }
        let Some(remote) = lock.lockfile().parent().and_then(is_remote) else {
            return WAIT_BLOCKING;
        };
        let mode = if remote { WAIT_ASYNC } else { WAIT_BLOCKING };
        self.waiting.store(mode, Ordering::Relaxed);
        mode
    }

    /// One acquisition for the whole wait ([`WAIT_ASYNC`]), at most `remaining` (`None`:
    /// forever), stopped by whatever a signal handler raises: then the acquisition is
    /// ended, its claim removed, before this returns.
    fn wait_async(
        &self,
        py: Python<'_>,
        lock: &Lock,
        remaining: Option<Duration>,
    ) -> PyResult<flufl_lock::Result<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| PyOSError::new_err(format!("cannot start a runtime to wait: {e}")))?;
        type Acquiring<'a> = Pin<Box<dyn Future<Output = flufl_lock::Result<()>> + Send + 'a>>;
        let mut acquiring: Acquiring<'_> = match remaining {
            Some(r) => Box::pin(lock.lock_timeout_async(r)),
            None => Box::pin(lock.lock_async()),
        };
        loop {
            let polled = py.detach(|| {
                runtime.block_on(async { tokio::time::timeout(SLICE, &mut acquiring).await })
            });
            match polled {
                Ok(result) => {
                    py.detach(move || drop(runtime));
                    return Ok(result);
                }
                Err(_) => {
                    if let Err(e) = py.check_signals() {
                        // Dropping the future ends the acquisition; dropping the runtime
                        // waits for an attempt still running on its blocking pool.
                        py.detach(move || {
                            drop(acquiring);
                            drop(runtime);
                        });
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Whether `dir` is on a filesystem where the library waits without change notification
/// and takes turns in line (its `sys::is_remote`, which the library does not export): NFS,
/// SMB, FUSE, the cluster filesystems. `None` if it cannot be looked at.
#[cfg(target_os = "linux")]
fn is_remote(dir: &Path) -> Option<bool> {
    const REMOTE: &[u32] = &[
        0x6969,      // NFS
        0x517b,      // SMB
        0xfe53_4d42, // SMB2
        0xff53_4d42, // CIFS
        0x6573_5546, // FUSE
        0x5346_414f, // AFS
        0x00c3_6400, // Ceph
        0x4750_4653, // GPFS
        0x0bd0_0bd0, // Lustre
        0x0102_1997, // 9p
        0x7461_636f, // OCFS2
        0x0116_1970, // GFS2
        0x786f_4256, // vboxsf
    ];
    let st = rustix::fs::statfs(dir).ok()?;
    // `f_type` is signed on some targets; the magic numbers are 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as i64 & 0xffff_ffff) as u32;
    Some(REMOTE.contains(&magic))
}

/// Whether `pid` names a thread that is not a process (`pidfd_open(2)` says `EINVAL`): no
/// process has that pid.
#[cfg(target_os = "linux")]
fn pid_is_a_thread_only(pid: u32) -> bool {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|p| {
            matches!(
                pidfd_open(p, PidfdFlags::empty()),
                Err(rustix::io::Errno::INVAL)
            )
        })
}

#[cfg(not(target_os = "linux"))]
fn pid_is_a_thread_only(_pid: u32) -> bool {
    false
}

/// Elsewhere the library never uses change notification: always wait in one acquisition.
#[cfg(not(target_os = "linux"))]
fn is_remote(_dir: &Path) -> Option<bool> {
    Some(true)
}

impl Drop for RawLock {
    /// As flufl.lock: a `Lock` object that is garbage collected leaves a held lock held (it
    /// expires, or a waiter on this host breaks it once this process is gone). In a child
    /// forked from the process that built it, nothing at all is touched: the lock and its
    /// claim are the parent's.
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        if std::process::id() != self.built_in {
            std::mem::forget(lock);
        } else {
            lock.leak();
        }
    }
}

/// A Python number of seconds as a `Duration`: `ValueError` if negative or not finite.
fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, not {value}"
        ))
    })
}

/// A path as Python's `os.fsdecode` gives it.
fn path_str(path: &Path) -> String {
    let s: &OsStr = path.as_os_str();
    match s.to_str() {
        Some(s) => s.to_owned(),
        None => Python::attach(|py| {
            s.into_pyobject(py)
                .ok()
                .and_then(|o| o.extract::<String>().ok())
                .unwrap_or_else(|| s.to_string_lossy().into_owned())
        }),
    }
}

/// Seconds since the epoch (negative before it).
fn timestamp(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The wall clock as the Python `_now` hook says, through `now()` (a POSIX timestamp); the
/// system clock if it cannot be called.
fn python_now(now: &Py<PyAny>) -> SystemTime {
    let secs = Python::try_attach(|py| now.bind(py).call0().and_then(|v| v.extract::<f64>()));
    match secs {
        Some(Ok(s)) if s.is_finite() => {
            let d = Duration::from_secs_f64(s.abs());
            let t = if s >= 0.0 {
                UNIX_EPOCH.checked_add(d)
            } else {
                UNIX_EPOCH.checked_sub(d)
            };
            t.unwrap_or_else(SystemTime::now)
        }
        Some(Err(e)) => {
            log::warn!("_now() failed ({e}); using the system clock");
            SystemTime::now()
        }
        _ => SystemTime::now(),
    }
}

/// Whether `e` is the library giving up on a lock file that holds no claim.
fn is_malformed(e: &Error, lock: &Lock) -> bool {
    e.kind() == ErrorKind::Io
        && e.path() == lock.lockfile()
        && e.io_error().is_some_and(|io| io.raw_os_error().is_none())
        && e.to_string().contains("does not hold a flufl.lock claim")
}

fn libc_enoent() -> i32 {
    #[cfg(unix)]
    {
        libc::ENOENT
    }
    #[cfg(not(unix))]
    {
        2
    }
}

/// flufl.lock's `TimeOutError`, noting how long we waited and the library's last word.
fn timed_out(py: Python<'_>, start: Instant, e: &Error) -> PyErr {
    let err = exception(py, "TimeOutError", "Could not acquire the lock");
    // The library's message says how long its last slice waited: say how long we did.
    let message = e.to_string();
    let text = match message.split_once(" waiting for ") {
        Some((head, rest)) if head.starts_with("timed out after") => {
            format!("timed out after {:.1?} waiting for {rest}", start.elapsed())
        }
        _ => format!("timed out after {:.1?}: {message}", start.elapsed()),
    };
    note(py, &err, text);
    err
}

/// The Python exception for a library error: flufl.lock's class and exact message, the
/// library's message (which names the file, the step and the holder) as a note.
fn convert(py: Python<'_>, e: Error, op: Op) -> PyErr {
    let err = match e.kind() {
        ErrorKind::AlreadyLocked => exception(py, "AlreadyLockedError", "We already had the lock"),
        ErrorKind::TimedOut => exception(py, "TimeOutError", "Could not acquire the lock"),
        ErrorKind::NotLocked => match op {
            Op::Unlock => exception(py, "NotLockedError", "Already unlocked"),
            Op::Details => exception(py, "NotLockedError", "Details are unavailable"),
            Op::Lock | Op::Other => exception(py, "NotLockedError", &e.to_string()),
        },
        _ => {
            return match e.io_error().and_then(|io| io.raw_os_error()) {
                Some(errno) => errno_error(py, errno, &e),
                None => PyOSError::new_err(e.to_string()),
            }
        }
    };
    note(py, &err, e.to_string());
    err
}

/// `OSError(errno, strerror, filename)` (Python picks the subclass, e.g.
/// `FileNotFoundError`), with the library's message as a note.
fn errno_error(py: Python<'_>, errno: i32, e: &Error) -> PyErr {
    let strerror = py
        .import("os")
        .and_then(|os| os.call_method1("strerror", (errno,)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| std::io::Error::from_raw_os_error(errno).to_string());
    let err = PyOSError::new_err((errno, strerror, path_str(e.path())));
    note(py, &err, e.to_string());
    err
}

/// An instance of one of flufl_lock_rs's exception classes (defined in Python).
fn exception(py: Python<'_>, class: &str, message: &str) -> PyErr {
    let made = py
        .import("flufl_lock_rs._lockfile")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message,)));
    match made {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

fn note(py: Python<'_>, err: &PyErr, text: String) {
    // A failure to add a note leaves the exception as it is.
    let _ = err.add_note(py, text);
}

// Logging: the library's `log` records go to Python's `flufl.lock` logger.

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn logger(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    LOGGER.get_or_try_init(py, || {
        Ok(py
            .import("logging")?
            .call_method1("getLogger", ("flufl.lock",))?
            .unbind())
    })
}

/// Lets through only the records the Python logger would keep (checked at each `lock()`,
/// so that a logging configuration made after import is followed).
fn sync_log_level(py: Python<'_>) {
    let level = logger(py)
        .and_then(|l| l.bind(py).call_method0("getEffectiveLevel"))
        .and_then(|v| v.extract::<i64>());
    let filter = match level {
        Ok(l) if l <= 5 => log::LevelFilter::Trace,
        Ok(l) if l <= 10 => log::LevelFilter::Debug,
        Ok(l) if l <= 20 => log::LevelFilter::Info,
        Ok(l) if l <= 30 => log::LevelFilter::Warn,
        Ok(l) if l <= 40 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    };
    log::set_max_level(filter);
}

#[derive(Debug)]
struct PythonLog;

impl log::Log for PythonLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level: i64 = match record.level() {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            log::Level::Info => 20,
            log::Level::Debug => 10,
            log::Level::Trace => 5,
        };
        let message = record.args().to_string();
        // Not while the interpreter shuts down; a failing handler is logging's business.
        let _ = Python::try_attach(|py| {
            logger(py).and_then(|l| {
                l.bind(py)
                    .call_method1("log", (level, "%s", message))
                    .map(drop)
            })
        });
    }

    fn flush(&self) {}
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Another extension module may have installed the process's logger first; then the
    // library's records go there.
    if log::set_logger(&PythonLog).is_ok() {
        log::set_max_level(log::LevelFilter::Off);
    }
    m.add_class::<RawLock>()?;
    m.add("SEP", flufl_lock::SEP.to_string())?;
    m.add(
        "DEFAULT_LIFETIME",
        flufl_lock::DEFAULT_LIFETIME.as_secs_f64(),
    )?;
    m.add(
        "DEFAULT_FOREIGN_SLOP",
        flufl_lock::DEFAULT_FOREIGN_SLOP.as_secs_f64(),
    )?;
    Ok(())
}

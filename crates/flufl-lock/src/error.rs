//! The one error type, with flufl.lock's kinds.

use crate::claim::Details;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong, mirroring flufl.lock's exceptions.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = flufl_lock::Lock::new(dir.path().join("x.lck"))?;
/// match lock.unlock() {
///     Err(e) if e.kind() == flufl_lock::ErrorKind::NotLocked => {}
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), flufl_lock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// We already hold this lock (flufl's `AlreadyLockedError`).
    AlreadyLocked,
    /// We do not hold this lock, or it was broken and taken by another process
    /// (flufl's `NotLockedError`).
    NotLocked,
    /// The timeout passed before the lock could be taken (flufl's `TimeOutError`).
    TimedOut,
    /// A filesystem call failed, or the lock file is not something we may touch.
    Io,
}

/// An error from a lock operation. Its message names the file and the step that failed.
///
/// # Examples
///
/// ```
/// use flufl_lock::{ErrorKind, Lock};
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = Lock::new(dir.path().join("no-such-dir").join("x.lck"))?;
/// let err = lock.lock().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert!(err.path().to_string_lossy().contains("no-such-dir"));
/// assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().starts_with("failed to create claim file"));
/// let io: std::io::Error = err.into_io_error();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// # Ok::<(), flufl_lock::Error>(())
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    path: PathBuf,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, path: &Path, message: impl Into<String>) -> Error {
        Error {
            kind,
            path: path.to_path_buf(),
            message: message.into(),
            source: None,
        }
    }

    /// An I/O error at `step` on `path`: "failed to {step} {path}: {err}".
    pub(crate) fn io(step: &str, path: &Path, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Io,
            path: path.to_path_buf(),
            message: format!("failed to {step} {}", path.display()),
            source: Some(err),
        }
    }

    // Named errors, one wording each, so that every message names the file and the step.

    /// `lock()` on a `Lock` that holds its lock.
    pub(crate) fn already_locked(lock: &Path) -> Error {
        Error::new(
            ErrorKind::AlreadyLocked,
            lock,
            format!(
                "{} is already locked by this process (pid {})",
                lock.display(),
                std::process::id()
            ),
        )
    }

    /// `break_lock` on a `Lock` that holds its lock.
    pub(crate) fn held_here(lock: &Path) -> Error {
        Error::new(
            ErrorKind::AlreadyLocked,
            lock,
            format!(
                "{} is held by this process; unlock it instead",
                lock.display()
            ),
        )
    }

    /// `unlock` or `refresh` (`what`) of a `Lock` that does not hold its lock.
    pub(crate) fn not_held(lock: &Path, what: &str) -> Error {
        let message = match what {
            "unlock" => format!("{} is not locked by this process", lock.display()),
            _ => format!(
                "cannot {what} {}: not locked by this process",
                lock.display()
            ),
        };
        Error::new(ErrorKind::NotLocked, lock, message)
    }

    /// Our lock was broken by another process after it expired; `now` says who holds it.
    pub(crate) fn lost(lock: &Path, what: &str, now: &str) -> Error {
        Error::new(
            ErrorKind::NotLocked,
            lock,
            format!(
                "{what}: {} was broken by another process after it expired; {now}",
                lock.display()
            ),
        )
    }

    /// There is no lock file (for a query that needs one).
    pub(crate) fn no_lock_file(lock: &Path) -> Error {
        Error::new(
            ErrorKind::NotLocked,
            lock,
            format!("no lock file {}", lock.display()),
        )
    }

    /// The lock file holds no claim, so there are no details to give.
    pub(crate) fn no_details(lock: &Path) -> Error {
        Error::new(
            ErrorKind::NotLocked,
            lock,
            format!("details are unavailable: {} holds no claim", lock.display()),
        )
    }

    /// Timed out waiting for a lock held by `holder`, which expires in `left`.
    pub(crate) fn timed_out_waiting(
        lock: &Path,
        waited: Duration,
        holder: &Details,
        left: Duration,
    ) -> Error {
        Error::new(
            ErrorKind::TimedOut,
            lock,
            format!(
                "timed out after {waited:.1?} waiting for {}: held by {} pid {}, {}",
                lock.display(),
                holder.hostname,
                holder.pid,
                if left.is_zero() {
                    "expired".to_string()
                } else {
                    format!("expires in {left:.1?}")
                }
            ),
        )
    }

    /// Timed out while a lock file's content was being rewritten (flufl.lock re-locking).
    pub(crate) fn timed_out_rewriting(lock: &Path, waited: Duration) -> Error {
        Error::new(
            ErrorKind::TimedOut,
            lock,
            format!(
                "timed out after {waited:.1?} waiting for {}: its content is being rewritten",
                lock.display()
            ),
        )
    }

    /// The lock file vanished and reappeared `tries` times in a row.
    pub(crate) fn keeps_changing(lock: &Path, tries: u32) -> Error {
        Error::new(
            ErrorKind::Io,
            lock,
            format!(
                "{} keeps changing; giving up after {tries} tries",
                lock.display()
            ),
        )
    }

    /// Every confirmation of a new lock took longer than its lease: calls to the file server
    /// are slower than `lifetime` allows.
    pub(crate) fn too_slow(lock: &Path, lifetime: Duration) -> Error {
        Error::new(
            ErrorKind::Io,
            lock,
            format!(
                "calls to the file server for {} keep taking longer than its lifetime \
                 ({lifetime:?}) allows: a lock taken now would already be expired; use a \
                 longer lifetime",
                lock.display()
            ),
        )
    }

    /// The break marker could not be taken to do `purpose`.
    pub(crate) fn marker_busy(marker: &Path, purpose: &str) -> Error {
        Error::new(
            ErrorKind::Io,
            marker,
            format!(
                "could not take break marker {} to {purpose}",
                marker.display()
            ),
        )
    }

    /// The break marker was displaced while we unlocked near expiry.
    pub(crate) fn marker_displaced(marker: &Path, lock: &Path) -> Error {
        Error::new(
            ErrorKind::Io,
            marker,
            format!(
                "break marker {} was displaced while unlocking; {} left to expire",
                marker.display(),
                lock.display()
            ),
        )
    }

    /// A lock-like file (`what`: "lock file", "break marker") that is not a regular file.
    pub(crate) fn not_regular(path: &Path, what: &str, kind: &str) -> Error {
        Error::invalid(
            path,
            format!(
                "{what} {} is a {kind}, not a regular file; refusing to touch it \
                 (remove it by hand if no process uses it)",
                path.display()
            ),
        )
    }

    /// A regular lock file that does not hold a claim.
    pub(crate) fn malformed(lock: &Path, len: u64) -> Error {
        Error::invalid(
            lock,
            format!(
                "lock file {} ({len} bytes) does not hold a flufl.lock claim; refusing to \
                 break it (remove it by hand if no process uses it)",
                lock.display()
            ),
        )
    }

    /// A regular file at the break marker's name that does not hold a claim.
    pub(crate) fn malformed_marker(marker: &Path, len: u64) -> Error {
        Error::invalid(
            marker,
            format!(
                "break marker {} ({len} bytes) does not hold a flufl.lock claim; refusing to \
                 remove it (remove it by hand if no process uses it)",
                marker.display()
            ),
        )
    }

    /// A `Lock` used in a child forked from the process that built it.
    pub(crate) fn forked(lock: &Path, parent: u32) -> Error {
        Error::new(
            ErrorKind::Io,
            lock,
            format!(
                "the Lock for {} was built in process {parent} and cannot be used in a forked \
                 child (its claims would name the parent); build a new Lock in the child",
                lock.display()
            ),
        )
    }

    /// A symbolic link where a lock-like file should be.
    pub(crate) fn symlink(path: &Path, err: &io::Error) -> Error {
        Error::invalid(
            path,
            format!(
                "{} is a symbolic link; refusing to follow it ({err})",
                path.display()
            ),
        )
    }

    /// An I/O error that is not a failed call: the file is not what a lock may be.
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Error {
        let message = message.into();
        Error {
            kind: ErrorKind::Io,
            path: path.to_path_buf(),
            source: Some(io::Error::new(io::ErrorKind::InvalidData, message.clone())),
            message,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the failed step was working on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying I/O error, if the step was a filesystem call.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }

    /// Converts into the underlying I/O error, or an `io::Error` of the matching kind.
    pub fn into_io_error(self) -> io::Error {
        io::Error::from(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.source {
            Some(e) if e.kind() != io::ErrorKind::InvalidData || e.to_string() != self.message => {
                write!(f, ": {e}")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<Error> for io::Error {
    /// Keeps the kind: `TimedOut` becomes `TimedOut`, `AlreadyLocked` becomes `WouldBlock`
    /// (the mapping fd-lock and fs4 use), an I/O error is returned as it was.
    fn from(e: Error) -> io::Error {
        let kind = match e.kind {
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::AlreadyLocked => io::ErrorKind::WouldBlock,
            ErrorKind::NotLocked => io::ErrorKind::Other,
            ErrorKind::Io => {
                if let Some(src) = e.source {
                    return src;
                }
                io::ErrorKind::Other
            }
        };
        io::Error::new(kind, e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Display names the step, the path and the OS error.
    #[test]
    fn display_names_step_and_path() {
        let e = Error::io(
            "link claim file to",
            Path::new("/x/l"),
            io::Error::from_raw_os_error(13),
        );
        let s = e.to_string();
        assert!(s.starts_with("failed to link claim file to /x/l: "), "{s}");
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.path(), Path::new("/x/l"));
    }

    /// Conversion to io::Error keeps the kind.
    #[test]
    fn into_io_keeps_kind() {
        let t = Error::new(ErrorKind::TimedOut, Path::new("/l"), "timed out");
        assert_eq!(io::Error::from(t).kind(), io::ErrorKind::TimedOut);
        let a = Error::new(ErrorKind::AlreadyLocked, Path::new("/l"), "held");
        assert_eq!(io::Error::from(a).kind(), io::ErrorKind::WouldBlock);
        let i = Error::io(
            "open",
            Path::new("/l"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(i.into_io_error().kind(), io::ErrorKind::PermissionDenied);
    }
}

//! The filesystem seam: every platform call the algorithm makes goes through [`Fs`].
//!
//! The real backend ([`RealFs`]) lives in `unix.rs` or `windows.rs`; unsupported targets
//! compile and answer [`io::ErrorKind::Unsupported`]. Tests wrap [`RealFs`] in their own
//! [`Fs`] to inject faults (a `link` that succeeds but reports `EEXIST`, `ESTALE`, `ENOSPC`,
//! `EINTR`, a stale link count) without patching the algorithm. The trait is reachable from
//! outside the crate only with the `fault-injection` feature and is **not** a stable API.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

#[cfg_attr(unix, path = "unix/mod.rs")]
#[cfg_attr(windows, path = "windows/mod.rs")]
#[cfg_attr(not(any(unix, windows)), path = "unsupported.rs")]
mod imp;

pub use imp::{is_sharing_violation, is_stale, RealFs, DEFAULT_RETRY_ERRNOS};

/// The identity of a file: device and inode on POSIX, volume serial and file index on Windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device (POSIX) or volume serial number (Windows).
    pub dev: u64,
    /// Inode (POSIX) or file index (Windows).
    pub ino: u64,
}

/// What kind of file a path names, judged without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: the only kind a lock or claim may be.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link, or a reparse point on Windows.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// The attributes of a file that the algorithm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Device and inode.
    pub id: FileId,
    /// Number of hard links.
    pub nlink: u64,
    /// Modification time: for a lock, its expiry.
    pub modified: SystemTime,
    /// Status change time (POSIX `ctime`); the last write time on Windows.
    pub changed: SystemTime,
    /// Size in bytes.
    pub len: u64,
    /// Kind of file.
    pub kind: FileKind,
}

/// What the kernel says about a process named in a claim.
///
/// `Gone` and `Zombie` are answers of the kernel itself (`pidfd_open` or `kill(pid, 0)`
/// failing with `ESRCH`; a pidfd that is readable because the whole thread group exited),
/// never a `/proc` entry that cannot be seen: `/proc` mounted with `hidepid`, a thread-group
/// leader that exited while its other threads run on (shown as `Z`), and other users'
/// processes all look missing or dead there while they are alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// Alive (running or stopped), with its start time in clock ticks since boot when
    /// `/proc` shows it.
    Running {
        /// Start time, in clock ticks since boot (Linux `/proc/PID/stat` field 22), as seen
        /// from our time namespace.
        start: Option<u64>,
    },
    /// Every thread has exited, not yet reaped: it will never touch the lock again.
    Zombie,
    /// No such process.
    Gone,
    /// The kernel's process table cannot be asked here.
    Unknown,
}

/// Facts that prove a claim was written on this machine, in this boot and pid namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostIdentity {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`, without dashes).
    pub boot_id: Option<String>,
    /// The inode of our pid namespace (`/proc/self/ns/pid`), only when `/proc` is the
    /// procfs of that namespace.
    pub pid_ns: Option<u64>,
    /// The inode of our time namespace (`/proc/self/ns/time`; 0 on kernels without time
    /// namespaces). Start times in `/proc` are shifted by the reader's time namespace, so they
    /// compare only between processes of the same one.
    pub time_ns: Option<u64>,
    /// This process's start time in clock ticks since boot.
    pub start_time: Option<u64>,
}

/// The filesystem seam. Each method is one platform call (or, for `read_head`, one bounded
/// read), so a fault can be injected at any step of the algorithm.
pub trait Fs: Send + Sync + fmt::Debug {
    /// `open(2)` with `O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC`, mode 0666
    /// less the umask (flufl.lock's): creates a claim file that did not exist.
    fn create_new(&self, path: &Path) -> io::Result<File>;
    /// `write(2)` until all of `data` is written.
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()>;
    /// `fstat(2)`: the attributes of an open file.
    fn fstat(&self, file: &File) -> io::Result<Meta>;
    /// `fstat(2)` as far as the kernel knows without asking a file server again (Linux
    /// `statx` with `AT_STATX_DONT_SYNC`). Right after an `open`, which on NFS asked the
    /// server about the file (close-to-open), the identity is exact and the rest as fresh as
    /// the attribute cache; a FUSE client would otherwise ask again.
    fn fstat_cached(&self, file: &File) -> io::Result<Meta> {
        self.fstat(file)
    }
    /// `futimens(2)`: sets the access and modification times of an open file.
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()>;
    /// `utimensat(2)` with `AT_SYMLINK_NOFOLLOW`: sets a path's times without following
    /// a symlink.
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()>;
    /// `open(2)` with `O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`: opens a lock or claim
    /// to read it. A symlink fails with `ELOOP`; a FIFO does not block.
    fn open_read(&self, path: &Path) -> io::Result<File>;
    /// `read(2)` of at most `max` bytes from the start of an open file.
    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>>;
    /// `lstat(2)`: a path's attributes, without following a symlink.
    fn lstat(&self, path: &Path) -> io::Result<Meta>;
    /// `link(2)`: creates the hard link `dst` to `src`; fails with `EEXIST` if `dst` exists.
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()>;
    /// `rename(2)`: moves `src` to `dst`, replacing `dst`.
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()>;
    /// `unlink(2)`: removes a name.
    fn unlink(&self, path: &Path) -> io::Result<()>;
    /// Whether `dir` is on a network filesystem (NFS, SMB, FUSE, ...), where change
    /// notifications miss other hosts' changes (`statfs(2)`).
    fn is_remote(&self, dir: &Path) -> io::Result<bool>;
    /// The state of process `pid` in our pid namespace.
    fn process(&self, pid: u32) -> ProcState;
    /// The names in directory `dir`, each with its inode number (`readdir(3)`; 0 where the
    /// platform gives none): waiters read the claim files beside a lock to take turns. A
    /// directory of more than `max` names fails (`ErrorKind::Other`) once `max` were read.
    fn list_dir(&self, dir: &Path, max: usize) -> io::Result<Vec<(OsString, u64)>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if names.len() == max {
                return Err(io::Error::other(format!("more than {max} names")));
            }
            let entry = entry?;
            names.push((entry.file_name(), imp::inode_of(&entry)));
        }
        Ok(names)
    }
    /// Blocks until `lock_name` in `dir` may have been removed or renamed, until the
    /// process `pid` exits, or until `timeout` passes, whichever comes first.
    fn wait(&self, waiter: &mut Waiter, timeout: Duration);
    /// Time since boot on a clock that keeps running while the machine is suspended
    /// (Linux `CLOCK_BOOTTIME`): the clock our estimate of the file server's clock and our
    /// own lease deadline are carried on. The monotonic clock stops during a suspend, so a
    /// lease carried on it would outlive the suspend.
    fn boot_clock(&self) -> Duration {
        imp::boot_clock()
    }
    /// Facts that identify this host, boot, pid and time namespaces, and this process
    /// what claims carry for the pid proof.
    fn host_identity(&self) -> HostIdentity {
        imp::host_identity()
    }
    /// The monotonic clock that timeouts run on (`Instant::now()`).
    ///
    /// This and the three methods below are seams for the deterministic simulation
    /// (`crates/flufl-lock-sim`), which runs the algorithm on simulated time, randomness and
    /// process handles; the real backend never overrides them.
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
    /// Sleeps for `d` without a change notification (backoff between retries).
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
    /// 64 random bits: a claim file name's unique field, the backoff's jitter.
    fn random(&self) -> u64 {
        crate::builder::random_u64()
    }
    /// A waiter on `lock` (absolute path) for [`Fs::wait`]; `notify` asks for change
    /// notifications on its directory.
    fn waiter(&self, lock: &Path, notify: bool) -> Waiter {
        Waiter::new(lock, notify)
    }
}

/// Whether the change time (`ctime`) that [`Fs::lstat`] reports is stamped by the file
/// server's own clock on every change (POSIX), so that reading it back after setting a
/// file's times tells the server's time. On Windows it is the last write time, which we set.
pub const CHANGE_TIME_IS_SERVER_TIME: bool = cfg!(unix);

/// State kept across [`Fs::wait`] calls: a change notification on the lock's directory and
/// a handle on the holder's process, where the platform has them.
#[derive(Debug, Default)]
pub struct Waiter {
    pub(crate) inner: imp::WaiterImpl,
    /// `Some`: a waiter that only records the process it is asked to watch
    /// ([`Waiter::recording`]).
    recorded: Option<Option<u32>>,
}

impl Waiter {
    /// A waiter on `lock` (absolute path); `notify` asks for change notifications.
    pub fn new(lock: &Path, notify: bool) -> Waiter {
        Waiter {
            inner: imp::WaiterImpl::new(lock, notify),
            recorded: None,
        }
    }

    /// A waiter that opens nothing: it records the process it is asked to watch, for an
    /// [`Fs`] that simulates waiting (its [`Fs::wait`] reads [`Waiter::watching`]).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub fn recording() -> Waiter {
        Waiter {
            inner: imp::WaiterImpl::default(),
            recorded: Some(None),
        }
    }

    /// Watch process `pid` (already proven to be the holder, on this host), so that
    /// [`Fs::wait`] returns when it exits. `None` stops watching.
    pub fn watch_process(&mut self, pid: Option<u32>) {
        match &mut self.recorded {
            Some(r) => *r = pid,
            None => self.inner.watch_process(pid),
        }
    }

    /// Whether a removal of the lock wakes [`Fs::wait`] (Linux inotify on a local
    /// filesystem), so that polling is only a safety net.
    pub fn notifies(&self) -> bool {
        self.recorded.is_none() && self.inner.notifies()
    }

    /// The process being watched, until it exits.
    pub fn watching(&self) -> Option<u32> {
        match self.recorded {
            Some(r) => r,
            None => self.inner.watching(),
        }
    }
}

/// This machine's host name, as Python's `socket.getfqdn()` gives it. Resolved once per
/// process (it may need a resolver query).
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(imp::hostname).clone()
}

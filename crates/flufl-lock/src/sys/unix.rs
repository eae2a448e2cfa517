//! POSIX backend, on `rustix`. Only calls macOS also has are used outside `cfg(linux)`;
//! Linux adds `/proc` process checks, inotify and pidfd for fast waiting.

use super::{FileId, FileKind, Fs, HostIdentity, Meta, ProcState};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, CWD};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Retried by default: `ESTALE` (a cached NFS handle whose file was replaced), by name, so
/// it is right on every POSIX system (116 on Linux, 70 on macOS and the BSDs).
pub const DEFAULT_RETRY_ERRNOS: &[i32] = &[rustix::io::Errno::STALE.raw_os_error()];

/// Whether `e` is `ESTALE`.
pub fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::STALE.raw_os_error())
}

/// Never on POSIX: removals are refused only on Windows while another process has the
/// file open without sharing delete access.
pub fn is_sharing_violation(_e: &io::Error) -> bool {
    false
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

fn to_timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        },
        Err(e) => {
            let d = e.duration();
            let (mut s, mut n) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
            if n < 0 {
                s -= 1;
                n += 1_000_000_000;
            }
            Timespec {
                tv_sec: s as _,
                tv_nsec: n as _,
            }
        }
    }
}

fn from_parts(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn meta(st: &rfs::Stat) -> Meta {
    let kind = match rfs::FileType::from_raw_mode(st.st_mode as _) {
        rfs::FileType::RegularFile => FileKind::Regular,
        rfs::FileType::Directory => FileKind::Directory,
        rfs::FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    };
    #[allow(clippy::unnecessary_cast)]
    Meta {
        id: FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        },
        nlink: st.st_nlink as u64,
        modified: from_parts(st.st_mtime as i64, st.st_mtime_nsec as i64),
        changed: from_parts(st.st_ctime as i64, st.st_ctime_nsec as i64),
        len: st.st_size as u64,
        kind,
    }
}

impl Fs for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        let fd = rfs::open(
            path,
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
            // flufl.lock's mode. With a group umask (002) in a shared directory, users of the
            // group can then hard-link each other's claims where `fs.protected_hardlinks`
            // would otherwise refuse it; breaking never needs that (docs/protocol.md).
            Mode::from_raw_mode(0o666),
        )?;
        Ok(File::from(fd))
    }

    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        let mut f = file;
        f.write_all(data)
    }

    fn fstat(&self, file: &File) -> io::Result<Meta> {
        Ok(meta(&rfs::fstat(file)?))
    }

    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        let ts = to_timespec(time);
        let times = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        Ok(rfs::futimens(file, &times)?)
    }

    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        let ts = to_timespec(time);
        let times = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        Ok(rfs::utimensat(
            CWD,
            path,
            &times,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    fn open_read(&self, path: &Path) -> io::Result<File> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(max.min(4096));
        file.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        Ok(meta(&rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)?))
    }

    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        // linkat without AT_SYMLINK_FOLLOW links the name itself, never a symlink's target.
        Ok(rfs::linkat(CWD, src, CWD, dst, AtFlags::empty())?)
    }

    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        Ok(rfs::rename(src, dst)?)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        Ok(rfs::unlink(path)?)
    }

    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        linux::is_remote(dir)
    }

    fn process(&self, pid: u32) -> ProcState {
        linux::process(pid)
    }

    fn wait(&self, waiter: &mut super::Waiter, timeout: Duration) {
        waiter.inner.wait(timeout)
    }
}

pub fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    fqdn(
        &name,
        &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
    )
    .unwrap_or(name)
}

/// Python's `socket.getfqdn()`: resolve the host name to its first address, look that
/// address up in `/etc/hosts` (glibc's "files" source, which is what such machines use),
/// and take the first of its names that contains a dot, else its canonical name.
/// `None` when the address is not in `/etc/hosts` (a DNS reverse lookup is not done).
fn fqdn(name: &str, hosts: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let addr = (name, 0).to_socket_addrs().ok()?.next()?.ip();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words
            .next()
            .and_then(|w| w.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        if ip != addr {
            continue;
        }
        let names: Vec<&str> = words.collect();
        let canonical = *names.first()?;
        let pick = names.iter().find(|n| n.contains('.')).unwrap_or(&canonical);
        return Some((*pick).to_string());
    }
    None
}

pub fn host_identity() -> HostIdentity {
    linux::host_identity()
}

/// Linux: `CLOCK_BOOTTIME`, which counts suspended time. Elsewhere `CLOCK_MONOTONIC`, which
/// counts it on macOS and FreeBSD (and not on OpenBSD and NetBSD: there a suspend is not seen).
pub fn boot_clock() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let id = rustix::time::ClockId::Boottime;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let id = rustix::time::ClockId::Monotonic;
    let ts = rustix::time::clock_gettime(id);
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

pub use linux::WaiterImpl;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use super::super::{HostIdentity, ProcState};
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::fd::OwnedFd;
    use rustix::fs::inotify;
    use std::io;
    use std::mem::MaybeUninit;
    use std::path::Path;
    use std::time::Duration;

    const NFS_SUPER_MAGIC: i64 = 0x6969;
    const SMB_SUPER_MAGIC: i64 = 0x517b;
    const SMB2_MAGIC_NUMBER: i64 = 0xfe53_4d42;
    const CIFS_MAGIC_NUMBER: i64 = 0xff53_4d42;
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    const AFS_SUPER_MAGIC: i64 = 0x5346_414f;
    const CEPH_SUPER_MAGIC: i64 = 0x00c3_6400;
    const GPFS_SUPER_MAGIC: i64 = 0x4750_4653;
    const LUSTRE_SUPER_MAGIC: i64 = 0x0bd0_0bd0;

    pub fn is_remote(dir: &Path) -> io::Result<bool> {
        let st = rustix::fs::statfs(dir)?;
        #[allow(clippy::unnecessary_cast)]
        let magic = st.f_type as i64 & 0xffff_ffff;
        Ok(matches!(
            magic,
            NFS_SUPER_MAGIC
                | SMB_SUPER_MAGIC
                | SMB2_MAGIC_NUMBER
                | CIFS_MAGIC_NUMBER
                | FUSE_SUPER_MAGIC
                | AFS_SUPER_MAGIC
                | CEPH_SUPER_MAGIC
                | GPFS_SUPER_MAGIC
                | LUSTRE_SUPER_MAGIC
        ))
    }

    /// Parses `/proc/PID/stat`: the state letter and the start time (field 22). The command
    /// name (field 2) may hold spaces and parentheses, so parsing starts after its last `)`.
    pub(crate) fn parse_stat(stat: &str) -> Option<(char, u64)> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        // After the state (field 3), field 22 is the 19th.
        let start = fields.nth(18)?.parse().ok()?;
        Some((state, start))
    }

    /// Asks the kernel, never `/proc` alone: `pidfd_open` (Linux 5.3+) answers `ESRCH` for
    /// no such process, and a pidfd is readable only once every thread of the process has
    /// exited. A `/proc` entry can be hidden (`hidepid`, a non-dumpable process) or show `Z`
    /// for a leader whose other threads run on; `/proc` gives only the start time, which
    /// tells a reused pid.
    pub fn process(pid: u32) -> ProcState {
        use rustix::io::Errno;
        use rustix::process::{pidfd_open, test_kill_process, Pid, PidfdFlags};
        let Some(p) = Pid::from_raw(pid as i32).filter(|_| pid <= i32::MAX as u32) else {
            return ProcState::Unknown;
        };
        match pidfd_open(p, PidfdFlags::empty()) {
            Err(Errno::SRCH) => return ProcState::Gone,
            Ok(fd) => {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                let zero = rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                match poll(&mut fds, Some(&zero)) {
                    Ok(n) if n > 0 => return ProcState::Zombie,
                    Ok(_) => {}
                    Err(_) => return ProcState::Unknown,
                }
            }
            // EINVAL: the pid names a thread, not a process (a reused pid); /proc tells.
            Err(Errno::INVAL) => {}
            // No pidfd (old kernel, seccomp): kill(pid, 0) tells existence, not a zombie.
            Err(_) => match test_kill_process(p) {
                Err(Errno::SRCH) => return ProcState::Gone,
                Ok(()) | Err(Errno::PERM) => {}
                Err(_) => return ProcState::Unknown,
            },
        }
        // It exists. Its start time, where /proc shows it, tells whether it is the same
        // process as the claim's; its state letter is not used (`Z` may be a leader whose
        // threads run on).
        let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .map(|(_, start)| start);
        ProcState::Running { start }
    }

    pub fn host_identity() -> HostIdentity {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().replace('-', ""))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
        let me = std::process::id();
        // /proc must be the procfs of our own pid namespace, or its pids are not ours.
        let proc_is_ours = rustix::fs::readlink("/proc/self", Vec::new())
            .ok()
            .and_then(|p| p.to_str().ok()?.parse::<u32>().ok())
            == Some(me);
        let ns_inode = |name: &str| -> io::Result<u64> {
            let p = rustix::fs::readlink(format!("/proc/self/ns/{name}"), Vec::new())?;
            let s = p.to_str().unwrap_or_default();
            s.strip_prefix(name)
                .and_then(|s| s.strip_prefix(":["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("unexpected namespace link {s:?}")))
        };
        let pid_ns = ns_inode("pid").ok().filter(|_| proc_is_ours);
        // A kernel without time namespaces (before 5.6) has one clock for all: call it 0.
        let time_ns = match ns_inode("time") {
            Ok(ino) => Some(ino),
            Err(e) if e.kind() == io::ErrorKind::NotFound && pid_ns.is_some() => Some(0),
            Err(_) => None,
        };
        let start_time = std::fs::read_to_string(format!("/proc/{me}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .map(|(_, start)| start);
        HostIdentity {
            boot_id,
            pid_ns,
            time_ns,
            start_time,
        }
    }

    /// inotify on the lock's directory and a pidfd on the holder.
    #[derive(Debug, Default)]
    pub struct WaiterImpl {
        inotify: Option<OwnedFd>,
        name: Vec<u8>,
        pidfd: Option<(u32, OwnedFd)>,
    }

    impl WaiterImpl {
        pub fn new(lock: &Path, notify: bool) -> WaiterImpl {
            use std::os::unix::ffi::OsStrExt;
            let mut w = WaiterImpl {
                name: lock
                    .file_name()
                    .map(|n| n.as_bytes().to_vec())
                    .unwrap_or_default(),
                ..WaiterImpl::default()
            };
            if notify {
                if let Some(dir) = lock.parent() {
                    let fd = inotify::init(
                        inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK,
                    );
                    if let Ok(fd) = fd {
                        let flags = inotify::WatchFlags::DELETE
                            | inotify::WatchFlags::MOVED_FROM
                            | inotify::WatchFlags::ONLYDIR;
                        if inotify::add_watch(&fd, dir, flags).is_ok() {
                            w.inotify = Some(fd);
                        }
                    }
                }
            }
            w
        }

        pub fn watching(&self) -> Option<u32> {
            self.pidfd.as_ref().map(|p| p.0)
        }

        pub fn watch_process(&mut self, pid: Option<u32>) {
            match pid {
                None => self.pidfd = None,
                Some(pid) => {
                    if self.pidfd.as_ref().map(|p| p.0) == Some(pid) {
                        return;
                    }
                    self.pidfd = rustix::process::Pid::from_raw(pid as i32)
                        .and_then(|p| {
                            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                                .ok()
                        })
                        .map(|fd| (pid, fd));
                }
            }
        }

        /// Drains queued events; true when one names the lock file.
        fn drain(&self) -> bool {
            let Some(fd) = &self.inotify else {
                return false;
            };
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            let mut reader = inotify::Reader::new(fd, &mut buf);
            let mut hit = false;
            while let Ok(ev) = reader.next() {
                if ev.file_name().map(|n| n.to_bytes()) == Some(&self.name[..]) {
                    hit = true;
                }
            }
            hit
        }

        pub fn wait(&mut self, timeout: Duration) {
            if self.inotify.is_none() && self.pidfd.is_none() {
                std::thread::sleep(timeout);
                return;
            }
            let now = std::time::Instant::now();
            let deadline = now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(86_400 * 365));
            loop {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return;
                }
                let left = deadline - now;
                let ts = rustix::time::Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                };
                let mut fds = Vec::with_capacity(2);
                if let Some(fd) = &self.inotify {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                if let Some((_, fd)) = &self.pidfd {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                match poll(&mut fds, Some(&ts)) {
                    Ok(0) => return,
                    Ok(_) => {
                        let n_ino = usize::from(self.inotify.is_some());
                        let pid_ready = self.pidfd.is_some() && !fds[n_ino].revents().is_empty();
                        let ino_ready = n_ino == 1 && !fds[0].revents().is_empty();
                        drop(fds);
                        if pid_ready {
                            self.pidfd = None;
                            return;
                        }
                        if ino_ready && self.drain() {
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => {
                        std::thread::sleep(left.min(Duration::from_millis(10)));
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod linux {
    //! Other POSIX systems (macOS, the BSDs): no process checks, no change notification.
    //! Crashed holders are recovered by expiry, and waiters poll.
    use super::super::{HostIdentity, ProcState};
    use std::io;
    use std::path::Path;
    use std::time::Duration;

    pub fn is_remote(_dir: &Path) -> io::Result<bool> {
        Ok(true)
    }

    pub fn process(pid: u32) -> ProcState {
        let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
            return ProcState::Unknown;
        };
        match rustix::process::test_kill_process(p) {
            Ok(()) => ProcState::Running { start: None },
            Err(rustix::io::Errno::SRCH) => ProcState::Gone,
            Err(_) => ProcState::Unknown,
        }
    }

    pub fn host_identity() -> HostIdentity {
        HostIdentity::default()
    }

    #[derive(Debug, Default)]
    pub struct WaiterImpl;

    impl WaiterImpl {
        pub fn new(_lock: &Path, _notify: bool) -> WaiterImpl {
            WaiterImpl
        }
        pub fn watch_process(&mut self, _pid: Option<u32>) {}
        pub fn watching(&self) -> Option<u32> {
            None
        }
        pub fn wait(&mut self, timeout: Duration) {
            std::thread::sleep(timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    /// getfqdn picks the first dotted name of the address's /etc/hosts line, else its first.
    #[test]
    fn fqdn_from_hosts() {
        let hosts = "# c\n127.0.0.1 localhost\n127.0.0.1 vm\n";
        assert_eq!(
            super::fqdn("127.0.0.1", hosts).as_deref(),
            Some("localhost")
        );
        let hosts = "127.0.0.1 box box.example.org\n";
        assert_eq!(
            super::fqdn("127.0.0.1", hosts).as_deref(),
            Some("box.example.org")
        );
        assert_eq!(super::fqdn("127.0.0.1", "10.0.0.1 other\n"), None);
    }

    /// /proc/PID/stat parsing survives a command name with spaces and parentheses.
    #[cfg(target_os = "linux")]
    #[test]
    fn proc_stat_parse() {
        let s = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(super::linux::parse_stat(s), Some(('S', 987654)));
        assert_eq!(super::linux::parse_stat("garbage"), None);
    }
}

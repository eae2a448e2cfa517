//! POSIX backend, on `rustix`. Only calls macOS also has are used outside `cfg(linux)`;
//! Linux adds `/proc` process checks, inotify and pidfd for fast waiting.

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "linux.rs"]
mod platform;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "other.rs"]
mod platform;

pub use platform::WaiterImpl;

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

#[cfg(any(target_os = "linux", target_os = "android"))]
fn meta_of_statx(s: &rfs::Statx) -> Meta {
    let kind = match rfs::FileType::from_raw_mode(u32::from(s.stx_mode) as _) {
        rfs::FileType::RegularFile => FileKind::Regular,
        rfs::FileType::Directory => FileKind::Directory,
        rfs::FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    };
    Meta {
        id: FileId {
            dev: rfs::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
        },
        nlink: u64::from(s.stx_nlink),
        modified: from_parts(s.stx_mtime.tv_sec, i64::from(s.stx_mtime.tv_nsec)),
        changed: from_parts(s.stx_ctime.tv_sec, i64::from(s.stx_ctime.tv_nsec)),
        len: s.stx_size,
        kind,
    }
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

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn fstat_cached(&self, file: &File) -> io::Result<Meta> {
        let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        match rfs::statx(file, "", flags, rfs::StatxFlags::BASIC_STATS) {
            Ok(s) => Ok(meta_of_statx(&s)),
            // No statx (an old kernel, a seccomp filter): the plain fstat.
            Err(_) => self.fstat(file),
        }
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
        platform::is_remote(dir)
    }

    fn process(&self, pid: u32) -> ProcState {
        platform::process(pid)
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
    platform::host_identity()
}

/// A directory entry's inode number (`d_ino`).
pub fn inode_of(entry: &std::fs::DirEntry) -> u64 {
    std::os::unix::fs::DirEntryExt::ino(entry)
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

#[cfg(test)]
mod tests {
    /// The default retry set is `ESTALE` on this platform, by its meaning, not a number
    /// copied from Linux (116 there, 70 on macOS and the BSDs).
    #[test]
    fn default_retry_is_estale() {
        for &n in super::DEFAULT_RETRY_ERRNOS {
            let e = std::io::Error::from_raw_os_error(n);
            assert_eq!(e.kind(), std::io::ErrorKind::StaleNetworkFileHandle, "{n}");
            assert!(super::is_stale(&e));
        }
        assert_eq!(super::DEFAULT_RETRY_ERRNOS.len(), 1);
    }

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
        assert_eq!(super::platform::parse_stat(s), Some(('S', 987654)));
        assert_eq!(super::platform::parse_stat("garbage"), None);
    }
}

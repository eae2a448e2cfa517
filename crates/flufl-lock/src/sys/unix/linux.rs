//! Linux: `/proc` and pidfd process checks, the host's boot id and namespaces, `statfs`
//! for remote filesystems, inotify and pidfd for fast waiting.

use crate::sys::{HostIdentity, ProcState};
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
/// 9p (QEMU and WSL2 shares), the cluster filesystems OCFS2 and GFS2, VirtualBox shares:
/// other machines change them, and inotify does not see it.
const V9FS_MAGIC: i64 = 0x0102_1997;
const OCFS2_SUPER_MAGIC: i64 = 0x7461_636f;
const GFS2_MAGIC: i64 = 0x0116_1970;
const VBOXSF_MAGIC: i64 = 0x786f_4256;

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
            | V9FS_MAGIC
            | OCFS2_SUPER_MAGIC
            | GFS2_MAGIC
            | VBOXSF_MAGIC
    ))
}

/// Whether `pid` numbers a thread that is not its process's leader: `/proc/PID/status`
/// (reachable by path for any thread) gives another thread group id. False when unreadable.
fn numbers_a_thread(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
        })
        .is_some_and(|tgid| tgid != pid)
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
        // A pid that numbers a thread of another process (pidfd_open refuses it: EINVAL,
        // ENOENT on newer kernels) is no process: the claim's holder is gone. (/proc would
        // show the thread's start time, which may fall in the holder's clock tick.)
        Err(Errno::INVAL | Errno::NOENT) if numbers_a_thread(pid) => return ProcState::Gone,
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
                let fd =
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK);
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

    /// Whether a removal of the lock wakes [`WaiterImpl::wait`] (inotify is set up).
    pub fn notifies(&self) -> bool {
        self.inotify.is_some()
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
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
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

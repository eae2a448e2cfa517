//! The simulated filesystem, as one process sees it: the library's [`Fs`] seam over the
//! world. Every call is a scheduling point; its effect on the world is atomic.
//!
//! The library passes `std::fs::File` handles around; here each is a descriptor of
//! `/dev/null`, mapped (by descriptor number) to the simulated inode it stands for.

use crate::world::{Crashed, Fault, OpKind, Run, World, Ws, DIR, SEC};
use flufl_lock::sys::{FileId, FileKind, Fs, HostIdentity, Meta, ProcState, Waiter};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The filesystem and kernel of process `me` in the world.
pub(crate) struct SimFs {
    pub(crate) world: Arc<World>,
    pub(crate) me: usize,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFs(process {})", self.me)
    }
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EINTR: i32 = 4;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ESTALE: i32 = 116;

/// The name of `path` in the simulated directory, or `None` outside it.
fn name_of(path: &Path) -> Option<String> {
    (path.parent() == Some(Path::new(DIR)))
        .then(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .flatten()
}

/// A short form of a name for traces: claim names keep their pid.
fn short(name: &str) -> String {
    let mut parts = name.split('|');
    let lock = parts.next().unwrap_or_default();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_host), Some(pid), Some(rest)) => {
            let suffix = rest
                .rsplit('.')
                .next()
                .filter(|s| matches!(*s, "taken" | "probe" | "clk"));
            match suffix {
                Some(s) => format!("{lock}|{pid}.{s}"),
                None => format!("{lock}|{pid}"),
            }
        }
        _ => name.to_string(),
    }
}

fn meta(ws: &Ws, ino: usize) -> Meta {
    let i = &ws.inodes[ino];
    let t = |ns: u128| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64);
    Meta {
        id: FileId {
            dev: 1,
            ino: ino as u64 + 1,
        },
        nlink: u64::from(i.nlink),
        modified: t(i.mtime),
        changed: t(i.ctime),
        len: i.data.len() as u64,
        kind: FileKind::Regular,
    }
}

fn ns_of(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A handle standing for an inode.
fn handle(ws: &mut Ws, ino: usize) -> io::Result<File> {
    let f = File::open("/dev/null")?;
    ws.fds.insert(f.as_raw_fd(), ino);
    Ok(f)
}

fn inode_of(ws: &Ws, f: &File) -> io::Result<usize> {
    ws.fds
        .get(&f.as_raw_fd())
        .copied()
        .ok_or_else(|| errno(EINVAL))
}

fn lookup(ws: &Ws, path: &Path) -> io::Result<(String, usize)> {
    let name = name_of(path).ok_or_else(|| errno(ENOENT))?;
    let ino = *ws.names.get(&name).ok_or_else(|| errno(ENOENT))?;
    Ok((name, ino))
}

impl SimFs {
    /// One call: a scheduling point, a fault if the decision says so, the effect, the
    /// invariants. `lost` is the error a lost reply shows.
    fn op<T: Brief>(
        &self,
        kind: OpKind,
        what: impl Fn() -> String,
        lost: i32,
        effect: impl FnOnce(&mut Ws, usize, Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T> {
        let me = self.me;
        let mut g = match self.world.point(me) {
            Ok(g) => g,
            Err(Crashed) => return Err(self.dead()),
        };
        g.procs[me].paused_last = false;
        let fault = g.fault(kind);
        if let Some(f) = fault {
            g.note(me, || format!("[fault: {}] {}", f.name(), what()));
        }
        let pause = g.cfg.faults.pause;
        let step = g.cfg.faults.step as i64;
        let host = g.procs[me].host;
        match fault {
            Some(Fault::CrashBefore) => {
                std::panic::resume_unwind(Box::new(self.world.crash(g, me)));
            }
            Some(Fault::Slow) => {
                g.procs[me].late = g.reliance_left(me) <= u128::from(pause);
                let until = g.now + pause;
                g = self.block(g, until)?;
            }
            Some(Fault::Suspend) => {
                g.procs[me].late = g.reliance_left(me) <= u128::from(pause);
                g.hosts[host].suspended += pause;
                let until = g.now + pause;
                g = self.block(g, until)?;
            }
            Some(Fault::ServerAhead) => {
                g.server_offset += step;
                g.stepped_ahead = true;
            }
            Some(Fault::ServerBack) => g.server_offset -= step,
            Some(Fault::WallAhead) => g.hosts[host].skew += step,
            Some(Fault::WallBack) => g.hosts[host].skew -= step,
            Some(Fault::Stale | Fault::Interrupted) => {
                let e = if fault == Some(Fault::Stale) {
                    ESTALE
                } else {
                    EINTR
                };
                g.now += g.cfg.op_cost;
                g.note(me, || format!("{} -> {}", what(), errno_name(e)));
                return Err(errno(e));
            }
            _ => {}
        }
        let r = effect(&mut g, me, fault);
        g.procs[me].late = false;
        g.now += g.cfg.op_cost;
        g.note(me, || format!("{} -> {}", what(), brief(&r)));
        g.check_holders();
        match fault {
            Some(Fault::CrashAfter) => {
                std::panic::resume_unwind(Box::new(self.world.crash(g, me)));
            }
            Some(Fault::Pause) => {
                g.procs[me].paused_last = true;
                let until = g.now + pause;
                drop(self.block(g, until)?);
            }
            _ => drop(g),
        }
        match (fault, r) {
            (Some(Fault::LostReply), Ok(_)) => Err(errno(lost)),
            (_, r) => r,
        }
    }

    fn block<'a>(
        &'a self,
        g: std::sync::MutexGuard<'a, Ws>,
        until: u64,
    ) -> io::Result<std::sync::MutexGuard<'a, Ws>> {
        match self.world.block(g, self.me, until, false, None, false) {
            Ok(g) => Ok(g),
            Err(Crashed) => Err(self.dead()),
        }
    }

    /// A call by a process that is dead (or a run that was aborted): unwind at once, or, if
    /// already unwinding (drops run library code), fail without touching the world.
    fn dead(&self) -> io::Error {
        if std::thread::panicking() {
            errno(EIO)
        } else {
            std::panic::resume_unwind(Box::new(Crashed))
        }
    }

    fn path_op<T: Brief>(
        &self,
        kind: OpKind,
        call: &str,
        path: &Path,
        lost: i32,
        effect: impl FnOnce(&mut Ws, usize) -> io::Result<T>,
    ) -> io::Result<T> {
        let effect = |ws: &mut Ws, me: usize, _: Option<Fault>| effect(ws, me);
        let shown = name_of(path).map_or_else(|| path.display().to_string(), |n| short(&n));
        self.op(kind, || format!("{call}({shown})"), lost, effect)
    }
}

impl SimFs {
    /// Sleeps `d` of simulated time; `early`: the scheduler may end it up to `SLACK` early.
    pub(crate) fn sleep_for(&self, d: Duration, early: bool) {
        self.block_for(d, None, early, false);
    }

    /// A scheduling point, then blocked for `d` of simulated time, or until the process
    /// `watch` exits, or (`notify`, on local filesystems) the lock file changes name; `early`
    /// as above. Whether `watch` has exited when it wakes.
    fn block_for(&self, d: Duration, watch: Option<u32>, early: bool, notify: bool) -> bool {
        let me = self.me;
        let g = match self.world.point(me) {
            Ok(g) => g,
            Err(Crashed) => {
                self.dead();
                return false;
            }
        };
        let until = g.now + d.as_nanos().min(u128::from(1000 * SEC)) as u64;
        let wake = notify && g.cfg.local;
        match self.world.block(g, me, until, wake, watch, early) {
            Ok(g) => watch.is_some_and(|pid| g.pid_gone(me, pid)),
            Err(Crashed) => {
                self.dead();
                false
            }
        }
    }
}

impl Fs for SimFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.path_op(OpKind::Create, "create", path, EEXIST, |ws, me| {
            let name = name_of(path).ok_or_else(|| errno(ENOENT))?;
            if ws.names.contains_key(&name) {
                return Err(errno(EEXIST));
            }
            let now = ws.server_now();
            ws.inodes.push(crate::world::Inode {
                nlink: 1,
                mtime: now,
                ctime: now,
                data: Vec::new(),
                creator: me,
                lease: None,
            });
            let ino = ws.inodes.len() - 1;
            if !name.ends_with(".clk") {
                ws.procs[me].last_claim = Some(ino);
            }
            ws.names.insert(name, ino);
            handle(ws, ino)
        })
    }

    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        self.op(
            OpKind::Write,
            || "write".to_string(),
            EIO,
            |ws, _, _| {
                let ino = inode_of(ws, file)?;
                let now = ws.server_now();
                let i = &mut ws.inodes[ino];
                i.data.extend_from_slice(data);
                i.mtime = now;
                i.ctime = now;
                Ok(())
            },
        )
    }

    fn fstat(&self, file: &File) -> io::Result<Meta> {
        self.op(
            OpKind::Fstat,
            || "fstat".to_string(),
            EIO,
            |ws, _, _| {
                let ino = inode_of(ws, file)?;
                Ok(meta(ws, ino))
            },
        )
    }

    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        self.op(
            OpKind::SetTimes,
            || "futimens".to_string(),
            EIO,
            |ws, me, _| {
                let ino = inode_of(ws, file)?;
                set_times(ws, me, ino, time);
                Ok(())
            },
        )
    }

    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.path_op(OpKind::SetPathTimes, "utimensat", path, EIO, |ws, me| {
            let (_, ino) = lookup(ws, path)?;
            set_times(ws, me, ino, time);
            Ok(())
        })
    }

    fn open_read(&self, path: &Path) -> io::Result<File> {
        self.path_op(OpKind::Open, "open", path, EIO, |ws, _| {
            let (_, ino) = lookup(ws, path)?;
            handle(ws, ino)
        })
    }

    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        self.op(
            OpKind::Read,
            || "read".to_string(),
            EIO,
            |ws, _, _| {
                let ino = inode_of(ws, file)?;
                let d = &ws.inodes[ino].data;
                Ok(d[..d.len().min(max)].to_vec())
            },
        )
    }

    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        self.path_op(OpKind::Lstat, "lstat", path, EIO, |ws, _| {
            let (_, ino) = lookup(ws, path)?;
            Ok(meta(ws, ino))
        })
    }

    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        let shown = |p: &Path| name_of(p).map_or_else(|| p.display().to_string(), |n| short(&n));
        let what = || format!("link({}, {})", shown(src), shown(dst));
        self.op(OpKind::Link, what, EEXIST, |ws, _, _| {
            let (_, ino) = lookup(ws, src)?;
            let to = name_of(dst).ok_or_else(|| errno(ENOENT))?;
            if ws.names.contains_key(&to) {
                return Err(errno(EEXIST));
            }
            let now = ws.server_now();
            ws.inodes[ino].nlink += 1;
            ws.inodes[ino].ctime = now;
            ws.names.insert(to, ino);
            Ok(())
        })
    }

    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        let shown = |p: &Path| name_of(p).map_or_else(|| p.display().to_string(), |n| short(&n));
        let what = || format!("rename({}, {})", shown(src), shown(dst));
        self.op(OpKind::Rename, what, ENOENT, |ws, me, _| {
            let (from, ino) = lookup(ws, src)?;
            let to = name_of(dst).ok_or_else(|| errno(ENOENT))?;
            ws.check_removal(me, &from);
            let now = ws.server_now();
            if let Some(old) = ws.names.insert(to, ino) {
                ws.inodes[old].nlink -= 1;
                ws.inodes[old].ctime = now;
            }
            ws.names.remove(&from);
            ws.inodes[ino].ctime = now;
            if from == "lock" {
                ws.lock_changed();
            }
            Ok(())
        })
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.path_op(OpKind::Unlink, "unlink", path, ENOENT, |ws, me| {
            let (name, ino) = lookup(ws, path)?;
            ws.check_removal(me, &name);
            let now = ws.server_now();
            ws.names.remove(&name);
            ws.inodes[ino].nlink -= 1;
            ws.inodes[ino].ctime = now;
            if name == "lock" {
                ws.lock_changed();
            }
            Ok(())
        })
    }

    /// The names at this moment; not a scheduling point (waiters use it for hints only).
    fn list_dir(&self, dir: &Path, _max: usize) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        if dir != Path::new(DIR) {
            return Err(errno(ENOENT));
        }
        let g = self.world.lock();
        Ok(g.names
            .iter()
            .map(|(name, &ino)| (name.into(), ino as u64 + 1))
            .collect())
    }

    fn is_remote(&self, _dir: &Path) -> io::Result<bool> {
        Ok(!self.world.lock().cfg.local)
    }

    fn process(&self, pid: u32) -> ProcState {
        let r = self.op(
            OpKind::Process,
            || format!("process({pid})"),
            EIO,
            |ws, me, fault| {
                let host = ws.procs[me].host;
                let found = ws.procs.iter().find(|p| {
                    p.host == host && p.pid == pid && !matches!(p.run, Run::Dead | Run::Done)
                });
                Ok(match (found, fault) {
                    (_, Some(Fault::Unknowable)) => ProcState::Unknown,
                    (Some(_), Some(Fault::Hidden)) => ProcState::Running { start: None },
                    // The broken kernel of the self-test: a live process reads as gone.
                    (Some(_), Some(Fault::Liar)) => ProcState::Gone,
                    (Some(p), _) => ProcState::Running {
                        start: Some(p.start),
                    },
                    (None, _) => ProcState::Gone,
                })
            },
        );
        r.unwrap_or(ProcState::Unknown)
    }

    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        // As a pidfd that polls readable: the watch ends when the process has exited.
        if self.block_for(timeout, waiter.watching(), true, true) {
            waiter.watch_process(None);
        }
    }

    fn boot_clock(&self) -> Duration {
        let g = self.world.lock();
        g.boot(g.procs[self.me].host)
    }

    fn host_identity(&self) -> HostIdentity {
        let g = self.world.lock();
        let p = &g.procs[self.me];
        HostIdentity {
            boot_id: Some(format!("{:032x}", 0xb007_0000_u64 + p.host as u64)),
            pid_ns: Some(4_026_531_836),
            time_ns: Some(4_026_531_834),
            start_time: Some(p.start),
        }
    }

    fn monotonic(&self) -> Instant {
        let g = self.world.lock();
        self.world.base + g.mono(g.procs[self.me].host)
    }

    fn sleep(&self, d: Duration) {
        self.sleep_for(d, false);
    }

    fn random(&self) -> u64 {
        self.world.lock().next_random()
    }

    fn waiter(&self, _lock: &Path, _notify: bool) -> Waiter {
        Waiter::recording()
    }
}

/// `futimens`/`utimensat` by `me` on `ino`: the mtime as the server stores it (at its
/// granularity), the ctime stamped now; remembered as `me`'s stamp on that inode.
fn set_times(ws: &mut Ws, me: usize, ino: usize, time: SystemTime) {
    let t = ws.truncate(ns_of(time));
    let now = ws.server_now();
    ws.inodes[ino].mtime = t;
    ws.inodes[ino].ctime = now;
    if ws.same_owner(ws.inodes[ino].creator, me) {
        ws.inodes[ino].lease = Some(t);
    }
}

/// A call's result as a trace shows it.
pub(crate) trait Brief {
    fn brief(&self) -> String;
}

impl Brief for () {
    fn brief(&self) -> String {
        "ok".into()
    }
}

impl Brief for File {
    fn brief(&self) -> String {
        "ok".into()
    }
}

impl Brief for Vec<u8> {
    fn brief(&self) -> String {
        let text = String::from_utf8_lossy(self);
        let name = text.rsplit('/').next().unwrap_or_default();
        format!("\"{}\"", short(name))
    }
}

impl Brief for Meta {
    fn brief(&self) -> String {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH + crate::world::EPOCH_OFFSET)
                .map_or(-1.0, |d| d.as_secs_f64())
        };
        format!(
            "inode {} nlink {} mtime {:.6} ctime {:.6}",
            self.id.ino,
            self.nlink,
            secs(self.modified),
            secs(self.changed)
        )
    }
}

impl Brief for ProcState {
    fn brief(&self) -> String {
        format!("{self:?}")
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        ENOENT => "ENOENT",
        EIO => "EIO",
        EINTR => "EINTR",
        EEXIST => "EEXIST",
        EINVAL => "EINVAL",
        ESTALE => "ESTALE",
        _ => "error",
    }
}

fn brief<T: Brief>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => v.brief(),
        Err(e) => e
            .raw_os_error()
            .map_or_else(|| e.to_string(), |n| errno_name(n).to_string()),
    }
}

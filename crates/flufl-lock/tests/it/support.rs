//! Shared helpers: a temporary lock path, and a filesystem that injects faults.

use flufl_lock::sys::{Fs, Meta, ProcState, RealFs, Waiter};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.lck");
    (dir, path)
}

/// Names of files in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes a claim file named `name` in `dir` (its content its own path, as ours are) that
/// expires at `expiry`: a waiter's claim, planted.
#[cfg(unix)]
pub fn plant_claim(dir: &Path, name: &str, expiry: SystemTime) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, p.as_os_str().as_encoded_bytes()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(expiry)
        .unwrap();
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateNew,
    WriteAll,
    Fstat,
    SetTimes,
    SetPathTimes,
    OpenRead,
    ReadHead,
    Lstat,
    Link,
    Rename,
    Unlink,
}

pub enum Fault {
    /// Fail with this raw OS error, without performing the call.
    Err(i32),
    /// Perform the call, then report this raw OS error (a lost NFS reply).
    AfterErr(i32),
    /// Report this link count (stale attributes).
    Nlink(u64),
    /// Run this before performing the call (to pause a process between two steps).
    Hook(Arc<dyn Fn() + Send + Sync>),
}

pub struct Rule {
    pub op: Op,
    /// Only calls whose (first) path contains this; `None` matches every call.
    pub path: Option<String>,
    pub fault: Fault,
    /// How many more times the rule fires.
    pub times: usize,
}

/// A filesystem that counts calls and applies fault rules before delegating to [`RealFs`].
#[derive(Default)]
pub struct FaultyFs {
    rules: Mutex<Vec<Rule>>,
    pub calls: Mutex<Vec<(Op, PathBuf)>>,
}

impl std::fmt::Debug for FaultyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultyFs")
    }
}

impl FaultyFs {
    pub fn new() -> Arc<FaultyFs> {
        Arc::new(FaultyFs::default())
    }

    pub fn rule(&self, op: Op, path: Option<&str>, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            op,
            path: path.map(str::to_string),
            fault,
            times,
        });
    }

    pub fn count(&self, op: Op) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == op)
            .count()
    }

    /// Finds the first live rule for this call and takes one firing of it.
    fn fire(&self, op: Op, path: &Path) -> Option<FaultKind> {
        self.calls.lock().unwrap().push((op, path.to_path_buf()));
        let mut rules = self.rules.lock().unwrap();
        let p = path.to_string_lossy();
        let i = rules.iter().position(|r| {
            r.op == op && r.times > 0 && r.path.as_deref().is_none_or(|s| p.contains(s))
        })?;
        rules[i].times -= 1;
        match &rules[i].fault {
            Fault::Err(n) => Some(FaultKind::Err(*n)),
            Fault::AfterErr(n) => Some(FaultKind::AfterErr(*n)),
            Fault::Nlink(n) => Some(FaultKind::Nlink(*n)),
            Fault::Hook(h) => {
                let h = h.clone();
                drop(rules);
                h();
                None
            }
        }
    }

    fn apply<T>(&self, op: Op, path: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        match self.fire(op, path) {
            Some(FaultKind::Err(n)) => Err(io::Error::from_raw_os_error(n)),
            Some(FaultKind::AfterErr(n)) => {
                f()?;
                Err(io::Error::from_raw_os_error(n))
            }
            _ => f(),
        }
    }
}

enum FaultKind {
    Err(i32),
    AfterErr(i32),
    Nlink(u64),
}

const FILE: &str = "<open file>";

impl Fs for FaultyFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.apply(Op::CreateNew, path, || RealFs.create_new(path))
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        self.apply(Op::WriteAll, Path::new(FILE), || {
            RealFs.write_all(file, data)
        })
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        match self.fire(Op::Fstat, Path::new(FILE)) {
            Some(FaultKind::Err(n)) => Err(io::Error::from_raw_os_error(n)),
            Some(FaultKind::Nlink(n)) => RealFs.fstat(file).map(|m| Meta { nlink: n, ..m }),
            _ => RealFs.fstat(file),
        }
    }
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        self.apply(Op::SetTimes, Path::new(FILE), || {
            RealFs.set_times(file, time)
        })
    }
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.apply(Op::SetPathTimes, path, || RealFs.set_path_times(path, time))
    }
    fn open_read(&self, path: &Path) -> io::Result<File> {
        self.apply(Op::OpenRead, path, || RealFs.open_read(path))
    }
    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        self.apply(Op::ReadHead, Path::new(FILE), || {
            RealFs.read_head(file, max)
        })
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        match self.fire(Op::Lstat, path) {
            Some(FaultKind::Err(n)) => Err(io::Error::from_raw_os_error(n)),
            Some(FaultKind::Nlink(n)) => RealFs.lstat(path).map(|m| Meta { nlink: n, ..m }),
            Some(FaultKind::AfterErr(n)) => Err(io::Error::from_raw_os_error(n)),
            None => RealFs.lstat(path),
        }
    }
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.apply(Op::Link, dst, || RealFs.link(src, dst))
    }
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.apply(Op::Rename, src, || RealFs.rename(src, dst))
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.apply(Op::Unlink, path, || RealFs.unlink(path))
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        RealFs.is_remote(dir)
    }
    fn process(&self, pid: u32) -> ProcState {
        RealFs.process(pid)
    }
    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        RealFs.wait(waiter, timeout)
    }
}

/// A filesystem seam over [`RealFs`] that changes only what a test overrides: implement the
/// methods you need; every other call goes to the real filesystem. Wrapped in [`Layered`]
/// to be a [`Fs`]. (Used by the POSIX-only seam tests.)
#[cfg(unix)]
pub trait Layer: Send + Sync + std::fmt::Debug {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        RealFs.create_new(path)
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        RealFs.write_all(file, data)
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        RealFs.fstat(file)
    }
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        RealFs.set_times(file, time)
    }
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        RealFs.set_path_times(path, time)
    }
    fn open_read(&self, path: &Path) -> io::Result<File> {
        RealFs.open_read(path)
    }
    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        RealFs.read_head(file, max)
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        RealFs.lstat(path)
    }
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        RealFs.link(src, dst)
    }
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        RealFs.rename(src, dst)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        RealFs.unlink(path)
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        RealFs.is_remote(dir)
    }
    fn list_dir(&self, dir: &Path, max: usize) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        RealFs.list_dir(dir, max)
    }
    fn process(&self, pid: u32) -> ProcState {
        RealFs.process(pid)
    }
    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        RealFs.wait(waiter, timeout)
    }
    fn boot_clock(&self) -> Duration {
        RealFs.boot_clock()
    }
    fn host_identity(&self) -> flufl_lock::sys::HostIdentity {
        RealFs.host_identity()
    }
}

/// A [`Layer`] as a [`Fs`]; derefs to the layer, for its knobs.
#[cfg(unix)]
#[derive(Debug)]
pub struct Layered<L>(pub L);

#[cfg(unix)]
impl<L> std::ops::Deref for Layered<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.0
    }
}

#[cfg(unix)]
impl<L: Layer> Fs for Layered<L> {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.0.create_new(path)
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        self.0.write_all(file, data)
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        self.0.fstat(file)
    }
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        self.0.set_times(file, time)
    }
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.0.set_path_times(path, time)
    }
    fn open_read(&self, path: &Path) -> io::Result<File> {
        self.0.open_read(path)
    }
    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        self.0.read_head(file, max)
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        self.0.lstat(path)
    }
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.0.link(src, dst)
    }
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.0.rename(src, dst)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.0.unlink(path)
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        self.0.is_remote(dir)
    }
    fn list_dir(&self, dir: &Path, max: usize) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        self.0.list_dir(dir, max)
    }
    fn process(&self, pid: u32) -> ProcState {
        self.0.process(pid)
    }
    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        self.0.wait(waiter, timeout)
    }
    fn boot_clock(&self) -> Duration {
        self.0.boot_clock()
    }
    fn host_identity(&self) -> flufl_lock::sys::HostIdentity {
        self.0.host_identity()
    }
}

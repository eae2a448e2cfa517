//! Defects that came from the library's old shape (issue 13), each fixed with the move:
//! queries on a `Lock` that is waiting answer at once; the async path holds one claim for
//! the whole wait and makes the same calls as the blocking one; the builder's process
//! check and the host identity go through the filesystem seam.

use crate::support::{lock_path, FaultyFs, Op};
use flufl_lock::sys::{Fs, HostIdentity, Meta, ProcState, RealFs, Waiter};
use flufl_lock::{ErrorKind, Lock};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// From another thread, `lifetime()`, `is_locked()`, `state()` and `Debug` of a `Lock`
/// that is waiting for a held lock answer at once (the wait lets go of the state).
#[test]
fn queries_on_a_waiting_lock_answer_at_once() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let waiter = Arc::new(Lock::new(&path).unwrap());
    let w2 = waiter.clone();
    let t = std::thread::spawn(move || w2.lock_timeout(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(waiter.lifetime(), flufl_lock::DEFAULT_LIFETIME);
    assert!(!waiter.is_locked().unwrap());
    let _ = waiter.state().unwrap();
    let shown = format!("{waiter:?}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(200),
        "queries waited {took:?} for the acquisition (Debug: {shown})"
    );
    assert!(!t.is_finished(), "the waiter should still be waiting");
    holder.unlock().unwrap();
    t.join().unwrap().unwrap();
    assert!(waiter.is_locked().unwrap());
    waiter.unlock().unwrap();
}

/// An async wait of 600 ms on a held lock writes one claim file, not one per poll, and
/// polls with a `link` and one read of the lock file, as the blocking wait does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_wait_holds_one_claim() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let fs = FaultyFs::new();
    let waiter = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let e = waiter
        .lock_timeout_async(Duration::from_millis(600))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let (creates, links, reads) = (
        fs.count(Op::CreateNew),
        fs.count(Op::Link),
        fs.count(Op::OpenRead),
    );
    assert_eq!(creates, 1, "claim files created during one wait");
    assert!(links >= 5, "only {links} polls in 600 ms");
    assert!(reads <= links, "{reads} reads for {links} links");
    assert_eq!(
        fs.count(Op::Unlink),
        1,
        "the claim is removed once, at the end"
    );
}

/// A filesystem seam whose process table and host identity are the test's.
#[derive(Debug)]
struct Seam {
    start: u64,
}

impl Fs for Seam {
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
    fn process(&self, _pid: u32) -> ProcState {
        ProcState::Running {
            start: Some(self.start),
        }
    }
    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        RealFs.wait(waiter, timeout)
    }
    fn host_identity(&self) -> HostIdentity {
        HostIdentity {
            boot_id: Some("0123456789abcdef0123456789abcdef".into()),
            pid_ns: Some(11),
            time_ns: Some(22),
            start_time: Some(33),
        }
    }
}

/// The builder asks the seam, not the real `/proc`, for the owner's start time and the
/// host's identity: the claim carries exactly what the seam said.
#[test]
fn builder_asks_the_seam() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .filesystem(Arc::new(Seam { start: 4242 }))
        .owner_pid(1)
        .build()
        .unwrap();
    let name = lock.claimfile().to_string_lossy().into_owned();
    let random = name.rsplit(lock.separator()).next().unwrap();
    assert!(
        random.ends_with(".fl1.0123456789abcdef0123456789abcdef.11.22.4242"),
        "{random}"
    );
    let own = Lock::builder(&path)
        .filesystem(Arc::new(Seam { start: 4242 }))
        .build()
        .unwrap();
    let name = own.claimfile().to_string_lossy().into_owned();
    assert!(name.ends_with(".11.22.33"), "{name}");
}

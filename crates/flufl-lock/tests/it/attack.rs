//! A second adversarial review, of the fixes for issue 12: each test stages a finding that
//! broke the first version of those fixes (a refresh whose read-back fails, a filesystem
//! whose change time is not a server stamp, `Duration::MAX` as a timeout, the async
//! keep-alive after a suspend) and asserts what a correct implementation must do.

use crate::support::{lock_path, Layer, Layered};
use flufl_lock::sys::{Fs, Meta, RealFs};
use flufl_lock::{ErrorKind, Lock};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

type OnceHook = Box<dyn FnOnce() + Send>;

/// RealFs with a few knobs: fail the next `n` lstats of one path with EIO, run a hook before
/// the next unlink of one path, report ctime = mtime (what sshfs reports: SFTP v3 has no
/// ctime), and a boot clock that can jump (a suspend, as review.rs's test G simulates it).
#[derive(Default)]
struct Rig {
    fail_lstat: Mutex<Option<(PathBuf, usize)>>,
    before_unlink: Mutex<Option<(PathBuf, OnceHook)>>,
    ctime_is_mtime: AtomicBool,
    suspended_ms: AtomicU64,
    set_path_times: AtomicUsize,
    marker_links: AtomicUsize,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rig")
    }
}

impl Rig {
    fn new() -> Arc<Layered<Rig>> {
        Arc::new(Layered(Rig::default()))
    }
    fn fix(&self, m: Meta) -> Meta {
        if self.ctime_is_mtime.load(Ordering::SeqCst) {
            Meta {
                changed: m.modified,
                ..m
            }
        } else {
            m
        }
    }
}

impl Layer for Rig {
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        RealFs.fstat(file).map(|m| self.fix(m))
    }
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.set_path_times.fetch_add(1, Ordering::SeqCst);
        RealFs.set_path_times(path, time)
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        {
            let mut f = self.fail_lstat.lock().unwrap();
            if let Some((p, n)) = f.as_mut() {
                if p == path && *n > 0 {
                    *n -= 1;
                    return Err(io::Error::from_raw_os_error(5)); // EIO
                }
            }
        }
        RealFs.lstat(path).map(|m| self.fix(m))
    }
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        if dst.to_string_lossy().ends_with(".break") {
            self.marker_links.fetch_add(1, Ordering::SeqCst);
        }
        RealFs.link(src, dst)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        let hook = {
            let mut h = self.before_unlink.lock().unwrap();
            match h.take() {
                Some((p, f)) if p == path => Some(f),
                other => {
                    *h = other;
                    None
                }
            }
        };
        if let Some(f) = hook {
            f();
        }
        RealFs.unlink(path)
    }
    fn boot_clock(&self) -> Duration {
        RealFs.boot_clock() + Duration::from_millis(self.suspended_ms.load(Ordering::SeqCst))
    }
}

/// Finding 1: a refresh that shortens the lifetime writes the new (short) expiry, then its
/// read-back `lstat` fails once (EIO). `refresh` returns the error but keeps the old 60 s
/// deadline, so once the file has expired the holder still takes the marker-free fast
/// unlock. A waiter breaks the expired lock and takes it between the holder's identity
/// check and its `unlink`, and the holder deletes the new holder's lock: two holders.
#[test]
fn failed_refresh_keeps_a_deadline_the_file_no_longer_has() {
    let (_dir, path) = lock_path();
    let rig = Rig::new();
    let holder = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    holder.lock().unwrap();
    *rig.fail_lstat.lock().unwrap() = Some((path.clone(), 1));
    let r = holder.refresh(Some(Duration::from_secs(1)), false);
    assert!(r.is_err(), "the injected EIO did not surface: {r:?}");
    // The file says 1 s; wait past it and the 0.5 s margin.
    std::thread::sleep(Duration::from_millis(1800));

    let waiter = Arc::new(Lock::new(&path).unwrap());
    let got: Arc<Mutex<Option<flufl_lock::Result<()>>>> = Arc::new(Mutex::new(None));
    {
        let (w, got) = (waiter.clone(), got.clone());
        *rig.before_unlink.lock().unwrap() = Some((
            path.clone(),
            Box::new(move || *got.lock().unwrap() = Some(w.lock_timeout(Duration::from_secs(2)))),
        ));
    }
    let markers_before = rig.marker_links.load(Ordering::SeqCst);
    let unlocked = holder.unlock();
    let took_marker = rig.marker_links.load(Ordering::SeqCst) > markers_before;
    let waiter_got_it = matches!(*got.lock().unwrap(), Some(Ok(())));
    let waiter_still_has_file = waiter.is_locked().unwrap();
    let third = Lock::new(&path).unwrap();
    let third_got_it = third.try_lock().is_ok();
    eprintln!(
        "holder unlock: {unlocked:?}; holder took the marker: {took_marker}; waiter acquired \
         inside the holder's unlock: {waiter_got_it}; waiter's lock file still there: \
         {waiter_still_has_file}; a third process acquired: {third_got_it}"
    );
    assert!(
        !waiter_got_it || waiter_still_has_file,
        "the holder's unlock deleted the waiter's fresh lock (and a third process took it: \
         {third_got_it}): two holders"
    );
}

/// Finding 2: on a filesystem whose st_ctime is not a server stamp of the last change
/// (sshfs reports ctime = mtime), `stamp` takes the ctime read back after setting the
/// expiry as a fresh server-clock reading: it is the expiry itself, a lifetime ahead. The
/// waiter's estimate of the server's clock runs ahead by two lifetimes per re-stamp, and the
/// `min(estimate, marker ctime)` guard reads the same bogus ctime, so a waiter breaks a live,
/// unexpired 20 s lock within seconds. (Before the fix, ctime was never read as a clock.)
#[test]
fn ctime_that_is_not_a_server_stamp_breaks_a_live_lock() {
    let (_dir, path) = lock_path();
    let holder = Lock::builder(&path)
        .lifetime(Duration::from_secs(20))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let rig = Rig::new();
    rig.ctime_is_mtime.store(true, Ordering::SeqCst);
    let waiter = Lock::builder(&path)
        .filesystem(rig)
        .lifetime(Duration::from_secs(2))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = waiter.lock_timeout(Duration::from_secs(6));
    let holder_still = holder.is_locked().unwrap();
    eprintln!(
        "waiter: {:?} after {:?}; holder still holds: {holder_still}",
        r.as_ref().map_err(|e| e.kind()),
        t.elapsed()
    );
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(ErrorKind::TimedOut),
        "the waiter took a live 20 s lock after {:?}",
        t.elapsed()
    );
    assert!(holder_still);
}

/// Finding 3: `lock_timeout(Duration::MAX)` ("wait forever") panics: `start + t` overflows
/// `Instant` (lock.rs `acquire`, and asynk.rs `acquire`). Pre-existing, not a regression.
#[test]
fn lock_timeout_duration_max_does_not_panic() {
    let (_dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lock.lock_timeout(Duration::MAX)
    }));
    assert!(r.is_ok(), "lock_timeout(Duration::MAX) panicked");
}

/// Finding 4: the async keep-alive still waits lifetime/3 with `tokio::time::sleep` (the
/// monotonic clock), so the fix of commit 2c91bbd (refresh at once after a resume) does not
/// reach it. Same staging as review.rs's test G: the boot clock jumps 40 s past a 30 s lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_keep_alive_refreshes_soon_after_a_suspend() {
    let (_dir, path) = lock_path();
    let rig = Rig::new();
    let holder = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(30))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let keep = holder.keep_alive_async(|_| {});
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rig.set_path_times.load(Ordering::SeqCst);
    rig.suspended_ms.store(40_000, Ordering::SeqCst);
    let jumped = Instant::now();
    let mut refreshed = None;
    while jumped.elapsed() < Duration::from_secs(3) {
        if rig.set_path_times.load(Ordering::SeqCst) > before {
            refreshed = Some(jumped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(keep);
    let _ = holder.unlock();
    let took = refreshed.expect("no async refresh within 3 s of the resume (interval 10 s)");
    assert!(
        took < Duration::from_secs(1),
        "refreshed {took:?} after the resume"
    );
}

//! Review of waiting in turns (docs/protocol.md: Waiting; `protocol/queue.rs` and the
//! `look_again`/`look_in_line` polls of `protocol/acquire.rs`), as a hostile or unlucky
//! environment would attack it. The tests headed BREAK and COST failed before the fixes that
//! followed the review (the lock file's change time kept with the claim read; no line for a
//! `try_lock`; a short grace for a newcomer that finds the lock free); the others pin down
//! attacks the change survived.

use crate::support::{lock_path, plant_claim, Layer, Layered};
use flufl_lock::sys::{FileId, Fs, Meta, RealFs};
use flufl_lock::{ErrorKind, Lock};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// `fl1.<boot id>.<pid ns>.<time ns>.<start>`: the origin fields of a claim written on this
/// host, in this boot and these namespaces, by a process that started at `start`.
fn origin(start: u64) -> String {
    let id = RealFs.host_identity();
    format!(
        "fl1.{}.{}.{}.{start}",
        id.boot_id.expect("boot id"),
        id.pid_ns.expect("pid namespace"),
        id.time_ns.expect("time namespace"),
    )
}

/// A pid that is surely gone: a child that exited and was reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn ino(p: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(p).unwrap())
}

/// The real filesystem, where one inode number is shown as another: a number freed and
/// given to the next file made (ext4 and XFS do this, and so do NFS servers exporting
/// them), here made certain. Counts `open`s of the lock file.
#[derive(Debug, Default)]
struct Recycling {
    /// (real inode number, number shown for it)
    alias: Mutex<Option<(u64, u64)>>,
    remote: bool,
    opens: AtomicUsize,
}

impl Recycling {
    fn shown(&self, m: Meta) -> Meta {
        match *self.alias.lock().unwrap() {
            Some((real, shown)) if m.id.ino == real => Meta {
                id: FileId { ino: shown, ..m.id },
                ..m
            },
            _ => m,
        }
    }
}

impl Layer for Recycling {
    fn fstat(&self, file: &std::fs::File) -> io::Result<Meta> {
        RealFs.fstat(file).map(|m| self.shown(m))
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        RealFs.lstat(path).map(|m| self.shown(m))
    }
    fn open_read(&self, path: &Path) -> io::Result<std::fs::File> {
        self.opens.fetch_add(1, Relaxed);
        RealFs.open_read(path)
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        if self.remote {
            Ok(true)
        } else {
            RealFs.is_remote(dir)
        }
    }
}

/// A waiter reads the lock: held by H1, alive on this host. H1 lets go, and H2, a process
/// on this host, takes the lock with a claim file that got H1's freed inode number; H2 then
/// dies. A waiter that reads the lock file afresh sees H2's claim, proves H2 dead, breaks the
/// lock and takes it at once. Returns how the waiter's `lock_timeout(4 s)` ended and the
/// holders its `on_wait` reports saw after the swap.
fn recycled_inode_hides_a_dead_holder(
    recycle: bool,
    remote: bool,
) -> (Result<(), ErrorKind>, Vec<u32>) {
    let (dir, path) = lock_path();
    let host = flufl_lock::sys::hostname();
    let me = std::process::id();
    let hour = Duration::from_secs(3600);
    // H1: a live process of this host (this one, with its real start time).
    let id = RealFs.host_identity();
    let h1 = plant_claim(
        dir.path(),
        &format!("test.lck|{host}|{me}|1.{}", origin(id.start_time.unwrap())),
        SystemTime::now() + hour,
    );
    std::fs::hard_link(&h1, &path).unwrap();
    let fs = Arc::new(Layered(Recycling {
        remote,
        ..Recycling::default()
    }));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let swapped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter = {
        let (seen, swapped) = (seen.clone(), swapped.clone());
        Lock::builder(&path)
            .lifetime(Duration::from_secs(60))
            .filesystem(fs.clone())
            .on_wait(move |w| {
                if swapped.load(Relaxed) {
                    if let Some(h) = &w.holder {
                        seen.lock().unwrap().push(h.pid);
                    }
                }
            })
            .build()
            .unwrap()
    };
    let t = std::thread::spawn(move || {
        let r = waiter.lock_timeout(Duration::from_secs(4));
        if r.is_ok() {
            waiter.unlock().unwrap();
        }
        r.map_err(|e| e.kind())
    });
    // The waiter has read H1's claim (and, notified, backed off a little).
    std::thread::sleep(Duration::from_millis(700));
    // H2 (dead now) took the lock the moment H1 let go, with H1's old inode number.
    let h2 = plant_claim(
        dir.path(),
        &format!("test.lck|{host}|{}|2.{}", dead_pid(), origin(1)),
        SystemTime::now() + hour,
    );
    if recycle {
        *fs.alias.lock().unwrap() = Some((ino(&h2), ino(&h1)));
    }
    let swap = dir.path().join("swap");
    std::fs::hard_link(&h2, &swap).unwrap();
    std::fs::rename(&swap, &path).unwrap();
    std::fs::remove_file(&h1).unwrap();
    swapped.store(true, Relaxed);
    let r = t.join().unwrap();
    let _ = std::fs::remove_file(&h2);
    let _ = std::fs::remove_file(&path);
    let seen = seen.lock().unwrap().clone();
    (r, seen)
}

/// Control: with a fresh inode number the waiter sees H2's claim, proves H2 dead and takes
/// the lock well within its timeout.
#[cfg(target_os = "linux")]
#[test]
fn a_dead_holder_on_a_new_inode_is_broken_at_once() {
    let (r, seen) = recycled_inode_hides_a_dead_holder(false, false);
    assert_eq!(r, Ok(()), "holders reported after the swap: {seen:?}");
}

/// BREAK (fixed): `look_again` reused the claim read last time while the lock file has the same
/// inode number, so a recycled number makes the waiter judge H2's lock by H1's claim: H1 is
/// alive, so H2's lock (whose holder is dead, provably, on this host) is not broken; the
/// waiter times out where it should have taken the lock at once, and reports H1 (this
/// process) as the holder. A claim judged *dead* starts a break that re-reads the lock and
/// so clears the remembered claim; a claim judged alive (or of another host) is never
/// re-read while the number stays.
#[cfg(target_os = "linux")]
#[test]
fn a_recycled_inode_number_does_not_hide_a_dead_holder() {
    let (r, seen) = recycled_inode_hides_a_dead_holder(true, false);
    let me = std::process::id();
    assert_eq!(
        r,
        Ok(()),
        "the waiter judged H2's lock by H1's claim; holders reported after the swap: {seen:?} \
         (pid {me} is H1, who no longer holds it)"
    );
}

/// The same on a remote filesystem, where the waiter is the first in line (no one ahead)
/// and polls with `link` + `lstat`.
#[cfg(target_os = "linux")]
#[test]
fn a_recycled_inode_number_does_not_hide_a_dead_holder_remote() {
    let (r, seen) = recycled_inode_hides_a_dead_holder(true, true);
    assert_eq!(r, Ok(()), "holders reported after the swap: {seen:?}");
}

/// The real filesystem said to be remote, counting directory listings.
#[derive(Debug, Default)]
struct Listed {
    lists: AtomicUsize,
}

impl Layer for Listed {
    fn is_remote(&self, _dir: &Path) -> io::Result<bool> {
        Ok(true)
    }
    fn list_dir(&self, dir: &Path, max: usize) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        self.lists.fetch_add(1, Relaxed);
        RealFs.list_dir(dir, max)
    }
}

/// COST (fixed): `try_lock` (and `lock_timeout(0)`) never waits in line (its deadline has passed
/// before the first try), yet on a remote filesystem it joins the line first: it lists the
/// lock's directory (up to 10,000 names, one READDIR per ~100 on NFS), asks the kernel about
/// every claim of this host, and removes the claim files of dead waiters, all before its one
/// `link`. None of it can change what it does.
#[cfg(target_os = "linux")]
#[test]
fn try_lock_does_not_list_the_directory() {
    let (dir, path) = lock_path();
    let host = flufl_lock::sys::hostname();
    let dead = plant_claim(
        dir.path(),
        &format!("test.lck|{host}|{}|7.{}", dead_pid(), origin(1)),
        SystemTime::now() + Duration::from_secs(3600),
    );
    for i in 0..2000 {
        std::fs::write(dir.path().join(format!("data{i}")), b"").unwrap();
    }
    let fs = Arc::new(Layered(Listed::default()));
    let lock = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let t = Instant::now();
    lock.try_lock().unwrap();
    let took = t.elapsed();
    lock.unlock().unwrap();
    assert!(
        dead.exists() && fs.lists.load(Relaxed) == 0,
        "try_lock listed the directory {} time(s) ({took:?}, 2,001 names) and removed a \
         claim file: {}",
        fs.lists.load(Relaxed),
        !dead.exists()
    );
}

/// COST (fixed: a newcomer that finds the lock free leaves it 150 ms): a waiter that died on another host (or on this host before a reboot) leaves its
/// claim file; with a long lifetime nothing passes over it until half that lifetime has gone
/// by (`abandoned`), and no one removes it. Until then every acquisition on a remote
/// filesystem counts it ahead, so even an uncontended `lock()` of a free lock waits out the
/// time a free lock is left to those ahead (`FREE_GRACE`: 750 ms at 4cd6345, 450 ms at
/// 7312234) before its first `link`.
#[test]
fn a_leftover_claim_does_not_delay_an_uncontended_lock() {
    let (dir, path) = lock_path();
    // Stamped a moment ago with a lifetime of a day, by a waiter on a host that then crashed.
    plant_claim(
        dir.path(),
        "test.lck|crashed.example|4242|9.fl1",
        SystemTime::now() + Duration::from_secs(86_400),
    );
    let fs = Arc::new(Layered(Listed::default()));
    let lock = Lock::builder(&path).filesystem(fs).build().unwrap();
    let t = Instant::now();
    lock.lock_timeout(Duration::from_secs(10)).unwrap();
    let took = t.elapsed();
    lock.unlock().unwrap();
    assert!(
        took < Duration::from_millis(300),
        "an uncontended lock() took {took:?}"
    );
}

/// Survived: files planted under the name of a dead waiter's claim (same host, same boot and
/// namespaces, a pid that is gone) that are not a lone regular file — a FIFO, a directory, a
/// symlink to a file elsewhere, a second hard link of a file elsewhere — are passed over
/// and left alone (never opened, followed or removed); the lock is taken.
#[cfg(target_os = "linux")]
#[test]
fn planted_non_claims_under_dead_waiters_names_are_left_alone() {
    let (dir, path) = lock_path();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let host = flufl_lock::sys::hostname();
    let dead = dead_pid();
    let name = |i: u32| {
        dir.path()
            .join(format!("test.lck|{host}|{dead}|{i}.{}", origin(1)))
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        name(1).as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::create_dir(name(2)).unwrap();
    std::os::unix::fs::symlink(&victim, name(3)).unwrap();
    let linked = dir.path().join("victim-link");
    std::fs::hard_link(&victim, &linked).unwrap();
    std::fs::rename(&linked, name(4)).unwrap();
    let fs = Arc::new(Layered(Listed::default()));
    let lock = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    lock.lock_timeout(Duration::from_secs(5)).unwrap();
    lock.unlock().unwrap();
    assert!(
        fs.lists.load(Relaxed) >= 1,
        "the waiter did not join the line"
    );
    for i in 1..=4 {
        assert!(
            std::fs::symlink_metadata(name(i)).is_ok(),
            "planted file {i} was removed"
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

/// The real filesystem said to be remote, whose directory cannot be listed (`EACCES`: write
/// and search permission without read, as root is not refused it here).
#[derive(Debug, Default)]
struct Unlistable {
    lists: AtomicUsize,
}

impl Layer for Unlistable {
    fn is_remote(&self, _dir: &Path) -> io::Result<bool> {
        Ok(true)
    }
    fn list_dir(&self, _dir: &Path, _max: usize) -> io::Result<Vec<(std::ffi::OsString, u64)>> {
        self.lists.fetch_add(1, Relaxed);
        Err(io::Error::from_raw_os_error(13))
    }
}

/// Survived: a lock directory that cannot be listed makes waiters take no turns; a waiter
/// behind a holder still takes the lock when it is let go, and does not list again.
#[test]
fn an_unlistable_directory_still_hands_the_lock_over() {
    let (_dir, path) = lock_path();
    let fs = Arc::new(Layered(Unlistable::default()));
    let build = || Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let holder = build();
    holder.lock().unwrap();
    let waiter = build();
    let t = std::thread::spawn(move || {
        let r = waiter
            .lock_timeout(Duration::from_secs(5))
            .map_err(|e| e.kind());
        if r.is_ok() {
            waiter.unlock().unwrap();
        }
        r
    });
    std::thread::sleep(Duration::from_millis(1500));
    holder.unlock().unwrap();
    assert_eq!(t.join().unwrap(), Ok(()));
    // One listing per acquisition: the holder's and the waiter's.
    assert_eq!(fs.lists.load(Relaxed), 2);
}

/// Found by the Python package's run of flufl.lock's own suite (which takes a thread id of a
/// live process for a dead holder's pid): a pid that now numbers a thread of another process
/// (pidfd_open answers EINVAL) is no process, so the claim's holder is gone. It was judged
/// alive when the thread started in the holder's clock tick.
#[cfg(target_os = "linux")]
#[test]
fn a_pid_that_numbers_a_thread_is_no_process() {
    use flufl_lock::sys::ProcState;
    let tid = std::thread::spawn(|| {
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        // "PID/task/TID"
        let tid: u32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
        assert_ne!(tid, std::process::id());
        (tid, RealFs.process(tid))
    })
    .join()
    .unwrap();
    assert_eq!(
        tid.1,
        ProcState::Gone,
        "thread {} taken for a process",
        tid.0
    );
    assert!(matches!(
        RealFs.process(std::process::id()),
        ProcState::Running { start: Some(_) }
    ));
}

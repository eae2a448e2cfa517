//! Waiting (docs/protocol.md: Waiting): turns in arrival order and a poll rate that does not
//! grow with the number of waiters on a remote filesystem; polling as a safety net only
//! where a release wakes the waiter; claims of dead waiters passed over.

use crate::support::{files_in, lock_path, plant_claim, Layer, Layered};
use flufl_lock::sys::{Fs, RealFs};
use flufl_lock::Lock;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The real filesystem, said to be remote (or not), counting the calls a poll makes.
#[derive(Debug, Default)]
struct Counted {
    remote: bool,
    links: AtomicUsize,
    /// `open` and `lstat`: looks at the lock (and claims) without taking it.
    looks: AtomicUsize,
    /// Reads of a claim in the lock file.
    reads: AtomicUsize,
}

impl Layer for Counted {
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.links.fetch_add(1, Relaxed);
        RealFs.link(src, dst)
    }
    fn open_read(&self, path: &Path) -> io::Result<std::fs::File> {
        self.looks.fetch_add(1, Relaxed);
        RealFs.open_read(path)
    }
    fn lstat(&self, path: &Path) -> io::Result<flufl_lock::sys::Meta> {
        self.looks.fetch_add(1, Relaxed);
        RealFs.lstat(path)
    }
    fn read_head(&self, file: &std::fs::File, max: usize) -> io::Result<Vec<u8>> {
        self.reads.fetch_add(1, Relaxed);
        RealFs.read_head(file, max)
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        if self.remote {
            Ok(true)
        } else {
            RealFs.is_remote(dir)
        }
    }
}

fn counted(remote: bool) -> Arc<Layered<Counted>> {
    Arc::new(Layered(Counted {
        remote,
        ..Counted::default()
    }))
}

/// A lock on `path` with a lifetime of a minute, through `fs`.
fn on(path: &Path, fs: &Arc<Layered<Counted>>) -> Lock {
    Lock::builder(path)
        .lifetime(Duration::from_secs(60))
        .filesystem(fs.clone())
        .build()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Eight waiters on a "remote" filesystem behind a holder: only the first in line tries to
/// take the lock, 25 times a second (each with an `lstat`); the others look at it without
/// taking it, about 25 times a second in all (the second in line 5, the others 3.3 each),
/// where each tried 10 times a second before (80 in all, each with an open and a read); an
/// unchanged lock file is not read again; and once the holder lets go they are served in
/// arrival order.
#[test]
fn remote_waiters_take_turns_at_a_bounded_total_poll_rate() {
    const N: usize = 8;
    let (dir, path) = lock_path();
    let fs = counted(true);
    let build = || on(&path, &fs);
    let holder = build();
    holder.lock().unwrap();
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for place in 0..N {
        let lock = build();
        let served = served.clone();
        waiters.push(std::thread::spawn(move || {
            lock.lock_timeout(Duration::from_secs(60)).unwrap();
            served.lock().unwrap().push(place);
            std::thread::sleep(Duration::from_millis(100));
            lock.unlock().unwrap();
        }));
        // In line once its claim is there (the lock, the holder's claim and one per waiter)
        // and it has listed the directory (two waiters that list after both their claims
        // are there each count the other ahead, until a lock left free shows otherwise).
        wait_for("waiter's claim", Duration::from_secs(10), || {
            files_in(dir.path()).len() == place + 3
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let count = || [&fs.links, &fs.looks, &fs.reads].map(|c| c.load(Relaxed) as f64);
    let before = count();
    std::thread::sleep(Duration::from_secs(2));
    let after = count();
    let [links, looks, reads] = [0, 1, 2].map(|i| (after[i] - before[i]) / 2.0);
    assert!(
        (12.0..=30.0).contains(&links),
        "the first in line tries 25 times a second; all tried {links:.0} times a second"
    );
    assert!(looks <= 65.0, "{looks:.0} looks (lstat, open) a second");
    assert!(
        reads <= 1.0,
        "an unchanged lock file was read {reads} times a second"
    );
    holder.unlock().unwrap();
    for w in waiters {
        w.join().unwrap();
    }
    let served = served.lock().unwrap().clone();
    assert_eq!(served, (0..N).collect::<Vec<_>>(), "served in this order");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

/// On a local Linux filesystem a release wakes the waiter (inotify): once its backoff has
/// grown (from 50 ms, in about 2.5 s), it polls at most once a second while the holder holds
/// on (it polled 10 times a second before), and still takes the lock at once when it is let
/// go.
#[cfg(target_os = "linux")]
#[test]
fn a_waiter_woken_by_releases_polls_at_most_once_a_second() {
    let (_dir, path) = lock_path();
    let fs = counted(false);
    let holder = on(&path, &Arc::new(Layered(Counted::default())));
    holder.lock().unwrap();
    let waiter = on(&path, &fs);
    let t = std::thread::spawn(move || {
        waiter.lock_timeout(Duration::from_secs(30)).unwrap();
        let at = Instant::now();
        waiter.unlock().unwrap();
        at
    });
    std::thread::sleep(Duration::from_secs(3));
    let before = fs.links.load(Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    let polls = fs.links.load(Relaxed) - before;
    assert!(polls <= 4, "{polls} links in 3 s");
    assert!(
        fs.links.load(Relaxed) <= 14,
        "{} links in 6 s",
        fs.links.load(Relaxed)
    );
    let released = Instant::now();
    holder.unlock().unwrap();
    let took = t.join().unwrap().duration_since(released);
    assert!(took < Duration::from_millis(300), "hand-off took {took:?}");
}

/// A waiter passes over the claims ahead of it that belong to no live waiter: it removes the
/// claim of a waiter proven dead on this host (the kernel says its pid is gone) and leaves,
/// but does not wait behind, an expired claim from another host, which it cannot prove dead.
#[cfg(target_os = "linux")]
#[test]
fn a_waiter_removes_the_claim_of_a_dead_waiter_and_passes_over_an_expired_one() {
    let (dir, path) = lock_path();
    let fs = counted(true);
    let holder = on(&path, &fs);
    holder.lock().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let id = RealFs.host_identity();
    let origin = format!(
        "fl1.{}.{}.{}.{}",
        id.boot_id.expect("boot id"),
        id.pid_ns.expect("pid namespace"),
        id.time_ns.expect("time namespace"),
        id.start_time.expect("start time")
    );
    let host = flufl_lock::sys::hostname();
    let claim = |name: String, expiry: SystemTime| plant_claim(dir.path(), &name, expiry);
    let hour = Duration::from_secs(3600);
    let dead_claim = claim(
        format!("test.lck|{host}|{dead}|7.{origin}"),
        SystemTime::now() + hour,
    );
    let expired = claim(
        "test.lck|elsewhere.example|4242|8.fl1".into(),
        SystemTime::now() - hour,
    );
    let waiter = on(&path, &fs);
    let t = std::thread::spawn(move || {
        waiter.lock_timeout(Duration::from_secs(30)).unwrap();
        waiter.unlock().unwrap();
    });
    wait_for(
        "the dead waiter's claim removed",
        Duration::from_secs(5),
        || !dead_claim.exists(),
    );
    // First in line now: it polls 25 times a second.
    std::thread::sleep(Duration::from_millis(1500));
    let before = fs.links.load(Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    let polls = fs.links.load(Relaxed) - before;
    assert!(polls >= 12, "first in line, it polled {polls} times in 1 s");
    holder.unlock().unwrap();
    t.join().unwrap();
    assert!(expired.exists(), "a claim not proven dead was removed");
}

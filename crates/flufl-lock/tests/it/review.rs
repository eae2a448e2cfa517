//! Adversarial review (issue 12), through the filesystem seam: written by the review tests.
//!
//! Each test stages one defect the review found, with hooks that run before a chosen call
//! (and sleeps inside hooks only to make time pass), and asserts the outcome a correct
//! implementation must give, through the public API, the lock directory and the call log:
//!
//! - A (slow SETATTR): a holder whose stamping call stalls believes no more than the file
//!   says, so its unlock near the file's expiry serialises with breakers under the marker.
//! - B (pinning a flufl.lock peer's lock): a breaker whose judged lock went and was retaken
//!   by flufl.lock never gives the new lock a third link (flufl.lock's `is_locked` needs a
//!   link count of exactly 2) and leaves it intact.
//! - C (Ok without a lock file): a lock confirmed under the marker after a long pause, whose
//!   claim and lock are removed meanwhile by flufl.lock's `_break`, is never reported taken
//!   without a lock file, and the marker is never left behind.
//! - D (a non-regular break marker): a directory or FIFO at `<lock>.break` is an error naming
//!   it within a second, for a waiter and for an expired holder's unlock; nothing is touched.
//! - E (server clock step): a refresh after the file server's clock stepped forward stamps
//!   an expiry in the server's clock as it is now, not in the one learned at `lock()`.
//! - F (stale-marker removers): a waiter removing a stale marker a moment late displaces a
//!   fresh one; its holder sees it changed before acting, or puts back what it took.
//! - G (keep-alive after a suspend): the boot clock jumps past the lease while the
//!   keep-alive thread waits; its refresh follows within a second, under the marker.

use crate::support::{lock_path, FaultyFs, Layer, Layered, Op};
use flufl_lock::sys::{Fs, Meta, ProcState, RealFs, Waiter};
use flufl_lock::{ErrorKind, Lock, LockState};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What [`Staged`] reports as the path of calls on an open file.
const FILE: &str = "<open file>";

type Hook = Arc<dyn Fn() + Send + Sync>;
type When = Box<dyn Fn(&Path) -> bool + Send + Sync>;

struct PathHook {
    op: Op,
    when: When,
    run: Hook,
    times: usize,
}

/// [`FaultyFs`] (its rules and call log) with hooks chosen by a predicate on the call's
/// path (a link's destination, a rename's source), so that a hook can name exactly the lock
/// file, which is a prefix of the claim and marker names. Each hook runs before the call.
#[derive(Default)]
struct Staged {
    faulty: Arc<FaultyFs>,
    hooks: Mutex<Vec<PathHook>>,
    /// Added to the real boot clock: time a suspend took, which the monotonic clock (and so
    /// every timed wait) did not see.
    suspended_ms: AtomicU64,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Staged")
    }
}

impl Staged {
    fn new() -> Arc<Staged> {
        Arc::new(Staged::default())
    }

    /// Runs `run` before the next `times` calls `op` whose path satisfies `when`.
    fn hook(
        &self,
        op: Op,
        when: impl Fn(&Path) -> bool + Send + Sync + 'static,
        times: usize,
        run: impl Fn() + Send + Sync + 'static,
    ) {
        self.hooks.lock().unwrap().push(PathHook {
            op,
            when: Box::new(when),
            run: Arc::new(run),
            times,
        });
    }

    fn before(&self, op: Op, path: &Path) {
        let run = {
            let mut hooks = self.hooks.lock().unwrap();
            let Some(h) = hooks
                .iter_mut()
                .find(|h| h.op == op && h.times > 0 && (h.when)(path))
            else {
                return;
            };
            h.times -= 1;
            h.run.clone()
        };
        run();
    }

    /// The calls made so far, in order (from the wrapped [`FaultyFs`]).
    fn calls(&self) -> Vec<(Op, PathBuf)> {
        self.faulty.calls.lock().unwrap().clone()
    }
}

impl Fs for Staged {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.before(Op::CreateNew, path);
        self.faulty.create_new(path)
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        self.before(Op::WriteAll, Path::new(FILE));
        self.faulty.write_all(file, data)
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        self.before(Op::Fstat, Path::new(FILE));
        self.faulty.fstat(file)
    }
    fn set_times(&self, file: &File, time: SystemTime) -> io::Result<()> {
        self.before(Op::SetTimes, Path::new(FILE));
        self.faulty.set_times(file, time)
    }
    fn set_path_times(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.before(Op::SetPathTimes, path);
        self.faulty.set_path_times(path, time)
    }
    fn open_read(&self, path: &Path) -> io::Result<File> {
        self.before(Op::OpenRead, path);
        self.faulty.open_read(path)
    }
    fn read_head(&self, file: &File, max: usize) -> io::Result<Vec<u8>> {
        self.before(Op::ReadHead, Path::new(FILE));
        self.faulty.read_head(file, max)
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        self.before(Op::Lstat, path);
        self.faulty.lstat(path)
    }
    fn link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.before(Op::Link, dst);
        self.faulty.link(src, dst)
    }
    fn rename(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.before(Op::Rename, src);
        self.faulty.rename(src, dst)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.before(Op::Unlink, path);
        self.faulty.unlink(path)
    }
    fn is_remote(&self, dir: &Path) -> io::Result<bool> {
        self.faulty.is_remote(dir)
    }
    fn process(&self, pid: u32) -> ProcState {
        self.faulty.process(pid)
    }
    fn wait(&self, waiter: &mut Waiter, timeout: Duration) {
        self.faulty.wait(waiter, timeout)
    }
    fn boot_clock(&self) -> Duration {
        RealFs.boot_clock() + Duration::from_millis(self.suspended_ms.load(Ordering::SeqCst))
    }
}

/// A predicate: the path is exactly `p`.
fn is(p: &Path) -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    let p = p.to_path_buf();
    move |q| q == p
}

/// `<lock>.break`.
fn marker_of(lock: &Path) -> PathBuf {
    let mut m = lock.as_os_str().to_owned();
    m.push(".break");
    PathBuf::from(m)
}

/// Whether the calls include taking (or trying to take) the break marker.
fn links_marker(calls: &[(Op, PathBuf)]) -> bool {
    calls
        .iter()
        .any(|(op, p)| *op == Op::Link && p.to_string_lossy().ends_with(".break"))
}

/// Plants a lock as flufl.lock (Python) takes it: a claim file named
/// `<lock>|<host>|<pid>|<digits>` holding its own path, its mtime set to the expiry, hard
/// linked to the lock path. Returns the claim's path.
fn plant_flufl_lock(lock: &Path, expiry: SystemTime) -> PathBuf {
    let claim = PathBuf::from(format!(
        "{}|flufl-host.example|4242|7155039917",
        lock.display()
    ));
    std::fs::write(&claim, claim.to_str().unwrap()).unwrap();
    let f = File::options().write(true).open(&claim).unwrap();
    f.set_modified(expiry).unwrap();
    drop(f);
    std::fs::hard_link(&claim, lock).unwrap();
    claim
}

/// The holder's lock, its stamping call (futimens of the new claim) stalled by `stall`.
fn stalled_holder(path: &Path, stall: Duration, margin: Duration) -> (Lock, Arc<Staged>) {
    let fs = Staged::new();
    fs.hook(Op::SetTimes, |_| true, 1, move || std::thread::sleep(stall));
    let holder = Lock::builder(path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_secs(4))
        .clock_margin(margin)
        .build()
        .unwrap();
    (holder, fs)
}

/// A: the claim's stamping call (futimens) stalls 3.5 s, as an NFS SETATTR can, on a 4 s
/// lock. The expiry written comes from the server time read before the stall, so the file
/// says at most 0.5 s are left unless the claim is stamped again before it becomes the
/// lock. The holder must believe no more than the file: once the file says less than
/// 2 x clock_margin (1 s) is left (at once, or after working until it says 0.7 s), an
/// unlock must go under the break marker (a link to `<lock>.break` in the call log). Today
/// the file says 0.5 s, the holder believes ~4 s and its unlock takes the marker-free fast
/// path.
#[test]
fn slow_setattr_holder_believes_the_file() {
    let (_dir, path) = lock_path();
    let margin = Duration::from_millis(500);
    let (holder, fs) = stalled_holder(&path, Duration::from_millis(3500), margin);
    holder.lock().unwrap();
    let left = holder.expires_in().unwrap().expect("a lock file");
    assert!(
        left <= holder.lifetime() + Duration::from_millis(100),
        "the file says {left:?} left"
    );
    // Work until the file says 0.7 s are left (at once if it already says less).
    unlock_when_file_says(&holder, &fs, &path, Duration::from_millis(700), margin);
}

/// Works until the holder's lock file says `left` is left (at once if it says less), then
/// unlocks: the unlock must go under the break marker (the call log shows a link to
/// `<lock>.break`), release the lock and leave no marker behind.
fn unlock_when_file_says(
    holder: &Lock,
    fs: &Staged,
    path: &Path,
    left: Duration,
    margin: Duration,
) {
    let now = holder.expires_in().unwrap().expect("a lock file");
    std::thread::sleep(now.saturating_sub(left));
    let left = holder.expires_in().unwrap().expect("a lock file");
    let before = fs.calls().len();
    let r = holder.unlock();
    let unlocking = fs.calls()[before..].to_vec();
    assert!(
        links_marker(&unlocking),
        "unlock with {left:?} left by the file (clock margin {margin:?}) took the \
         marker-free fast path: {unlocking:?}"
    );
    r.unwrap();
    assert!(!path.exists(), "the lock was not released");
    assert!(
        !marker_of(path).exists(),
        "the break marker was left behind"
    );
}

/// A, a stall too short for `lock()` to re-confirm (0.8 s of a 4 s lifetime, under the
/// lifetime/4 that triggers it), with a 1 s clock margin: after `lock()` the file says
/// ~3.2 s are left. The holder works until the file says 1.6 s are left, less than
/// 2 x clock_margin, and unlocks: under the marker. Today the holder believes 0.8 s more
/// (2.4 s left, its deadline taken after the stall) and takes the fast path.
#[test]
fn slow_setattr_deadline_is_the_files() {
    let (_dir, path) = lock_path();
    let margin = Duration::from_secs(1);
    let (holder, fs) = stalled_holder(&path, Duration::from_millis(800), margin);
    holder.lock().unwrap();
    let left = holder.expires_in().unwrap().expect("a lock file");
    assert!(
        left < Duration::from_millis(3400),
        "the file says {left:?} left after a 0.8 s stall of a 4 s lock"
    );
    // Work until the file says 1.6 s are left.
    unlock_when_file_says(&holder, &fs, &path, Duration::from_millis(1600), margin);
}

/// B: a breaker judged lock X expired and is about to take the break marker; meanwhile X's
/// holder unlocks late and flufl.lock (Python) takes the lock (claim hard-linked to the lock
/// path: link count 2). The breaker then goes on. flufl.lock's `is_locked` needs exactly 2
/// links and its own claim as content, so the breaker must never add a link to the new lock
/// (today it pins it with a third) and must leave it as it is: same inode, 2 links, same
/// content; the breaker does not get the lock.
#[test]
fn breaker_never_adds_a_link_to_a_flufl_lock() {
    let (_dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(120));

    let fs = Staged::new();
    let armed = Arc::new(AtomicBool::new(false));
    let planted: Arc<Mutex<Option<(PathBuf, u64)>>> = Arc::new(Mutex::new(None));
    let old_unlock = Arc::new(Mutex::new(None));
    let old = Arc::new(Mutex::new(Some(old)));
    {
        let (p, armed, planted, old, old_unlock) = (
            path.clone(),
            armed.clone(),
            planted.clone(),
            old.clone(),
            old_unlock.clone(),
        );
        // The breaker is about to take the marker, having judged X expired.
        fs.hook(
            Op::Link,
            |p| p.to_string_lossy().ends_with(".break"),
            1,
            move || {
                let old = old.lock().unwrap().take().expect("fires once");
                *old_unlock.lock().unwrap() = Some(old.unlock());
                let claim = plant_flufl_lock(&p, SystemTime::now() + Duration::from_secs(60));
                let ino = std::fs::symlink_metadata(&p).unwrap().ino();
                *planted.lock().unwrap() = Some((claim, ino));
                armed.store(true, Ordering::SeqCst);
            },
        );
    }
    // From then on, the lock's link count before each of the breaker's calls.
    // (call, its path, the lock's link count just before it)
    type Seen = Vec<(Op, PathBuf, Option<u64>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for op in [Op::OpenRead, Op::Lstat, Op::Rename, Op::Unlink, Op::Link] {
        let (p, armed, seen) = (path.clone(), armed.clone(), seen.clone());
        let at = Arc::new(Mutex::new(PathBuf::new()));
        let at2 = at.clone();
        fs.hook(
            op,
            move |q| {
                *at2.lock().unwrap() = q.to_path_buf();
                true
            },
            usize::MAX,
            move || {
                if armed.load(Ordering::SeqCst) {
                    let n = std::fs::symlink_metadata(&p).ok().map(|m| m.nlink());
                    seen.lock()
                        .unwrap()
                        .push((op, at.lock().unwrap().clone(), n));
                }
            },
        );
    }
    let breaker = Lock::builder(&path)
        .filesystem(fs.clone())
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    let r = breaker.lock_timeout(Duration::from_millis(300));

    old_unlock
        .lock()
        .unwrap()
        .take()
        .expect("the breaker went for the marker")
        .expect("the old holder's late unlock");
    let (claim, ino) = planted.lock().unwrap().take().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "the breaker made no call after the marker"
    );
    let bad: Vec<_> = seen.iter().filter(|s| s.2 != Some(2)).collect();
    assert!(
        bad.is_empty(),
        "flufl.lock's lock did not have exactly 2 links during the breaker's calls \
         (op, path, nlink): {bad:?}"
    );
    let e = r.expect_err("the breaker took flufl.lock's lock");
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(!breaker.is_locked().unwrap());
    let m = std::fs::symlink_metadata(&path).expect("flufl.lock's lock is gone");
    assert_eq!(m.ino(), ino, "flufl.lock's lock was replaced");
    assert_eq!(m.nlink(), 2, "flufl.lock's is_locked needs exactly 2 links");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        claim.to_str().unwrap()
    );
}

/// C: a lock taken after a pause longer than lifetime/4 between stamping and linking is
/// confirmed under the marker. flufl.lock's `_break` removes the winner's claim file and
/// then the lock file, here between our reading the lock and re-stamping the claim. Today
/// the re-stamp finds the claim gone, writes a new one and reports success: `lock()` is
/// Ok with no lock file, and the marker (a link to the vanished claim) is left for 5 s.
/// A correct `lock()` is either an error, or Ok with a lock file that is ours; and the
/// marker is never left behind.
#[test]
fn confirmation_never_reports_a_vanished_lock_taken() {
    let (_dir, path) = lock_path();
    let marker = marker_of(&path);
    let fs = Staged::new();
    let holder = Lock::builder(&path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_millis(400))
        .build()
        .unwrap();
    let claim = holder.claimfile().to_path_buf();
    // Paused between stamping and linking, so the new lock is confirmed under the marker.
    fs.hook(Op::Link, is(&path), 1, || {
        std::thread::sleep(Duration::from_millis(150))
    });
    let marker_taken = Arc::new(AtomicBool::new(false));
    let claim_gone = Arc::new(AtomicBool::new(false));
    {
        let taken = marker_taken.clone();
        fs.hook(Op::Link, is(&marker), 1, move || {
            taken.store(true, Ordering::SeqCst)
        });
    }
    {
        let (taken, gone, p, c) = (
            marker_taken.clone(),
            claim_gone.clone(),
            path.clone(),
            claim.clone(),
        );
        // flufl.lock's _break, first half: the winner's claim file.
        fs.hook(
            Op::OpenRead,
            move |q| q == p && taken.load(Ordering::SeqCst),
            1,
            move || {
                std::fs::remove_file(&c).unwrap();
                gone.store(true, Ordering::SeqCst);
            },
        );
    }
    {
        let (gone, p) = (claim_gone.clone(), path.clone());
        // ... second half: the lock file.
        fs.hook(
            Op::SetPathTimes,
            move |_| gone.load(Ordering::SeqCst),
            1,
            move || {
                let _ = std::fs::remove_file(&p);
            },
        );
    }
    let r = holder.lock_timeout(Duration::from_secs(3));
    let marker_left = marker.exists();
    assert!(
        claim_gone.load(Ordering::SeqCst),
        "not staged: the new lock was not read under the marker (lock() said {r:?})"
    );
    match &r {
        Ok(()) => {
            assert!(
                path.exists(),
                "lock() returned Ok but there is no lock file {}",
                path.display()
            );
            assert!(holder.is_locked().unwrap(), "lock() Ok, lock not ours");
            assert_eq!(holder.state().unwrap(), LockState::Ours);
        }
        Err(e) => assert!(!holder.is_locked().unwrap(), "{e}"),
    }
    assert!(
        !marker_left,
        "the break marker was left behind (lock() said {r:?})"
    );
}

/// What a non-regular file at `<lock>.break` is made of.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Directory,
    Fifo,
}

fn plant_marker(lock: &Path, kind: Hostile) -> PathBuf {
    let marker = marker_of(lock);
    match kind {
        Hostile::Directory => std::fs::create_dir(&marker).unwrap(),
        Hostile::Fifo => rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &marker,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap(),
    }
    marker
}

fn still_there(marker: &Path, kind: Hostile) -> bool {
    match (std::fs::symlink_metadata(marker), kind) {
        (Ok(m), Hostile::Directory) => m.is_dir(),
        (Ok(m), Hostile::Fifo) => std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()),
        (Err(_), _) => false,
    }
}

/// The lock file's identity, expiry and content.
fn snapshot(lock: &Path) -> (u64, SystemTime, Vec<u8>) {
    let m = std::fs::symlink_metadata(lock).unwrap();
    (m.ino(), m.modified().unwrap(), std::fs::read(lock).unwrap())
}

/// Checks a prompt I/O error naming the marker (not a time-out after a silent wait).
fn assert_marker_error(r: flufl_lock::Result<()>, took: Duration, marker: &Path, who: &str) {
    let e = match r {
        Ok(()) => panic!("{who}: succeeded past a non-regular break marker"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Io, "{who}: {e} (after {took:?})");
    assert!(
        e.to_string().contains(&marker.display().to_string()),
        "{who}: the error does not name {}: {e}",
        marker.display()
    );
    assert!(took < Duration::from_secs(1), "{who}: took {took:?}: {e}");
}

/// D1: a waiter on an expired lock whose holder is alive finds a directory or FIFO at
/// `<lock>.break`: an error naming it within a second, not a silent wait until its time-out
/// (today: TimedOut after 5 s); the lock file and the marker are left as they are.
fn hostile_marker_waiter(kind: Hostile) {
    let (_dir, path) = lock_path();
    let holder = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    holder.lock().unwrap();
    let marker = plant_marker(&path, kind);
    std::thread::sleep(Duration::from_millis(100));
    let before = snapshot(&path);
    let waiter = Lock::builder(&path)
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    let t = Instant::now();
    let r = waiter.lock_timeout(Duration::from_secs(5));
    let took = t.elapsed();
    let after = snapshot(&path);
    // The marker is removed so the holder's drop does not wait on it.
    let marker_kept = still_there(&marker, kind);
    let _ = std::fs::remove_dir(&marker).or_else(|_| std::fs::remove_file(&marker));
    let nlink = std::fs::symlink_metadata(&path).unwrap().nlink();
    holder.leak();
    assert_marker_error(r, took, &marker, &format!("waiter, {kind:?}"));
    assert_eq!(before, after, "the lock file was touched");
    assert_eq!(nlink, 2, "the holder's lock lost a link");
    assert!(marker_kept, "the {kind:?} at the marker was removed");
}

/// D2: the expired holder's own unlock, under the marker, finds a directory or FIFO at
/// `<lock>.break`: an error naming it within a second (today: after ~6 s); the lock file
/// is left as it is, to expire.
fn hostile_marker_unlock(kind: Hostile) {
    let (_dir, path) = lock_path();
    let holder = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let marker = plant_marker(&path, kind);
    std::thread::sleep(Duration::from_millis(100));
    let before = snapshot(&path);
    let t = Instant::now();
    let r = holder.unlock();
    let took = t.elapsed();
    assert_marker_error(r, took, &marker, &format!("unlock, {kind:?}"));
    assert_eq!(before, snapshot(&path), "the lock file was touched");
    assert!(still_there(&marker, kind), "the {kind:?} was removed");
}

/// D1 with a directory at `<lock>.break`.
#[test]
fn marker_directory_fails_waiter_promptly() {
    hostile_marker_waiter(Hostile::Directory);
}

/// D1 with a FIFO at `<lock>.break`.
#[test]
fn marker_fifo_fails_waiter_promptly() {
    hostile_marker_waiter(Hostile::Fifo);
}

/// D2 with a directory at `<lock>.break`.
#[test]
fn marker_directory_fails_unlock_promptly() {
    hostile_marker_unlock(Hostile::Directory);
}

/// D2 with a FIFO at `<lock>.break`.
#[test]
fn marker_fifo_fails_unlock_promptly() {
    hostile_marker_unlock(Hostile::Fifo);
}

/// A file server whose clock reads the real clock plus `skew` (which a test can step): the
/// times the server stamps (mtime on create and write, ctime on every change) are shifted;
/// times a client sets explicitly are stored as sent.
#[derive(Debug, Default)]
struct SkewedServer {
    skew_ms: AtomicU64,
}

impl SkewedServer {
    fn skew(&self) -> Duration {
        Duration::from_millis(self.skew_ms.load(Ordering::SeqCst))
    }

    /// The server stamps the file's mtime with its own time now.
    fn stamp(&self, file: &File) -> io::Result<()> {
        if self.skew().is_zero() {
            return Ok(());
        }
        file.set_modified(SystemTime::now() + self.skew())
    }

    fn shift(&self, m: Meta) -> Meta {
        Meta {
            changed: m.changed + self.skew(),
            ..m
        }
    }
}

impl Layer for SkewedServer {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        let f = RealFs.create_new(path)?;
        self.stamp(&f)?;
        Ok(f)
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        RealFs.write_all(file, data)?;
        self.stamp(file)
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        RealFs.fstat(file).map(|m| self.shift(m))
    }
    fn lstat(&self, path: &Path) -> io::Result<Meta> {
        RealFs.lstat(path).map(|m| self.shift(m))
    }
}

/// E: the file server's clock steps 8 s forward while a 3 s lock is held. A refresh must
/// write the expiry in the server's clock as it is now (at least real now + 8 s + 3 s,
/// less the 0.5 s margin), or the lock is born expired to every other client. Today the
/// clock learned at `lock()` is carried forward and the expiry is real now + 3 s: 5 s in
/// the server's past.
#[test]
fn refresh_follows_a_server_clock_step() {
    let (_dir, path) = lock_path();
    let server = Arc::new(Layered(SkewedServer::default()));
    let holder = Lock::builder(&path)
        .filesystem(server.clone())
        .lifetime(Duration::from_secs(3))
        .build()
        .unwrap();
    holder.lock().unwrap();
    server.skew_ms.store(8_000, Ordering::SeqCst);
    holder.refresh(None, false).unwrap();
    let now = SystemTime::now();
    let expiry = std::fs::symlink_metadata(&path)
        .unwrap()
        .modified()
        .unwrap();
    let want = now + Duration::from_millis(8_000 + 3_000 - 500);
    let ahead = |t: SystemTime| match t.duration_since(now) {
        Ok(d) => format!("real now + {d:?}"),
        Err(e) => format!("real now - {:?}", e.duration()),
    };
    assert!(
        expiry >= want,
        "refresh wrote an expiry of {}, the server's clock reads real now + 8s",
        ahead(expiry)
    );
    assert!(
        expiry <= now + Duration::from_millis(8_000 + 3_000 + 500),
        "refresh wrote an expiry of {}",
        ahead(expiry)
    );
    assert!(holder.is_locked().unwrap());
    holder.unlock().unwrap();
}

/// Where W1, the breaker whose fresh marker W2 displaces, is paused in scenario F.
#[derive(Clone, Copy)]
enum W1Pause {
    /// After judging the lock under the marker, before re-checking its marker.
    BeforeMarkerCheck,
    /// After re-checking its marker, just before renaming the lock away.
    BeforeRename,
}

/// F: two waiters judge the same break marker stale (left by a crashed breaker). W1 removes
/// it, takes the marker and judges the expired lock X; W2, a moment behind, renames the
/// marker away to remove it: that is W1's fresh marker. Before W2 puts it back, W3 takes the
/// free marker name, breaks X and takes the lock. W1, paused at `pause`, goes on; with `w4`,
/// a fourth process links the free name if W1 ever renames the lock away and puts it back.
/// Returns who acquired and still holds the lock, and whether W3 still holds it.
fn stale_marker_race(pause: W1Pause, w4: bool) -> (Vec<&'static str>, bool) {
    let (_dir, path) = lock_path();
    let marker = marker_of(&path);
    let stuck = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    stuck.lock().unwrap();
    // A marker left by a breaker on another host that crashed.
    std::fs::write(&marker, format!("{}|elsewhere|1|1", path.display())).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let waiter = |fs: &Arc<Staged>| {
        Lock::builder(&path)
            .filesystem(fs.clone())
            .clock_margin(Duration::ZERO)
            .marker_lifetime(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let (fs1, fs2) = (Staged::new(), Staged::new());
    let (w1, w2) = (waiter(&fs1), waiter(&fs2));
    let w3 = Lock::builder(&path)
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    let late = Lock::new(&path).unwrap();

    let (w2_at_rename_tx, w2_at_rename) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let (w2_at_rename_tx, done_tx, go_tx) = (
        Mutex::new(w2_at_rename_tx),
        Mutex::new(done_tx),
        Mutex::new(go_tx),
    );
    let done_rx = Mutex::new(done_rx);
    let wait = Duration::from_secs(3);

    // W2: judged the stale marker, about to rename it away: wait for W1.
    let w2_renamed = Arc::new(AtomicBool::new(false));
    {
        let renamed = w2_renamed.clone();
        fs2.hook(Op::Rename, is(&marker), 1, move || {
            let _ = w2_at_rename_tx.lock().unwrap().send(());
            let _ = go_rx.lock().unwrap().recv_timeout(wait);
            renamed.store(true, Ordering::SeqCst);
        });
    }
    // W2 puts back the marker it displaced: W3 got in first.
    let w3 = Arc::new(w3);
    let w3_result = Arc::new(Mutex::new(None));
    {
        let (renamed, w3, w3_result) = (w2_renamed.clone(), w3.clone(), w3_result.clone());
        fs2.hook(
            Op::Link,
            move |p| p.to_string_lossy().ends_with(".break") && renamed.load(Ordering::SeqCst),
            1,
            move || {
                *w3_result.lock().unwrap() = Some(w3.try_lock());
                let _ = done_tx.lock().unwrap().send(());
            },
        );
    }
    // W1, under its marker, paused: let W2 (and W3) act.
    let w1_renamed = Arc::new(AtomicBool::new(false));
    let w1_paused = Arc::new(AtomicBool::new(false));
    let pause_w1 = {
        let paused = w1_paused.clone();
        move || {
            paused.store(true, Ordering::SeqCst);
            let _ = go_tx.lock().unwrap().send(());
            let _ = done_rx.lock().unwrap().recv_timeout(wait);
        }
    };
    match pause {
        W1Pause::BeforeMarkerCheck => {
            // W1's first lstat of the marker under it reads the server's clock; the second
            // is the check before the rename.
            let seen = AtomicU64::new(0);
            fs1.hook(Op::Lstat, is(&marker), 2, move || {
                if seen.fetch_add(1, Ordering::SeqCst) == 1 {
                    pause_w1();
                }
            });
        }
        W1Pause::BeforeRename => fs1.hook(Op::Rename, is(&path), 1, pause_w1),
    }
    {
        let renamed = w1_renamed.clone();
        fs1.hook(Op::Rename, is(&path), 1, move || {
            renamed.store(true, Ordering::SeqCst)
        });
    }
    // W1 puts back what it renamed away: with `w4`, W4 links the free name first.
    let w4_lock = Arc::new(late);
    let w4_result = Arc::new(Mutex::new(None));
    if w4 {
        let (renamed, p, w4, w4_result) = (
            w1_renamed.clone(),
            path.clone(),
            w4_lock.clone(),
            w4_result.clone(),
        );
        fs1.hook(
            Op::Link,
            move |q| q == p && renamed.load(Ordering::SeqCst),
            1,
            move || *w4_result.lock().unwrap() = Some(w4.try_lock()),
        );
    }

    let t2 = std::thread::spawn(move || {
        let r = w2.try_lock();
        (r, w2)
    });
    // W1 starts once W2 has judged the stale marker (or W2 never gets there).
    let staged = w2_at_rename.recv_timeout(wait).is_ok();
    let r1 = w1.try_lock();
    let (r2, w2) = t2.join().unwrap();

    let w3_ok = matches!(*w3_result.lock().unwrap(), Some(Ok(())));
    let w4_ok = matches!(*w4_result.lock().unwrap(), Some(Ok(())));
    let holders: Vec<&str> = [
        ("W1", r1.is_ok()),
        ("W2", r2.is_ok()),
        ("W3", w3_ok),
        ("W4", w4_ok),
    ]
    .iter()
    .filter(|h| h.1)
    .map(|h| h.0)
    .collect();
    let w3_has_it = w3.is_locked().unwrap();
    drop((w1, w2));
    std::mem::forget(stuck);
    assert!(
        staged && w1_paused.load(Ordering::SeqCst) && w3_ok,
        "the race was not staged: W2 at its rename: {staged}, W1 paused: {}, W3 acquired: \
         {w3_ok}",
        w1_paused.load(Ordering::SeqCst)
    );
    (holders, w3_has_it)
}

/// F1: the displacement (and W2's put-back) happens while W1 judges the lock under its
/// marker. W1's check before the rename sees its marker changed (its change time moved:
/// renamed and linked back) and leaves the lock alone, so even with W4 ready to take the
/// name, W3 alone holds the lock. (Checking only the marker's identity, W1 renamed W3's
/// lock away, and W4 took the name before the put-back: two holders.)
#[test]
fn displaced_marker_is_seen_before_acting() {
    let (holders, w3_holds) = stale_marker_race(W1Pause::BeforeMarkerCheck, true);
    assert_eq!(holders, ["W3"], "who acquired and holds the lock");
    assert!(w3_holds, "W3's lock was taken away");
}

/// F2: the displacement happens after W1's last check, just before its rename: W1 renames
/// W3's fresh lock away, sees another file and puts it back at once, so W3 keeps it. (If a
/// fourth process links the free name in the microseconds between that rename and the
/// put-back, two processes hold the lock: the residual window of a paused marker holder,
/// listed in docs/protocol.md's honest limits.)
#[test]
fn displaced_marker_after_the_check_is_put_back() {
    let (holders, w3_holds) = stale_marker_race(W1Pause::BeforeRename, false);
    assert_eq!(holders, ["W3"], "who acquired and holds the lock");
    assert!(w3_holds, "W3's lock was not put back");
}

/// G (keep-alive after a suspend): the keep-alive thread waits on the monotonic clock, which
/// stops during a suspend, so a lifetime/3 wait could end long after the machine resumed,
/// with the lease already run out on the boot clock and the lock perhaps broken. Simulated
/// through the seam: the boot clock jumps 40 s (past a 30 s lease) while the thread waits
/// out its 10 s interval. The refresh must come within a second of the jump, under the
/// marker (the lease is past its deadline), and keep the lock, which no one broke.
#[test]
fn keep_alive_refreshes_soon_after_a_suspend() {
    let (_dir, path) = lock_path();
    let fs = Staged::new();
    let holder = Lock::builder(&path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_secs(30))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let keep = holder.keep_alive(|_| {});
    std::thread::sleep(Duration::from_millis(300));
    let before = fs.calls().len();
    fs.suspended_ms.store(40_000, Ordering::SeqCst);
    let jumped = Instant::now();
    let refreshed = loop {
        let calls = fs.calls();
        if calls[before..]
            .iter()
            .any(|(op, _)| *op == Op::SetPathTimes)
        {
            break Some(jumped.elapsed());
        }
        if jumped.elapsed() > Duration::from_secs(3) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = refreshed.expect("no refresh within 3 s of the resume (the interval is 10 s)");
    assert!(
        took < Duration::from_secs(1),
        "refreshed {took:?} after the resume"
    );
    let calls = fs.calls()[before..].to_vec();
    assert!(
        links_marker(&calls),
        "a refresh past the deadline did not go under the marker: {calls:?}"
    );
    assert!(!keep.is_lost());
    drop(keep);
    assert!(holder.is_locked().unwrap());
    holder.unlock().unwrap();
}

/// Found by the real-process soak (issue 14, docs/reliability.md §10): a process paused
/// between the server stamping its new claim and the `fstat` that reads the stamp wrote an
/// expiry reckoned from the create (already past after the pause) and counted the stamp as
/// fresh, so `lock()` returned a lock born expired that a peer broke at once. The stamp's
/// age now counts from before the create: it is renewed before the link.
#[derive(Debug, Default)]
struct PauseBeforeFstat {
    armed: AtomicBool,
}

impl Layer for PauseBeforeFstat {
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        if self.armed.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2500));
        }
        RealFs.fstat(file)
    }
}

#[test]
fn pause_before_reading_the_claims_stamp_never_returns_an_expired_lock() {
    let (_dir, path) = lock_path();
    let fs = Arc::new(Layered(PauseBeforeFstat::default()));
    fs.armed.store(true, Ordering::SeqCst);
    let paused = Lock::builder(&path)
        .lifetime(Duration::from_secs(1))
        .filesystem(fs.clone())
        .build()
        .unwrap();
    paused.lock().unwrap();
    let expiry = std::fs::symlink_metadata(&path)
        .unwrap()
        .modified()
        .unwrap();
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(left > Duration::from_millis(500), "born with {left:?} left");
    let peer = Lock::builder(&path)
        .lifetime(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(
        peer.lock_timeout(Duration::from_millis(300)).is_err(),
        "a peer took the lock lock() had just returned"
    );
    paused.unlock().unwrap();
}

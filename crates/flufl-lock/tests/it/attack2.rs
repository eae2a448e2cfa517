//! A third adversarial review, of the changes of commits 4e1386d..2abfed0: removals settled
//! by `lstat` after `ESTALE`/`ENOENT` and retried (`Inner::unlink_ours`), marker `lstat`s
//! through the retry wrapper, a claim's stamp aged from before its create, the
//! confirmation of a new lock whose deadline passed (`confirm_fresh`, with a re-learned
//! server clock), and the probe create retried after `EEXIST`.
//!
//! Tests marked **BREAK** failed on the code they were written against (2abfed0..a09f3c4)
//! and pass since 8c7a26c, which fixed each as its doc comment's "Fix" suggests: each stages
//! the exact interleaving and asserts what a correct implementation must do. The others
//! probe a suspicion that turned out to hold (the attack is documented, the library resists
//! it).

#![cfg(unix)]

use crate::support::{files_in, lock_path, Op};
use flufl_lock::sys::{Fs, Meta, ProcState, RealFs, Waiter};
use flufl_lock::Lock;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EEXIST: i32 = 17;
const ESTALE: i32 = 116;

/// What [`Rig`] reports as the path of calls on an open file.
const FILE: &str = "<open file>";

type Hook = Arc<dyn Fn() + Send + Sync>;
type Pred = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// What a step does to the call it fires on.
#[derive(Clone)]
enum Act {
    /// Fail with this errno without performing the call.
    Err(i32),
    /// Perform the call, then report this errno (a lost reply).
    AfterErr(i32),
    /// Run this, then perform the call (a pause before the call reaches the server).
    Before(Hook),
    /// Perform the call, run this, then return the call's result (a reply delayed: the
    /// server acted, the caller hears of it later; others act meanwhile).
    After(Hook),
}

struct Step {
    op: Op,
    when: Pred,
    /// Matching calls to let through before firing.
    skip: usize,
    /// How many more times it fires.
    times: usize,
    act: Act,
}

/// The real filesystem with steps chosen by operation and path (the first live step that
/// matches fires), a call log, and a boot clock that can jump (a suspend).
#[derive(Default)]
struct Rig {
    steps: Mutex<Vec<Step>>,
    calls: Mutex<Vec<(Op, PathBuf)>>,
    suspended_ms: AtomicU64,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rig")
    }
}

impl Rig {
    fn new() -> Arc<Rig> {
        Arc::new(Rig::default())
    }

    /// Adds a step: after `skip` matching calls, the next `times` calls `op` whose path
    /// satisfies `when` meet `act`.
    fn step(
        &self,
        op: Op,
        when: impl Fn(&Path) -> bool + Send + Sync + 'static,
        skip: usize,
        times: usize,
        act: Act,
    ) {
        self.steps.lock().unwrap().push(Step {
            op,
            when: Box::new(when),
            skip,
            times,
            act,
        });
    }

    fn fire(&self, op: Op, path: &Path) -> Option<Act> {
        self.calls.lock().unwrap().push((op, path.to_path_buf()));
        let mut steps = self.steps.lock().unwrap();
        let s = steps
            .iter_mut()
            .find(|s| s.op == op && s.times > 0 && (s.when)(path))?;
        if s.skip > 0 {
            s.skip -= 1;
            return None;
        }
        s.times -= 1;
        Some(s.act.clone())
    }

    fn apply<T>(&self, op: Op, path: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        match self.fire(op, path) {
            None => f(),
            Some(Act::Err(n)) => Err(io::Error::from_raw_os_error(n)),
            Some(Act::AfterErr(n)) => {
                f()?;
                Err(io::Error::from_raw_os_error(n))
            }
            Some(Act::Before(h)) => {
                h();
                f()
            }
            Some(Act::After(h)) => {
                let r = f();
                h();
                r
            }
        }
    }

    fn calls(&self) -> Vec<(Op, PathBuf)> {
        self.calls.lock().unwrap().clone()
    }

    fn suspend(&self, d: Duration) {
        self.suspended_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Fs for Rig {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.apply(Op::CreateNew, path, || RealFs.create_new(path))
    }
    fn write_all(&self, file: &File, data: &[u8]) -> io::Result<()> {
        self.apply(Op::WriteAll, Path::new(FILE), || {
            RealFs.write_all(file, data)
        })
    }
    fn fstat(&self, file: &File) -> io::Result<Meta> {
        self.apply(Op::Fstat, Path::new(FILE), || RealFs.fstat(file))
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
        self.apply(Op::Lstat, path, || RealFs.lstat(path))
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
    fn boot_clock(&self) -> Duration {
        RealFs.boot_clock() + Duration::from_millis(self.suspended_ms.load(Ordering::SeqCst))
    }
}

/// The path is exactly `p`.
fn is(p: &Path) -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    let p = p.to_path_buf();
    move |q| q == p
}

/// The path ends with `suffix`.
fn ends(suffix: &'static str) -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    move |q| q.to_string_lossy().ends_with(suffix)
}

fn any() -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    |_| true
}

fn hook(f: impl Fn() + Send + Sync + 'static) -> Hook {
    Arc::new(f)
}

fn sleep_ms(ms: u64) -> Hook {
    hook(move || std::thread::sleep(Duration::from_millis(ms)))
}

/// `<lock>.break`.
fn marker_of(lock: &Path) -> PathBuf {
    let mut m = lock.as_os_str().to_owned();
    m.push(".break");
    PathBuf::from(m)
}

/// Plants a claim file of another process (an `X` that takes the marker or the lock by hand
/// in the middle of a test), holding its own path as our claims do. Returns its path.
fn plant_claim(lock: &Path, who: &str) -> PathBuf {
    let claim = PathBuf::from(format!(
        "{}|{who}.example|4242|7155039917.fl1",
        lock.display()
    ));
    std::fs::write(&claim, claim.to_str().unwrap()).unwrap();
    claim
}

fn ino(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p).ok().map(|m| m.ino())
}

// ---------------------------------------------------------------------------------------
// (4) confirm_fresh
// ---------------------------------------------------------------------------------------

/// **BREAK** (4): an error inside the confirmation of a new lock leaves the lock file.
///
/// Interleaving: the claim's create is slow (300 ms before it reaches the server, on a
/// 200 ms lease), so the clock learned from it is uncertain by 300 ms and every deadline
/// reckoned from it has passed. The claim is re-stamped (fast) and linked: `link(claim, L)`
/// succeeds, the stamp is fresh but the deadline has passed, so `confirm_fresh` takes the
/// marker and re-learns the clock: the probe's create fails (EIO). The error propagates out
/// of `attempt`; `end_acquire` removes only the claim *name*, and `L`, a link to our claim's
/// inode holding our claim's path, stays behind: no one holds it, and every waiter
/// (including this `Lock`'s next `lock()`) waits for it to expire. Invariant 5 ("none leaves
/// our claim file behind") is broken. Any error there does it (the marker busy for its
/// lifetime, a hostile marker, a failed SETATTR or read-back); before this change only the
/// old-stamp path could reach it, now every slow call can.
///
/// Fix: once the link succeeded, an error in the confirmation must not abandon the lock:
/// inside the marker closure, on error, remove `L` if `lock_is_ours` (we hold the marker, so
/// no breaker acts), then propagate; if the marker itself could not be taken, leave `L` to
/// expire but say so in the error.
#[test]
fn confirmation_error_after_the_link_leaves_no_lock_file() {
    let (dir, path) = lock_path();
    let rig = Rig::new();
    // The probe's create fails; the claim's create is slow (first matching step fires).
    rig.step(Op::CreateNew, ends(".clk"), 0, 1, Act::Err(EIO));
    rig.step(Op::CreateNew, any(), 0, 1, Act::Before(sleep_ms(300)));
    let lock = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = lock.lock();
    let probed = rig
        .calls()
        .iter()
        .any(|(op, p)| *op == Op::CreateNew && p.to_string_lossy().ends_with(".clk"));
    assert!(probed, "the confirmation did not re-learn the clock: {r:?}");
    if r.is_err() {
        assert!(
            !path.exists(),
            "lock() failed ({r:?}) but left the lock file, linked to our claim: {:?}",
            files_in(dir.path())
        );
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
    } else {
        lock.unlock().unwrap();
    }
}

/// **BREAK** (4): after three confirmation rounds `lock()` returns a lock whose file has
/// already expired, and a peer takes it at once: two holders.
///
/// Interleaving: every SETATTR's reply comes back 300 ms after the server acted, on a
/// 200 ms lease (the server stamps at the start, we hear of it at the end). Each stamp is
/// written from the least the server's time can be, so it gives the file `lifetime` from
/// the moment the SETATTR reached the server; when its reply arrives the stamp is already
/// old (more than lifetime/4), so `confirm_fresh` confirms under the marker and stamps again,
/// three rounds, then "holds it with a warning" and returns `Acquired`. The holder's own
/// deadline has passed and the file says it expired ~100 ms ago: a peer (clock margin 0)
/// breaks it and takes it while the first `lock()` has just returned `Ok`. The commit claims
/// "never hand out a lock born expired"; the doc comment says "a lock whose deadline has
/// passed is never handed out".
///
/// Calls slower than the lease are the lease's limit (docs/protocol.md), but here the holder
/// *knows* (its deadline has passed) and hands the lock out anyway.
///
/// Fix: after the last round, if the deadline has still passed, release the lock under the
/// marker and return an error (or keep confirming until the acquisition's timeout, then
/// time out); never `Ok` with a deadline in the past.
#[test]
fn slow_replies_never_hand_out_an_expired_lock() {
    let (dir, path) = lock_path();
    let rig = Rig::new();
    rig.step(
        Op::SetTimes,
        any(),
        0,
        usize::MAX,
        Act::After(sleep_ms(300)),
    );
    rig.step(
        Op::SetPathTimes,
        any(),
        0,
        usize::MAX,
        Act::After(sleep_ms(300)),
    );
    let holder = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    match holder.lock() {
        Err(e) => {
            // The fixed behaviour: an error, and nothing left behind.
            assert!(
                files_in(dir.path()).is_empty(),
                "{e}: {:?}",
                files_in(dir.path())
            );
        }
        Ok(()) => {
            let peer = Lock::builder(&path)
                .lifetime(Duration::from_secs(5))
                .clock_margin(Duration::ZERO)
                .build()
                .unwrap();
            let stolen = peer.lock_timeout(Duration::from_millis(300));
            let left = holder.expires_in().unwrap_or_default();
            if stolen.is_ok() {
                peer.unlock().unwrap();
            }
            let _ = holder.unlock();
            assert!(
                stolen.is_err(),
                "lock() returned Ok and a peer took the lock at once (expires_in after: \
                 {left:?}): two holders"
            );
        }
    }
}

/// Probe (4): a confirmation whose probe create loses its reply (the server made the probe,
/// the retransmission says EEXIST) makes the probe again and takes the lock; nothing is
/// left behind. Held.
#[test]
fn confirmation_probe_lost_reply_is_made_again() {
    let (dir, path) = lock_path();
    let rig = Rig::new();
    rig.step(Op::CreateNew, ends(".clk"), 0, 1, Act::AfterErr(EEXIST));
    rig.step(Op::CreateNew, any(), 0, 1, Act::Before(sleep_ms(300)));
    let lock = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    lock.lock().unwrap();
    let probes = rig
        .calls()
        .iter()
        .filter(|(op, p)| *op == Op::CreateNew && p.to_string_lossy().ends_with(".clk"))
        .count();
    assert_eq!(probes, 2, "the probe was not made again");
    lock.unlock().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// **BREAK** (5), low severity: the probe create loses its reply twice in a row (each
/// create was made; each retransmission says EEXIST). `learn_offset` unlinks and creates
/// once more, then gives up with the error, and the probe file the server made is never
/// removed: `<claim>.clk` is left in the lock's directory (a claim name no later process
/// reuses, so it stays forever; together with the lock file of the test above).
///
/// Fix: on any error after a create that may have been made, unlink the probe (as the
/// fstat-error path already does), e.g. `let _ = self.call(|| self.fs.unlink(&probe))`
/// before returning the second create's error.
#[test]
fn probe_create_losing_two_replies_leaves_no_probe() {
    let (dir, path) = lock_path();
    let rig = Rig::new();
    rig.step(Op::CreateNew, ends(".clk"), 0, 2, Act::AfterErr(EEXIST));
    rig.step(Op::CreateNew, any(), 0, 1, Act::Before(sleep_ms(300)));
    let lock = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = lock.lock();
    if r.is_ok() {
        lock.unlock().unwrap();
    }
    let probes: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.ends_with(".clk"))
        .collect();
    assert!(
        probes.is_empty(),
        "probe left behind after {r:?}: {probes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// (1) unlink_ours: the removal retried after ESTALE/ENOENT, settled by lstat
// ---------------------------------------------------------------------------------------

/// **BREAK** (1): the retried marker removal deletes the marker of the breaker that took it
/// after ours went stale. The lock's removal has a guard (`!near_expiry`); the marker's
/// retry has none (`|| true`), though a marker held past `marker_lifetime` may be removed by
/// any waiter and taken by another breaker.
///
/// Interleaving (marker lifetime 200 ms): holder H unlocks near expiry, under the marker;
/// it removes `L`, then releases the marker: `lstat(L.break)` is ours; `unlink(L.break)`
/// fails with ESTALE (not done); the settling `lstat(L.break)` sees our inode, but its reply
/// is 300 ms late. Meanwhile our marker is stale: a waiter W removes it (rename away, same
/// claim, unlink) and breaker X takes the marker (links its claim). H's reply arrives,
/// `may_retry()` is `true`, and the retried `unlink(L.break)` removes X's marker while X
/// breaks under it: a second breaker can now take the marker and act concurrently with X,
/// the race the marker exists to prevent.
///
/// (The same slow `lstat` before the *first* unlink does the same, before and after this
/// change: release_marker_of has no age check at all.)
///
/// Fix: give the marker the lock's guard: retry (and make the first removal) only while
/// our marker is surely younger than `marker_lifetime` less the clock margin, by the boot
/// clock since we took it; past that, leave it (a stale marker is anyone's to remove).
#[test]
fn retried_marker_removal_spares_the_next_breakers_marker() {
    let (dir, path) = lock_path();
    let marker = marker_of(&path);
    let rig = Rig::new();
    let x_ino = Arc::new(AtomicU64::new(0));
    rig.step(Op::Unlink, is(&marker), 0, 1, Act::Err(ESTALE));
    {
        let (marker, path, dir, x_ino) = (
            marker.clone(),
            path.clone(),
            dir.path().to_path_buf(),
            x_ino.clone(),
        );
        // lstat(marker): #1 marker_is_ours, #2 release_marker_of, #3 the settling one.
        rig.step(
            Op::Lstat,
            is(&marker),
            2,
            1,
            Act::After(hook(move || {
                std::thread::sleep(Duration::from_millis(300));
                // W: our marker is stale; rename it away, same claim: unlink it.
                let taken = dir.join("w-taken");
                std::fs::rename(&marker, &taken).unwrap();
                std::fs::remove_file(&taken).unwrap();
                // X: takes the marker to break.
                let x = plant_claim(&path, "x-breaker");
                std::fs::hard_link(&x, &marker).unwrap();
                x_ino.store(ino(&marker).unwrap(), Ordering::SeqCst);
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(500))
        .marker_lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    assert_ne!(
        x_ino.load(Ordering::SeqCst),
        0,
        "the settling lstat was not reached: {r:?} {:?}",
        rig.calls()
    );
    assert_eq!(
        ino(&marker),
        Some(x_ino.load(Ordering::SeqCst)),
        "the holder's retried unlink removed breaker X's marker (unlock: {r:?})"
    );
}

/// **BREAK** (1): identity by inode number alone is fooled by a recycled inode (ext4 gives
/// a freed inode number to the next file created in the directory at once).
///
/// Interleaving: holder H unlocks near expiry and takes the marker; a flufl.lock peer
/// breaks H's expired lock its own way (unlink the claim, then `L`), so the marker is the
/// last link to H's claim inode. H finds the lock lost and releases the marker:
/// `lstat(L.break)` is ours, `unlink(L.break)` is done but its reply is lost (ENOENT on the
/// retransmission): the inode is freed. Breaker X creates its claim (it gets H's old inode
/// number) and links it as the marker. H's settling `lstat(L.break)` sees "its" inode
/// number, retries, and removes X's marker. Before this change the lost reply ended the
/// release; the retry is new.
///
/// Fix: settle by more than the inode number: retry only while our claim file still exists
/// with that inode (`lstat(claimfile).id == id`, one call on this rare path), which proves
/// the inode was not freed and recycled; or compare the content (our claim's path) as
/// `remove_exact` does.
#[test]
fn retried_marker_removal_is_not_fooled_by_a_recycled_inode() {
    let (dir, path) = lock_path();
    let marker = marker_of(&path);
    let rig = Rig::new();
    let h_ino = Arc::new(AtomicU64::new(0));
    let x_ino = Arc::new(AtomicU64::new(0));
    {
        // The flufl.lock peer's `_break`, before H reads the lock under the marker: it reads
        // L's content (the claim's path), unlinks the claim, then L.
        let path = path.clone();
        let h_ino = h_ino.clone();
        rig.step(
            Op::OpenRead,
            is(&path),
            0,
            1,
            Act::Before(hook(move || {
                let claim = PathBuf::from(std::fs::read_to_string(&path).unwrap());
                h_ino.store(ino(&path).unwrap(), Ordering::SeqCst);
                std::fs::remove_file(&claim).unwrap();
                std::fs::remove_file(&path).unwrap();
            })),
        );
    }
    rig.step(Op::Unlink, is(&marker), 0, 1, Act::AfterErr(ENOENT));
    {
        let (marker, path, x_ino) = (marker.clone(), path.clone(), x_ino.clone());
        // lstat(marker): #1 release_marker_of, #2 the settling one.
        rig.step(
            Op::Lstat,
            is(&marker),
            1,
            1,
            Act::Before(hook(move || {
                let x = plant_claim(&path, "x-breaker");
                std::fs::hard_link(&x, &marker).unwrap();
                x_ino.store(ino(&marker).unwrap(), Ordering::SeqCst);
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(500))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    let (h_ino, x_ino) = (h_ino.load(Ordering::SeqCst), x_ino.load(Ordering::SeqCst));
    assert_ne!(x_ino, 0, "X never took the marker: {r:?} {:?}", rig.calls());
    if h_ino != x_ino {
        eprintln!(
            "inode {h_ino} was not recycled (X got {x_ino}): this filesystem does not show \
             the attack; {:?}",
            files_in(dir.path())
        );
        return;
    }
    assert_eq!(
        ino(&marker),
        Some(x_ino),
        "the holder's retried unlink removed breaker X's marker, whose inode number was \
         recycled from the holder's claim (unlock: {r:?})"
    );
}

/// **BREAK** (1), the worst: the unlock's retried removal under a marker gone stale deletes
/// the next holder's lock (two holders follow). `release_near_expiry` retries with
/// `|| true` ("under the marker: no breaker acts"), but a marker held past
/// `marker_lifetime` is anyone's to remove.
///
/// Interleaving (lease 1 s, marker lifetime 200 ms): holder H unlocks near expiry under the
/// marker: `link(L.break)`, reads `L` (ours), `lstat(L.break)` (ours), `unlink(L)` fails with
/// ESTALE (not done); the settling `lstat(L)` sees our inode, but its reply comes 1.2 s
/// later. Meanwhile waiter N finds `L` expired, finds H's marker older than its lifetime,
/// removes it, takes the marker, breaks `L` (and H's claim) and links its own claim: N holds
/// the lock. H's reply arrives; `may_retry()` is `true`; the retried `unlink(L)` removes
/// N's lock, and `unlock()` returns `Ok`. N believes it holds a lock that has no file: the
/// next waiter takes it.
///
/// (A slow reply to the `lstat(L.break)` check before the *first* `unlink(L)` does the same
/// before and after this change; the retry adds a second such window, opened by ESTALE.)
///
/// Fix: the same guard for both: remove (and retry) under the marker only while our marker
/// is surely younger than `marker_lifetime` (boot clock since `link(L.break)` returned,
/// less the clock margin); past that, re-check the marker (`marker_is_ours`) or give up
/// with `marker_displaced`, leaving the lock to expire.
#[test]
fn retried_unlock_under_a_stale_marker_spares_the_next_holder() {
    let (_dir, path) = lock_path();
    let rig = Rig::new();
    let n = Arc::new(
        Lock::builder(&path)
            .clock_margin(Duration::ZERO)
            .marker_lifetime(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let took = Arc::new(Mutex::new(None));
    rig.step(Op::Unlink, is(&path), 0, 1, Act::Err(ESTALE));
    {
        let (n, took) = (n.clone(), took.clone());
        // The first lstat(L) of the unlock is the settling one (the check reads L by open).
        rig.step(
            Op::Lstat,
            is(&path),
            0,
            1,
            Act::After(hook(move || {
                std::thread::sleep(Duration::from_millis(1200));
                *took.lock().unwrap() = Some(n.lock_timeout(Duration::from_secs(3)));
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(500))
        .marker_lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    let took = took.lock().unwrap().take();
    assert!(
        matches!(took, Some(Ok(()))),
        "N did not take the lock: {took:?} (unlock: {r:?})"
    );
    let kept = n.is_locked().unwrap();
    let _ = n.unlock();
    assert!(
        kept,
        "H's retried unlink removed N's lock while N holds it (H's unlock: {r:?})"
    );
}

/// Probe (1): the fast unlock's guard. `unlink(L)` fails with ESTALE (not done); the
/// settling `lstat(L)` sees our inode but its reply is late, past our lease: meanwhile a
/// waiter breaks the expired lock and takes it. `may_retry` (`!near_expiry`, evaluated after
/// the reply) refuses, and the new holder keeps its lock. Held (a pause *between*
/// `may_retry` and the `unlink` is the documented late-removal limit, as for the first
/// `unlink`).
#[test]
fn retried_fast_unlink_after_a_slow_check_spares_the_breakers_lock() {
    let (_dir, path) = lock_path();
    let rig = Rig::new();
    let n = Arc::new(
        Lock::builder(&path)
            .clock_margin(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let took = Arc::new(Mutex::new(None));
    rig.step(Op::Unlink, is(&path), 0, 1, Act::Err(ESTALE));
    {
        let (n, took) = (n.clone(), took.clone());
        rig.step(
            Op::Lstat,
            is(&path),
            1,
            1,
            Act::After(hook(move || {
                std::thread::sleep(Duration::from_millis(1700));
                *took.lock().unwrap() = Some(n.lock_timeout(Duration::from_secs(3)));
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_millis(1500))
        .clock_margin(Duration::from_millis(250))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    let took = took.lock().unwrap().take();
    assert!(matches!(took, Some(Ok(()))), "{took:?} (unlock: {r:?})");
    assert!(n.is_locked().unwrap(), "unlock: {r:?}");
    n.unlock().unwrap();
}

/// **BREAK** (1), not a regression (the code before did the same with ESTALE): `unlink(L)`
/// fails with ESTALE (not done) and the settling `lstat(L)` fails with EIO; `unlink_ours`
/// takes any `lstat` error as "gone" and `unlock()` returns `Ok`, while `L` stays with a
/// full lifetime: every waiter waits up to 15 s for a lock no one holds, and the holder,
/// told it released, cannot retry. The doc comment says "`Ok` once it is gone".
///
/// Fix: in `unlink_ours`, only `NotFound` (and `ESTALE`, after the retries `call` makes)
/// from the settling `lstat`, or another inode, mean gone; any other error returns the
/// removal's error.
#[test]
fn unlock_never_reports_success_while_the_lock_file_stays() {
    let (_dir, path) = lock_path();
    let rig = Rig::new();
    rig.step(Op::Unlink, is(&path), 0, 1, Act::Err(ESTALE));
    // lstat(L): #1 the fast unlock's check, #2 the settling one.
    rig.step(Op::Lstat, is(&path), 1, 1, Act::Err(EIO));
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    assert!(
        !(r.is_ok() && path.exists()),
        "unlock() returned Ok but the lock file is still there"
    );
    let _ = std::fs::remove_file(&path);
}

/// **BREAK** (1), liveness: the fast unlock's removal fails with ESTALE (not done); while
/// the settling `lstat` is under way the holder's deadline comes near (a suspend, a slow
/// reply), so `may_retry` refuses, and `unlock()` fails with ESTALE, leaving `L` (up to
/// 2 × clock_margin of lease on it by the holder's reckoning, a full lease if the boot clock
/// jumped for a suspend the server did not share). The `Lock` is no longer held: it cannot
/// be unlocked again.
///
/// Fix: when `may_retry` refuses, fall back to `release_near_expiry` (take the marker,
/// check, remove) instead of returning the error.
#[test]
fn fast_unlock_whose_retry_is_refused_goes_under_the_marker() {
    let (_dir, path) = lock_path();
    let marker = marker_of(&path);
    let rig = Rig::new();
    rig.step(Op::Unlink, is(&path), 0, 1, Act::Err(ESTALE));
    {
        let r2 = Arc::downgrade(&rig);
        rig.step(
            Op::Lstat,
            is(&path),
            1,
            1,
            Act::After(hook(move || {
                if let Some(r) = r2.upgrade() {
                    r.suspend(Duration::from_secs(3));
                }
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(3))
        .clock_margin(Duration::from_millis(500))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    let under_marker = rig
        .calls()
        .iter()
        .any(|(op, p)| *op == Op::Link && *p == marker);
    let left = path.exists();
    let _ = std::fs::remove_file(&path);
    assert!(
        !left,
        "unlock() ({r:?}) left the lock file (went under the marker: {under_marker})"
    );
}

/// Probe (1): the fast unlock's `unlink(L)` is done but its reply is lost (ENOENT); before
/// the settling `lstat`, a waiter takes the free name. The `lstat` sees the new holder's
/// inode and the removal is settled as done: the new holder keeps its lock. Held.
#[test]
fn retried_fast_unlink_spares_a_new_holder() {
    for lost in [ENOENT, ESTALE] {
        let (_dir, path) = lock_path();
        let rig = Rig::new();
        let next = Arc::new(Lock::new(&path).unwrap());
        rig.step(Op::Unlink, is(&path), 0, 1, Act::AfterErr(lost));
        {
            let next = next.clone();
            rig.step(
                Op::Lstat,
                is(&path),
                1,
                1,
                Act::Before(hook(move || next.lock().unwrap())),
            );
        }
        let h = Lock::builder(&path)
            .filesystem(rig.clone())
            .build()
            .unwrap();
        h.lock().unwrap();
        h.unlock().unwrap();
        assert!(
            next.is_locked().unwrap(),
            "errno {lost}: new holder lost it"
        );
        next.unlock().unwrap();
    }
}

/// Probe (1): the marker's removal is done but its reply is lost (ESTALE, not retried by
/// `call_removal`); another breaker takes the marker before the settling `lstat`, which
/// sees a different inode: done, the new marker stays. Held (with our claim still linked
/// to the old inode, its number cannot be recycled).
#[test]
fn retried_marker_removal_after_a_lost_reply_spares_the_next_marker() {
    let (_dir, path) = lock_path();
    let marker = marker_of(&path);
    let rig = Rig::new();
    let x_ino = Arc::new(AtomicU64::new(0));
    rig.step(Op::Unlink, is(&marker), 0, 1, Act::AfterErr(ESTALE));
    {
        let (marker, path, x_ino) = (marker.clone(), path.clone(), x_ino.clone());
        rig.step(
            Op::Lstat,
            is(&marker),
            2,
            1,
            Act::Before(hook(move || {
                let x = plant_claim(&path, "x-breaker");
                std::fs::hard_link(&x, &marker).unwrap();
                x_ino.store(ino(&marker).unwrap(), Ordering::SeqCst);
            })),
        );
    }
    let h = Lock::builder(&path)
        .filesystem(rig.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(500))
        .build()
        .unwrap();
    h.lock().unwrap();
    let r = h.unlock();
    assert!(r.is_ok(), "{r:?}");
    assert_ne!(x_ino.load(Ordering::SeqCst), 0, "{:?}", rig.calls());
    assert_eq!(ino(&marker), Some(x_ino.load(Ordering::SeqCst)));
}

// ---------------------------------------------------------------------------------------
// (3) the stamp aged from before the create: the uncontended cost
// ---------------------------------------------------------------------------------------

/// Probe (3): with the stamp aged from before the create, an uncontended acquisition still
/// makes exactly the five calls of `faults::uncontended_cycle_syscall_budget` (no re-stamp,
/// no confirmation round), even with a 10 ms lifetime; with a lifetime above twice the
/// clock margin the whole cycle is still the eight calls. Held. (With a lifetime of at most
/// 2 x clock_margin every unlock goes under the marker, by design, not by this change.)
#[test]
fn uncontended_cycle_budget_with_short_lifetimes() {
    let acquire = [
        Op::CreateNew,
        Op::WriteAll,
        Op::Fstat,
        Op::SetTimes,
        Op::Link,
    ];
    for ms in [10, 1000, 2000, 15_000] {
        let (_dir, path) = lock_path();
        let rig = Rig::new();
        let lock = Lock::builder(&path)
            .filesystem(rig.clone())
            .lifetime(Duration::from_millis(ms))
            .build()
            .unwrap();
        lock.lock().unwrap();
        let calls: Vec<Op> = rig.calls().iter().map(|c| c.0).collect();
        assert_eq!(calls, acquire, "lifetime {ms} ms");
        let _ = lock.unlock();
        if ms > 1000 {
            let calls: Vec<Op> = rig.calls().iter().map(|c| c.0).collect();
            assert_eq!(
                calls[5..],
                [Op::Lstat, Op::Unlink, Op::Unlink],
                "lifetime {ms} ms"
            );
        }
    }
}

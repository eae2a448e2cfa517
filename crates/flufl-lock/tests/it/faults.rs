//! The real algorithm over a faulty filesystem (the `sys::Fs` seam): each row of the
//! reliability issue's fault table, the lost-reply case, break races paused between two
//! steps, and the syscall budget of an uncontended cycle.

use crate::support::{files_in, lock_path, Fault, FaultyFs, Op};
use flufl_lock::{ErrorKind, Lock};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESTALE: i32 = 116;
const EINTR: i32 = 4;
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;
const EACCES: i32 = 13;
const EPERM: i32 = 1;
const EROFS: i32 = 30;
const EIO: i32 = 5;

fn faulty(path: &Path, fs: &Arc<FaultyFs>) -> Lock {
    Lock::builder(path).filesystem(fs.clone()).build().unwrap()
}

/// Fault table: every row states its fault, the expected outcome, and asserts it.
#[test]
fn fault_table() {
    struct Row {
        name: &'static str,
        setup: fn(&FaultyFs),
        /// Ok(max wait) or Err(kind + text in message).
        expect: Result<Duration, (ErrorKind, &'static str)>,
    }
    let rows = [
        Row {
            name: "link succeeds but reports EEXIST (lost NFS reply)",
            setup: |fs| fs.rule(Op::Link, Some("test.lck"), Fault::AfterErr(EEXIST), 1),
            expect: Ok(Duration::from_millis(50)),
        },
        Row {
            name: "link fails once with ENOENT",
            setup: |fs| fs.rule(Op::Link, Some("test.lck"), Fault::Err(ENOENT), 1),
            expect: Ok(Duration::from_millis(200)),
        },
        Row {
            name: "link fails once with ESTALE",
            setup: |fs| fs.rule(Op::Link, Some("test.lck"), Fault::Err(ESTALE), 1),
            expect: Ok(Duration::from_millis(200)),
        },
        Row {
            name: "EINTR on every kind of call",
            setup: |fs| {
                for op in [
                    Op::CreateNew,
                    Op::WriteAll,
                    Op::Fstat,
                    Op::SetTimes,
                    Op::Link,
                    Op::Lstat,
                    Op::Unlink,
                ] {
                    fs.rule(op, None, Fault::Err(EINTR), 2);
                }
            },
            expect: Ok(Duration::from_millis(200)),
        },
        Row {
            name: "ENOSPC writing the claim",
            setup: |fs| fs.rule(Op::WriteAll, None, Fault::Err(ENOSPC), 1),
            expect: Err((ErrorKind::Io, "failed to write claim file")),
        },
        Row {
            name: "EDQUOT writing the claim",
            setup: |fs| fs.rule(Op::WriteAll, None, Fault::Err(EDQUOT), 1),
            expect: Err((ErrorKind::Io, "failed to write claim file")),
        },
        Row {
            name: "EACCES creating the claim (directory not writable)",
            setup: |fs| fs.rule(Op::CreateNew, None, Fault::Err(EACCES), 1),
            expect: Err((ErrorKind::Io, "failed to create claim file")),
        },
        Row {
            name: "EPERM linking",
            setup: |fs| fs.rule(Op::Link, None, Fault::Err(EPERM), 1),
            expect: Err((ErrorKind::Io, "failed to link claim file to lock file")),
        },
        Row {
            name: "EROFS creating the claim",
            setup: |fs| fs.rule(Op::CreateNew, None, Fault::Err(EROFS), 1),
            expect: Err((ErrorKind::Io, "failed to create claim file")),
        },
        Row {
            name: "ESTALE forever on link gives up after the bound",
            setup: |fs| fs.rule(Op::Link, Some("test.lck"), Fault::Err(ESTALE), usize::MAX),
            expect: Err((ErrorKind::Io, "failed to link claim file to lock file")),
        },
    ];
    for row in rows {
        let (dir, path) = lock_path();
        let fs = FaultyFs::new();
        (row.setup)(&fs);
        let lock = faulty(&path, &fs);
        let t = Instant::now();
        let r = lock.lock_timeout(Duration::from_secs(5));
        let took = t.elapsed();
        match (r, row.expect) {
            (Ok(()), Ok(max)) => {
                assert!(took <= max, "{}: took {took:?}", row.name);
                assert!(lock.is_locked().unwrap(), "{}", row.name);
                lock.unlock().unwrap();
            }
            (Err(e), Err((kind, text))) => {
                assert_eq!(e.kind(), kind, "{}: {e}", row.name);
                assert!(e.to_string().contains(text), "{}: {e}", row.name);
                assert!(
                    e.to_string().contains(dir.path().to_str().unwrap()),
                    "{}: names no path: {e}",
                    row.name
                );
                assert!(
                    took < Duration::from_secs(3),
                    "{}: no prompt error ({took:?})",
                    row.name
                );
                assert!(!path.exists(), "{}: lock taken", row.name);
            }
            (r, want) => panic!("{}: got {r:?}, want {want:?}", row.name),
        }
        assert!(
            files_in(dir.path()).is_empty(),
            "{}: left {:?}",
            row.name,
            files_in(dir.path())
        );
    }
}

/// stat or read of the lock returns ENOENT or ESTALE: treated as changed, retried, acquired
/// once the holder is gone.
#[test]
fn vanishing_lock_on_inspection_is_retried() {
    for (op, errno) in [
        (Op::OpenRead, ENOENT),
        (Op::OpenRead, ESTALE),
        (Op::Fstat, ESTALE),
        (Op::ReadHead, ENOENT),
    ] {
        let (_dir, path) = lock_path();
        let holder = Lock::new(&path).unwrap();
        holder.lock().unwrap();
        let fs = FaultyFs::new();
        fs.rule(op, None, Fault::Err(errno), 3);
        let lock = faulty(&path, &fs);
        // While held: it waits (times out), it does not error.
        let e = lock.lock_timeout(Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{op:?}/{errno}: {e}");
        holder.unlock().unwrap();
        fs.rule(op, None, Fault::Err(errno), 3);
        lock.lock_timeout(Duration::from_secs(2)).unwrap();
    }
}

/// Stale attributes: a link count of 1 reported for a lock that is held by someone else
/// never makes us believe we acquired it.
#[test]
fn stale_link_count_never_false_acquire() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let fs = FaultyFs::new();
    fs.rule(Op::Fstat, None, Fault::Nlink(1), usize::MAX);
    fs.rule(Op::Lstat, None, Fault::Nlink(2), usize::MAX);
    let lock = faulty(&path, &fs);
    assert_eq!(
        lock.lock_timeout(Duration::from_millis(100))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert!(!lock.is_locked().unwrap());
    assert!(holder.is_locked().unwrap());
}

/// EIO reading the lock is surfaced, not retried forever; configured as retryable, it is
/// retried and given up after the bound.
#[test]
fn eio_surfaces_and_retry_bound() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let fs = FaultyFs::new();
    fs.rule(Op::ReadHead, None, Fault::Err(EIO), usize::MAX);
    let lock = faulty(&path, &fs);
    let e = lock.lock_timeout(Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("failed to read lock file"), "{e}");
    assert_eq!(fs.count(Op::ReadHead), 1);

    let fs = FaultyFs::new();
    fs.rule(Op::ReadHead, None, Fault::Err(EIO), usize::MAX);
    let lock = Lock::builder(&path)
        .filesystem(fs.clone())
        .retry_errnos([EIO])
        .max_retries(4)
        .build()
        .unwrap();
    let e = lock.lock_timeout(Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(fs.count(Op::ReadHead), 5, "one try and four retries");
}

/// Point 1: a lost link reply is success, decided by identity; flufl.lock raises
/// AlreadyLockedError here. No waiting happens.
#[test]
fn lost_link_reply_is_success() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    fs.rule(Op::Link, Some("test.lck"), Fault::AfterErr(EEXIST), 1);
    let lock = faulty(&path, &fs);
    lock.try_lock().unwrap();
    assert!(lock.is_locked().unwrap());
    assert_eq!(fs.count(Op::Link), 1, "no second link attempt");
    lock.unlock().unwrap();
    assert!(!path.exists());
}

/// Point 9: an uncontended lock+unlock makes 8 calls through the seam (plus one close):
/// create, write, fstat, futimens, link; lstat, unlink, unlink.
#[test]
fn uncontended_cycle_syscall_budget() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    let lock = faulty(&path, &fs);
    lock.lock().unwrap();
    lock.unlock().unwrap();
    let calls: Vec<_> = fs.calls.lock().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(
        calls,
        vec![
            Op::CreateNew,
            Op::WriteAll,
            Op::Fstat,
            Op::SetTimes,
            Op::Link,
            Op::Lstat,
            Op::Unlink,
            Op::Unlink
        ]
    );
}

/// Point 2 / race (a): a breaker judged the lock expired and is paused before it acts; the
/// holder releases and a new holder acquires; the breaker resumes: the new holder keeps it.
#[test]
fn race_breaker_paused_after_judging() {
    let (_dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let new = Arc::new(Lock::new(&path).unwrap());
    let fs = FaultyFs::new();
    let (old_ref, new2) = (Arc::new(Mutex::new(Some(old))), new.clone());
    let o2 = old_ref.clone();
    // Pause the breaker just before it takes the break marker, i.e. after judging.
    fs.rule(
        Op::Link,
        Some(".break"),
        Fault::Hook(Arc::new(move || {
            if let Some(old) = o2.lock().unwrap().take() {
                old.unlock().unwrap();
                new2.lock().unwrap();
            }
        })),
        1,
    );
    let breaker = Lock::builder(&path)
        .filesystem(fs.clone())
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    let e = breaker
        .lock_timeout(Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(new.is_locked().unwrap(), "the new holder lost its lock");
    assert_eq!(
        fs.count(Op::Rename),
        0,
        "the breaker renamed a live lock away"
    );
}

/// Race with a peer that ignores the marker (as flufl.lock does): between our judgement
/// under the marker and our rename, the lock is replaced by a fresh one; we notice by
/// identity and content and put it back.
#[test]
fn race_lock_replaced_between_judging_and_rename() {
    let (dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let fs = FaultyFs::new();
    let fresh = dir.path().join("test.lck|otherhost|1|1");
    std::fs::write(&fresh, fresh.to_str().unwrap()).unwrap();
    let (p2, f2) = (path.clone(), fresh.clone());
    fs.rule(
        Op::Rename,
        Some("test.lck"),
        Fault::Hook(Arc::new(move || {
            std::fs::remove_file(&p2).unwrap();
            std::fs::hard_link(&f2, &p2).unwrap();
        })),
        1,
    );
    let breaker = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let r = breaker.lock_timeout(Duration::from_millis(300));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        fresh.to_str().unwrap(),
        "the fresh lock was not put back"
    );
}

/// Race (b): two breakers that both judged the lock expired race; it is broken once and at
/// most one of them then holds it.
#[test]
fn race_two_breakers() {
    for _ in 0..20 {
        let (_dir, path) = lock_path();
        let old = Lock::builder(&path)
            .lifetime(Duration::from_millis(10))
            .clock_margin(Duration::ZERO)
            .build()
            .unwrap();
        old.lock().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let barrier = Arc::new(Barrier::new(2));
        let fs = FaultyFs::new();
        let b2 = barrier.clone();
        fs.rule(
            Op::Link,
            Some(".break"),
            Fault::Hook(Arc::new(move || {
                b2.wait();
            })),
            2,
        );
        let results: Vec<_> = (0..2)
            .map(|_| {
                let (p, fs) = (path.clone(), fs.clone());
                std::thread::spawn(move || {
                    let l = Lock::builder(&p)
                        .filesystem(fs)
                        .clock_margin(Duration::ZERO)
                        .build()
                        .unwrap();
                    let r = l.try_lock();
                    (r.is_ok(), l)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let winners = results.iter().filter(|r| r.0).count();
        assert!(winners <= 1, "two holders");
        let renames = fs
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == Op::Rename && c.1 == path)
            .count();
        assert_eq!(renames, 1, "broken {renames} times");
        assert!(winners == 1 || !path.exists());
        drop(old);
    }
}

/// Race (c): an expired holder that resumes and unlocks after its lock was broken and taken
/// leaves the new holder's lock alone. Here it is paused after "check it is ours", with the
/// marker held, so the breaker must wait; flufl.lock's check-then-unlink deletes the new lock.
#[test]
fn race_expired_holder_unlocks_late() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    let old = Lock::builder(&path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_millis(50))
        .clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let p2 = path.clone();
    let during = Arc::new(Mutex::new(None));
    let d2 = during.clone();
    // Pause old's unlink of the lock (after it checked it is its own); a breaker tries now.
    fs.rule(
        Op::Unlink,
        Some("test.lck"),
        Fault::Hook(Arc::new(move || {
            let b = Lock::builder(&p2)
                .clock_margin(Duration::ZERO)
                .build()
                .unwrap();
            *d2.lock().unwrap() = Some(b.try_lock().is_ok());
        })),
        1,
    );
    old.unlock().unwrap();
    assert_eq!(
        *during.lock().unwrap(),
        Some(false),
        "a breaker got in during the unlock"
    );
    let new = Lock::new(&path).unwrap();
    new.try_lock().unwrap();
    assert!(new.is_locked().unwrap());
    assert_eq!(old.unlock().unwrap_err().kind(), ErrorKind::NotLocked);
    assert!(new.is_locked().unwrap());
}

/// A break marker left by a crashed breaker of this host is removed at once; one of
/// unknown origin after its marker lifetime.
#[test]
fn stale_break_marker_recovered() {
    let (dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(10))
        .build()
        .unwrap();
    old.lock().unwrap();
    // A marker from a foreign host, as a crashed breaker would leave it.
    let marker = dir.path().join("test.lck.break");
    std::fs::write(&marker, format!("{}|elsewhere|1|1", path.display())).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let waiter = Lock::builder(&path)
        .marker_lifetime(Duration::from_millis(500))
        .build()
        .unwrap();
    let t = Instant::now();
    waiter.lock_timeout(Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(!marker.exists());
    std::mem::forget(old);
}

/// A process paused between stamping its claim and linking it (longer than the lifetime)
/// must not come back holding a lock that is born expired: it confirms and re-stamps the
/// lock under the break marker, so a waiter cannot break it at once.
#[test]
fn paused_before_link_gets_a_fresh_lock() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    fs.rule(
        Op::Link,
        Some("test.lck"),
        Fault::Hook(Arc::new(|| std::thread::sleep(Duration::from_millis(1300)))),
        1,
    );
    let b = Lock::builder(&path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(100))
        .build()
        .unwrap();
    b.lock().unwrap();
    let left = b.expires_in().unwrap().unwrap();
    assert!(
        left > Duration::from_millis(800),
        "born (nearly) expired: {left:?} left"
    );
    let c = Lock::builder(&path)
        .clock_margin(Duration::from_millis(100))
        .build()
        .unwrap();
    assert_eq!(c.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(b.is_locked().unwrap());
}

/// ... and if a breaker got in first (it judged the born-expired lock and broke it before
/// we took the marker), we find the lock is not ours and wait again: never two holders.
#[test]
fn paused_before_link_and_broken_meanwhile() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    fs.rule(
        Op::Link,
        Some("test.lck"),
        Fault::Hook(Arc::new(|| std::thread::sleep(Duration::from_millis(1300)))),
        1,
    );
    let p2 = path.clone();
    let thief: Arc<Mutex<Option<Lock>>> = Arc::new(Mutex::new(None));
    let t2 = thief.clone();
    // When b goes for the marker to confirm its new lock, a breaker acts first.
    fs.rule(
        Op::Link,
        Some(".break"),
        Fault::Hook(Arc::new(move || {
            let c = Lock::builder(&p2)
                .clock_margin(Duration::from_millis(100))
                .build()
                .unwrap();
            c.try_lock().expect("the breaker takes the expired lock");
            *t2.lock().unwrap() = Some(c);
        })),
        1,
    );
    let b = Lock::builder(&path)
        .filesystem(fs.clone())
        .lifetime(Duration::from_secs(1))
        .clock_margin(Duration::from_millis(100))
        .build()
        .unwrap();
    let r = b.lock_timeout(Duration::from_millis(2000));
    let thief = thief.lock().unwrap().take().expect("the breaker ran");
    assert!(thief.is_locked().unwrap(), "the breaker lost its lock");
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "two holders? {e}");
    assert!(!b.is_locked().unwrap());
}

/// Lost NFS replies to REMOVE and RENAME (the call was done, the retransmission says
/// ENOENT): an unlock still succeeds; a break still completes and leaves nothing behind.
#[test]
fn lost_remove_and_rename_replies() {
    let (dir, path) = lock_path();
    let fs = FaultyFs::new();
    let lock = faulty(&path, &fs);
    lock.lock().unwrap();
    fs.rule(Op::Unlink, Some("test.lck"), Fault::AfterErr(ENOENT), 1);
    lock.unlock().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(10))
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    fs.rule(Op::Rename, Some("test.lck"), Fault::AfterErr(ENOENT), 1);
    lock.lock_timeout(Duration::from_secs(2)).unwrap();
    assert!(lock.is_locked().unwrap());
    lock.unlock().unwrap();
    std::mem::forget(old);
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// A refresh near expiry and a breaker that already judged the lock expired never both
/// win. Here the breaker is paused (after judging, before its rename) for longer than the
/// holder's marker lifetime, so the refreshing holder presumes the marker stale, removes it
/// and refreshes; the breaker, resuming, finds its marker displaced and does not break. The
/// outcome must be consistent: a refresh that said Ok keeps the lock, and the breaker does
/// not hold it (flufl.lock's refresh would just touch the file and the breaker unlink it).
#[test]
fn refresh_and_breaker_never_both_win() {
    let (_dir, path) = lock_path();
    let holder = Arc::new(
        Lock::builder(&path)
            .lifetime(Duration::from_millis(300))
            .clock_margin(Duration::from_millis(50))
            .marker_lifetime(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    holder.lock().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let fs = FaultyFs::new();
    let (h2, result) = (holder.clone(), Arc::new(Mutex::new(None)));
    let r2 = result.clone();
    // After the breaker judged the lock under the marker, just before it renames it away.
    fs.rule(
        Op::Rename,
        Some("test.lck"),
        Fault::Hook(Arc::new(move || {
            *r2.lock().unwrap() = Some(h2.refresh(Some(Duration::from_secs(30)), false));
        })),
        1,
    );
    let breaker = Lock::builder(&path)
        .filesystem(fs.clone())
        .clock_margin(Duration::from_millis(50))
        .build()
        .unwrap();
    let broke = breaker.lock_timeout(Duration::from_secs(2)).is_ok();
    let refreshed = result.lock().unwrap().take().expect("the hook ran").is_ok();
    assert_ne!(
        broke, refreshed,
        "breaker won: {broke}, refresh said Ok: {refreshed}"
    );
    assert_eq!(holder.is_locked().unwrap(), refreshed);
    assert_eq!(breaker.is_locked().unwrap(), broke);
}

/// A waiter's wall clock stepping forward after it learned the server's clock does not make
/// it break a live lock early (the server clock runs on the boot clock).
#[test]
fn wall_clock_step_does_not_break_early() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (_dir, path) = lock_path();
    let holder = Lock::builder(&path)
        .lifetime(Duration::from_secs(4))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let step = Arc::new(AtomicU64::new(0));
    let s2 = step.clone();
    let clock =
        move || std::time::SystemTime::now() + Duration::from_secs(s2.load(Ordering::SeqCst));
    let waiter = Lock::builder(&path).clock(clock).build().unwrap();
    let stepper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        step.store(5, Ordering::SeqCst);
    });
    let e = waiter.lock_timeout(Duration::from_millis(800)).unwrap_err();
    stepper.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(holder.is_locked().unwrap());
}

/// An `unlink` that fails with `ESTALE` without removing anything (found by the simulation,
/// `crates/flufl-lock-sim/regressions.txt`): the unlock settles it by `lstat` and removes
/// the lock file and the claim file again, rather than taking the error as "done" and
/// leaving the lock held until it expires.
#[test]
fn estale_without_effect_on_unlock_removals_is_settled() {
    for target in ["test.lck", "test.lck|"] {
        let (dir, path) = lock_path();
        let fs = FaultyFs::new();
        let lock = faulty(&path, &fs);
        lock.lock().unwrap();
        fs.rule(Op::Unlink, Some(target), Fault::Err(ESTALE), 1);
        lock.unlock().unwrap();
        assert_eq!(files_in(dir.path()), Vec::<String>::new(), "{target}");
        assert_eq!(fs.count(Op::Unlink), 3, "{target}: one unlink made again");
    }
}

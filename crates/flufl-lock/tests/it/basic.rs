//! The API contract in a real temporary directory, one process.

use crate::support::{files_in, lock_path};
use flufl_lock::{ErrorKind, Lock, LockState};
use std::time::{Duration, SystemTime};

/// Lock, then unlock: the lock file is a hard link to our claim, whose content is its own
/// path; afterwards nothing is left in the directory.
#[test]
fn lock_unlock_leaves_nothing() {
    let (dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    lock.lock().unwrap();
    let content = std::fs::read(&path).unwrap();
    assert_eq!(content, lock.claimfile().as_os_str().as_encoded_bytes());
    assert!(lock.claimfile().starts_with(dir.path()));
    assert_eq!(files_in(dir.path()).len(), 2);
    lock.unlock().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// Claim name: lock, host, pid, random joined by the separator.
#[test]
fn claim_name_has_flufl_fields() {
    let (_dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    let name = lock.claimfile().to_string_lossy().into_owned();
    let fields: Vec<&str> = name.split(flufl_lock::SEP).collect();
    assert_eq!(fields.len(), 4, "{name}");
    assert_eq!(fields[0], path.to_string_lossy());
    assert_eq!(fields[1], lock.hostname());
    assert_eq!(fields[2], std::process::id().to_string());
    assert!(fields[3].split('.').next().unwrap().parse::<u64>().is_ok());
}

/// A relative path is made absolute at construction.
#[test]
fn relative_path_made_absolute() {
    let lock = Lock::new("some-relative.lck").unwrap();
    assert!(lock.lockfile().is_absolute());
    assert!(lock.claimfile().is_absolute());
}

/// Locking twice is AlreadyLocked; unlocking twice is NotLocked; unconditional unlock is quiet.
#[test]
fn already_and_not_locked() {
    let (_dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    lock.lock().unwrap();
    assert_eq!(lock.lock().unwrap_err().kind(), ErrorKind::AlreadyLocked);
    assert_eq!(
        lock.try_lock().unwrap_err().kind(),
        ErrorKind::AlreadyLocked
    );
    lock.unlock().unwrap();
    assert_eq!(lock.unlock().unwrap_err().kind(), ErrorKind::NotLocked);
    lock.unlock_unconditionally().unwrap();
    assert_eq!(
        lock.refresh(None, false).unwrap_err().kind(),
        ErrorKind::NotLocked
    );
    lock.refresh(None, true).unwrap();
}

/// Another Lock on the same file times out while the first holds it, and the message names
/// the holder; it leaves no claim file behind.
#[test]
fn timeout_names_holder_and_cleans_up() {
    let (dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    let b = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let e = b.lock_timeout(Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let msg = e.to_string();
    assert!(
        msg.contains(&std::process::id().to_string()) && msg.contains(a.hostname()),
        "{msg}"
    );
    assert!(msg.contains("expires in"), "{msg}");
    assert_eq!(b.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(files_in(dir.path()).len(), 2, "only a's claim and the lock");
    a.unlock().unwrap();
    b.try_lock().unwrap();
    b.unlock().unwrap();
}

/// The lock file's mtime is its expiry: about now + lifetime; refresh moves it.
#[test]
fn mtime_is_expiry_and_refresh_moves_it() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_secs(100))
        .build()
        .unwrap();
    lock.lock().unwrap();
    let m = std::fs::metadata(&path).unwrap().modified().unwrap();
    let d = m.duration_since(SystemTime::now()).unwrap();
    assert!(
        d > Duration::from_secs(98) && d <= Duration::from_secs(100),
        "{d:?}"
    );
    lock.refresh(Some(Duration::from_secs(500)), false).unwrap();
    let m = std::fs::metadata(&path).unwrap().modified().unwrap();
    let d = m.duration_since(SystemTime::now()).unwrap();
    assert!(d > Duration::from_secs(498), "{d:?}");
    assert_eq!(lock.expiration().unwrap(), m);
}

/// is_locked, state, details and Debug never extend the lifetime (flufl's is_locked does).
#[test]
fn queries_do_not_touch() {
    let (_dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    lock.lock().unwrap();
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(lock.is_locked().unwrap());
    assert_eq!(lock.state().unwrap(), LockState::Ours);
    let d = lock.details().unwrap();
    assert_eq!(
        (d.pid, d.hostname.as_str(), d.lockfile.as_path()),
        (std::process::id(), lock.hostname(), path.as_path())
    );
    let dbg = format!("{lock:?}");
    assert!(
        dbg.contains("locked") && dbg.contains("test.lck") && dbg.contains("pid"),
        "{dbg}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
}

/// Unlocked, ours, ours_expired and theirs_expired, as flufl.lock defines them.
#[test]
fn states() {
    let (_dir, path) = lock_path();
    let a = Lock::builder(&path)
        .lifetime(Duration::from_millis(200))
        .build()
        .unwrap();
    let b = Lock::builder(&path)
        .foreign_slop(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(a.state().unwrap(), LockState::Unlocked);
    assert!(matches!(
        b.details().unwrap_err().kind(),
        ErrorKind::NotLocked
    ));
    a.lock().unwrap();
    assert_eq!(a.state().unwrap(), LockState::Ours);
    // Same process, alive: unknown to b until expiry.
    assert_eq!(b.state().unwrap(), LockState::Unknown);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.state().unwrap(), LockState::OursExpired);
    assert_eq!(b.state().unwrap(), LockState::TheirsExpired);
}

/// A guard releases on drop; an expired, broken lock's guard drop does not panic.
#[test]
fn guard_releases() {
    let (dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    {
        let g = lock.guard().unwrap();
        assert!(g.lock().is_locked().unwrap());
    }
    assert!(!lock.is_locked().unwrap());
    assert!(files_in(dir.path()).is_empty());
    let g = lock.guard_timeout(Duration::from_secs(1)).unwrap();
    g.unlock().unwrap();
    assert!(files_in(dir.path()).is_empty());
}

/// Dropping a held Lock releases it.
#[test]
fn drop_releases() {
    let (dir, path) = lock_path();
    {
        let lock = Lock::new(&path).unwrap();
        lock.lock().unwrap();
    }
    assert!(files_in(dir.path()).is_empty());
}

/// An expired lock is broken by a waiter, and the expired holder's unlock then reports
/// NotLocked and leaves the new holder's lock alone (flufl.lock would delete it).
#[test]
fn expired_lock_broken_and_old_holder_cannot_unlock_new_one() {
    let (dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(100))
        .build()
        .unwrap();
    let new = Lock::new(&path).unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(700)); // past lifetime + clock margin
    new.lock_timeout(Duration::from_secs(5)).unwrap();
    assert!(new.is_locked().unwrap());
    assert!(!old.is_locked().unwrap());
    let e = old.unlock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotLocked, "{e}");
    assert!(e.to_string().contains("broken"), "{e}");
    assert!(new.is_locked().unwrap());
    new.unlock().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// The keep-alive refreshes a held lock, so a waiter cannot break it past its lifetime.
#[test]
fn keep_alive_keeps_lock() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_millis(300))
        .clock_margin(Duration::from_millis(50))
        .build()
        .unwrap();
    lock.lock().unwrap();
    let keep = lock.keep_alive(|_| {});
    let other = Lock::new(&path).unwrap();
    assert_eq!(
        other
            .lock_timeout(Duration::from_millis(1200))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert!(!keep.is_lost());
    drop(keep);
    lock.unlock().unwrap();
}

/// The keep-alive reports a lost lock through its flag and callback.
#[test]
fn keep_alive_reports_loss() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .lifetime(Duration::from_millis(300))
        .build()
        .unwrap();
    lock.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let keep = lock.keep_alive(move |e| {
        let _ = tx.send(e.kind());
    });
    // Someone removes our lock and takes it.
    std::fs::remove_file(&path).unwrap();
    let thief = Lock::new(&path).unwrap();
    thief.lock().unwrap();
    let kind = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("loss reported");
    assert_eq!(kind, ErrorKind::NotLocked);
    assert!(keep.is_lost());
    assert!(thief.is_locked().unwrap());
}

/// refresh after our lock was broken (our claim file removed with it) is NotLocked, not an
/// I/O error; unconditionally, it is quiet.
#[test]
fn refresh_after_break_is_not_locked() {
    let (_dir, path) = lock_path();
    let old = Lock::builder(&path)
        .lifetime(Duration::from_millis(50))
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let new = Lock::new(&path).unwrap();
    new.lock_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        !old.claimfile().exists(),
        "the breaker removes the broken claim"
    );
    assert_eq!(
        old.refresh(None, false).unwrap_err().kind(),
        ErrorKind::NotLocked
    );
    old.refresh(None, true).unwrap();
    assert!(new.is_locked().unwrap());
}

/// The Windows separator works anywhere, and the claim carries it.
#[test]
fn caret_separator() {
    let (_dir, path) = lock_path();
    let a = Lock::builder(&path).separator('^').build().unwrap();
    a.lock().unwrap();
    assert_eq!(a.details().unwrap().pid, std::process::id());
    assert!(a.claimfile().to_string_lossy().contains('^'));
    a.unlock().unwrap();
}

/// A wall clock 30 s ahead or behind does not move our expiry: it is written in the file
/// server's clock, learned from our own claim (flufl.lock writes its own clock's time).
#[test]
fn skewed_clock_does_not_move_expiry() {
    for skew in [30i64, -30] {
        let (_dir, path) = lock_path();
        let clock = move || {
            let now = SystemTime::now();
            if skew > 0 {
                now + Duration::from_secs(skew as u64)
            } else {
                now - Duration::from_secs((-skew) as u64)
            }
        };
        let holder = Lock::builder(&path)
            .lifetime(Duration::from_secs(20))
            .clock(clock)
            .build()
            .unwrap();
        holder.lock().unwrap();
        let m = std::fs::metadata(&path).unwrap().modified().unwrap();
        let left = m
            .duration_since(SystemTime::now())
            .expect("expiry in the future");
        assert!(
            left > Duration::from_secs(18) && left <= Duration::from_secs(20),
            "skew {skew}: {left:?}"
        );
        // A waiter whose clock is skewed the other way neither breaks early...
        let other = move || {
            let now = SystemTime::now();
            if skew < 0 {
                now + Duration::from_secs((-skew) as u64)
            } else {
                now - Duration::from_secs(skew as u64)
            }
        };
        let waiter = Lock::builder(&path).clock(other).build().unwrap();
        assert_eq!(waiter.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
        let left = waiter.expires_in().unwrap().unwrap();
        assert!(
            left > Duration::from_secs(18),
            "skew {skew}: waiter sees {left:?}"
        );
        holder.unlock().unwrap();
    }
}

/// With a fake clock, a skewed waiter still breaks within lifetime + margin, not earlier.
#[test]
fn skewed_waiter_breaks_on_time() {
    let (_dir, path) = lock_path();
    let holder = Lock::builder(&path)
        .lifetime(Duration::from_millis(600))
        .build()
        .unwrap();
    holder.lock().unwrap();
    let ahead = || SystemTime::now() + Duration::from_secs(30);
    let waiter = Lock::builder(&path).clock(ahead).build().unwrap();
    let t = std::time::Instant::now();
    waiter.lock_timeout(Duration::from_secs(10)).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(550),
        "broke early after {took:?}"
    );
    assert!(
        took < Duration::from_millis(600 + 500 + 700),
        "late: {took:?}"
    );
}

/// Wait callbacks report the holder and a countdown.
#[test]
fn on_wait_reports_holder() {
    let (_dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let b = Lock::builder(&path)
        .on_wait(move |w| s2.lock().unwrap().push(w.clone()))
        .build()
        .unwrap();
    let _ = b.lock_timeout(Duration::from_millis(100));
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    let w = &seen[seen.len() - 1];
    assert_eq!(w.holder.as_ref().unwrap().pid, std::process::id());
    assert!(w.expires_in.unwrap() > Duration::from_secs(10));
}

/// A waiter with a long poll interval is still woken at once by a release (inotify), on
/// Linux local filesystems.
#[cfg(target_os = "linux")]
#[test]
fn release_wakes_waiter() {
    let (_dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let p2 = path.clone();
    let t = std::thread::spawn(move || {
        let b = Lock::builder(&p2)
            .poll_interval(Duration::from_secs(20), Duration::from_secs(20))
            .build()
            .unwrap();
        let r = b.lock_timeout(Duration::from_secs(15));
        let at = std::time::Instant::now();
        r.map(|()| at)
    });
    std::thread::sleep(Duration::from_millis(300));
    let released = std::time::Instant::now();
    a.unlock().unwrap();
    let acquired = t.join().unwrap().expect("acquired");
    let lag = acquired - released;
    assert!(
        lag < Duration::from_secs(2),
        "waiter slept through the release: {lag:?}"
    );
}

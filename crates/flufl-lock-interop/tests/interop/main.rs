//! Interoperability with the real Python flufl.lock 10.0.0 (issue 4): Rust and Python
//! processes on the same lock files, each reading the other's locks.
//!
//! The Python side is `testbed/interop/pylock.py`, run by the interpreter of the venv that
//! `testbed/interop/setup.sh` makes (`target/interop-venv`, or `$FLUFL_PY`). Without it
//! every test fails and says how to install it; none skips. The Rust side's other
//! processes are re-runs of this test executable (`child_entry` with an environment);
//! `support.rs` starts and talks to both kinds of process.
//! Every wait has a time limit: a hang is a failure.
#![cfg(unix)]
// The tests report their counts and timings (seen with --nocapture), and child processes
// talk to the test on stdout.
#![allow(clippy::print_stdout)]

mod support;

use flufl_lock::{BreakOutcome, ErrorKind, Lock, LockState};
use flufl_lock_testkit::{assert_no_leftovers, check_sections, Rng};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{
    is_zombie, lock_path, poll_until, py_details, py_state, rs_state, s, say, Proc, CHILD, STEP,
};

/// flufl.lock's `CLOCK_SLOP` plus its longest pause between attempts (2.01 s), with room:
/// how long a Python breaker may take past a lock's expiry.
const PY_BREAK_LIMIT: Duration = Duration::from_secs(30);
const EX_TEMPFAIL: i32 = 75;

// ---------------------------------------------------------------------------------------
// The Rust child processes
// ---------------------------------------------------------------------------------------

/// Not a test on its own: the body of the Rust child processes the other tests start.
///
/// `hold`: lock with lifetime `LIFETIME_MS`, print `locked`, wait for EOF on stdin, unlock,
/// print `unlocked` (or `lost` if the lock was broken meanwhile).
/// `contend`: print `ready`, wait for a line on stdin, then take the lock `N` times, each
/// critical section logging `E rs<pid> <i>` / `X rs<pid> <i>` to `LOG` around an increment
/// of the integer in `COUNTER`.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let path = PathBuf::from(std::env::var_os("LOCK").expect("LOCK"));
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("child needs {k}"));
    match mode.as_str() {
        "hold" => {
            let ms: u64 = var("LIFETIME_MS").parse().expect("LIFETIME_MS");
            let lock = Lock::builder(&path)
                .lifetime(Duration::from_millis(ms))
                .build()
                .unwrap();
            lock.lock_timeout(STEP).unwrap();
            say("locked");
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            match lock.unlock() {
                Ok(()) => say("unlocked"),
                Err(e) if e.kind() == ErrorKind::NotLocked => say("lost"),
                Err(e) => panic!("unlock: {e}"),
            }
        }
        "contend" => {
            let n: usize = var("N").parse().expect("N");
            let (log, counter) = (var("LOG"), var("COUNTER"));
            let lock = Lock::builder(&path)
                .lifetime(Duration::from_secs(60))
                .build()
                .unwrap();
            let me = format!("rs{}", std::process::id());
            let mut jitter = Rng::new(Rng::fresh_seed());
            say("ready");
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).expect("read go");
            for i in 0..n {
                lock.lock_timeout(Duration::from_secs(60)).unwrap();
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)
                    .unwrap();
                writeln!(f, "E {me} {i}").unwrap();
                let v: u64 = match std::fs::read_to_string(&counter) {
                    Ok(s) => s.parse().unwrap_or_else(|e| panic!("counter {s:?}: {e}")),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                    Err(e) => panic!("read counter: {e}"),
                };
                // Widen the read-modify-write window a little (as the Python side does).
                std::thread::sleep(Duration::from_micros(jitter.below(500)));
                std::fs::write(&counter, (v + 1).to_string()).unwrap();
                writeln!(f, "X {me} {i}").unwrap();
                drop(f);
                lock.unlock().unwrap();
                // A short pause outside the lock, so that the others get a turn.
                std::thread::sleep(Duration::from_micros(jitter.below(2000)));
            }
            say("done");
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Waiting on each other
// ---------------------------------------------------------------------------------------

/// Python holds: Rust times out (`TimedOut`, also for `try_lock`). Python releases while
/// Rust waits: Rust acquires. Nothing is left behind.
#[test]
fn python_holds_rust_times_out_then_acquires() {
    let t = Instant::now();
    let (dir, path) = lock_path();
    let mut py = Proc::python(&["hold", s(&path), "60"]);
    py.expect("locked");

    let rs = Lock::new(&path).unwrap();
    let err = rs.lock_timeout(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(rs.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(!rs.is_locked().unwrap());

    let waiter = std::thread::spawn(move || rs.lock_timeout(STEP).map(|()| rs));
    std::thread::sleep(Duration::from_millis(200));
    py.release();
    py.expect("unlocked");
    py.success();
    let rs = waiter
        .join()
        .expect("waiter thread")
        .expect("Rust acquires once Python releases");
    assert!(rs.is_locked().unwrap());
    assert_eq!(rs.details().unwrap().pid, std::process::id());
    rs.unlock().unwrap();
    assert_no_leftovers(dir.path(), &[]);
    println!(
        "python_holds_rust_times_out_then_acquires: {:.1?}",
        t.elapsed()
    );
}

/// Rust holds: Python's `lock(timeout)` raises `TimeOutError`. Rust releases while Python
/// waits: Python acquires. Nothing is left behind.
#[test]
fn rust_holds_python_times_out_then_acquires() {
    let t = Instant::now();
    let (dir, path) = lock_path();
    let rs = Lock::builder(&path)
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    rs.lock().unwrap();

    let mut py = Proc::python(&["try", s(&path), "1"]);
    py.expect("trying");
    py.expect("timeout");
    assert_eq!(py.code(), EX_TEMPFAIL);
    assert!(
        rs.is_locked().unwrap(),
        "Python's timed-out attempt left our lock alone"
    );

    let mut py = Proc::python(&["try", s(&path), "20"]);
    py.expect("trying");
    std::thread::sleep(Duration::from_millis(300));
    rs.unlock().unwrap();
    py.expect("acquired");
    py.expect("unlocked");
    py.success();
    assert_no_leftovers(dir.path(), &[]);
    println!(
        "rust_holds_python_times_out_then_acquires: {:.1?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// 2. Mixed contention
// ---------------------------------------------------------------------------------------

/// What a contention log shows.
#[derive(Debug, Default)]
struct LogStats {
    sections: usize,
    python: usize,
    rust: usize,
    /// Consecutive critical sections by different processes.
    handovers: usize,
    /// ... of which between a Python and a Rust process.
    cross_handovers: usize,
}

/// Checks a log of enter/exit records with the test kit's overlap checker (every `E id i`
/// is followed by `X id i` before any other record, each process's iterations come in order
/// 0, 1, 2, ... with none missing) and counts its sections and handovers. `Err` says what is
/// wrong, and where.
fn check_log(log: &str) -> Result<LogStats, String> {
    let sections = check_sections(log)?;
    let mut stats = LogStats {
        sections: sections.len(),
        ..LogStats::default()
    };
    for s in &sections {
        if s.id.starts_with("py") {
            stats.python += 1;
        } else {
            stats.rust += 1;
        }
    }
    for pair in sections.windows(2) {
        let (prev, id) = (&pair[0].id, &pair[1].id);
        if prev != id {
            stats.handovers += 1;
            if prev[..2] != id[..2] {
                stats.cross_handovers += 1;
            }
        }
    }
    Ok(stats)
}

/// The checker is not vacuous: it rejects an overlap, a lost exit, a skipped iteration.
#[test]
fn contention_checker_rejects_bad_logs() {
    let good = "E py1 0\nX py1 0\nE rs2 0\nX rs2 0\nE py1 1\nX py1 1\n";
    let st = check_log(good).unwrap();
    assert_eq!((st.sections, st.python, st.rust), (3, 2, 1));
    assert_eq!((st.handovers, st.cross_handovers), (2, 2));
    for bad in [
        "E py1 0\nE rs2 0\nX py1 0\nX rs2 0\n",
        "E py1 0\nX rs2 0\n",
        "E py1 0\nX py1 0\nE py1 2\nX py1 2\n",
        "E py1 0\n",
    ] {
        assert!(check_log(bad).is_err(), "accepted {bad:?}");
    }
}

/// Three Python and three Rust processes take one lock 80 times each (480 acquisitions), all
/// starting together: no overlapping critical sections, no lost counter updates, nothing
/// left behind. Prints the counts.
#[test]
fn mixed_contention_no_overlap_no_lost_update() {
    let t = Instant::now();
    let (dir, path) = lock_path();
    let log = dir.path().join("log");
    let counter = dir.path().join("counter");
    let (py_procs, rs_procs, n) = (3, 3, 80);
    let n_str = n.to_string();
    let mut procs: Vec<Proc> = Vec::new();
    for _ in 0..rs_procs {
        procs.push(Proc::rust(
            "contend",
            &path,
            &[("N", &n_str), ("LOG", s(&log)), ("COUNTER", s(&counter))],
        ));
    }
    for _ in 0..py_procs {
        procs.push(Proc::python_env(
            &["contend", s(&path), &n_str, s(&log), s(&counter)],
            // flufl's pause between attempts is 0.01..2.01 s; make it comparable to the
            // Rust side's so that the processes really interleave (the algorithm is
            // unchanged).
            &[("PYLOCK_POLL_MAX", "0.005")],
        ));
    }
    for p in &mut procs {
        p.expect("ready");
    }
    let started = Instant::now();
    for p in &mut procs {
        p.go();
    }
    let deadline = Instant::now() + Duration::from_secs(45);
    for p in &mut procs {
        p.expect_within("done", deadline.saturating_duration_since(Instant::now()));
        let st = p.wait_until(deadline);
        assert!(st.success(), "{}: {st:?}; printed {:?}", p.name, p.seen);
    }
    let ran = started.elapsed();
    let total = (py_procs + rs_procs) * n;
    let stats = check_log(&std::fs::read_to_string(&log).unwrap())
        .unwrap_or_else(|e| panic!("contention log: {e}"));
    assert_eq!(stats.sections, total, "{stats:?}");
    assert_eq!(stats.python, py_procs * n);
    assert_eq!(stats.rust, rs_procs * n);
    let count = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(count, total.to_string(), "lost updates");
    // No claim files or markers left behind.
    assert_no_leftovers(dir.path(), &["counter", "log"]);
    println!(
        "mixed contention: {py_procs} Python + {rs_procs} Rust processes, {total} \
         acquisitions ({} Python, {} Rust), {} critical sections checked, 0 overlapping, \
         counter {count} (0 lost updates), {} handovers between processes ({} between \
         Python and Rust), in {ran:.1?} ({:.1?} in all)",
        stats.python,
        stats.rust,
        stats.sections,
        stats.handovers,
        stats.cross_handovers,
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Details and state
// ---------------------------------------------------------------------------------------

/// Rust reads a Python-held lock's hostname, pid and lock file exactly as Python's
/// `Lock.details` gives them; Python reads a Rust-held lock's details as Rust gives them.
#[test]
fn details_read_both_ways() {
    let t = Instant::now();
    let (dir, path) = lock_path();
    let host = Lock::new(&path).unwrap().hostname().to_string();

    // Python holds.
    let mut py = Proc::python(&["hold", s(&path), "60"]);
    py.expect("locked");
    let (py_host, py_pid, py_lockfile) = py_details(&path);
    let d = Lock::new(&path).unwrap().details().unwrap();
    assert_eq!(d.hostname, py_host);
    assert_eq!(d.pid, py_pid);
    assert_eq!(d.lockfile, py_lockfile);
    assert_eq!(d.pid, py.pid());
    assert_eq!(d.lockfile, path);
    assert_eq!(d.hostname, host, "Python's claim names the host as we do");
    assert!(
        d.claimfile.is_file(),
        "the Python holder's claim file is {d:?}"
    );
    py.release();
    py.expect("unlocked");
    py.success();

    // A Rust process holds.
    let mut rs = Proc::rust("hold", &path, &[("LIFETIME_MS", "60000")]);
    rs.expect("locked");
    let (py_host, py_pid, py_lockfile) = py_details(&path);
    assert_eq!(py_host, host);
    assert_eq!(py_pid, rs.pid());
    assert_eq!(py_lockfile, path);
    let d = Lock::new(&path).unwrap().details().unwrap();
    assert_eq!(
        (d.hostname, d.pid, d.lockfile),
        (py_host, py_pid, py_lockfile)
    );
    rs.release();
    rs.expect("unlocked");
    rs.success();
    assert_no_leftovers(dir.path(), &[]);
    println!("details_read_both_ways: {:.1?}", t.elapsed());
}

/// `unlocked` with no lock file, and `unknown` (flufl's name for "someone else's live
/// lock") for a lock held by a live Python and by a live Rust process, read by both.
#[test]
fn state_unlocked_and_live_holders_agree() {
    let t = Instant::now();
    let (dir, path) = lock_path();
    assert_eq!(rs_state(&path), LockState::Unlocked);
    assert_eq!(py_state(&path), "unlocked");

    let mut py = Proc::python(&["hold", s(&path), "60"]);
    py.expect("locked");
    assert_eq!(rs_state(&path), LockState::Unknown);
    assert_eq!(py_state(&path), "unknown");
    py.release();
    py.expect("unlocked");
    py.success();
    assert_eq!(rs_state(&path), LockState::Unlocked);
    assert_eq!(py_state(&path), "unlocked");

    let mut rs = Proc::rust("hold", &path, &[("LIFETIME_MS", "60000")]);
    rs.expect("locked");
    assert_eq!(rs_state(&path), LockState::Unknown);
    assert_eq!(py_state(&path), "unknown");
    rs.release();
    rs.expect("unlocked");
    rs.success();
    assert_eq!(rs_state(&path), LockState::Unlocked);
    assert_eq!(py_state(&path), "unlocked");
    assert_no_leftovers(dir.path(), &[]);
    println!("state_unlocked_and_live_holders_agree: {:.1?}", t.elapsed());
}

/// A live holder's lock past its lifetime is `theirs_expired` to both, for a Python and a
/// Rust holder (1 s lifetimes). The holders then still unlock cleanly: no one broke them.
#[test]
fn state_expired_agrees() {
    let t = Instant::now();
    let (dir, path_py) = lock_path();
    let path_rs = dir.path().join("rust.lck");
    let mut py = Proc::python(&["hold", s(&path_py), "1"]);
    let mut rs = Proc::rust("hold", &path_rs, &[("LIFETIME_MS", "1000")]);
    py.expect("locked");
    rs.expect("locked");
    for path in [&path_py, &path_rs] {
        poll_until(&format!("{} to expire", path.display()), STEP, || {
            rs_state(path) == LockState::TheirsExpired
        });
        assert_eq!(py_state(path), "theirs_expired", "{}", path.display());
    }
    py.release();
    py.expect("unlocked");
    py.success();
    rs.release();
    rs.expect("unlocked");
    rs.success();
    assert_no_leftovers(dir.path(), &[]);
    println!("state_expired_agrees: {:.1?}", t.elapsed());
}

/// A holder killed by SIGKILL (and reaped) on this host is `stale` to both, for a Python
/// and a Rust holder. While it is an unreaped zombie, Rust already says `stale` and flufl
/// still `unknown` (psutil counts a zombie as a running pid): a documented difference.
/// Then: Rust breaks the stale Rust lock at once (its claim proves the holder dead), but
/// not the stale Python lock (flufl's claim carries no such proof) until forced.
#[test]
fn state_stale_agrees() {
    let t = Instant::now();
    let (dir, path) = lock_path();

    // Python holder.
    let mut py = Proc::python(&["hold", s(&path), "60"]);
    py.expect("locked");
    let held = Lock::new(&path).unwrap().details().unwrap();
    py.kill();
    poll_until("the killed Python holder to be a zombie", STEP, || {
        is_zombie(py.pid())
    });
    assert_eq!(rs_state(&path), LockState::Stale);
    assert_eq!(py_state(&path), "unknown", "flufl: a zombie's pid exists");
    py.reap();
    assert_eq!(rs_state(&path), LockState::Stale);
    assert_eq!(py_state(&path), "stale");
    let breaker = Lock::new(&path).unwrap();
    match breaker.break_lock(false).unwrap() {
        BreakOutcome::Live(d) => assert_eq!(d, held),
        other => panic!("a stale flufl lock is broken only at expiry or by force: {other:?}"),
    }
    match breaker.break_lock(true).unwrap() {
        BreakOutcome::Broken(d) => assert_eq!(d, held),
        other => panic!("forced break: {other:?}"),
    }
    assert!(
        !held.claimfile.exists(),
        "the holder's claim file was removed"
    );
    assert_no_leftovers(dir.path(), &[]);

    // Rust holder.
    let mut rs = Proc::rust("hold", &path, &[("LIFETIME_MS", "60000")]);
    rs.expect("locked");
    let held = Lock::new(&path).unwrap().details().unwrap();
    rs.kill();
    poll_until("the killed Rust holder to be a zombie", STEP, || {
        is_zombie(rs.pid())
    });
    assert_eq!(rs_state(&path), LockState::Stale);
    assert_eq!(py_state(&path), "unknown", "flufl: a zombie's pid exists");
    rs.reap();
    assert_eq!(rs_state(&path), LockState::Stale);
    assert_eq!(py_state(&path), "stale");
    let taker = Lock::new(&path).unwrap();
    taker
        .try_lock()
        .expect("a proven-dead Rust holder's lock is broken at once");
    assert!(
        !held.claimfile.exists(),
        "the holder's claim file was removed"
    );
    taker.unlock().unwrap();
    assert_no_leftovers(dir.path(), &[]);
    println!("state_stale_agrees: {:.1?}", t.elapsed());
}

// ---------------------------------------------------------------------------------------
// 4. Breaking
// ---------------------------------------------------------------------------------------

/// Rust breaks the expired lock of a live Python holder (1 s lifetime) and removes its
/// claim file; Python's flufl.lock breaks the expired lock of a live Rust holder (1 s
/// lifetime) through its own break path. Both wait out flufl's 10 s clock slop, so the two
/// run at once. Each holder then finds its lock lost; no claim files are left behind.
#[test]
fn breaking_expired_locks_both_ways() {
    let t = Instant::now();
    std::thread::scope(|scope| {
        let a = scope.spawn(rust_breaks_expired_python_lock);
        let b = scope.spawn(python_breaks_expired_rust_lock);
        for h in [a, b] {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    println!("breaking_expired_locks_both_ways: {:.1?}", t.elapsed());
}

fn rust_breaks_expired_python_lock() {
    let (dir, path) = lock_path();
    let mut py = Proc::python(&["hold", s(&path), "1"]);
    py.expect("locked");
    let held = Lock::new(&path).unwrap().details().unwrap();
    assert_eq!(held.pid, py.pid());
    assert!(held.claimfile.is_file());

    let breaker = Lock::new(&path).unwrap();
    poll_until("the Python lock to expire", STEP, || {
        breaker.state().unwrap() == LockState::TheirsExpired
    });
    let expired_at = Instant::now();
    assert_eq!(py_state(&path), "theirs_expired");
    // Within flufl's 10 s slop a flufl-written lock is not broken (its expiry is in its
    // writer's clock).
    match breaker.break_lock(false).unwrap() {
        BreakOutcome::Live(d) => assert_eq!(d, held),
        other => panic!("broke a flufl lock within its clock slop: {other:?}"),
    }
    breaker
        .lock_timeout(Duration::from_secs(30))
        .expect("Rust breaks the expired Python lock");
    let waited = expired_at.elapsed();
    assert!(
        !held.claimfile.exists(),
        "the Python holder's claim file was removed with its lock"
    );
    assert_eq!(breaker.details().unwrap().pid, std::process::id());
    breaker.unlock().unwrap();
    py.release();
    py.expect("lost");
    py.success();
    assert_no_leftovers(dir.path(), &[]);
    println!("  Rust broke an expired Python lock {waited:.1?} after it expired");
}

fn python_breaks_expired_rust_lock() {
    let (dir, path) = lock_path();
    let mut rs = Proc::rust("hold", &path, &[("LIFETIME_MS", "1000")]);
    rs.expect("locked");
    let held = Lock::new(&path).unwrap().details().unwrap();
    assert_eq!(held.pid, rs.pid());
    assert!(held.claimfile.is_file());

    let t = Instant::now();
    let mut py = Proc::python(&["break", s(&path), "30"]);
    py.expect("trying");
    let broke = py.line_where("\"broke N\"", PY_BREAK_LIMIT, |l| l.starts_with("broke "));
    let took = t.elapsed();
    let n: u32 = broke["broke ".len()..].parse().expect("broke N");
    assert!(n >= 1, "flufl acquired without its break path: {broke:?}");
    py.expect("unlocked");
    py.success();
    assert!(
        !held.claimfile.exists(),
        "flufl removed the Rust holder's claim file with its lock"
    );
    rs.release();
    rs.expect("lost");
    rs.success();
    assert_no_leftovers(dir.path(), &[]);
    println!("  Python broke an expired Rust lock (1 s lifetime) in {took:.1?}");
}

/// A flufl.lock holder that calls `lock()` again gets `AlreadyLockedError`, but first
/// rewrites its claim file, which is the lock file: for a moment the lock file is empty.
/// flufl.lock's waiters just go on waiting (they never break what is not a claim); a Rust
/// waiter must too, and time out with `TimedOut`, not fail.
#[test]
fn rust_waiter_rides_out_flufl_relock_rewrites() {
    let (dir, path) = lock_path();
    let mut py = Proc::python(&["relock", s(&path), "3"]);
    py.expect("locked");
    let rs = Lock::new(&path).unwrap();
    let mut errors = Vec::new();
    for _ in 0..5 {
        match rs.lock_timeout(Duration::from_millis(300)) {
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) => errors.push(format!("{:?}: {e}", e.kind())),
            Ok(()) => panic!("acquired a lock that flufl holds"),
        }
    }
    let relocks = py.line_where("\"relocks N\"", STEP, |l| l.starts_with("relocks "));
    py.success();
    assert!(
        errors.is_empty(),
        "{relocks}; Rust waiter failed: {errors:?}"
    );
    rs.lock_timeout(STEP).unwrap();
    rs.unlock().unwrap();
    assert_no_leftovers(dir.path(), &[]);
}

// ---------------------------------------------------------------------------------------
// 5. Host name
// ---------------------------------------------------------------------------------------

/// The host name the library writes into claims is Python's `socket.getfqdn()` here.
#[test]
fn hostname_is_python_getfqdn() {
    let (_dir, path) = lock_path();
    let mut py = Proc::python(&["getfqdn"]);
    let fqdn = py.line();
    py.success();
    let lock = Lock::new(&path).unwrap();
    assert_eq!(lock.hostname(), fqdn);
    println!("hostname: {fqdn}");
}

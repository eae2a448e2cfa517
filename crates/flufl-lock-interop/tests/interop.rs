//! Interoperability with the real Python flufl.lock 10.0.0 (issue 4): Rust and Python
//! processes on the same lock files, each reading the other's locks.
//!
//! The Python side is `testbed/interop/pylock.py`, run by the interpreter of the venv that
//! `testbed/interop/setup.sh` makes (`target/interop-venv`, or `$FLUFL_PY`). Without it
//! every test fails and says how to install it; none skips. The Rust side's other
//! processes are re-runs of this test executable (`child_entry` with an environment).
//! Every wait has a time limit: a hang is a failure.
#![cfg(unix)]
// The tests report their counts and timings (seen with --nocapture), and child processes
// talk to the test on stdout.
#![allow(clippy::print_stdout)]

use flufl_lock::{BreakOutcome, ErrorKind, Lock, LockState};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest any one step (a process starting, answering, exiting) may take.
const STEP: Duration = Duration::from_secs(20);
/// flufl.lock's `CLOCK_SLOP` plus its longest pause between attempts (2.01 s), with room:
/// how long a Python breaker may take past a lock's expiry.
const PY_BREAK_LIMIT: Duration = Duration::from_secs(30);
const CHILD: &str = "FLUFL_INTEROP_CHILD";
const EX_TEMPFAIL: i32 = 75;

// ---------------------------------------------------------------------------------------
// Finding Python, and running processes with time limits
// ---------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn helper() -> PathBuf {
    workspace_root().join("testbed/interop/pylock.py")
}

/// The venv's Python, checked once to have flufl.lock 10.0.0.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let py = match std::env::var_os("FLUFL_PY") {
            Some(p) => PathBuf::from(p),
            None => workspace_root().join("target/interop-venv/bin/python"),
        };
        assert!(
            py.exists(),
            "no Python with flufl.lock at {}: run `bash testbed/interop/setup.sh` from the \
             repository root first (or set FLUFL_PY to a Python that has flufl.lock 10.0.0)",
            py.display()
        );
        let mut cmd = Command::new(&py);
        cmd.arg(helper()).arg("version");
        let mut p = Proc::spawn("python pylock.py version".into(), cmd);
        let version = p.line();
        p.success();
        assert_eq!(
            version,
            "10.0.0",
            "{} has flufl.lock {version}, not 10.0.0: run `bash testbed/interop/setup.sh`",
            py.display()
        );
        py
    })
}

/// A child process whose stdout is read line by line, with a time limit on every wait.
/// Dropping it kills it, so a failing test leaves nothing running.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: String, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        });
        Proc {
            name,
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
            status: None,
        }
    }

    /// `pylock.py ARGS...` under the venv's Python.
    fn python(args: &[&str]) -> Proc {
        Proc::python_env(args, &[])
    }

    fn python_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(python());
        cmd.arg(helper()).args(args).envs(env.iter().copied());
        Proc::spawn(format!("python pylock.py {}", args.join(" ")), cmd)
    }

    /// A Rust child: this executable re-run as `child_entry` in `mode`.
    fn rust(mode: &str, lock: &Path, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.args([
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD, mode)
        .env("LOCK", lock)
        .envs(env.iter().copied());
        Proc::spawn(format!("rust child {mode} {}", lock.display()), cmd)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line that satisfies `pred`, waiting at most `limit`.
    fn line_where(&mut self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no {what} within {limit:?}; it printed {:?}",
                    self.name, self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: output ended without {what}; it printed {:?} (exit: {:?})",
                    self.name,
                    self.seen,
                    self.child.try_wait()
                ),
            }
        }
    }

    /// The next line that is not the test harness's own chatter.
    fn line(&mut self) -> String {
        self.line_where("line", STEP, |l| {
            !l.is_empty() && !l.starts_with("running ") && l != "."
        })
    }

    /// Waits for the line `want`.
    fn expect(&mut self, want: &str) {
        self.expect_within(want, STEP);
    }

    fn expect_within(&mut self, want: &str, limit: Duration) {
        self.line_where(&format!("line {want:?}"), limit, |l| l == want);
    }

    /// Closes the child's stdin: a holder then releases its lock, a contender starts.
    fn release(&mut self) {
        self.stdin.take();
    }

    /// Tells a waiting contender to start.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush go");
    }

    /// Waits for the child to exit, at most until `deadline` (then kills it and fails).
    fn wait_until(&mut self, deadline: Instant) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.status = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: still running at its deadline (a hang); it printed {:?}",
                    self.name, self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait(&mut self) -> ExitStatus {
        self.wait_until(Instant::now() + STEP)
    }

    /// The exit code (failing if it was killed by a signal).
    fn code(&mut self) -> i32 {
        let s = self.wait();
        s.code().unwrap_or_else(|| {
            panic!(
                "{}: killed by a signal ({s:?}); it printed {:?}",
                self.name, self.seen
            )
        })
    }

    fn success(&mut self) {
        let code = self.code();
        assert_eq!(
            code, 0,
            "{}: exit {code}; it printed {:?}",
            self.name, self.seen
        );
    }

    /// SIGKILL, without reaping: the child is left a zombie until [`Proc::reap`].
    fn kill(&mut self) {
        self.child.kill().expect("kill");
    }

    fn reap(&mut self) {
        self.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.lck");
    (dir, path)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// flufl.lock's `Lock(path).state.name`, read by a new Python process.
fn py_state(path: &Path) -> String {
    let mut p = Proc::python(&["state", s(path)]);
    let state = p.line();
    p.success();
    state
}

/// flufl.lock's `Lock(path).details`, read by a new Python process.
fn py_details(path: &Path) -> (String, u32, PathBuf) {
    let mut p = Proc::python(&["details", s(path)]);
    let line = p.line();
    p.success();
    let v: serde_json::Value = serde_json::from_str(&line).expect("details JSON");
    (
        v["hostname"].as_str().expect("hostname").to_string(),
        u32::try_from(v["pid"].as_u64().expect("pid")).expect("pid fits u32"),
        PathBuf::from(v["lockfile"].as_str().expect("lockfile")),
    )
}

/// The state as a new Rust `Lock` (this process, which holds nothing) reads it.
fn rs_state(path: &Path) -> LockState {
    Lock::new(path).unwrap().state().unwrap()
}

/// Polls `cond` every 20 ms until it holds; fails after `limit`.
fn poll_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a zombie (exited, not yet reaped).
fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("Z")
}

/// A small xorshift generator for the children's jitter (no crates needed).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        Jitter(((u64::from(t) << 20) ^ u64::from(std::process::id())) | 1)
    }

    /// A duration uniformly in `0..max_us` microseconds.
    fn upto(&mut self, max_us: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(self.0 % max_us)
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("write stdout");
    out.flush().expect("flush stdout");
}

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
            let mut jitter = Jitter::new();
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
                std::thread::sleep(jitter.upto(500));
                std::fs::write(&counter, (v + 1).to_string()).unwrap();
                writeln!(f, "X {me} {i}").unwrap();
                drop(f);
                lock.unlock().unwrap();
                // A short pause outside the lock, so that the others get a turn.
                std::thread::sleep(jitter.upto(2000));
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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

/// Checks a log of enter/exit records: every `E id i` is followed by `X id i` before any
/// other record (no overlapping critical sections), and each process's iterations come in
/// order 0, 1, 2, ... with none missing. `Err` says what is wrong, and where.
fn check_log(log: &str) -> Result<LogStats, String> {
    let mut stats = LogStats::default();
    let mut inside: Option<(&str, &str)> = None;
    let mut last: Option<&str> = None;
    let mut next_iter: std::collections::HashMap<&str, usize> = Default::default();
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.as_slice(), inside) {
            (["E", id, i], None) => {
                let want = next_iter.entry(id).or_default();
                if i.parse::<usize>().ok() != Some(*want) {
                    return Err(format!(
                        "line {}: {line:?}: {id} skipped or repeated an iteration (next was {want})",
                        n + 1
                    ));
                }
                *want += 1;
                inside = Some((id, i));
            }
            (["X", id, i], Some((iid, ii))) if *id == iid && *i == ii => {
                inside = None;
                stats.sections += 1;
                if id.starts_with("py") {
                    stats.python += 1;
                } else {
                    stats.rust += 1;
                }
                if let Some(prev) = last.filter(|p| p != id) {
                    stats.handovers += 1;
                    if prev[..2] != id[..2] {
                        stats.cross_handovers += 1;
                    }
                }
                last = Some(id);
            }
            _ => {
                return Err(format!(
                    "overlapping critical sections or a corrupt record at line {}: {line:?} \
                     while inside {inside:?}",
                    n + 1
                ))
            }
        }
    }
    match inside {
        Some(_) => Err("the log ends inside a critical section".to_string()),
        None => Ok(stats),
    }
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
    assert_eq!(
        files_in(dir.path()),
        vec!["counter".to_string(), "log".to_string()],
        "claim files or markers left behind"
    );
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());

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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
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

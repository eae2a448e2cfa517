//! Finding Python, running processes with time limits, and small helpers.

use flufl_lock::{Lock, LockState};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest any one step (a process starting, answering, exiting) may take.
pub const STEP: Duration = Duration::from_secs(20);
/// The environment variable that makes this test executable a child (`child_entry`).
pub const CHILD: &str = "FLUFL_INTEROP_CHILD";

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
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: String, mut cmd: Command) -> Proc {
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
    pub fn python(args: &[&str]) -> Proc {
        Proc::python_env(args, &[])
    }

    pub fn python_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(python());
        cmd.arg(helper()).args(args).envs(env.iter().copied());
        Proc::spawn(format!("python pylock.py {}", args.join(" ")), cmd)
    }

    /// A Rust child: this executable re-run as `child_entry` in `mode`.
    pub fn rust(mode: &str, lock: &Path, env: &[(&str, &str)]) -> Proc {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line that satisfies `pred`, waiting at most `limit`.
    pub fn line_where(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
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
    pub fn line(&mut self) -> String {
        self.line_where("line", STEP, |l| {
            !l.is_empty() && !l.starts_with("running ") && l != "."
        })
    }

    /// Waits for the line `want`.
    pub fn expect(&mut self, want: &str) {
        self.expect_within(want, STEP);
    }

    pub fn expect_within(&mut self, want: &str, limit: Duration) {
        self.line_where(&format!("line {want:?}"), limit, |l| l == want);
    }

    /// Closes the child's stdin: a holder then releases its lock, a contender starts.
    pub fn release(&mut self) {
        self.stdin.take();
    }

    /// Tells a waiting contender to start.
    pub fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush go");
    }

    /// Waits for the child to exit, at most until `deadline` (then kills it and fails).
    pub fn wait_until(&mut self, deadline: Instant) -> ExitStatus {
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

    pub fn wait(&mut self) -> ExitStatus {
        self.wait_until(Instant::now() + STEP)
    }

    /// The exit code (failing if it was killed by a signal).
    pub fn code(&mut self) -> i32 {
        let s = self.wait();
        s.code().unwrap_or_else(|| {
            panic!(
                "{}: killed by a signal ({s:?}); it printed {:?}",
                self.name, self.seen
            )
        })
    }

    pub fn success(&mut self) {
        let code = self.code();
        assert_eq!(
            code, 0,
            "{}: exit {code}; it printed {:?}",
            self.name, self.seen
        );
    }

    /// SIGKILL, without reaping: the child is left a zombie until [`Proc::reap`].
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
    }

    pub fn reap(&mut self) {
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

pub fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.lck");
    (dir, path)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// flufl.lock's `Lock(path).state.name`, read by a new Python process.
pub fn py_state(path: &Path) -> String {
    let mut p = Proc::python(&["state", s(path)]);
    let state = p.line();
    p.success();
    state
}

/// flufl.lock's `Lock(path).details`, read by a new Python process.
pub fn py_details(path: &Path) -> (String, u32, PathBuf) {
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
pub fn rs_state(path: &Path) -> LockState {
    Lock::new(path).unwrap().state().unwrap()
}

/// Polls `cond` every 20 ms until it holds; fails after `limit`.
pub fn poll_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
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
pub fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("Z")
}

pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("write stdout");
    out.flush().expect("flush stdout");
}

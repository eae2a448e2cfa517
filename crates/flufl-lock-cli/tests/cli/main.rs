//! The `flufl-lock` command, spawned as users' scripts spawn it. One test binary:
//! - [`portable`]: on every platform, Windows under Wine included (exit status passthrough,
//!   timeouts, status JSON, break, usage errors);
//! - [`posix`]: every subcommand and exit code from shell scripts, signal forwarding, the
//!   parent-death guarantee, lost-lock handling, the JSON shape and bad input;
//! - [`snapshots`]: the trycmd cases in `tests/cmd/*.toml` (`--help`, usage errors,
//!   `status` of an unlocked lock).
//!
//! Every wait has a time limit.

mod portable;
#[cfg(unix)]
mod posix;
mod snapshots;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flufl-lock");

/// The command, with stdin closed.
fn cmd() -> Command {
    let mut c = Command::new(BIN);
    c.stdin(Stdio::null());
    c
}

/// Runs the command with `args` and collects its output; it fails the test if the command
/// takes more than 30 s.
fn run(args: &[&str]) -> Output {
    let mut child = cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).map(|_| buf)
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    Output {
        status,
        stdout: stdout.join().unwrap().unwrap(),
        stderr: stderr.join().unwrap().unwrap(),
    }
}

/// Waits for `child`, killing it and failing the test after `limit`.
fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("flufl-lock did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh directory and the path of `job.lck` in it.
fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("job.lck");
    (d, p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

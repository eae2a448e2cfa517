//! The driver side: starting workers (Rust or Python, on this host or as "another host" in
//! their own UTS and PID namespaces, optionally under strace) and talking to them.

use crate::util::BoxResult;
use flufl_lock_testkit::mono_ns;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// A locking mechanism under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// flufl_lock, defaults (inotify and pidfd waiting on a local filesystem).
    Ours,
    /// flufl_lock with `notify(false)`: what a waiter does on NFS.
    OursNfs,
    /// The bare 7-call link protocol.
    Floor,
    /// Python flufl.lock 10.0.0.
    Flufl,
    /// flock(2).
    Flock,
}

impl Impl {
    pub fn key(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::OursNfs => "ours-nfs",
            Impl::Floor => "floor",
            Impl::Flufl => "flufl",
            Impl::Flock => "flock",
        }
    }
}

/// Where the benchmark finds what it runs.
#[derive(Debug, Clone)]
pub struct Env {
    pub exe: PathBuf,
    pub python: PathBuf,
    pub script: PathBuf,
    pub dir: PathBuf,
}

impl Env {
    /// The command line of a worker (`worker` mode) or a one-shot loop (`loop` mode).
    pub fn argv(&self, imp: Impl, mode: &str, path: &Path, arg: &str) -> Vec<OsString> {
        match imp {
            Impl::Flufl => vec![
                self.python.clone().into(),
                self.script.clone().into(),
                mode.into(),
                path.into(),
                arg.into(),
            ],
            _ => vec![
                self.exe.clone().into(),
                mode.into(),
                imp.key().into(),
                path.into(),
                arg.into(),
            ],
        }
    }
}

/// The prefix that runs a command as "another host": its own UTS namespace (host name
/// `bench-otherhost`) and PID namespace (with its own /proc), sharing the filesystem.
pub fn other_host_prefix() -> Vec<OsString> {
    [
        "unshare",
        "--uts",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
        "hostname bench-otherhost && exec \"$@\"",
        "sh",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// A running worker process.
#[derive(Debug)]
pub struct Worker {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    stderr: PathBuf,
    /// The worker runs under `unshare --fork`: its real pid is the child of `child`.
    namespaced: bool,
}

impl Worker {
    /// Starts `argv` (with an optional prefix such as strace or unshare).
    pub fn spawn(name: &str, dir: &Path, argv: &[OsString], namespaced: bool) -> BoxResult<Worker> {
        let stderr = dir.join(format!("{}.stderr", name.replace(['/', ' '], "_")));
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv[0].to_string_lossy()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            rx,
            stderr,
            namespaced,
        })
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    pub fn send(&mut self, line: &str) -> BoxResult<()> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .map_err(|e| format!("{}: cannot send {line:?}: {e}", self.name))?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits for an answer starting with `word`; returns the words after it.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> BoxResult<Vec<String>> {
        match self.rx.recv_timeout(timeout) {
            Ok(line) => {
                let mut words = line.split_whitespace().map(str::to_string);
                let first = words.next().unwrap_or_default();
                if first == word {
                    Ok(words.collect())
                } else {
                    Err(format!("{}: expected {word:?}, got {line:?}", self.name).into())
                }
            }
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{}: no {word:?} within {timeout:?} (stderr: {})",
                self.name,
                self.stderr_tail()
            )
            .into()),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "{}: exited before answering {word:?} (stderr: {})",
                self.name,
                self.stderr_tail()
            )
            .into()),
        }
    }

    pub fn ask(&mut self, line: &str, word: &str, timeout: Duration) -> BoxResult<Vec<String>> {
        self.send(line)?;
        self.expect(word, timeout)
    }

    /// Like `ask`, for an answer that is one number.
    pub fn ask_num(&mut self, line: &str, word: &str, timeout: Duration) -> BoxResult<f64> {
        let w = self.ask(line, word, timeout)?;
        Ok(w.first().ok_or("empty answer")?.parse()?)
    }

    /// SIGKILLs the worker itself (inside its namespace if it has one) and reaps it.
    /// Returns CLOCK_MONOTONIC just before the kill.
    pub fn kill(&mut self) -> BoxResult<u64> {
        let pid = if self.namespaced {
            let me = self.child.id();
            let kids = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))?;
            kids.split_whitespace()
                .next()
                .ok_or("unshare has no child")?
                .parse::<i32>()?
        } else {
            self.child.id() as i32
        };
        let pid = rustix::process::Pid::from_raw(pid).ok_or("bad pid")?;
        let t = mono_ns();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
        if !self.namespaced {
            self.child.wait()?;
        }
        Ok(t)
    }

    /// Asks the worker to quit and waits for it (kills it after 10 s).
    pub fn quit(mut self) -> BoxResult<()> {
        let _ = self.send("quit");
        self.stdin = None;
        for _ in 0..1000 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("{}: did not quit", self.name).into())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

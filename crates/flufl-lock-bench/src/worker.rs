//! The child side: a worker process holding one locking mechanism, driven by a line
//! protocol on stdin/stdout (the same protocol `testbed/bench/flufl_bench.py` speaks for
//! flufl.lock), and the one-shot `loop` mode counted under strace.

use crate::util::{sleep_until_ns, BoxResult};
use flufl_lock::{ErrorKind, Lock};
use flufl_lock_testkit::mono_ns;
use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The mechanisms implemented in Rust.
#[derive(Debug)]
pub enum Mech {
    /// `flufl_lock::Lock`.
    Ours(Lock),
    /// The bare 7-call link protocol.
    Floor(Floor),
    /// `flock(2)` on a file opened once.
    Flock(OwnedFd),
}

/// The bare-syscall floor: exactly open(O_CREAT|O_EXCL), write, close, link; stat,
/// unlink(lock), unlink(claim). No waiting, no checks: it only runs uncontended.
#[derive(Debug)]
pub struct Floor {
    lock: PathBuf,
    claim: PathBuf,
    content: Vec<u8>,
}

impl Floor {
    fn new(lock: &Path) -> Floor {
        let mut claim = lock.as_os_str().to_owned();
        claim.push(format!("|floor|{}|0", std::process::id()));
        let claim = PathBuf::from(claim);
        let content = claim.as_os_str().as_encoded_bytes().to_vec();
        Floor {
            lock: lock.to_path_buf(),
            claim,
            content,
        }
    }

    fn lock(&self) -> rustix::io::Result<()> {
        let fd = rustix::fs::open(
            &self.claim,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        rustix::io::write(&fd, &self.content)?;
        drop(fd);
        rustix::fs::link(&self.claim, &self.lock)
    }

    fn unlock(&self) -> rustix::io::Result<()> {
        rustix::fs::stat(&self.lock)?;
        rustix::fs::unlink(&self.lock)?;
        rustix::fs::unlink(&self.claim)
    }
}

impl Mech {
    /// `kind`: `ours`, `ours-nfs` (notifications off, as on NFS), `floor` or `flock`.
    pub fn new(kind: &str, path: &Path, lifetime: Duration) -> BoxResult<Mech> {
        Ok(match kind {
            "ours" | "ours-nfs" => Mech::Ours(
                Lock::builder(path)
                    .lifetime(lifetime)
                    .notify(kind == "ours")
                    .build()?,
            ),
            "floor" => Mech::Floor(Floor::new(path)),
            "flock" => Mech::Flock(rustix::fs::open(
                path,
                OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )?),
            _ => return Err(format!("unknown mechanism {kind}").into()),
        })
    }

    pub fn lock(&self) -> BoxResult<()> {
        match self {
            Mech::Ours(l) => l.lock()?,
            Mech::Floor(f) => f.lock()?,
            Mech::Flock(fd) => rustix::fs::flock(fd, FlockOperation::LockExclusive)?,
        }
        Ok(())
    }

    pub fn unlock(&self) -> BoxResult<()> {
        match self {
            Mech::Ours(l) => l.unlock()?,
            Mech::Floor(f) => f.unlock()?,
            Mech::Flock(fd) => rustix::fs::flock(fd, FlockOperation::Unlock)?,
        }
        Ok(())
    }
}

/// `loop KIND PATH N`: N uncontended cycles, nothing else.
pub fn run_loop(kind: &str, path: &Path, n: u64) -> BoxResult<()> {
    let m = Mech::new(kind, path, flufl_lock::DEFAULT_LIFETIME)?;
    for _ in 0..n {
        m.lock()?;
        m.unlock()?;
    }
    Ok(())
}

fn contend(m: &Mech, counter: &Path, start: u64, end: u64) -> BoxResult<u64> {
    sleep_until_ns(start);
    let mut n = 0u64;
    while mono_ns() < end {
        m.lock()?;
        let v: u64 = std::fs::read_to_string(counter)?
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(counter, (v + 1).to_string())?;
        m.unlock()?;
        n += 1;
    }
    Ok(n)
}

fn answer(out: &mut impl Write, line: String) {
    // A driver that went away ends the worker at its next read.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn one(m: &Mech, out: &mut impl Write, cmd: &str, args: &[&str]) -> BoxResult<bool> {
    let arg = |i: usize| -> BoxResult<u64> {
        Ok(args
            .get(i)
            .ok_or_else(|| format!("{cmd}: missing argument {i}"))?
            .parse()?)
    };
    match cmd {
        "ping" => answer(out, "pong".into()),
        "cycles" => {
            let n = arg(0)?.max(1);
            let t = Instant::now();
            for _ in 0..n {
                m.lock()?;
                m.unlock()?;
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            answer(out, format!("us {us}"));
        }
        "lock" => {
            m.lock()?;
            answer(out, "locked".into());
        }
        "acquire" => {
            answer(out, "waiting".into());
            m.lock()?;
            let t = mono_ns();
            answer(out, format!("acquired {t}"));
        }
        "release" => {
            std::thread::sleep(Duration::from_millis(arg(0)?));
            let t = mono_ns();
            m.unlock()?;
            answer(out, format!("released {t}"));
        }
        "unlock" => {
            m.unlock()?;
            answer(out, "unlocked".into());
        }
        "wait-timeout" => {
            let Mech::Ours(l) = m else {
                return Err("wait-timeout needs ours".into());
            };
            match l.lock_timeout(Duration::from_millis(arg(0)?)) {
                Ok(()) => {
                    l.unlock()?;
                    answer(out, "acquired".into());
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => answer(out, "timedout".into()),
                Err(e) => return Err(e.into()),
            }
        }
        "contend" => {
            let counter = Path::new(args.first().ok_or("contend: missing COUNTER")?);
            let n = contend(m, counter, arg(1)?, arg(2)?)?;
            answer(out, format!("count {n}"));
        }
        "quit" => return Ok(false),
        _ => return Err(format!("unknown command {cmd}").into()),
    }
    Ok(true)
}

/// `worker KIND PATH LIFETIME_MS`: serve commands until `quit` or end of input.
pub fn serve(kind: &str, path: &Path, lifetime: Duration) -> BoxResult<()> {
    let m = Mech::new(kind, path, lifetime)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((cmd, args)) = words.split_first() else {
            continue;
        };
        match one(&m, &mut out, cmd, args) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => answer(
                &mut out,
                format!("error {}", e.to_string().replace('\n', " ")),
            ),
        }
    }
    Ok(())
}

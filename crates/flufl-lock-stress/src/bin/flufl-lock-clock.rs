//! `flufl-lock-clock`: a lock holder for the clock tests (`tests/it/clock.rs`) that reports,
//! one line per event on stdout (flushed per line), what it did, what the lock file's mtime
//! then was, and what its clocks said:
//!
//! ```text
//! flufl-lock-clock refresh --lock P [--lifetime-ms L] [--every-ms N] [--count K] [--tag T]
//!     takes the lock, then every N ms calls `Lock::refresh(None, false)`; stops after K
//!     refreshes (0: never) or at the first lost one.
//! flufl-lock-clock hold --lock P [--lifetime-ms L] [--hold-ms H] [--tag T]
//!     takes the lock, holds it H ms without refreshing, then releases it.
//!
//! <tag> start pid=<pid> t=<mono> wall=<ns> inst=<ns>      (just before lock())
//! <tag> locked t=<mono> wall=<ns> inst=<ns> mtime=<ns|none>  (just after lock() returned)
//! <tag> refresh n=<i> result=ok t=.. wall=.. inst=.. mtime=.. left_ms=<expires_in|none>
//! <tag> refresh n=<i> result=lost t=.. wall=.. inst=.. mtime=.. left_ms=.. err=<text>
//! <tag> refresh n=<i> result=error t=.. wall=.. inst=.. mtime=.. left_ms=.. err=<text>
//! <tag> released t=..           or: <tag> lost t=.. err=..     or: <tag> timeout t=.. err=..
//! ```
//!
//! * `t=`: `CLOCK_MONOTONIC` ns read through the vDSO (rustix): the machine's real monotonic
//!   clock, comparable between processes, and not moved by an `LD_PRELOAD` clock shim.
//! * `wall=`: `SystemTime::now()` (`CLOCK_REALTIME`), ns since the epoch.
//! * `inst=`: ns on `std::time::Instant` since this program started. `Instant` reads the
//!   clock through libc, so a shim that stops `CLOCK_MONOTONIC` (an imitated suspend) shows
//!   here and not in `t=`: the tests check it to know the shim took hold.
//! * `mtime=`: the lock file's mtime (`std::fs::metadata`), ns since the epoch, read right
//!   after the call; `none` if there is no lock file.
//!
//! Exit status: 0 after a clean release, 2 if the lock could not be taken, 3 if it was lost,
//! 4 on a usage error.

// A test helper: printing is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[cfg(target_os = "linux")]
mod clock {
    use flufl_lock::{ErrorKind, Lock};
    use flufl_lock_stress::util::Args;
    use flufl_lock_testkit::mono_ns;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant, SystemTime};

    fn epoch_ns(t: SystemTime) -> i128 {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    }

    fn mtime(path: &Path) -> String {
        match std::fs::metadata(path).and_then(|m| m.modified()) {
            Ok(t) => epoch_ns(t).to_string(),
            Err(_) => "none".to_string(),
        }
    }

    struct Out {
        tag: String,
        start: Instant,
    }

    impl Out {
        fn say(&self, what: &str) {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{} {what}", self.tag);
            let _ = o.flush();
        }

        /// `t=.. wall=.. inst=..`: the three clocks, now.
        fn clocks(&self) -> String {
            format!(
                "t={} wall={} inst={}",
                mono_ns(),
                epoch_ns(SystemTime::now()),
                self.start.elapsed().as_nanos()
            )
        }
    }

    fn take(args: &Args) -> Result<(Lock, Out), String> {
        let start = Instant::now();
        let path: PathBuf = args.req("lock")?;
        let lifetime = Duration::from_millis(args.get("lifetime-ms", 3000)?);
        let lock = Lock::builder(&path)
            .lifetime(lifetime)
            .build()
            .map_err(|e| e.to_string())?;
        let out = Out {
            tag: args.get("tag", "holder".to_string())?,
            start,
        };
        out.say(&format!(
            "start pid={} {}",
            std::process::id(),
            out.clocks()
        ));
        if let Err(e) = lock.lock_timeout(Duration::from_secs(20)) {
            out.say(&format!("timeout t={} err={e}", mono_ns()));
            return Err(String::new());
        }
        let clocks = out.clocks();
        out.say(&format!("locked {clocks} mtime={}", mtime(lock.lockfile())));
        Ok((lock, out))
    }

    fn release(lock: &Lock, out: &Out) -> i32 {
        match lock.unlock() {
            Ok(()) => {
                out.say(&format!("released t={}", mono_ns()));
                0
            }
            Err(e) => {
                out.say(&format!("lost t={} err={e}", mono_ns()));
                3
            }
        }
    }

    /// `refresh`: take the lock, refresh it every `--every-ms`, report each refresh.
    fn refresh(args: &Args) -> Result<i32, String> {
        let every = Duration::from_millis(args.get("every-ms", 1000)?);
        let count: u64 = args.get("count", 0)?;
        let (lock, out) = match take(args) {
            Ok(v) => v,
            Err(e) if e.is_empty() => return Ok(2),
            Err(e) => return Err(e),
        };
        let mut n = 0u64;
        loop {
            std::thread::sleep(every);
            n += 1;
            let r = lock.refresh(None, false);
            let clocks = out.clocks();
            let mtime = mtime(lock.lockfile());
            let left = match lock.expires_in() {
                Ok(Some(d)) => d.as_millis().to_string(),
                _ => "none".to_string(),
            };
            let line = format!("refresh n={n} result=");
            match r {
                Ok(()) => out.say(&format!("{line}ok {clocks} mtime={mtime} left_ms={left}")),
                Err(e) => {
                    let what = if e.kind() == ErrorKind::NotLocked {
                        "lost"
                    } else {
                        "error"
                    };
                    out.say(&format!(
                        "{line}{what} {clocks} mtime={mtime} left_ms={left} err={e}"
                    ));
                    return Ok(3);
                }
            }
            if count > 0 && n >= count {
                return Ok(release(&lock, &out));
            }
        }
    }

    /// `hold`: take the lock, hold it `--hold-ms` without refreshing, release it.
    fn hold(args: &Args) -> Result<i32, String> {
        let hold = Duration::from_millis(args.get("hold-ms", 4000)?);
        let (lock, out) = match take(args) {
            Ok(v) => v,
            Err(e) if e.is_empty() => return Ok(2),
            Err(e) => return Err(e),
        };
        std::thread::sleep(hold);
        Ok(release(&lock, &out))
    }

    pub fn main() {
        let mut argv = std::env::args().skip(1);
        let cmd = argv.next().unwrap_or_default();
        let result = Args::parse(argv, &[]).and_then(|args| match cmd.as_str() {
            "refresh" => refresh(&args),
            "hold" => hold(&args),
            other => Err(format!(
                "unknown command {other:?}; expected refresh or hold"
            )),
        });
        match result {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("flufl-lock-clock {cmd}: {e}");
                std::process::exit(4);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn main() {
    clock::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("flufl-lock-clock runs on Linux only");
    std::process::exit(4);
}

//! One holder or one waiter that reports, one line per event on stdout, what it did and
//! when (`CLOCK_MONOTONIC` ns, the same in every pid namespace and not shifted by
//! libfaketime). The namespace and clock-skew tests run it under `unshare` and `faketime`.
//!
//! ```text
//! <tag> info pid=2 host=hostA pidns=4026532179 origin=yes skew_ms=30001
//! <tag> locked t=123456789
//! <tag> dying t=...                    (hold --die: SIGKILLs itself, no clean-up)
//! <tag> state s=unknown                (acquire)
//! <tag> break outcome=live t=...       (acquire --try-break)
//! <tag> acquired t=...                 (acquire) or: <tag> timeout t=... err=...
//! <tag> released t=...                 or: <tag> lost t=... err=...
//! ```

use crate::util::{mono_ns, pid_ns, Args};
use flufl_lock::{BreakOutcome, Lock};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

struct Out {
    tag: String,
}

impl Out {
    fn say(&self, what: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{} {what}", self.tag);
        let _ = o.flush();
    }
}

/// This process's wall clock minus the file server's (the mtime the kernel stamps on a
/// new file in `dir`), in ms: how far libfaketime moved us.
fn skew_ms(dir: &Path) -> Result<i64, String> {
    let probe = dir.join(format!(".skew-probe-{}-{}", std::process::id(), mono_ns()));
    let f = std::fs::File::create(&probe).map_err(|e| format!("{}: {e}", probe.display()))?;
    let server = f.metadata().and_then(|m| m.modified());
    let local = SystemTime::now();
    drop(f);
    let _ = std::fs::remove_file(&probe);
    let server = server.map_err(|e| e.to_string())?;
    Ok(match local.duration_since(server) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    })
}

/// Whether our claim carries the proof of origin (boot id, pid namespace, start time):
/// its random field is `<digits>.fl1.<boot>.<ns>.<start>`.
fn has_origin(lock: &Lock) -> bool {
    let name = lock.claimfile().to_string_lossy().into_owned();
    let random = name.rsplit(lock.separator()).next().unwrap_or("");
    random.split('.').count() == 5
}

fn build(args: &Args) -> Result<(Lock, Out), String> {
    let path: PathBuf = args.req("lock")?;
    let lifetime = Duration::from_millis(args.get("lifetime-ms", 2000)?);
    let lock = Lock::builder(&path)
        .lifetime(lifetime)
        .build()
        .map_err(|e| e.to_string())?;
    let out = Out {
        tag: args.get("tag", "probe".to_string())?,
    };
    let dir = lock.lockfile().parent().unwrap_or(Path::new("/"));
    out.say(&format!(
        "info pid={} host={} pidns={} origin={} skew_ms={}",
        std::process::id(),
        lock.hostname(),
        pid_ns().map_or("none".to_string(), |n| n.to_string()),
        if has_origin(&lock) { "yes" } else { "no" },
        skew_ms(dir)?,
    ));
    Ok((lock, out))
}

/// `flufl-lock-stress hold --lock P [--lifetime-ms L] [--hold-ms H] [--die] [--tag T]`:
/// takes the lock, holds it `H` ms (alive, not refreshing), then releases it, or with
/// `--die` SIGKILLs itself while holding.
pub fn hold(args: &Args) -> Result<i32, String> {
    let (lock, out) = build(args)?;
    let hold = Duration::from_millis(args.get("hold-ms", 10_000)?);
    if let Err(e) = lock.lock_timeout(Duration::from_secs(20)) {
        out.say(&format!("timeout t={} err={e}", mono_ns()));
        return Ok(2);
    }
    out.say(&format!("locked t={}", mono_ns()));
    std::thread::sleep(hold);
    if args.flag("die") {
        out.say(&format!("dying t={}", mono_ns()));
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        std::thread::sleep(Duration::from_secs(60));
        return Ok(9);
    }
    match lock.unlock() {
        Ok(()) => {
            out.say(&format!("released t={}", mono_ns()));
            Ok(0)
        }
        Err(e) => {
            out.say(&format!("lost t={} err={e}", mono_ns()));
            Ok(3)
        }
    }
}

/// `flufl-lock-stress acquire --lock P [--lifetime-ms L] [--timeout-ms T]
/// [--wait-for-lock-ms W] [--try-break] [--tag T]`: waits (at most `W`) until the lock file
/// exists, reports its state, optionally tries `break_lock(false)`, then takes the lock
/// waiting at most `T` and releases it.
pub fn acquire(args: &Args) -> Result<i32, String> {
    let (lock, out) = build(args)?;
    let timeout = Duration::from_millis(args.get("timeout-ms", 10_000)?);
    let wait_for: u64 = args.get("wait-for-lock-ms", 0)?;
    if wait_for > 0 {
        let t = Instant::now();
        while std::fs::symlink_metadata(lock.lockfile()).is_err() {
            if t.elapsed() > Duration::from_millis(wait_for) {
                out.say("nolock");
                return Ok(4);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    match lock.state() {
        Ok(s) => out.say(&format!("state s={s}")),
        Err(e) => out.say(&format!("state err={e}")),
    }
    if args.flag("try-break") {
        let outcome = match lock.break_lock(false) {
            Ok(BreakOutcome::Live(d)) => format!("outcome=live holder_pid={}", d.pid),
            Ok(BreakOutcome::Broken(d)) => format!("outcome=broken holder_pid={}", d.pid),
            Ok(BreakOutcome::Unlocked) => "outcome=unlocked".to_string(),
            Err(e) => format!("outcome=error err={e}"),
        };
        let (head, err) = match outcome.split_once(" err=") {
            Some((h, e)) => (h.to_string(), format!(" err={e}")),
            None => (outcome, String::new()),
        };
        out.say(&format!("break {head} t={}{err}", mono_ns()));
    }
    let start = mono_ns();
    match lock.lock_timeout(timeout) {
        Ok(()) => {
            let t = mono_ns();
            out.say(&format!(
                "acquired t={t} waited_ms={:.1}",
                (t - start) as f64 / 1e6
            ));
        }
        Err(e) => {
            out.say(&format!("timeout t={} err={e}", mono_ns()));
            return Ok(2);
        }
    }
    match lock.unlock() {
        Ok(()) => {
            out.say(&format!("released t={}", mono_ns()));
            Ok(0)
        }
        Err(e) => {
            out.say(&format!("lost t={} err={e}", mono_ns()));
            Ok(3)
        }
    }
}

//! One holder or one waiter that reports, one line per event on stdout, what it did and
//! when (`CLOCK_MONOTONIC` ns, the same in every pid namespace and not shifted by
//! libfaketime). The namespace and clock-skew tests run it under `unshare` and `faketime`.
//!
//! ```text
//! <tag> info pid=2 host=hostA pidns=4026532179 origin=yes skew_ms=30001 timens=4026531834
//!       start=126981 uid=0 dumpable=1   (one line; start: /proc/self/stat field 22, as this
//!                                        process's time namespace shows it)
//! <tag> locked t=123456789
//! <tag> main-exit t=...                (hold --exit-main-thread: the main thread ends, a
//!                                        second thread keeps holding)
//! <tag> dying t=...                    (hold --die: SIGKILLs itself, no clean-up)
//! <tag> holder pid=7 proc=Z start=...  (acquire --report-holder: the lock's holder as our
//!                                        /proc shows it; or proc=enoent, proc=eacces, ...)
//! <tag> state s=unknown                (acquire)
//! <tag> break outcome=live t=...       (acquire --try-break)
//! <tag> acquired t=... waited_ms=...   (acquire) or: <tag> timeout t=... kind=TimedOut err=...
//! <tag> released t=...                 or: <tag> lost t=... err=...
//! ```

use crate::util::{claim_pid, pid_ns, proc_stat, time_ns, Args};
use flufl_lock::{BreakOutcome, Lock};
use flufl_lock_testkit::mono_ns;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
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

/// Whether our claim carries the proof of origin (boot id, pid namespace, start time, and
/// in later versions the time namespace): its random field is
/// `<digits>.fl1.<boot>.<pidns>.<start>` or `<digits>.fl1.<boot>.<pidns>.<timens>.<start>`.
fn has_origin(lock: &Lock) -> bool {
    let name = lock.claimfile().to_string_lossy().into_owned();
    let random = name.rsplit(lock.separator()).next().unwrap_or("");
    matches!(random.split('.').count(), 5 | 6)
}

/// `/proc/PID/stat` as this process sees it: `proc=<state> start=<ticks>`, or
/// `proc=<error>` (`enoent`, `eacces`, ...) when it cannot read it.
fn proc_view(pid: u32) -> String {
    match proc_stat(pid) {
        Ok((state, start)) => format!("proc={state} start={start}"),
        Err(e) => format!(
            "proc={}",
            match e.raw_os_error() {
                Some(2) => "enoent".to_string(),
                Some(3) => "esrch".to_string(),
                Some(13) => "eacces".to_string(),
                Some(1) => "eperm".to_string(),
                _ => format!("{:?}", e.kind()).to_lowercase(),
            }
        ),
    }
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
    let me = std::process::id();
    let dumpable = match rustix::process::dumpable_behavior() {
        Ok(rustix::process::DumpableBehavior::NotDumpable) => "0",
        Ok(rustix::process::DumpableBehavior::Dumpable) => "1",
        Ok(rustix::process::DumpableBehavior::DumpableReadableOnlyByRoot) => "2",
        Err(_) => "unknown",
    };
    out.say(&format!(
        "info pid={me} host={} pidns={} origin={} skew_ms={} timens={} start={} uid={} \
         dumpable={dumpable}",
        lock.hostname(),
        pid_ns().map_or("none".to_string(), |n| n.to_string()),
        if has_origin(&lock) { "yes" } else { "no" },
        skew_ms(dir)?,
        time_ns().map_or("none".to_string(), |n| n.to_string()),
        proc_stat(me).map_or("unknown".to_string(), |(_, start)| start.to_string()),
        rustix::process::getuid().as_raw(),
    ));
    Ok((lock, out))
}

/// `flufl-lock-stress hold --lock P [--lifetime-ms L] [--hold-ms H] [--die] [--nondumpable]
/// [--exit-main-thread] [--tag T]`: takes the lock, holds it `H` ms (alive, not refreshing),
/// then releases it, or with `--die` SIGKILLs itself while holding. `--nondumpable` first
/// makes the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`: under `hidepid=2` even its
/// own user cannot see its /proc entry). `--exit-main-thread`: once locked, a second thread
/// takes the lock over and the main thread (the thread-group leader) exits alone, so that
/// /proc shows the process as a zombie (`Z`) while it still holds the lock.
pub fn hold(args: &Args) -> Result<i32, String> {
    if args.flag("nondumpable") {
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| format!("prctl(PR_SET_DUMPABLE, 0): {e}"))?;
    }
    let (lock, out) = build(args)?;
    let hold = Duration::from_millis(args.get("hold-ms", 10_000)?);
    let die = args.flag("die");
    if let Err(e) = lock.lock_timeout(Duration::from_secs(20)) {
        out.say(&format!("timeout t={} err={e}", mono_ns()));
        return Ok(2);
    }
    out.say(&format!("locked t={}", mono_ns()));
    if args.flag("exit-main-thread") {
        let keeper = out.clone();
        std::thread::spawn(move || std::process::exit(keep(&lock, &keeper, hold, die)));
        out.say(&format!("main-exit t={}", mono_ns()));
        exit_this_thread();
    }
    Ok(keep(&lock, &out, hold, die))
}

/// Holds `lock` for `hold`, then dies (`die`) or releases it; returns the exit code.
fn keep(lock: &Lock, out: &Out, hold: Duration, die: bool) -> i32 {
    std::thread::sleep(hold);
    if die {
        out.say(&format!("dying t={}", mono_ns()));
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        std::thread::sleep(Duration::from_secs(60));
        return 9;
    }
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

/// Ends the calling thread only (`exit(2)`, not `exit_group(2)`): the other threads run on.
/// Used on the main thread, it leaves the thread-group leader a zombie in /proc.
#[allow(unsafe_code)]
fn exit_this_thread() -> ! {
    // SAFETY: the raw `exit` system call ends only this thread and never returns. No Rust
    // code of this thread runs afterwards, so nothing observes its skipped destructors; it
    // holds no lock (stdout's is released after each line), and its stack, the process's
    // initial stack, stays mapped, so nothing another thread may borrow from it dangles
    // (the keeper thread owns everything it uses).
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("exit(2) returned")
}

/// `flufl-lock-stress acquire --lock P [--lifetime-ms L] [--timeout-ms T]
/// [--wait-for-lock-ms W] [--report-holder] [--try-break] [--tag T]`: waits (at most `W`)
/// until the lock file exists, optionally reports how its holder's `/proc/PID/stat` looks
/// from here (`--report-holder`), reports its state, optionally tries `break_lock(false)`,
/// then takes the lock waiting at most `T` and releases it.
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
    if args.flag("report-holder") {
        match claim_pid(lock.lockfile()) {
            Some(pid) => out.say(&format!("holder pid={pid} {}", proc_view(pid))),
            None => out.say("holder pid=none"),
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
            out.say(&format!(
                "timeout t={} kind={:?} err={e}",
                mono_ns(),
                e.kind()
            ));
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

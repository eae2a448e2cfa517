//! A worker process: takes the lock again and again until the stop file appears. Its
//! critical section reads the shared counter, pauses, writes the counter plus one, pauses
//! again (the windows in which the coordinator kills it), and logs enter and exit (see
//! [`crate::check`]).

use crate::util::{append, open_append, Args};
use flufl_lock::Lock;
use flufl_lock_testkit::{mono_ns, Rng};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

/// The counter is a fixed-width decimal written by one `pwrite(2)` at offset 0, so a kill
/// leaves either the old or the new value, never a torn or empty one.
pub const COUNTER_WIDTH: usize = 20;

/// Reads the counter.
pub fn read_counter(f: &File) -> std::io::Result<u64> {
    let mut s = String::new();
    (&*f).read_to_string(&mut s)?;
    s.trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("counter holds {s:?}")))
}

/// Writes the counter.
pub fn write_counter(f: &File, v: u64) -> std::io::Result<()> {
    let s = format!("{v:0width$}\n", width = COUNTER_WIDTH);
    let n = f.write_at(s.as_bytes(), 0)?;
    if n != s.len() {
        return Err(std::io::Error::other("short counter write"));
    }
    Ok(())
}

/// Runs the worker (`flufl-lock-stress worker ...`). Returns the process exit code.
pub fn run(args: &Args) -> Result<i32, String> {
    let lock_path: PathBuf = args.req("lock")?;
    let log_path: PathBuf = args.req("log")?;
    let counter_path: PathBuf = args.req("counter")?;
    let stop_path: PathBuf = args.req("stop")?;
    let inst: String = args.req("inst")?;
    let lifetime = Duration::from_millis(args.get("lifetime-ms", 1500)?);
    let hold_max: u64 = args.get("hold-max-ms", 3)?;
    let think_max: u64 = args.get("think-max-ms", 2)?;
    let wait_limit = Duration::from_millis(args.get("wait-limit-ms", 20_000)?);
    let mut rng = Rng::new(args.get("seed", Rng::fresh_seed())?);

    let log = open_append(&log_path).map_err(|e| format!("open {}: {e}", log_path.display()))?;
    let lock = Lock::builder(&lock_path)
        .lifetime(lifetime)
        .build()
        .map_err(|e| e.to_string())?;
    let pid = std::process::id();
    let fail = |msg: String| {
        let _ = append(&log, &format!("F {inst} {msg}"));
        Err(msg)
    };
    let mut seq = 0u64;
    while !stop_path.exists() {
        if let Err(e) = lock.lock_timeout(wait_limit) {
            return fail(format!("lock: {e}"));
        }
        let t = mono_ns();
        let step = (|| {
            append(&log, &format!("A {inst} {pid} {seq} {t}"))?;
            let counter = File::options().read(true).write(true).open(&counter_path)?;
            let v = read_counter(&counter)?;
            append(&log, &format!("E {inst} {seq} {v}"))?;
            // Pause before and after the write, so kills land on both sides of it.
            std::thread::sleep(rng.millis(0, hold_max));
            write_counter(&counter, v + 1)?;
            std::thread::sleep(rng.millis(0, hold_max));
            append(&log, &format!("X {inst} {seq} {}", v + 1))?;
            Ok::<_, std::io::Error>(())
        })();
        if let Err(e) = step {
            return fail(format!("critical section: {e}"));
        }
        if let Err(e) = lock.unlock() {
            return fail(format!("unlock: {e}"));
        }
        if let Err(e) = append(&log, &format!("R {inst} {seq} {}", mono_ns())) {
            return fail(format!("log: {e}"));
        }
        seq += 1;
        std::thread::sleep(rng.millis(0, think_max));
    }
    Ok(0)
}

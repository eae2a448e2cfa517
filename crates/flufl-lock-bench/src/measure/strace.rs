//! The two measurements made under strace: filesystem system calls per uncontended cycle
//! (2) and a waiter's poll rate (7).

use super::{life, progress, worker, Cfg, T_LONG, T_SHORT};
use crate::driver::{Impl, Worker};
use crate::util::BoxResult;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------- 2. syscalls

/// The system calls that count as filesystem calls: strace's %file and %desc classes,
/// less those no lock implementation here makes (polling, sockets, memory).
pub const FS_CALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "read",
    "pread64",
    "readv",
    "write",
    "pwrite64",
    "writev",
    "close",
    "close_range",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "lseek",
    "ioctl",
    "fcntl",
    "utimensat",
    "utime",
    "utimes",
    "futimesat",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "fsync",
    "fdatasync",
    "ftruncate",
    "truncate",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents64",
    "flock",
    "mkdir",
    "mkdirat",
    "rmdir",
    "statfs",
    "fstatfs",
    "dup",
    "dup2",
    "dup3",
];

/// Per-cycle call counts of one mechanism.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    pub per_call: BTreeMap<String, f64>,
    pub fs: f64,
    pub other: f64,
    pub cycles: u64,
}

fn strace_c(dir: &Path, name: &str, argv: &[OsString]) -> BoxResult<BTreeMap<String, u64>> {
    let out = dir.join(format!("{name}.strace-c"));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    if !status.success() {
        return Err(format!("{name} under strace failed: {status}").into());
    }
    let text = std::fs::read_to_string(&out)?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if words.len() < 5 || words[0].starts_with('%') || words[0].starts_with('-') {
            continue;
        }
        let name = words[words.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(calls) = words[3].parse::<u64>() {
            counts.insert(name.to_string(), calls);
        }
    }
    if counts.is_empty() {
        return Err(format!("no strace summary in {}", out.display()).into());
    }
    Ok(counts)
}

/// Calls per cycle: (calls with N cycles − calls with 0 cycles) / N, so process start-up
/// (and Python's imports) cancel out.
pub fn syscalls(cfg: &Cfg) -> BoxResult<BTreeMap<&'static str, Calls>> {
    let n: u64 = if cfg.quick { 500 } else { 1000 };
    let mut out = BTreeMap::new();
    for imp in [Impl::Ours, Impl::Floor, Impl::Flufl, Impl::Flock] {
        progress(&format!("strace -f -c: {}", imp.key()));
        let path = cfg.env.dir.join(format!("s-{}.lck", imp.key()));
        let c0 = strace_c(
            &cfg.env.dir,
            &format!("s-{}-0", imp.key()),
            &cfg.env.argv(imp, "loop", &path, "0"),
        )?;
        let c1 = strace_c(
            &cfg.env.dir,
            &format!("s-{}-n", imp.key()),
            &cfg.env.argv(imp, "loop", &path, &n.to_string()),
        )?;
        let mut calls = Calls {
            cycles: n,
            ..Calls::default()
        };
        for (k, v1) in &c1 {
            let v0 = c0.get(k).copied().unwrap_or(0);
            let d = (*v1 as f64 - v0 as f64) / n as f64;
            if d.abs() < 0.005 {
                continue;
            }
            if FS_CALLS.contains(&k.as_str()) {
                calls.fs += d;
            } else {
                calls.other += d;
            }
            calls.per_call.insert(k.clone(), d);
        }
        out.insert(imp.key(), calls);
    }
    Ok(out)
}

// ---------------------------------------------------------------- 7. poll rate

#[derive(Debug, Default, Clone)]
pub struct Poll {
    pub window_s: f64,
    pub links: u64,
    pub opens: u64,
}

impl Poll {
    pub fn links_per_s(&self) -> f64 {
        self.links as f64 / self.window_s
    }
    pub fn opens_per_s(&self) -> f64 {
        self.opens as f64 / self.window_s
    }
}

/// A waiter of `imp` (ours or ours-nfs) waits `secs` on a held lock under
/// `strace -f -ttt -e trace=link,linkat,open,openat`; its link and open attempts on the
/// lock file after the first second (steady state) are counted.
pub fn poll(cfg: &Cfg, imp: Impl) -> BoxResult<Poll> {
    // Long enough for a steady state past the ramp of the backoff (to once a second, from
    // 50 ms, where a release wakes the waiter) and a few polls after it.
    let secs = if cfg.quick { 8.0 } else { 10.0 };
    progress(&format!(
        "poll rate {}: waiting {secs} s under strace",
        imp.key()
    ));
    let path = cfg.env.dir.join(format!("p-{}.lck", imp.key()));
    let mut holder = worker(
        cfg,
        Impl::Ours,
        &format!("poll-holder-{}", imp.key()),
        &path,
        flufl_lock::DEFAULT_LIFETIME,
    )?;
    holder.ask("lock", "locked", T_SHORT)?;
    let trace = cfg.env.dir.join(format!("p-{}.strace", imp.key()));
    let mut argv: Vec<OsString> = [
        "strace",
        "-f",
        "-ttt",
        "-e",
        "trace=link,linkat,open,openat",
        "-o",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    argv.push(trace.clone().into());
    argv.extend(cfg.env.argv(
        imp,
        "worker",
        &path,
        &life(imp, flufl_lock::DEFAULT_LIFETIME),
    ));
    let mut waiter = Worker::spawn(
        &format!("poll-waiter-{}", imp.key()),
        &cfg.env.dir,
        &argv,
        false,
    )?;
    waiter.ask("ping", "pong", T_SHORT)?;
    let ms = (secs * 1000.0) as u64;
    waiter.ask(&format!("wait-timeout {ms}"), "timedout", T_LONG)?;
    waiter.quit()?;
    holder.ask("unlock", "unlocked", T_SHORT)?;
    holder.quit()?;
    steady_state(&std::fs::read_to_string(&trace)?, &path)
        .map_err(|e| format!("{e} in {}", trace.display()).into())
}

/// How long after the first link the steady state begins: past the backoff's ramp (from
/// 1 ms to 100 ms without change notification, from 50 ms to 1 s with it).
const RAMP_S: f64 = 4.5;

/// Counts the link and open attempts on `lock` in an `strace -f -ttt` trace in the steady
/// state: from the first link [`RAMP_S`] or more after the first, to the last (so the
/// links counted, after the window's first, are one per interval between polls).
fn steady_state(trace: &str, lock: &Path) -> Result<Poll, String> {
    let quoted = format!("\"{}\"", lock.display());
    let (mut links, mut opens) = (Vec::new(), Vec::new());
    for line in trace.lines() {
        // "pid  ts call(...)" (with -f) or "ts call(...)"
        let mut words = line.split_whitespace();
        let Some(a) = words.next() else { continue };
        let ts = if a.contains('.') {
            a
        } else {
            words.next().unwrap_or("")
        };
        let rest = line.split_once(ts).map_or("", |x| x.1);
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let rest = rest.trim_start();
        if !rest.contains(&quoted) {
            continue;
        }
        if rest.starts_with("linkat(") || rest.starts_with("link(") {
            links.push(ts);
        } else if rest.starts_with("openat(") || rest.starts_with("open(") {
            opens.push(ts);
        }
    }
    let (Some(first), Some(last)) = (links.first().copied(), links.last().copied()) else {
        return Err(format!("no link attempts on {}", lock.display()));
    };
    let Some(from) = links.iter().copied().find(|&t| t >= first + RAMP_S) else {
        return Err(format!("no link attempts {RAMP_S} s after the first"));
    };
    let window = last - from;
    if window <= 0.5 {
        return Err(format!("steady-state window too short ({window:.2} s)"));
    }
    let count = |v: &[f64]| v.iter().filter(|&&t| t > from && t <= last).count() as u64;
    Ok(Poll {
        window_s: window,
        links: count(&links),
        opens: count(&opens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only calls on the lock file count, from the first link 4.5 s or more after the first
    /// to the last: here two intervals between links in 1.6 s, and one open.
    #[test]
    fn steady_state_counts() {
        let trace = "\
123 100.000000 linkat(AT_FDCWD, \"/d/c\", AT_FDCWD, \"/d/x.lck\", 0) = -1 EEXIST
123 104.000000 linkat(AT_FDCWD, \"/d/c\", AT_FDCWD, \"/d/x.lck\", 0) = -1 EEXIST
123 104.600000 linkat(AT_FDCWD, \"/d/c\", AT_FDCWD, \"/d/x.lck\", 0) = -1 EEXIST
123 105.000000 openat(AT_FDCWD, \"/d/x.lck\", O_RDONLY) = 3
123 105.050000 openat(AT_FDCWD, \"/d/other\", O_RDONLY) = 3
123 105.400000 linkat(AT_FDCWD, \"/d/c\", AT_FDCWD, \"/d/x.lck\", 0) = -1 EEXIST
106.200000 link(\"/d/c\", \"/d/x.lck\") = -1 EEXIST
";
        let p = steady_state(trace, Path::new("/d/x.lck")).unwrap();
        assert_eq!((p.links, p.opens), (2, 1));
        assert!((p.window_s - 1.6).abs() < 1e-9, "{p:?}");
        assert!(steady_state("", Path::new("/d/x.lck")).is_err());
        assert!(steady_state(
            &trace[..trace.find("123 105.0").unwrap()],
            Path::new("/d/x.lck")
        )
        .is_err());
    }
}

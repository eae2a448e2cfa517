//! The seven measurements. Each returns plain numbers (and raw samples for the JSON).

use crate::driver::{other_host_prefix, Env, Impl, Worker};
use crate::util::{mono_ns, BoxResult, Rng};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

const T_SHORT: Duration = Duration::from_secs(30);
const T_LONG: Duration = Duration::from_secs(120);

/// What a run needs.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub quick: bool,
    pub env: Env,
    pub cli: PathBuf,
    pub namespaces: bool,
}

fn life(imp: Impl, d: Duration) -> String {
    match imp {
        Impl::Flufl => format!("{}", d.as_secs_f64()),
        _ => format!("{}", d.as_millis()),
    }
}

fn progress(msg: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("bench: {msg}");
    }
}

fn worker(cfg: &Cfg, imp: Impl, name: &str, path: &Path, lifetime: Duration) -> BoxResult<Worker> {
    let argv = cfg.env.argv(imp, "worker", path, &life(imp, lifetime));
    let mut w = Worker::spawn(name, &cfg.env.dir, &argv, false)?;
    w.ask("ping", "pong", T_SHORT)?;
    Ok(w)
}

// ---------------------------------------------------------------- 1. uncontended

/// µs per cycle, one figure per run, per mechanism.
#[derive(Debug, Default)]
pub struct Uncontended {
    pub runs: BTreeMap<&'static str, Vec<f64>>,
    pub cycles: BTreeMap<&'static str, u64>,
}

pub fn uncontended(cfg: &Cfg) -> BoxResult<Uncontended> {
    let impls = [Impl::Floor, Impl::Ours, Impl::Flufl, Impl::Flock];
    let runs = if cfg.quick { 5 } else { 9 };
    let cycles = |imp: Impl| -> u64 {
        let n = match imp {
            Impl::Flufl => 1000,
            Impl::Flock => 200_000,
            _ => 2000,
        };
        if cfg.quick {
            n / 2
        } else {
            n
        }
    };
    let mut ws = Vec::new();
    for imp in impls {
        let path = cfg.env.dir.join(format!("u-{}.lck", imp.key()));
        ws.push((
            imp,
            worker(
                cfg,
                imp,
                &format!("uncontended-{}", imp.key()),
                &path,
                flufl_lock::DEFAULT_LIFETIME,
            )?,
        ));
    }
    let mut out = Uncontended::default();
    for (imp, w) in &mut ws {
        w.ask_num(&format!("cycles {}", cycles(*imp) / 4), "us", T_LONG)?; // warm-up
        out.cycles.insert(imp.key(), cycles(*imp));
    }
    // Interleaved, so that a noisy neighbour hurts all mechanisms alike.
    for r in 0..runs {
        progress(&format!("uncontended run {}/{runs}", r + 1));
        for (imp, w) in &mut ws {
            let us = w.ask_num(&format!("cycles {}", cycles(*imp)), "us", T_LONG)?;
            out.runs.entry(imp.key()).or_default().push(us);
        }
    }
    for (_, w) in ws {
        w.quit()?;
    }
    Ok(out)
}

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

impl Calls {
    /// "openat 1, write 1, ..." for the filesystem calls, in protocol order where known.
    pub fn breakdown(&self) -> String {
        self.per_call
            .iter()
            .filter(|(k, v)| FS_CALLS.contains(&k.as_str()) && v.abs() >= 0.005)
            .map(|(k, v)| format!("{k} {}", trim_num(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
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

// ---------------------------------------------------------------- 3. hand-off

/// Release-to-acquire latencies in ms.
#[derive(Debug, Default, Clone)]
pub struct Handoff {
    pub ms: Vec<f64>,
    pub holds_ms: Vec<u64>,
}

pub fn handoff(cfg: &Cfg, imp: Impl) -> BoxResult<Handoff> {
    let reps = if cfg.quick && imp == Impl::Flufl {
        6
    } else {
        20
    };
    let path = cfg.env.dir.join(format!("h-{}.lck", imp.key()));
    let mut holder = worker(
        cfg,
        imp,
        &format!("handoff-holder-{}", imp.key()),
        &path,
        flufl_lock::DEFAULT_LIFETIME,
    )?;
    let mut waiter = worker(
        cfg,
        imp,
        &format!("handoff-waiter-{}", imp.key()),
        &path,
        flufl_lock::DEFAULT_LIFETIME,
    )?;
    let mut rng = Rng::new();
    let mut out = Handoff::default();
    for i in 0..reps {
        if i % 5 == 0 {
            progress(&format!("hand-off {}: {}/{reps}", imp.key(), i + 1));
        }
        holder.ask("lock", "locked", T_SHORT)?;
        waiter.ask("acquire", "waiting", T_SHORT)?;
        let hold = 100 + rng.below(51);
        let released = holder.ask_num(&format!("release {hold}"), "released", T_SHORT)?;
        let acquired: f64 = waiter
            .expect("acquired", T_SHORT)?
            .first()
            .ok_or("empty answer")?
            .parse()?;
        waiter.ask("unlock", "unlocked", T_SHORT)?;
        out.ms.push((acquired - released) / 1e6);
        out.holds_ms.push(hold);
    }
    holder.quit()?;
    waiter.quit()?;
    Ok(out)
}

// ---------------------------------------------------------------- 4. contention

#[derive(Debug, Default, Clone)]
pub struct Contention {
    pub secs: f64,
    pub counts: Vec<u64>,
    pub counter: u64,
}

impl Contention {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    pub fn per_sec(&self) -> f64 {
        self.total() as f64 / self.secs
    }
    pub fn min(&self) -> u64 {
        self.counts.iter().copied().min().unwrap_or(0)
    }
    pub fn max(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
    pub fn fairness(&self) -> f64 {
        self.min() as f64 / self.max().max(1) as f64
    }
    pub fn lost(&self) -> i64 {
        self.total() as i64 - self.counter as i64
    }
}

/// 4 worker processes per mechanism contend for the lock in slices: 5 rounds of 2 s each
/// (2 of 1 s with `--quick`), the mechanisms interleaved round by round, so that a change
/// in the machine's load hits all of them alike. Counts are summed over the slices.
pub fn contention(cfg: &Cfg, impls: &[Impl]) -> BoxResult<BTreeMap<&'static str, Contention>> {
    let (rounds, slice) = if cfg.quick { (2, 1.0) } else { (5, 2.0) };
    let mut sets = Vec::new();
    for &imp in impls {
        let path = cfg.env.dir.join(format!("c-{}.lck", imp.key()));
        let counter = cfg.env.dir.join(format!("c-{}.count", imp.key()));
        std::fs::write(&counter, "0")?;
        let mut ws = Vec::new();
        for i in 0..4 {
            ws.push(worker(
                cfg,
                imp,
                &format!("contend-{}-{i}", imp.key()),
                &path,
                flufl_lock::DEFAULT_LIFETIME,
            )?);
        }
        sets.push((imp, counter, ws, vec![0u64; 4]));
    }
    for r in 0..rounds {
        for (imp, counter, ws, counts) in &mut sets {
            progress(&format!(
                "contention {}: 4 processes, slice {}/{rounds} of {slice} s",
                imp.key(),
                r + 1
            ));
            let start = mono_ns() + 200_000_000;
            let end = start + (slice * 1e9) as i64;
            for w in ws.iter_mut() {
                w.send(&format!("contend {} {start} {end}", counter.display()))?;
            }
            for (w, c) in ws.iter_mut().zip(counts.iter_mut()) {
                let n = w.expect("count", Duration::from_secs_f64(slice) + T_LONG)?;
                *c += n.first().ok_or("empty answer")?.parse::<u64>()?;
            }
        }
    }
    let mut out = BTreeMap::new();
    for (imp, counter, ws, counts) in sets {
        for w in ws {
            w.quit()?;
        }
        out.insert(
            imp.key(),
            Contention {
                secs: rounds as f64 * slice,
                counts,
                counter: std::fs::read_to_string(&counter)?.trim().parse()?,
            },
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------- 5. crash recovery

pub const CRASH_LIFETIME: Duration = Duration::from_secs(2);

/// One crash: a holder (here or as another host) takes the lock, a waiter on this host
/// waits, the holder is SIGKILLed; seconds from the kill until the waiter holds the lock.
pub fn crash_once(
    cfg: &Cfg,
    imp: Impl,
    other_host: bool,
    tag: &str,
    killed: Option<Sender<()>>,
) -> BoxResult<f64> {
    let path = cfg.env.dir.join(format!("k-{}-{tag}.lck", imp.key()));
    let mut argv = cfg
        .env
        .argv(imp, "worker", &path, &life(imp, CRASH_LIFETIME));
    if other_host {
        let mut p = other_host_prefix();
        p.append(&mut argv);
        argv = p;
    }
    let mut holder = Worker::spawn(
        &format!("crash-holder-{}-{tag}", imp.key()),
        &cfg.env.dir,
        &argv,
        other_host,
    )?;
    holder.ask("ping", "pong", T_SHORT)?;
    holder.ask("lock", "locked", T_SHORT)?;
    let mut waiter = worker(
        cfg,
        imp,
        &format!("crash-waiter-{}-{tag}", imp.key()),
        &path,
        CRASH_LIFETIME,
    )?;
    waiter.ask("acquire", "waiting", T_SHORT)?;
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = holder.kill()?;
    if let Some(tx) = killed {
        let _ = tx.send(());
    }
    let acquired: f64 = waiter
        .expect("acquired", Duration::from_secs(60))?
        .first()
        .ok_or("empty answer")?
        .parse()?;
    waiter.ask("unlock", "unlocked", T_SHORT)?;
    waiter.quit()?;
    drop(holder);
    Ok((acquired - killed_at as f64) / 1e9)
}

#[derive(Debug, Default, Clone)]
pub struct Crash {
    /// Seconds, per repetition; key `<impl>/<same|other>`.
    pub secs: BTreeMap<String, Vec<f64>>,
}

pub fn crash(cfg: &Cfg) -> BoxResult<Crash> {
    let mut out = Crash::default();
    let (same_reps, other_reps) = if cfg.quick { (3, 1) } else { (5, 3) };
    // flufl.lock needs lifetime + 10 s slop + up to 2 s of sleep: its two cases run in
    // the background (they only sleep) while ours are measured, after both kills.
    let (tx, rx) = channel();
    std::thread::scope(|s| -> BoxResult<()> {
        let mut bg = Vec::new();
        for other in [false, true] {
            if other && !cfg.namespaces {
                continue;
            }
            let tx = tx.clone();
            bg.push((
                other,
                s.spawn(move || {
                    crash_once(
                        cfg,
                        Impl::Flufl,
                        other,
                        if other { "other" } else { "same" },
                        Some(tx),
                    )
                }),
            ));
        }
        drop(tx);
        progress("crash recovery: flufl.lock waiters started (about 12 s, in the background)");
        for _ in 0..bg.len() {
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                break;
            }
        }
        for (imp, other, reps) in [
            (Impl::Ours, false, same_reps),
            (Impl::Flock, false, same_reps),
            (Impl::Ours, true, other_reps),
        ] {
            if other && !cfg.namespaces {
                continue;
            }
            let host = if other { "other" } else { "same" };
            for i in 0..reps {
                progress(&format!(
                    "crash recovery {} ({host} host) {}/{reps}",
                    imp.key(),
                    i + 1
                ));
                let t = crash_once(cfg, imp, other, &format!("{host}{i}"), None)?;
                out.secs
                    .entry(format!("{}/{host}", imp.key()))
                    .or_default()
                    .push(t);
            }
        }
        for (other, h) in bg {
            let t = h.join().map_err(|_| "flufl.lock crash thread panicked")??;
            let host = if other { "other" } else { "same" };
            out.secs.entry(format!("flufl/{host}")).or_default().push(t);
        }
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------- 6. CLI overhead

#[derive(Debug, Default, Clone)]
pub struct Cli {
    pub run_ms: Vec<f64>,
    pub true_ms: Vec<f64>,
}

pub fn cli(cfg: &Cfg) -> BoxResult<Cli> {
    let reps = if cfg.quick { 10 } else { 30 };
    progress(&format!(
        "CLI overhead: {reps} x `flufl-lock run L -- true` and /bin/true"
    ));
    let lock = cfg.env.dir.join("cli.lck");
    let time = |cmd: &mut Command| -> BoxResult<f64> {
        let t = Instant::now();
        let st = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !st.success() {
            return Err(format!("{cmd:?} failed: {st}").into());
        }
        Ok(ms)
    };
    let run = || {
        let mut c = Command::new(&cfg.cli);
        c.arg("run").arg(&lock).args(["--", "true"]);
        c
    };
    let mut out = Cli::default();
    time(&mut run())?;
    time(&mut Command::new("/bin/true"))?;
    for _ in 0..reps {
        out.run_ms.push(time(&mut run())?);
        out.true_ms.push(time(&mut Command::new("/bin/true"))?);
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
    let secs = if cfg.quick { 3.0 } else { 4.0 };
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
    let text = std::fs::read_to_string(&trace)?;
    let quoted = format!("\"{}\"", path.display());
    let (mut links, mut opens) = (Vec::new(), Vec::new());
    for line in text.lines() {
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
        return Err(format!(
            "no link attempts on {} in {}",
            path.display(),
            trace.display()
        )
        .into());
    };
    let from = first + 1.0;
    let window = last - from;
    if window <= 0.5 {
        return Err(format!(
            "steady-state window too short ({window:.2} s) in {}",
            trace.display()
        )
        .into());
    }
    let count = |v: &[f64]| v.iter().filter(|&&t| t > from && t <= last).count() as u64;
    Ok(Poll {
        window_s: window,
        links: count(&links),
        opens: count(&opens),
    })
}

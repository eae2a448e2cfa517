//! The seven measurements. Each returns plain numbers (and raw samples for the JSON);
//! [`run_all`] runs the chosen ones in order. The two made under strace (2 and 7) are in
//! [`strace`].

mod strace;

pub use strace::{poll, syscalls, Calls, Poll, FS_CALLS};

use crate::args::Options;
use crate::driver::{other_host_prefix, Env, Impl, Worker};
use crate::util::BoxResult;
use flufl_lock_testkit::{mono_ns, Rng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

/// The time limit of one step of a worker (start, lock, answer).
const T_SHORT: Duration = Duration::from_secs(30);
/// The time limit of a step that runs many cycles.
const T_LONG: Duration = Duration::from_secs(120);

/// What a run needs.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub quick: bool,
    pub env: Env,
    pub cli: PathBuf,
    pub namespaces: bool,
}

/// A lifetime as the worker of `imp` takes it: seconds for flufl.lock, ms for ours.
fn life(imp: Impl, d: Duration) -> String {
    match imp {
        Impl::Flufl => format!("{}", d.as_secs_f64()),
        _ => format!("{}", d.as_millis()),
    }
}

/// A progress line on stderr.
fn progress(msg: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("bench: {msg}");
    }
}

/// Starts a worker of `imp` on `path` and waits until it answers.
fn worker(cfg: &Cfg, imp: Impl, name: &str, path: &Path, lifetime: Duration) -> BoxResult<Worker> {
    let argv = cfg.env.argv(imp, "worker", path, &life(imp, lifetime));
    let mut w = Worker::spawn(name, &cfg.env.dir, &argv, false)?;
    w.ask("ping", "pong", T_SHORT)?;
    Ok(w)
}

// ---------------------------------------------------------------- all of them

/// What the sections measured; a section not run (or failed) is empty.
#[derive(Debug, Default)]
pub struct Results {
    pub uncontended: Option<Uncontended>,
    pub syscalls: BTreeMap<&'static str, Calls>,
    pub handoff: BTreeMap<&'static str, Handoff>,
    pub contention: BTreeMap<&'static str, Contention>,
    pub crash: Crash,
    pub cli: Option<Cli>,
    pub poll: BTreeMap<&'static str, Poll>,
    /// "section: error" for each section that failed.
    pub errors: Vec<String>,
}

/// Runs the sections `opts` chooses, in the table's order. A failed section is reported
/// on stderr and in [`Results::errors`], and the others still run.
pub fn run_all(cfg: &Cfg, opts: &Options) -> Results {
    let mut r = Results::default();
    let mut errors = Vec::new();
    let mut section = |name: &str, f: &mut dyn FnMut() -> BoxResult<()>| {
        if !opts.runs(name) {
            return;
        }
        if let Err(e) = f() {
            progress(&format!("{name}: error: {e}"));
            errors.push(format!("{name}: {e}"));
        }
    };
    section("uncontended", &mut || {
        r.uncontended = Some(uncontended(cfg)?);
        Ok(())
    });
    section("syscalls", &mut || {
        r.syscalls = syscalls(cfg)?;
        Ok(())
    });
    for imp in [Impl::Ours, Impl::OursNfs, Impl::Flock, Impl::Flufl] {
        section("handoff", &mut || {
            r.handoff.insert(imp.key(), handoff(cfg, imp)?);
            Ok(())
        });
    }
    section("contention", &mut || {
        r.contention = contention(cfg, &[Impl::Ours, Impl::Flufl, Impl::Flock])?;
        Ok(())
    });
    section("crash", &mut || {
        r.crash = crash(cfg)?;
        Ok(())
    });
    section("cli", &mut || {
        r.cli = Some(cli(cfg)?);
        Ok(())
    });
    for imp in [Impl::OursNfs, Impl::Ours] {
        section("poll", &mut || {
            r.poll.insert(imp.key(), poll(cfg, imp)?);
            Ok(())
        });
    }
    r.errors = errors;
    r
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
    let mut rng = Rng::new(Rng::fresh_seed());
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
            let end = start + (slice * 1e9) as u64;
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

/// Milliseconds per call, one sample per repetition, of each command.
#[derive(Debug, Default, Clone)]
pub struct Cli {
    /// `flufl-lock run L -- true`.
    pub run_ms: Vec<f64>,
    /// `flock L true`: util-linux's flock(1), the same job with flock(2).
    pub flock_ms: Vec<f64>,
    /// `/bin/true`: starting a process at all.
    pub true_ms: Vec<f64>,
}

/// `flufl-lock run L -- true`, `flock L true` and `/bin/true`, interleaved (so that a change
/// in the machine's load hits all three alike), each started and waited for as a script
/// would. Fails, saying what to install, when flock(1) is missing.
pub fn cli(cfg: &Cfg) -> BoxResult<Cli> {
    let reps = if cfg.quick { 100 } else { 300 };
    let flock_ok = Command::new("flock")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !flock_ok {
        return Err(
            "flock(1) is not installed; it is the CLI's yardstick (apt-get install -y util-linux)"
                .into(),
        );
    }
    progress(&format!(
        "CLI overhead: {reps} x `flufl-lock run L -- true`, `flock L true` and /bin/true"
    ));
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
        c.arg("run")
            .arg(cfg.env.dir.join("cli.lck"))
            .args(["--", "true"]);
        c
    };
    let flock = || {
        let mut c = Command::new("flock");
        c.arg(cfg.env.dir.join("cli-flock.lck")).arg("true");
        c
    };
    let bin_true = || Command::new("/bin/true");
    let mut out = Cli::default();
    for _ in 0..3 {
        time(&mut run())?;
        time(&mut flock())?;
        time(&mut bin_true())?;
    }
    for _ in 0..reps {
        out.run_ms.push(time(&mut run())?);
        out.flock_ms.push(time(&mut flock())?);
        out.true_ms.push(time(&mut bin_true())?);
    }
    Ok(out)
}

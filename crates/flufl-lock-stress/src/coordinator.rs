//! The coordinator: runs workers against one lock, kills holders inside their critical
//! sections, stops and continues waiters, respawns the killed, and checks the result.
//!
//! Kills: when the log shows a holder inside its critical section, the coordinator may pick
//! it. It stops it (SIGSTOP, then waits for state `T` in `/proc`), reads the log again, and
//! only if the holder is still inside writes `K` and sends SIGKILL; otherwise it continues
//! it. The stop lasts milliseconds, far less than the lifetime.
//!
//! Stops: a random worker that the log does not show holding is stopped; once it is frozen
//! the coordinator reads the lock file and the break marker, and if either names the
//! worker (it had just acquired, or is breaking a dead holder's lock) it continues it at once.
//! Only pure waiters stay stopped, for up to `--stop-max-ms` (longer than the lifetime by
//! default). Stopping a *holder* for longer than the lifetime would let its lease expire,
//! which is the documented limit of any lease, not a fault.
//!
//! Places: by default the lock and the counter are in `--dir` beside the log. With
//! `--shared DIR,DIR...` they are in those directories instead (the mounts of one shared file
//! system, e.g. two NFS clients), worker `i` using directory `i mod n`, started under the
//! matching `--wrap` command prefix (e.g. one that gives it another host name). The log and the
//! stop file stay in `--dir`, on a local file system, so that the log is one true order of
//! events; `--server-dir` names the shared directory as the file server sees it, where the
//! counter, the lock and its marker are read and left-over files are looked for.

use crate::check::{check, Findings};
use crate::util::{self, append, open_append, Args};
use crate::worker::write_counter;
use flufl_lock::Lock;
use flufl_lock_testkit::{leftovers, mono_ns, Rng};
use rustix::process::Signal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a worker takes the lock: a directory of the shared file system as the worker sees
/// it, and the command prefix that starts the worker (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The directory holding the lock and the counter, as the worker sees it.
    pub dir: PathBuf,
    /// Words put before the worker's command line (e.g. `onhost.sh host-a`).
    pub wrap: Vec<String>,
}

/// The run's parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Working directory: log and stop file (and lock and counter unless `places` says
    /// otherwise).
    pub dir: PathBuf,
    /// Where the workers take the lock and update the counter; worker `i` uses place
    /// `i mod places.len()`. Default: `dir`, no wrapper.
    pub places: Vec<Place>,
    /// The shared directory as read directly (an NFS server's export): the counter, the lock
    /// file and the break marker are read here, and left-over files looked for. Default: the
    /// first place's directory.
    pub server_dir: PathBuf,
    /// How long a worker waits for the lock before it fails.
    pub wait_limit: Duration,
    /// Worker processes alive at any time.
    pub workers: usize,
    /// Stop once this many acquisitions are logged.
    pub acquisitions: u64,
    /// Lock lifetime.
    pub lifetime: Duration,
    /// Longest pause inside a critical section, ms.
    pub hold_max_ms: u64,
    /// Longest pause between sections, ms.
    pub think_max_ms: u64,
    /// Chance of killing the holder of each critical section seen.
    pub kill_chance: f64,
    /// Mean interval between stop attempts, ms.
    pub stop_every_ms: u64,
    /// Shortest and longest stop of a waiter, ms.
    pub stop_min_ms: u64,
    /// See `stop_min_ms`.
    pub stop_max_ms: u64,
    /// At most this many workers stopped at once.
    pub max_stopped: usize,
    /// Margin over the lifetime allowed for recovering a killed holder's lock, and for the
    /// longest gap between acquisitions.
    pub margin: Duration,
    /// Give up (and fail) after this long.
    pub max_time: Duration,
    /// Fail unless at least this many holders were killed and waiters stopped.
    pub min_kills: u64,
    /// See `min_kills`.
    pub min_stops: u64,
    /// Random seed.
    pub seed: u64,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
}

impl Params {
    /// From `flufl-lock-stress coordinator` arguments.
    pub fn from_args(a: &Args) -> Result<Params, String> {
        let lifetime_ms: u64 = a.get("lifetime-ms", 1500)?;
        let dir: PathBuf = a.req("dir")?;
        let places = places(&dir, a.opt("shared"), a.opt("wrap"))?;
        let server_dir = a
            .opt("server-dir")
            .map_or_else(|| places[0].dir.clone(), PathBuf::from);
        Ok(Params {
            dir,
            places,
            server_dir,
            wait_limit: Duration::from_millis(a.get("wait-limit-ms", 20_000)?),
            workers: a.get("workers", 8)?,
            acquisitions: a.get("acquisitions", 2000)?,
            lifetime: Duration::from_millis(lifetime_ms),
            hold_max_ms: a.get("hold-max-ms", 3)?,
            think_max_ms: a.get("think-max-ms", 2)?,
            kill_chance: a.get("kill-chance", 0.03)?,
            stop_every_ms: a.get("stop-every-ms", 150)?,
            stop_min_ms: a.get("stop-min-ms", 20)?,
            stop_max_ms: a.get("stop-max-ms", 2 * lifetime_ms)?,
            max_stopped: a.get("max-stopped", 2)?,
            margin: Duration::from_millis(a.get("margin-ms", 1000)?),
            max_time: Duration::from_secs(a.get("max-seconds", 150)?),
            min_kills: a.get("min-kills", 1)?,
            min_stops: a.get("min-stops", 1)?,
            seed: a.get("seed", Rng::fresh_seed())?,
            json: a.opt("json").map(PathBuf::from),
        })
    }
}

/// The places of `--shared DIR,DIR...` and `--wrap PREFIX,PREFIX...` (words split on
/// whitespace; as many prefixes as directories, or none); `dir` alone without them.
fn places(dir: &Path, shared: Option<&str>, wrap: Option<&str>) -> Result<Vec<Place>, String> {
    let dirs: Vec<PathBuf> = match shared {
        Some(s) => s
            .split(',')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect(),
        None => vec![dir.to_path_buf()],
    };
    if dirs.is_empty() {
        return Err("--shared names no directory".to_string());
    }
    let wraps: Vec<Vec<String>> = match wrap {
        Some(w) => w
            .split(',')
            .map(|p| p.split_whitespace().map(String::from).collect())
            .collect(),
        None => vec![Vec::new(); dirs.len()],
    };
    if wraps.len() != dirs.len() {
        return Err(format!(
            "--wrap has {} command prefixes for {} --shared directories",
            wraps.len(),
            dirs.len()
        ));
    }
    Ok(dirs
        .into_iter()
        .zip(wraps)
        .map(|(dir, wrap)| Place { dir, wrap })
        .collect())
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What the checker found in the log.
    pub findings: Findings,
    /// The counter's final value.
    pub counter: u64,
    /// Kills given up because the victim had left its section when it froze.
    pub kills_aborted: u64,
    /// Workers started, first ones included.
    pub spawned: u64,
    /// Waiters stopped.
    pub stops: u64,
    /// Stops undone at once because the frozen worker held the lock or the break marker.
    pub stops_aborted: u64,
    /// The longest stop, ms.
    pub longest_stop_ms: u64,
    /// Files left in the directory (and in the server's directory) other than the log,
    /// counter and stop file; those in the server's directory with their path.
    pub leftovers: Vec<String>,
    /// Failures of the run itself (stuck, timeouts, workers that died on their own).
    pub problems: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Recovery times in ms: min, median, max (zeros when none).
    pub fn recovery_ms(&self) -> (f64, f64, f64) {
        let mut v: Vec<u64> = self.findings.recoveries_ns.clone();
        v.sort_unstable();
        if v.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        let ms = |n: u64| n as f64 / 1e6;
        (ms(v[0]), ms(v[v.len() / 2]), ms(v[v.len() - 1]))
    }

    /// Every violation, as text; empty when the run passed.
    pub fn violations(&self, p: &Params) -> Vec<String> {
        let f = &self.findings;
        let mut v = Vec::new();
        v.extend(f.overlaps.iter().map(|s| format!("overlap: {s}")));
        v.extend(f.lost_updates.iter().map(|s| format!("lost update: {s}")));
        v.extend(f.corrupt.iter().map(|s| format!("log: {s}")));
        v.extend(f.failures.iter().map(|s| format!("worker failed: {s}")));
        v.extend(self.problems.iter().cloned());
        if f.unrecovered > 0 {
            v.push(format!(
                "{} killed holders' locks never recovered",
                f.unrecovered
            ));
        }
        let limit = p.lifetime + p.margin;
        for (i, r) in f.recoveries_ns.iter().enumerate() {
            if Duration::from_nanos(*r) > limit {
                v.push(format!(
                    "recovery {i} took {:.1} ms > {limit:?}",
                    *r as f64 / 1e6
                ));
            }
        }
        let (_, median, _) = self.recovery_ms();
        if !f.recoveries_ns.is_empty() && median > p.lifetime.as_secs_f64() * 1e3 / 2.0 {
            v.push(format!(
                "median recovery {median:.1} ms is over half the lifetime: killed holders were \
                 recovered by expiry, not proven dead by the same-host pid check"
            ));
        }
        if Duration::from_nanos(f.max_gap_ns) > limit {
            v.push(format!(
                "no acquisition for {:.1} ms > {limit:?}",
                f.max_gap_ns as f64 / 1e6
            ));
        }
        if !self.leftovers.is_empty() {
            v.push(format!("files left behind: {:?}", self.leftovers));
        }
        if f.acquisitions < p.acquisitions {
            v.push(format!("only {} acquisitions", f.acquisitions));
        }
        if f.kills_in_section < p.min_kills {
            v.push(format!("only {} holders killed", f.kills_in_section));
        }
        if self.stops < p.min_stops {
            v.push(format!("only {} waiters stopped", self.stops));
        }
        v
    }

    /// The figures as JSON (pretty-printed, keys in a fixed order, times rounded as the
    /// summary shows them).
    pub fn to_json(&self, p: &Params) -> String {
        let f = &self.findings;
        let (min, median, max) = self.recovery_ms();
        let violations = self.violations(p);
        let json = JsonReport {
            ok: violations.is_empty(),
            seed: p.seed,
            workers: p.workers,
            lifetime_ms: p.lifetime.as_millis() as u64,
            lock_dirs: p
                .places
                .iter()
                .map(|pl| pl.dir.display().to_string())
                .collect(),
            elapsed_s: round(self.elapsed.as_secs_f64(), 2),
            acquisitions: f.acquisitions,
            completed_sections: f.completed,
            counter: self.counter,
            kills: f.kills,
            kills_in_section: f.kills_in_section,
            killed_after_counter_write: f.killed_after_write,
            kills_aborted: self.kills_aborted,
            workers_spawned: self.spawned,
            stops: self.stops,
            stops_aborted: self.stops_aborted,
            longest_stop_ms: self.longest_stop_ms,
            overlaps: f.overlaps.len(),
            lost_updates: f.lost_updates.len(),
            recoveries: f.recoveries_ns.len(),
            unrecovered: f.unrecovered,
            recovery_ms: RecoveryMs {
                min: round(min, 3),
                median: round(median, 3),
                max: round(max, 3),
            },
            max_gap_between_acquisitions_ms: round(f.max_gap_ns as f64 / 1e6, 3),
            claim_files_left: &self.leftovers,
            violations: &violations,
        };
        let mut out = serde_json::to_string_pretty(&json).expect("plain data serializes");
        out.push('\n');
        out
    }

    /// A human summary.
    pub fn summary(&self, p: &Params) -> String {
        let f = &self.findings;
        let (rmin, rmed, rmax) = self.recovery_ms();
        let violations = self.violations(p);
        let mut s = format!(
            "flufl-lock stress: {} workers, lifetime {:?}, seed {}, {:.1} s\n\
             lock in {}\n\
             acquisitions {} (completed sections {}, counter {})\n\
             kills {} (inside a critical section {}, after the counter write {}, aborted {}), workers spawned {}\n\
             stops of waiters {} (aborted {}, longest {} ms)\n\
             overlaps {}, lost updates {}\n\
             recovery after a kill: min {:.2} ms, median {:.2} ms, max {:.2} ms ({} recovered, {} not)\n\
             longest gap between acquisitions {:.1} ms\n\
             claim files left {}\n",
            p.workers,
            p.lifetime,
            p.seed,
            self.elapsed.as_secs_f64(),
            p.places
                .iter()
                .map(|pl| pl.dir.join(LOCK_NAME).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            f.acquisitions,
            f.completed,
            self.counter,
            f.kills,
            f.kills_in_section,
            f.killed_after_write,
            self.kills_aborted,
            self.spawned,
            self.stops,
            self.stops_aborted,
            self.longest_stop_ms,
            f.overlaps.len(),
            f.lost_updates.len(),
            rmin,
            rmed,
            rmax,
            f.recoveries_ns.len(),
            f.unrecovered,
            f.max_gap_ns as f64 / 1e6,
            self.leftovers.len(),
        );
        if violations.is_empty() {
            s.push_str("PASS\n");
        } else {
            s.push_str("FAIL\n");
            for v in violations.iter().take(50) {
                s.push_str("  ");
                s.push_str(v);
                s.push('\n');
            }
        }
        s
    }
}

/// The JSON report, field by field (serde keeps this order).
#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    seed: u64,
    workers: usize,
    lifetime_ms: u64,
    lock_dirs: Vec<String>,
    elapsed_s: f64,
    acquisitions: u64,
    completed_sections: u64,
    counter: u64,
    kills: u64,
    kills_in_section: u64,
    killed_after_counter_write: u64,
    kills_aborted: u64,
    workers_spawned: u64,
    stops: u64,
    stops_aborted: u64,
    longest_stop_ms: u64,
    overlaps: usize,
    lost_updates: usize,
    recoveries: usize,
    unrecovered: u64,
    recovery_ms: RecoveryMs,
    max_gap_between_acquisitions_ms: f64,
    claim_files_left: &'a [String],
    violations: &'a [String],
}

#[derive(Serialize)]
struct RecoveryMs {
    min: f64,
    median: f64,
    max: f64,
}

/// `x` rounded to `digits` decimals.
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

struct Worker {
    id: usize,
    gen: u32,
    child: Child,
    stopped_until: Option<Instant>,
}

impl Worker {
    fn inst(&self) -> String {
        format!("{}.{}", self.id, self.gen)
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// What the log says now.
#[derive(Default)]
struct Model {
    /// Instance that acquired and has not logged its release.
    holder: Option<String>,
    /// Instance inside its critical section, and the section's sequence number.
    inside: Option<(String, u64)>,
    /// A section newly entered since the last look (a kill candidate).
    fresh_enter: bool,
    acquisitions: u64,
    last_acquired: Option<Instant>,
}

/// Follows the log as it grows.
struct Tail {
    file: File,
    partial: String,
}

impl Tail {
    fn poll(&mut self, m: &mut Model) -> std::io::Result<()> {
        let mut buf = String::new();
        self.file.read_to_string(&mut buf)?;
        if buf.is_empty() {
            return Ok(());
        }
        self.partial.push_str(&buf);
        let complete = match self.partial.rfind('\n') {
            Some(i) => i + 1,
            None => return Ok(()),
        };
        let lines: String = self.partial.drain(..complete).collect();
        for line in lines.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["A", inst, ..] => {
                    m.holder = Some(inst.to_string());
                    m.acquisitions += 1;
                    m.last_acquired = Some(Instant::now());
                }
                ["E", inst, seq, ..] => {
                    m.inside = Some((inst.to_string(), seq.parse().unwrap_or(0)));
                    m.fresh_enter = true;
                }
                ["X", inst, ..] if m.inside.as_ref().is_some_and(|i| i.0 == *inst) => {
                    m.inside = None;
                }
                ["R", inst, ..] | ["K", inst, ..] => {
                    if m.holder.as_deref() == Some(*inst) {
                        m.holder = None;
                    }
                    if m.inside.as_ref().is_some_and(|i| i.0 == *inst) {
                        m.inside = None;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The lock file's name in each place (and in the server's directory).
pub const LOCK_NAME: &str = "stress.lck";
/// The counter's name beside it.
pub const COUNTER_NAME: &str = "counter";

struct Run<'a> {
    p: &'a Params,
    log_path: PathBuf,
    stop: PathBuf,
    /// The lock file and its break marker as the server's directory shows them.
    lock: PathBuf,
    marker: PathBuf,
    log: File,
    rng: Rng,
    workers: BTreeMap<usize, Worker>,
    report: Report,
}

impl Run<'_> {
    fn spawn(&mut self, id: usize, gen: u32) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let seed = self.rng.next_u64();
        let inst = format!("{id}.{gen}");
        let place = &self.p.places[id % self.p.places.len()];
        let mut cmd = match place.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        // A wrapper must end by exec'ing the worker, so that the child's pid is the worker's.
        let child = cmd
            .arg("worker")
            .arg("--lock")
            .arg(place.dir.join(LOCK_NAME))
            .arg("--log")
            .arg(&self.log_path)
            .arg("--counter")
            .arg(place.dir.join(COUNTER_NAME))
            .arg("--stop")
            .arg(&self.stop)
            .args(["--inst", &inst])
            .args(["--lifetime-ms", &self.p.lifetime.as_millis().to_string()])
            .args(["--hold-max-ms", &self.p.hold_max_ms.to_string()])
            .args(["--think-max-ms", &self.p.think_max_ms.to_string()])
            .args([
                "--wait-limit-ms",
                &self.p.wait_limit.as_millis().to_string(),
            ])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn worker: {e}"))?;
        self.report.spawned += 1;
        self.workers.insert(
            id,
            Worker {
                id,
                gen,
                child,
                stopped_until: None,
            },
        );
        Ok(())
    }

    fn note(&self, line: &str) -> Result<(), String> {
        append(&self.log, line).map_err(|e| format!("append to log: {e}"))
    }

    /// Tries to kill the holder inside its critical section.
    fn try_kill(&mut self, tail: &mut Tail, m: &mut Model) -> Result<(), String> {
        let Some((inst, _)) = m.inside.clone() else {
            return Ok(());
        };
        let Some(id) = self
            .workers
            .values()
            .find(|w| w.inst() == inst)
            .map(|w| w.id)
        else {
            return Ok(());
        };
        let pid = self.workers[&id].pid();
        if util::signal(pid, Signal::STOP).is_err()
            || !util::wait_stopped(pid, Duration::from_secs(2))
        {
            let _ = util::signal(pid, Signal::CONT);
            self.report.kills_aborted += 1;
            return Ok(());
        }
        tail.poll(m).map_err(|e| e.to_string())?;
        if m.inside.as_ref().map(|i| &i.0) != Some(&inst) {
            // It left its section before it froze: let it go on.
            util::signal(pid, Signal::CONT).map_err(|e| e.to_string())?;
            self.report.kills_aborted += 1;
            return Ok(());
        }
        self.note(&format!("K {inst} {pid} {}", mono_ns()))?;
        util::signal(pid, Signal::KILL).map_err(|e| format!("kill {pid}: {e}"))?;
        let mut w = self.workers.remove(&id).expect("present");
        w.child.wait().map_err(|e| e.to_string())?;
        tail.poll(m).map_err(|e| e.to_string())?;
        self.spawn(id, w.gen + 1)
    }

    /// Tries to stop a waiter.
    fn try_stop(&mut self, tail: &mut Tail, m: &mut Model) -> Result<(), String> {
        let stopped = self
            .workers
            .values()
            .filter(|w| w.stopped_until.is_some())
            .count();
        if stopped >= self.p.max_stopped {
            return Ok(());
        }
        let candidates: Vec<usize> = self
            .workers
            .values()
            .filter(|w| w.stopped_until.is_none() && m.holder.as_deref() != Some(&w.inst()))
            .map(|w| w.id)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let id = candidates[self.rng.below(candidates.len() as u64) as usize];
        let (pid, inst) = (self.workers[&id].pid(), self.workers[&id].inst());
        if util::signal(pid, Signal::STOP).is_err()
            || !util::wait_stopped(pid, Duration::from_secs(2))
        {
            let _ = util::signal(pid, Signal::CONT);
            self.report.stops_aborted += 1;
            return Ok(());
        }
        tail.poll(m).map_err(|e| e.to_string())?;
        let holds = util::claim_pid(&self.lock) == Some(pid)
            || util::claim_pid(&self.marker) == Some(pid)
            || m.holder.as_deref() == Some(&inst);
        if holds {
            util::signal(pid, Signal::CONT).map_err(|e| e.to_string())?;
            self.report.stops_aborted += 1;
            return Ok(());
        }
        let d = self.rng.millis(self.p.stop_min_ms, self.p.stop_max_ms);
        self.note(&format!("S {inst} {}", mono_ns()))?;
        self.report.stops += 1;
        self.report.longest_stop_ms = self.report.longest_stop_ms.max(d.as_millis() as u64);
        if let Some(w) = self.workers.get_mut(&id) {
            w.stopped_until = Some(Instant::now() + d);
        }
        Ok(())
    }

    fn resume(&mut self, id: usize) -> Result<(), String> {
        let (pid, inst) = {
            let w = self.workers.get_mut(&id).expect("present");
            w.stopped_until = None;
            (w.pid(), w.inst())
        };
        self.note(&format!("C {inst} {}", mono_ns()))?;
        util::signal(pid, Signal::CONT).map_err(|e| format!("continue {pid}: {e}"))
    }

    fn resume_due(&mut self, all: bool) -> Result<(), String> {
        let now = Instant::now();
        let due: Vec<usize> = self
            .workers
            .values()
            .filter(|w| w.stopped_until.is_some_and(|t| all || t <= now))
            .map(|w| w.id)
            .collect();
        for id in due {
            self.resume(id)?;
        }
        Ok(())
    }

    /// Workers that exited on their own: a failure (they log why), respawned unless ending.
    fn reap(&mut self, respawn: bool) -> Result<(), String> {
        let mut exited = Vec::new();
        for w in self.workers.values_mut() {
            if let Some(st) = w.child.try_wait().map_err(|e| e.to_string())? {
                exited.push((w.id, w.gen, st));
            }
        }
        for (id, gen, st) in exited {
            self.workers.remove(&id);
            if !st.success() {
                self.report
                    .problems
                    .push(format!("worker {id}.{gen} exited on its own: {st}"));
                if self.report.problems.len() >= 20 {
                    return Err("20 workers failed; giving up".to_string());
                }
            }
            if respawn {
                self.spawn(id, gen + 1)?;
            }
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for w in self.workers.values_mut() {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        self.workers.clear();
    }

    fn main_loop(&mut self, tail: &mut Tail, m: &mut Model) -> Result<(), String> {
        let start = Instant::now();
        let stuck = self.p.lifetime + self.p.margin + Duration::from_secs(2);
        let mut next_stop = start + self.rng.millis(0, 2 * self.p.stop_every_ms);
        let mut next_reap = start;
        while m.acquisitions < self.p.acquisitions {
            tail.poll(m).map_err(|e| e.to_string())?;
            let now = Instant::now();
            if now - start > self.p.max_time {
                return Err(format!(
                    "gave up after {:?} with {} acquisitions",
                    self.p.max_time, m.acquisitions
                ));
            }
            let last = m.last_acquired.unwrap_or(start);
            if now - last > stuck {
                return Err(format!("stuck: no acquisition for {:?}", now - last));
            }
            if m.fresh_enter {
                m.fresh_enter = false;
                if self.rng.chance(self.p.kill_chance) {
                    self.try_kill(tail, m)?;
                }
            }
            if self.p.stop_every_ms > 0 && now >= next_stop {
                next_stop = now + self.rng.millis(0, 2 * self.p.stop_every_ms);
                self.try_stop(tail, m)?;
            }
            self.resume_due(false)?;
            if now >= next_reap {
                next_reap = now + Duration::from_millis(20);
                self.reap(true)?;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        Ok(())
    }

    /// Lets every worker finish its current acquisition and exit, in bounded time.
    fn wind_down(&mut self, tail: &mut Tail, m: &mut Model) -> Result<(), String> {
        std::fs::write(&self.stop, b"stop").map_err(|e| e.to_string())?;
        self.resume_due(true)?;
        let limit = Instant::now() + 2 * self.p.lifetime + Duration::from_secs(10);
        while !self.workers.is_empty() {
            tail.poll(m).map_err(|e| e.to_string())?;
            self.reap(false)?;
            if Instant::now() > limit {
                let left: Vec<String> = self.workers.values().map(Worker::inst).collect();
                self.kill_all();
                return Err(format!("workers {left:?} did not stop in time"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // One more acquisition, by the coordinator: the lock must not be wedged, whatever
        // the last kill left.
        let lock = Lock::builder(self.p.places[0].dir.join(LOCK_NAME))
            .lifetime(self.p.lifetime)
            .build()
            .map_err(|e| e.to_string())?;
        lock.lock_timeout(self.p.lifetime + self.p.margin)
            .map_err(|e| format!("final acquisition: {e}"))?;
        self.note(&format!("A final.0 {} 0 {}", std::process::id(), mono_ns()))?;
        lock.unlock().map_err(|e| format!("final release: {e}"))?;
        self.note(&format!("R final.0 0 {}", mono_ns()))?;
        Ok(())
    }
}

/// Runs a stress test; the report says whether it passed.
pub fn run(p: &Params) -> Result<Report, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&p.dir).map_err(|e| format!("create {}: {e}", p.dir.display()))?;
    let shared = &p.places[0].dir;
    std::fs::create_dir_all(shared).map_err(|e| format!("create {}: {e}", shared.display()))?;
    let lock = p.server_dir.join(LOCK_NAME);
    let log_path = p.dir.join("log");
    let counter = shared.join(COUNTER_NAME);
    let stop = p.dir.join("stop");
    let mut marker = lock.clone().into_os_string();
    marker.push(".break");
    for f in [&log_path, &counter, &stop] {
        let _ = std::fs::remove_file(f);
    }
    let c = File::create(&counter).map_err(|e| e.to_string())?;
    write_counter(&c, 0).map_err(|e| e.to_string())?;
    drop(c);
    let log = open_append(&log_path).map_err(|e| e.to_string())?;
    let mut tail = Tail {
        file: File::open(&log_path).map_err(|e| e.to_string())?,
        partial: String::new(),
    };
    let mut run = Run {
        p,
        log_path,
        stop,
        lock,
        marker: PathBuf::from(marker),
        log,
        rng: Rng::new(p.seed),
        workers: BTreeMap::new(),
        report: Report::default(),
    };
    let mut m = Model::default();
    let mut result = (|| {
        for id in 0..p.workers {
            run.spawn(id, 0)?;
        }
        run.main_loop(&mut tail, &mut m)
    })();
    if result.is_ok() {
        result = run.wind_down(&mut tail, &mut m);
    } else {
        let _ = run.resume_due(true);
        run.kill_all();
    }
    if let Err(e) = result {
        run.report.problems.push(e);
    }
    let log = std::fs::read_to_string(&run.log_path).map_err(|e| e.to_string())?;
    let server_counter = p.server_dir.join(COUNTER_NAME);
    let counter = std::fs::read_to_string(&server_counter)
        .map_err(|e| format!("read {}: {e}", server_counter.display()))?;
    run.report.counter = counter
        .trim()
        .parse()
        .map_err(|_| format!("bad counter {counter:?}"))?;
    run.report.findings = check(&log, run.report.counter);
    // Everything but the log, counter and stop file is a leftover: claims, markers, pins.
    // The places are views of the server's directory: it is listed once.
    let mut left = Vec::new();
    let mut dirs = vec![&p.dir, &p.server_dir];
    dirs.dedup();
    for d in dirs {
        match leftovers(d, &["log", COUNTER_NAME, "stop"]) {
            Ok(names) if d == &p.dir => left.extend(names),
            Ok(names) => left.extend(names.into_iter().map(|n| d.join(n).display().to_string())),
            Err(e) => run
                .report
                .problems
                .push(format!("cannot list {}: {e}", d.display())),
        }
    }
    left.sort();
    left.dedup();
    run.report.leftovers = left;
    run.report.elapsed = started.elapsed();
    Ok(run.report)
}

/// `flufl-lock-stress coordinator ...`: runs, prints the summary, writes the JSON.
/// Returns the exit code: 0 pass, 1 fail.
pub fn main(args: &Args) -> Result<(i32, String), String> {
    let p = Params::from_args(args)?;
    let report = run(&p)?;
    if let Some(path) = &p.json {
        std::fs::write(path, report.to_json(&p))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    let code = i32::from(!report.violations(&p).is_empty());
    Ok((code, report.summary(&p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--shared` and `--wrap` pair up; without them the lock is in `--dir`; a count
    /// mismatch is refused.
    #[test]
    fn places_from_options() {
        let dir = Path::new("/tmp/run");
        assert_eq!(
            places(dir, None, None).unwrap(),
            vec![Place {
                dir: dir.to_path_buf(),
                wrap: vec![]
            }]
        );
        let p = places(
            dir,
            Some("/m/A/x,/m/B/x"),
            Some("onhost.sh host-a, onhost.sh  host-b"),
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].dir, PathBuf::from("/m/B/x"));
        assert_eq!(p[0].wrap, ["onhost.sh", "host-a"]);
        assert_eq!(p[1].wrap, ["onhost.sh", "host-b"]);
        let p = places(dir, Some("/m/A/x,/m/B/x"), None).unwrap();
        assert!(p.iter().all(|pl| pl.wrap.is_empty()));
        assert!(places(dir, Some("/m/A/x,/m/B/x"), Some("w")).is_err());
        assert!(places(dir, Some(","), None).is_err());
        let a = Args::parse(
            [
                "--dir",
                "/tmp/run",
                "--shared",
                "/m/A/x,/m/B/x",
                "--server-dir",
                "/srv/x",
            ]
            .map(String::from),
            &[],
        )
        .unwrap();
        let p = Params::from_args(&a).unwrap();
        assert_eq!(p.server_dir, PathBuf::from("/srv/x"));
        assert_eq!(p.wait_limit, Duration::from_secs(20));
        let a = Args::parse(["--dir", "/tmp/run"].map(String::from), &[]).unwrap();
        let p = Params::from_args(&a).unwrap();
        assert_eq!((p.server_dir.as_path(), p.places.len()), (dir, 1));
    }
}

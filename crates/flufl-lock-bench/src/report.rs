//! The report: one Markdown table with a header line and a summary on stdout, and every
//! sample in a JSON file (serde_json).

use crate::args::Options;
use crate::measure::{
    Calls, Cli, Contention, Crash, Handoff, Poll, Results, Uncontended, CRASH_LIFETIME, FS_CALLS,
};
use crate::setup::{Machine, Setup};
use crate::util::{max, median, BoxResult};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A finished run, as the report describes it.
#[derive(Debug)]
pub struct Run<'a> {
    pub opts: &'a Options,
    pub setup: &'a Setup,
    pub results: &'a Results,
    pub load_after: String,
    pub elapsed: Duration,
}

/// Prints the table and summary on stdout and writes the JSON to `--json`.
pub fn publish(run: &Run) -> BoxResult<()> {
    let t = table(run.results);
    let table = t.render();
    println!("{}", header(run));
    println!();
    println!("{table}");
    println!();
    println!("{}", summary(&t, &run.results.syscalls));
    for e in &run.results.errors {
        println!("ERROR {e}");
    }
    let j = to_json(run, &t, &table);
    let path = &run.opts.json;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------- formatting

/// 3 significant digits, no exponent.
fn sig(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let d = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.1 {
        3
    } else {
        4
    };
    format!("{v:.d$}")
}

/// At most 2 decimals, trailing zeros dropped.
fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// "openat 1, write 1, ..." for the filesystem calls.
fn breakdown(c: &Calls) -> String {
    c.per_call
        .iter()
        .filter(|(k, v)| FS_CALLS.contains(&k.as_str()) && v.abs() >= 0.005)
        .map(|(k, v)| format!("{k} {}", trim_num(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dash() -> String {
    "-".into()
}

fn na() -> String {
    "n/a".into()
}

// ---------------------------------------------------------------- the table

#[derive(Debug, Default)]
struct Table {
    rows: Vec<[String; 7]>,
    targets: Vec<Value>,
}

impl Table {
    fn row(&mut self, cells: [&str; 7]) {
        self.rows.push(cells.map(str::to_string));
    }

    /// A row with a target: `pass` decides PASS/MISS, `figure` is what is compared.
    fn target(
        &mut self,
        measure: &str,
        values: [String; 4],
        target: &str,
        pass: Option<bool>,
        figure: String,
    ) {
        let result = match pass {
            Some(true) => format!("PASS ({figure})"),
            Some(false) => format!("MISS ({figure})"),
            None => format!("n/a ({figure})"),
        };
        self.targets.push(json!({
            "measure": measure, "target": target, "measured": figure, "pass": pass,
        }));
        let [a, b, c, d] = values;
        self.rows
            .push([measure.into(), a, b, c, d, target.into(), result]);
    }

    fn info(&mut self, measure: &str, values: [String; 4]) {
        let [a, b, c, d] = values;
        self.rows
            .push([measure.into(), a, b, c, d, "(info)".into(), String::new()]);
    }

    fn met(&self) -> usize {
        self.targets.iter().filter(|x| x["pass"] == true).count()
    }

    fn render(&self) -> String {
        let mut w = [0usize; 7];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &[String; 7]| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c}{}", " ".repeat(w[i] - c.chars().count())))
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let mut out = vec![line(&self.rows[0])];
        out.push(format!(
            "|{}|",
            w.iter()
                .map(|n| "-".repeat(n + 2))
                .collect::<Vec<_>>()
                .join("|")
        ));
        out.extend(self.rows[1..].iter().map(line));
        out.join("\n")
    }
}

/// The columns' mechanisms, in order.
const ORDER: [&str; 4] = ["ours", "floor", "flufl", "flock"];

fn table(r: &Results) -> Table {
    let mut t = Table::default();
    t.row([
        "Measure",
        "flufl_lock (ours)",
        "floor (7 calls)",
        "flufl.lock 10.0.0",
        "flock(2)",
        "Target",
        "Result",
    ]);
    uncontended_rows(&mut t, r.uncontended.as_ref());
    syscall_rows(&mut t, &r.syscalls);
    handoff_rows(&mut t, &r.handoff);
    contention_rows(&mut t, &r.contention);
    crash_rows(&mut t, &r.crash);
    cli_rows(&mut t, r.cli.as_ref());
    poll_rows(&mut t, &r.poll);
    t
}

/// Medians per mechanism, and the floor's.
fn uncontended_medians(unc: Option<&Uncontended>) -> (BTreeMap<&str, f64>, f64) {
    let um: BTreeMap<&str, f64> = unc
        .map(|u| u.runs.iter().map(|(k, v)| (*k, median(v))).collect())
        .unwrap_or_default();
    let floor = um.get("floor").copied().unwrap_or(f64::NAN);
    (um, floor)
}

// 1. uncontended
fn uncontended_rows(t: &mut Table, unc: Option<&Uncontended>) {
    let (um, floor) = uncontended_medians(unc);
    let ratio = um.get("ours").map(|o| o / floor);
    let runs = unc.map_or(0, |u| u.runs.get("ours").map_or(0, Vec::len));
    t.target(
        &format!("Uncontended lock+unlock, µs/cycle (median of {runs} runs)"),
        ORDER.map(|k| {
            um.get(k)
                .map_or_else(na, |v| format!("{} ({}x)", sig(*v), sig(v / floor)))
        }),
        "<= 1.3x floor",
        ratio.map(|r| r <= 1.3),
        ratio.map_or_else(na, |r| format!("{}x", sig(r))),
    );
}

// 2. syscalls
fn syscall_rows(t: &mut Table, sys: &BTreeMap<&str, Calls>) {
    let ours_fs = sys.get("ours").map(|c| (c.fs * 100.0).round() / 100.0);
    t.target(
        "FS syscalls per uncontended cycle (strace -f -c)",
        ORDER.map(|k| sys.get(k).map_or_else(na, |c| trim_num(c.fs))),
        "<= 9",
        ours_fs.map(|n| n <= 9.0),
        ours_fs.map_or_else(na, trim_num),
    );
}

// 3. hand-off
fn handoff_rows(t: &mut Table, hand: &BTreeMap<&str, Handoff>) {
    let hm = |k: &str| hand.get(k).map(|h| median(&h.ms));
    let hx = |k: &str| hand.get(k).map(|h| max(&h.ms));
    let n_of = |k: &str| hand.get(k).map_or(0, |h| h.ms.len());
    let hand_cells = |f: &dyn Fn(&str) -> Option<f64>| {
        [
            f("ours").map_or_else(na, sig),
            dash(),
            f("flufl").map_or_else(na, |v| format!("{} (n={})", sig(v), n_of("flufl"))),
            f("flock").map_or_else(na, sig),
        ]
    };
    t.target(
        &format!(
            "Hand-off release→acquire, median ms ({} reps)",
            n_of("ours")
        ),
        hand_cells(&hm),
        "<= 1 ms",
        hm("ours").map(|v| v <= 1.0),
        hm("ours").map_or_else(na, |v| format!("{} ms", sig(v))),
    );
    t.target(
        "Hand-off release→acquire, max ms",
        hand_cells(&hx),
        "<= 10 ms",
        hx("ours").map(|v| v <= 10.0),
        hx("ours").map_or_else(na, |v| format!("{} ms", sig(v))),
    );
    let better = hm("flufl").zip(hm("ours")).map(|(f, o)| f / o);
    t.target(
        "Hand-off median: flufl.lock's / ours",
        [
            better.map_or_else(na, |b| format!("{}x better", sig(b))),
            dash(),
            dash(),
            dash(),
        ],
        ">= 500x",
        better.map(|b| b >= 500.0),
        better.map_or_else(na, |b| format!("{}x", sig(b))),
    );
    t.info(
        "Hand-off, NFS mode (notify off), median / max ms",
        [
            hm("ours-nfs")
                .zip(hx("ours-nfs"))
                .map_or_else(na, |(m, x)| format!("{} / {}", sig(m), sig(x))),
            dash(),
            dash(),
            dash(),
        ],
    );
}

// 4. contention
fn contention_rows(t: &mut Table, cont: &BTreeMap<&str, Contention>) {
    let secs = cont.get("ours").map_or(0.0, |c| c.secs);
    let cc = |f: &dyn Fn(&Contention) -> String| {
        ORDER.map(|k| {
            if k == "floor" {
                dash()
            } else {
                cont.get(k).map_or_else(na, f)
            }
        })
    };
    let speed = cont
        .get("ours")
        .zip(cont.get("flufl"))
        .map(|(o, f)| o.per_sec() / f.per_sec());
    t.target(
        &format!("Contention, 4 processes x {secs} s (interleaved slices): acquisitions/s"),
        cc(&|c| format!("{:.0}", c.per_sec())),
        ">= flufl.lock's",
        speed.map(|s| s >= 1.0),
        speed.map_or_else(na, |s| format!("{}x flufl.lock", sig(s))),
    );
    let fair = cont.get("ours").map(Contention::fairness);
    t.target(
        "Contention: per-process min / max (min/max)",
        cc(&|c| format!("{} / {} ({})", c.min(), c.max(), sig(c.fairness()))),
        "min/max >= 0.5",
        fair.map(|f| f >= 0.5),
        fair.map_or_else(na, sig),
    );
    let lost = cont.get("ours").map(Contention::lost);
    t.target(
        "Contention: lost updates",
        cc(&|c| c.lost().to_string()),
        "0",
        lost.map(|l| l == 0),
        lost.map_or_else(na, |l| l.to_string()),
    );
}

// 5. crash recovery
fn crash_rows(t: &mut Table, crash: &Crash) {
    let life = CRASH_LIFETIME.as_secs_f64();
    let cs = |k: &str| -> String {
        match crash.secs.get(k) {
            Some(v) if v.len() > 1 => {
                format!("{} / {} (n={})", sig(median(v)), sig(max(v)), v.len())
            }
            Some(v) => format!("{} (n=1)", sig(max(v))),
            None => na(),
        }
    };
    let worst = |k: &str| crash.secs.get(k).map(|v| max(v));
    t.target(
        &format!(
            "Crash recovery (SIGKILL → acquired), same host, s, median / max; lifetime {life} s"
        ),
        [cs("ours/same"), dash(), cs("flufl/same"), cs("flock/same")],
        "<= 0.1 s",
        worst("ours/same").map(|w| w <= 0.1),
        worst("ours/same").map_or_else(na, |w| format!("max {} s", sig(w))),
    );
    t.target(
        "Crash recovery, as another host (own UTS+PID ns), s",
        [cs("ours/other"), dash(), cs("flufl/other"), dash()],
        &format!("<= {} s (lifetime + 1 s)", life + 1.0),
        worst("ours/other").map(|w| w <= life + 1.0),
        worst("ours/other").map_or_else(na, |w| format!("max {} s", sig(w))),
    );
}

// 6. CLI
fn cli_rows(t: &mut Table, cli: Option<&Cli>) {
    let m = cli.map(|c| {
        let (run, flock, bin_true) = (median(&c.run_ms), median(&c.flock_ms), median(&c.true_ms));
        (run, flock, bin_true, run / flock, c.run_ms.len())
    });
    t.target(
        &format!(
            "CLI: `flufl-lock run L -- true` vs `flock L true` (flock(1)), median ms; /bin/true (n={})",
            m.map_or(0, |m| m.4)
        ),
        [
            m.map_or_else(na, |(run, _, bin_true, _, _)| {
                format!("{}; /bin/true {}", sig(run), sig(bin_true))
            }),
            dash(),
            dash(),
            m.map_or_else(na, |(_, flock, _, _, _)| format!("{} (flock(1))", sig(flock))),
        ],
        "<= 1.5x flock(1)",
        m.map(|m| m.3 <= 1.5),
        m.map_or_else(na, |m| format!("{}x flock(1)", sig(m.3))),
    );
}

// 7. poll rate
fn poll_rows(t: &mut Table, polls: &BTreeMap<&str, Poll>) {
    let pr = |k: &str| {
        polls.get(k).map_or_else(na, |p: &Poll| {
            format!(
                "{} links/s, {} opens/s",
                sig(p.links_per_s()),
                sig(p.opens_per_s())
            )
        })
    };
    let nfs_rate = polls.get("ours-nfs").map(Poll::links_per_s);
    t.target(
        "Waiter poll rate, NFS mode (notify off), steady state",
        [pr("ours-nfs"), dash(), dash(), dash()],
        "<= ~20/s",
        nfs_rate.map(|r| r <= 20.0),
        nfs_rate.map_or_else(na, |r| format!("{}/s", sig(r))),
    );
    let local_rate = polls.get("ours").map(Poll::links_per_s);
    t.target(
        "Waiter poll rate, local fs (inotify + pidfd), steady state",
        [pr("ours"), dash(), dash(), dash()],
        "<= 1 link/s",
        local_rate.map(|r| r <= 1.0),
        local_rate.map_or_else(na, |r| format!("{}/s", sig(r))),
    );
}

// ---------------------------------------------------------------- around the table

/// The line above the table: what ran, where, the load, how long.
fn header(run: &Run) -> String {
    let m = &run.setup.machine;
    let fs = format!("{} on {} ({})", m.fs, m.device, m.dir.display());
    format!(
        "flufl-lock-bench{} at {}: {} x {} cores, Linux {}, {fs}; load {} -> {}; {:.0} s",
        if run.opts.quick { " --quick" } else { "" },
        run.setup.commit,
        m.cpu,
        m.cores,
        m.kernel,
        run.setup.load_before,
        run.load_after,
        run.elapsed.as_secs_f64()
    )
}

/// The line below the table: targets met, and our calls per cycle.
fn summary(t: &Table, sys: &BTreeMap<&str, Calls>) -> String {
    format!(
        "{} of {} targets met{}",
        t.met(),
        t.targets.len(),
        sys.get("ours").map_or(String::new(), |c| format!(
            "; ours per cycle: {} (other calls: {})",
            breakdown(c),
            trim_num(c.other)
        ))
    )
}

// ---------------------------------------------------------------- JSON

/// Everything: the run, each section's samples and figures, the targets, the table.
fn to_json(run: &Run, t: &Table, table: &str) -> Value {
    let (r, s) = (run.results, run.setup);
    json!({
        "tool": "flufl-lock-bench",
        "quick": run.opts.quick,
        "commit": s.commit,
        "only": run.opts.only,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "elapsed_s": run.elapsed.as_secs_f64(),
        "machine": machine_json(&s.machine),
        "load_before": s.load_before,
        "load_after": run.load_after,
        "binaries": {"bench": s.cfg.env.exe, "cli": s.cfg.cli, "python": s.cfg.env.python},
        "uncontended": r.uncontended.as_ref().map(uncontended_json),
        "syscalls_per_cycle": each(&r.syscalls, |c| json!({
            "fs": c.fs, "other": c.other, "per_call": c.per_call, "cycles": c.cycles,
        })),
        "handoff_ms": each(&r.handoff, |h| json!({
            "samples": h.ms, "holds_ms": h.holds_ms, "median": median(&h.ms), "max": max(&h.ms),
        })),
        "contention": each(&r.contention, |c| json!({
            "secs": c.secs, "counts": c.counts, "counter": c.counter, "per_sec": c.per_sec(),
            "min": c.min(), "max": c.max(), "min_over_max": c.fairness(), "lost": c.lost(),
        })),
        "crash_recovery_s": {"lifetime_s": CRASH_LIFETIME.as_secs_f64(), "samples": r.crash.secs},
        "cli_ms": r.cli.as_ref().map(|c| json!({
            "run_samples": c.run_ms, "flock_samples": c.flock_ms, "true_samples": c.true_ms,
            "run_median": median(&c.run_ms), "flock_median": median(&c.flock_ms),
            "true_median": median(&c.true_ms),
            "run_over_flock": median(&c.run_ms) / median(&c.flock_ms),
        })),
        "poll": each(&r.poll, |p| json!({
            "window_s": p.window_s, "links": p.links, "opens": p.opens,
            "links_per_s": p.links_per_s(), "opens_per_s": p.opens_per_s(),
        })),
        "targets": t.targets,
        "errors": r.errors,
        "table": table,
    })
}

/// One JSON object per mechanism.
fn each<T>(m: &BTreeMap<&str, T>, f: impl Fn(&T) -> Value) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.to_string(), f(v))).collect()
}

fn machine_json(m: &Machine) -> Value {
    json!({
        "cpu": m.cpu, "cores": m.cores, "kernel": m.kernel,
        "dir": m.dir, "device": m.device, "fs": m.fs, "mount_options": m.mount_options,
    })
}

fn uncontended_json(u: &Uncontended) -> Map<String, Value> {
    let (_, floor) = uncontended_medians(Some(u));
    u.runs
        .iter()
        .map(|(k, v)| {
            let paired: Vec<f64> = v.iter().zip(&u.runs["floor"]).map(|(a, b)| a / b).collect();
            let o = json!({
                "us_per_cycle_runs": v, "median_us": median(v), "ratio_to_floor": median(v) / floor,
                "paired_ratio_to_floor_median": median(&paired),
                "cycles_per_run": u.cycles[k],
            });
            (k.to_string(), o)
        })
        .collect()
}

//! `flufl-lock-bench`: flufl_lock side by side with a bare-syscall floor, Python's
//! flufl.lock 10.0.0 and flock(2), in one invocation (project issue 6).
//!
//! ```text
//! cargo run --release -p flufl-lock-bench -- [--quick] [--json PATH]
//! ```
//!
//! Prints one table (Markdown) on stdout, progress on stderr, and writes every sample to
//! JSON (default `target/bench.json`). See `docs/benchmarks.md`.
//!
//! The same binary is its own worker: `flufl-lock-bench worker KIND PATH LIFETIME_MS`
//! serves a line protocol on stdin/stdout, `flufl-lock-bench loop KIND PATH N` runs N
//! uncontended cycles (for strace); KIND is `ours`, `ours-nfs`, `floor` or `flock`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod driver;
mod measure;
mod util;
mod worker;

use driver::{Env, Impl};
use measure::{trim_num, Cfg, CRASH_LIFETIME};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use util::{max, median, BoxResult};

const USAGE: &str = "usage: flufl-lock-bench [--quick] [--json PATH] [--only LIST]

Benchmarks flufl_lock against a bare-syscall floor, Python's flufl.lock 10.0.0 and flock(2);
prints one table and writes JSON (default target/bench.json).

  --quick       shorter runs (about a minute instead of about two)
  --json PATH   where to write the JSON results
  --only LIST   run only these sections (comma-separated: uncontended, syscalls, handoff,
                contention, crash, cli, poll); the others show n/a

Environment: FLUFL_PY (python with flufl.lock 10.0.0; default target/interop-venv/bin/python,
made by `bash testbed/interop/setup.sh`), FLUFL_LOCK_CLI (the flufl-lock binary; default:
built with `cargo build --release -p flufl-lock-cli` next to this binary),
FLUFL_BENCH_DIR (scratch directory; default target/bench-tmp, must not be tmpfs for
meaningful figures).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("worker") if args.len() == 4 => args[3]
            .parse::<u64>()
            .map_err(Into::into)
            .and_then(|ms| worker::serve(&args[1], Path::new(&args[2]), Duration::from_millis(ms))),
        Some("loop") if args.len() == 4 => args[3]
            .parse::<u64>()
            .map_err(Into::into)
            .and_then(|n| worker::run_loop(&args[1], Path::new(&args[2]), n)),
        _ => bench(&args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flufl-lock-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_python(root: &Path) -> BoxResult<PathBuf> {
    let py = std::env::var_os("FLUFL_PY").map_or_else(
        || root.join("target/interop-venv/bin/python"),
        PathBuf::from,
    );
    let hint = "make it with `bash testbed/interop/setup.sh`, or set FLUFL_PY to a python with flufl.lock==10.0.0";
    if !py.exists() {
        return Err(format!("no Python for flufl.lock at {}: {hint}", py.display()).into());
    }
    let out = Command::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, flufl.lock; print(m.version('flufl.lock'))",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v != "10.0.0" {
        return Err(format!(
            "{} does not have flufl.lock 10.0.0 (found {:?}): {hint}",
            py.display(),
            if v.is_empty() { "none" } else { &v }
        )
        .into());
    }
    Ok(py)
}

fn find_cli(root: &Path, exe: &Path) -> BoxResult<PathBuf> {
    if let Some(p) = std::env::var_os("FLUFL_LOCK_CLI") {
        return Ok(PathBuf::from(p));
    }
    // Under `cargo run`, build the CLI with the same cargo, profile and target directory, so
    // the measured binary is current.
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("bench: cargo build --release -p flufl-lock-cli");
        let st = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "flufl-lock-cli",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .stdin(Stdio::null())
            .status()?;
        if !st.success() {
            return Err("cargo build --release -p flufl-lock-cli failed".into());
        }
    }
    let cli = exe.with_file_name("flufl-lock");
    if !cli.exists() {
        return Err(format!(
            "no {}: run `cargo build --release -p flufl-lock-cli` or set FLUFL_LOCK_CLI",
            cli.display()
        )
        .into());
    }
    Ok(cli)
}

/// The commit the library and CLI were built from, "+dirty" if their sources differ from it.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "crates/flufl-lock",
        "crates/flufl-lock-cli",
    ])
    .is_some_and(|s| !s.is_empty());
    format!("{head}{}", if dirty { "+dirty" } else { "" })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The mount holding `dir`: (device, fs type, options).
fn mount_of(dir: &Path) -> (String, String, String) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best = (0, (String::new(), String::new(), String::new()));
    for line in mounts.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 4 {
            continue;
        }
        let mp = w[1].replace("\\040", " ");
        if dir.starts_with(&mp) && mp.len() >= best.0 {
            best = (mp.len(), (w[0].into(), w[2].into(), w[3].into()));
        }
    }
    best.1
}

fn machine(dir: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |x| x.1.trim())
        .to_string();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (dev, fstype, opts) = mount_of(dir);
    json!({
        "cpu": model, "cores": cores, "kernel": kernel.trim(),
        "dir": dir, "device": dev, "fs": fstype, "mount_options": opts,
    })
}

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

#[derive(Debug, Default)]
struct Table {
    rows: Vec<[String; 7]>,
    targets: Vec<Value>,
    misses: usize,
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
            Some(false) => {
                self.misses += 1;
                format!("MISS ({figure})")
            }
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

fn dash() -> String {
    "-".into()
}

#[allow(clippy::too_many_lines)]
fn bench(args: &[String]) -> BoxResult<()> {
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let root = repo_root();
    let mut json_path = root.join("target/bench.json");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                only = Some(
                    it.next()
                        .ok_or("--only needs a list")?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                );
            }
            "--json" => json_path = PathBuf::from(it.next().ok_or("--json needs a PATH")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}").into()),
        }
    }
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let python = find_python(&root)?;
    let script = root.join("testbed/bench/flufl_bench.py");
    if !script.exists() {
        return Err(format!("missing {}", script.display()).into());
    }
    if !run_ok(Command::new("strace").arg("-V")) {
        return Err("strace is not installed (apt-get install -y strace)".into());
    }
    let namespaces = rustix::process::geteuid().is_root()
        && run_ok(Command::new("unshare").args([
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "true",
        ]));
    if !namespaces {
        eprintln!("bench: warning: cannot make namespaces (needs root and unshare); the other-host crash case is skipped");
    }
    let cli = find_cli(&root, &exe)?;
    let dir = std::env::var_os("FLUFL_BENCH_DIR")
        .map_or_else(|| root.join("target/bench-tmp"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mach = machine(&dir);
    if mach["fs"] == "tmpfs" {
        eprintln!(
            "bench: warning: {} is on tmpfs; figures are not those of a disk",
            dir.display()
        );
    }
    let load_before = loadavg();
    let commit = commit(&root);
    eprintln!(
        "bench: scratch directory {} ({}), load {load_before}",
        dir.display(),
        mach["fs"].as_str().unwrap_or("?")
    );
    let cfg = Cfg {
        quick,
        env: Env {
            exe,
            python,
            script,
            dir: dir.clone(),
        },
        cli,
        namespaces,
    };

    // ------------------------------------------------------------ measure
    let mut errors: Vec<String> = Vec::new();
    let mut section = |name: &str, f: &mut dyn FnMut() -> BoxResult<()>| {
        if only.as_ref().is_some_and(|o| !o.iter().any(|s| s == name)) {
            return;
        }
        if let Err(e) = f() {
            eprintln!("bench: {name}: error: {e}");
            errors.push(format!("{name}: {e}"));
        }
    };
    let mut unc = None;
    section("uncontended", &mut || {
        unc = Some(measure::uncontended(&cfg)?);
        Ok(())
    });
    let mut sys = BTreeMap::new();
    section("syscalls", &mut || {
        sys = measure::syscalls(&cfg)?;
        Ok(())
    });
    let mut hand = BTreeMap::new();
    for imp in [Impl::Ours, Impl::OursNfs, Impl::Flock, Impl::Flufl] {
        section("handoff", &mut || {
            hand.insert(imp.key(), measure::handoff(&cfg, imp)?);
            Ok(())
        });
    }
    let mut cont = BTreeMap::new();
    section("contention", &mut || {
        cont = measure::contention(&cfg, &[Impl::Ours, Impl::Flufl, Impl::Flock])?;
        Ok(())
    });
    let mut crash = measure::Crash::default();
    section("crash", &mut || {
        crash = measure::crash(&cfg)?;
        Ok(())
    });
    let mut cli = None;
    section("cli", &mut || {
        cli = Some(measure::cli(&cfg)?);
        Ok(())
    });
    let mut polls = BTreeMap::new();
    for imp in [Impl::OursNfs, Impl::Ours] {
        section("poll", &mut || {
            polls.insert(imp.key(), measure::poll(&cfg, imp)?);
            Ok(())
        });
    }
    let load_after = loadavg();
    let elapsed = started.elapsed();

    // ------------------------------------------------------------ table
    let na = || "n/a".to_string();
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
    let order = ["ours", "floor", "flufl", "flock"];

    // 1. uncontended
    let um: BTreeMap<&str, f64> = unc
        .as_ref()
        .map(|u| u.runs.iter().map(|(k, v)| (*k, median(v))).collect())
        .unwrap_or_default();
    let floor = um.get("floor").copied().unwrap_or(f64::NAN);
    let ratio = um.get("ours").map(|o| o / floor);
    let runs = unc
        .as_ref()
        .map_or(0, |u| u.runs.get("ours").map_or(0, Vec::len));
    t.target(
        &format!("Uncontended lock+unlock, µs/cycle (median of {runs} runs)"),
        order.map(|k| {
            um.get(k)
                .map_or_else(na, |v| format!("{} ({}x)", sig(*v), sig(v / floor)))
        }),
        "<= 1.3x floor",
        ratio.map(|r| r <= 1.3),
        ratio.map_or_else(na, |r| format!("{}x", sig(r))),
    );
    // 2. syscalls
    let ours_fs = sys.get("ours").map(|c| (c.fs * 100.0).round() / 100.0);
    t.target(
        "FS syscalls per uncontended cycle (strace -f -c)",
        order.map(|k| sys.get(k).map_or_else(na, |c| trim_num(c.fs))),
        "<= 9",
        ours_fs.map(|n| n <= 9.0),
        ours_fs.map_or_else(na, trim_num),
    );
    // 3. hand-off
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
    // 4. contention
    let secs = cont.get("ours").map_or(0.0, |c| c.secs);
    let cc = |f: &dyn Fn(&measure::Contention) -> String| {
        ["ours", "floor", "flufl", "flock"].map(|k| {
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
    let fair = cont.get("ours").map(measure::Contention::fairness);
    t.target(
        "Contention: per-process min / max (min/max)",
        cc(&|c| format!("{} / {} ({})", c.min(), c.max(), sig(c.fairness()))),
        "min/max >= 0.5",
        fair.map(|f| f >= 0.5),
        fair.map_or_else(na, sig),
    );
    let lost = cont.get("ours").map(measure::Contention::lost);
    t.target(
        "Contention: lost updates",
        cc(&|c| c.lost().to_string()),
        "0",
        lost.map(|l| l == 0),
        lost.map_or_else(na, |l| l.to_string()),
    );
    // 5. crash recovery
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
    // 6. CLI
    let cli_med = cli
        .as_ref()
        .map(|c| (median(&c.run_ms), median(&c.true_ms), c.run_ms.len()));
    t.info(
        &format!(
            "CLI: `flufl-lock run L -- true` vs `/bin/true`, median ms (n={})",
            cli_med.map_or(0, |c| c.2)
        ),
        [
            cli_med.map_or_else(na, |(r, t, _)| {
                format!("{} vs {} (+{})", sig(r), sig(t), sig(r - t))
            }),
            dash(),
            dash(),
            dash(),
        ],
    );
    // 7. poll rate
    let pr = |k: &str| {
        polls.get(k).map_or_else(na, |p: &measure::Poll| {
            format!(
                "{} links/s, {} opens/s",
                sig(p.links_per_s()),
                sig(p.opens_per_s())
            )
        })
    };
    let nfs_rate = polls.get("ours-nfs").map(measure::Poll::links_per_s);
    t.target(
        "Waiter poll rate, NFS mode (notify off), steady state",
        [pr("ours-nfs"), dash(), dash(), dash()],
        "<= ~20/s",
        nfs_rate.map(|r| r <= 20.0),
        nfs_rate.map_or_else(na, |r| format!("{}/s", sig(r))),
    );
    t.info(
        "Waiter poll rate, local fs (inotify + pidfd)",
        [pr("ours"), dash(), dash(), dash()],
    );
    let table = t.render();
    let fs = format!(
        "{} on {} ({})",
        mach["fs"].as_str().unwrap_or("?"),
        mach["device"].as_str().unwrap_or("?"),
        dir.display()
    );
    println!(
        "flufl-lock-bench{} at {commit}: {} x {} cores, Linux {}, {fs}; load {load_before} -> {load_after}; {:.0} s",
        if quick { " --quick" } else { "" },
        mach["cpu"].as_str().unwrap_or("?"),
        mach["cores"],
        mach["kernel"].as_str().unwrap_or("?"),
        elapsed.as_secs_f64()
    );
    println!();
    println!("{table}");
    println!();
    let met = t.targets.iter().filter(|x| x["pass"] == true).count();
    println!(
        "{met} of {} targets met{}",
        t.targets.len(),
        sys.get("ours").map_or(String::new(), |c| format!(
            "; ours per cycle: {} (other calls: {})",
            c.breakdown(),
            trim_num(c.other)
        ))
    );
    for e in &errors {
        println!("ERROR {e}");
    }

    // ------------------------------------------------------------ JSON
    let j = json!({
        "tool": "flufl-lock-bench",
        "quick": quick,
        "commit": commit,
        "only": only,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "elapsed_s": elapsed.as_secs_f64(),
        "machine": mach,
        "load_before": load_before,
        "load_after": load_after,
        "binaries": {"bench": cfg.env.exe, "cli": cfg.cli, "python": cfg.env.python},
        "uncontended": unc.as_ref().map(|u| u.runs.iter().map(|(k, v)| (k.to_string(), json!({
            "us_per_cycle_runs": v, "median_us": median(v), "ratio_to_floor": median(v) / floor,
            "paired_ratio_to_floor_median": median(&v.iter().zip(&u.runs["floor"]).map(|(a, b)| a / b).collect::<Vec<_>>()),
            "cycles_per_run": u.cycles[k],
        }))).collect::<serde_json::Map<_, _>>()),
        "syscalls_per_cycle": sys.iter().map(|(k, c)| (k.to_string(), json!({
            "fs": c.fs, "other": c.other, "per_call": c.per_call, "cycles": c.cycles,
        }))).collect::<serde_json::Map<_, _>>(),
        "handoff_ms": hand.iter().map(|(k, h)| (k.to_string(), json!({
            "samples": h.ms, "holds_ms": h.holds_ms, "median": median(&h.ms), "max": max(&h.ms),
        }))).collect::<serde_json::Map<_, _>>(),
        "contention": cont.iter().map(|(k, c)| (k.to_string(), json!({
            "secs": c.secs, "counts": c.counts, "counter": c.counter, "per_sec": c.per_sec(),
            "min": c.min(), "max": c.max(), "min_over_max": c.fairness(), "lost": c.lost(),
        }))).collect::<serde_json::Map<_, _>>(),
        "crash_recovery_s": {"lifetime_s": life, "samples": crash.secs},
        "cli_ms": cli.as_ref().map(|c| json!({
            "run_samples": c.run_ms, "true_samples": c.true_ms,
            "run_median": median(&c.run_ms), "true_median": median(&c.true_ms),
        })),
        "poll": polls.iter().map(|(k, p)| (k.to_string(), json!({
            "window_s": p.window_s, "links": p.links, "opens": p.opens,
            "links_per_s": p.links_per_s(), "opens_per_s": p.opens_per_s(),
        }))).collect::<serde_json::Map<_, _>>(),
        "targets": t.targets,
        "errors": errors,
        "table": table,
    });
    if let Some(parent) = json_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&j)? + "\n")?;
    eprintln!("bench: wrote {}", json_path.display());
    if !errors.is_empty() {
        return Err(format!(
            "{} section(s) failed; scratch files kept in {}",
            errors.len(),
            dir.display()
        )
        .into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

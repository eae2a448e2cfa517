//! Before measuring: finding what the run needs (Python with flufl.lock, the CLI, strace,
//! namespaces), making the scratch directory, and describing the machine and commit for
//! the report.

use crate::driver::Env;
use crate::measure::Cfg;
use crate::util::BoxResult;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The machine the figures come from.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// The scratch directory, and the mount that holds it.
    pub dir: PathBuf,
    pub device: String,
    pub fs: String,
    pub mount_options: String,
}

/// Everything found before the first measurement.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cfg: Cfg,
    pub machine: Machine,
    /// The commit measured (see [`commit`]).
    pub commit: String,
    pub load_before: String,
}

/// Finds what the run needs and makes an empty scratch directory; fails, saying what to
/// install, when something is missing. `exe` is this benchmark's binary.
pub fn prepare(root: &Path, exe: PathBuf, quick: bool) -> BoxResult<Setup> {
    let python = find_python(root)?;
    let script = root.join("testbed/bench/flufl_bench.py");
    if !script.exists() {
        return Err(format!("missing {}", script.display()).into());
    }
    if !run_ok(Command::new("strace").arg("-V")) {
        return Err("strace is not installed (apt-get install -y strace)".into());
    }
    let namespaces = can_make_namespaces();
    if !namespaces {
        eprintln!("bench: warning: cannot make namespaces (needs root and unshare); the other-host crash case is skipped");
    }
    let cli = find_cli(root, &exe)?;
    let dir = std::env::var_os("FLUFL_BENCH_DIR")
        .map_or_else(|| root.join("target/bench-tmp"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let machine = machine(&dir);
    if machine.fs == "tmpfs" {
        eprintln!(
            "bench: warning: {} is on tmpfs; figures are not those of a disk",
            dir.display()
        );
    }
    let load_before = loadavg();
    let commit = commit(root);
    eprintln!(
        "bench: scratch directory {} ({}), load {load_before}",
        dir.display(),
        machine.fs
    );
    let env = Env {
        exe,
        python,
        script,
        dir,
    };
    let cfg = Cfg {
        quick,
        env,
        cli,
        namespaces,
    };
    Ok(Setup {
        cfg,
        machine,
        commit,
        load_before,
    })
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and `unshare` can make the UTS and PID namespaces of the other-host crash case.
fn can_make_namespaces() -> bool {
    rustix::process::geteuid().is_root()
        && run_ok(Command::new("unshare").args([
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "true",
        ]))
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

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
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

fn machine(dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
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
    let (device, fs, mount_options) = mount_of(dir);
    Machine {
        cpu,
        cores,
        kernel: kernel.trim().to_string(),
        dir: dir.to_path_buf(),
        device,
        fs,
        mount_options,
    }
}

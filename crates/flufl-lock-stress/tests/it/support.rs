//! Running the `flufl-lock-stress` probes as separate processes: on this host, or in new UTS
//! and PID namespaces (`unshare`), optionally under libfaketime (`faketime`), and reading
//! their event lines with time limits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flufl-lock-stress");

/// The lifetime of the namespace and clock tests' locks.
pub const LIFETIME: Duration = Duration::from_millis(2000);
/// How far after expiry a waiter may take the lock: the library's 0.5 s clock margin plus
/// scheduling.
pub const LATE: Duration = Duration::from_millis(1500);
/// How early before `LIFETIME` (measured from the holder's report, which follows its claim's
/// stamp) the lock may be taken: only the time between stamping the claim and linking it.
pub const EARLY: Duration = Duration::from_millis(50);

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails (never skips) unless we are root and `unshare` can make UTS and PID namespaces with
/// their own /proc.
pub fn require_namespaces() {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = OK.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Err(
                "these tests need root (CAP_SYS_ADMIN) to create UTS and PID \
                        namespaces with `unshare`; run them as root"
                    .into(),
            );
        }
        if !have("unshare") {
            return Err("these tests need `unshare` (util-linux); install it \
                        (apt-get install util-linux)"
                .into());
        }
        let out = Command::new("timeout")
            .args([
                "10",
                "unshare",
                "--uts",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
            ])
            .arg("hostname probe-ns && test $$ = 1")
            .output()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`unshare --uts --pid --fork --mount-proc` does not work here ({}): {}; these \
                 tests need root with CAP_SYS_ADMIN outside a restrictive container",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// libfaketime's preload library, where Debian's `libfaketime` package (a dependency of
/// `faketime`) or another distribution puts it.
pub fn libfaketime() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib/faketime",
        "/usr/lib64/faketime",
        "/usr/local/lib/faketime",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        dirs.extend(rd.filter_map(Result::ok).map(|e| e.path().join("faketime")));
    }
    dirs.into_iter()
        .map(|d| d.join("libfaketime.so.1"))
        .find(|p| p.is_file())
}

/// Fails (never skips) unless libfaketime is installed; installs it first with `setup.sh`
/// (apt-get, as root) when it is missing. Returns the preload library's path.
///
/// The probes preload the library themselves (`LD_PRELOAD`, `FAKETIME`) rather than run
/// under the `faketime` wrapper: the wrapper names its semaphore and shared memory after
/// its pid, so two wrappers with the same pid in different pid namespaces collide
/// (`faketime: sem_open: File exists`).
pub fn require_faketime() -> PathBuf {
    static OK: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = OK.get_or_init(|| {
        if let Some(p) = libfaketime() {
            return Ok(p);
        }
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("setup.sh");
        let out = Command::new("timeout")
            .arg("600")
            .arg("sh")
            .arg(&setup)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", setup.display()))?;
        match libfaketime() {
            Some(p) if out.status.success() => Ok(p),
            _ => Err(format!(
                "the clock-skew tests need libfaketime (Debian package `faketime`); {} \
                 failed ({}): {}",
                setup.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// This machine's host name as the kernel has it (`uname -n`).
pub fn nodename() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Where a probe runs.
#[derive(Debug, Clone)]
pub enum Place {
    /// On this host, in the test's own namespaces.
    Host,
    /// In new UTS and PID namespaces with their own /proc, under `hostname`, as pid 1 (the
    /// namespace's init) or pid 2 (a child of `sh`, which is pid 1).
    Ns { hostname: String, pid: u32 },
    /// In a new PID namespace whose /proc is still the host's (no `--mount-proc`).
    NsSharedProc,
}

/// A probe: where it runs, under which fake clock offset, with which arguments.
#[derive(Debug, Clone)]
pub struct Spec {
    pub place: Place,
    /// A libfaketime offset such as `+30s`.
    pub faketime: Option<&'static str>,
    pub args: Vec<String>,
}

impl Spec {
    pub fn new(place: Place, faketime: Option<&'static str>, args: &[&str]) -> Spec {
        Spec {
            place,
            faketime,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell words that run the probe binary with `args`, with libfaketime preloaded and
/// set to the offset if asked (`env` execs, so the probe keeps the pid it was given).
fn probe_words(faketime: Option<&str>, args: &[String]) -> String {
    let mut w = String::new();
    if let Some(off) = faketime {
        let lib = require_faketime();
        w.push_str(&format!(
            "env LD_PRELOAD={} FAKETIME={} FAKETIME_DONT_FAKE_MONOTONIC=1 ",
            quote(&lib.to_string_lossy()),
            quote(off)
        ));
    }
    w.push_str(&quote(BIN));
    for a in args {
        w.push(' ');
        w.push_str(&quote(a));
    }
    w
}

/// A running probe (or a namespace running several), with its output lines.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so that Drop kills everything it started, in any
            // namespace.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                seen2.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            seen,
        }
    }

    /// Starts one probe as `spec` says.
    pub fn spawn(name: &str, spec: &Spec) -> Proc {
        let words = probe_words(spec.faketime, &spec.args);
        let cmd = match &spec.place {
            Place::Host => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("exec {words}")]);
                c
            }
            Place::Ns { hostname, pid } => {
                let body = match pid {
                    1 => format!("exec {words}"),
                    2 => format!("{words}; exit $?"),
                    other => panic!("pid {other}: only 1 or 2 can be placed"),
                };
                ns_command(hostname, true, &body)
            }
            Place::NsSharedProc => {
                let mut c = Command::new("unshare");
                c.args([
                    "--pid",
                    "--kill-child",
                    "sh",
                    "-c",
                    &format!("{words}; exit $?"),
                ]);
                c
            }
        };
        Proc::start(name, cmd)
    }

    /// Starts several probes in one new UTS+PID namespace, in the background of its `sh`
    /// (so with pids 2, 3, ... in start order), and waits for them all.
    pub fn spawn_together(name: &str, hostname: &str, probes: &[Spec]) -> Proc {
        let mut body = String::new();
        for (i, p) in probes.iter().enumerate() {
            body.push_str(&probe_words(p.faketime, &p.args));
            body.push_str(if i + 1 < probes.len() {
                " & "
            } else {
                "; wait"
            });
        }
        Proc::start(name, ns_command(hostname, true, &body))
    }

    /// Waits at most `limit` for the line `<tag> <event> ...`; fails the test otherwise.
    pub fn expect(&self, tag: &str, event: &str, limit: Duration) -> Event {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ev = Event::parse(&line);
                    if ev.tag == tag && ev.event == event {
                        return ev;
                    }
                }
                Err(_) => panic!(
                    "{}: no `{tag} {event}` within {limit:?}; output so far:\n{}",
                    self.name,
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// All output lines so far.
    pub fn output(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ns_command(hostname: &str, mount_proc: bool, body: &str) -> Command {
    // Set the host name in the new UTS namespace first, then make the pid namespace, so
    // that `hostname` does not take pid 2: there `sh` is pid 1 and what it starts 2, 3, ...
    let mut c = Command::new("unshare");
    c.args([
        "--uts",
        "--kill-child",
        "sh",
        "-c",
        "hostname \"$1\" || exit 100; shift; exec \"$@\"",
        "sh",
        hostname,
        "unshare",
        "--pid",
        "--kill-child",
    ]);
    if mount_proc {
        c.arg("--mount-proc");
    }
    c.args(["sh", "-c", body]);
    c
}

/// One event line: `<tag> <event> key=value ...` (`err=` runs to the end of the line).
#[derive(Debug, Clone)]
pub struct Event {
    pub tag: String,
    pub event: String,
    pub fields: HashMap<String, String>,
}

impl Event {
    pub fn parse(line: &str) -> Event {
        let mut it = line.splitn(3, ' ');
        let tag = it.next().unwrap_or("").to_string();
        let event = it.next().unwrap_or("").to_string();
        let mut rest = it.next().unwrap_or("");
        let mut fields = HashMap::new();
        while !rest.is_empty() {
            if let Some(err) = rest.strip_prefix("err=") {
                fields.insert("err".to_string(), err.to_string());
                break;
            }
            let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some((k, v)) = word.split_once('=') {
                fields.insert(k.to_string(), v.to_string());
            }
            rest = tail;
        }
        Event { tag, event, fields }
    }

    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {key}= in {self:?}"))
    }

    /// The `t=` field: `CLOCK_MONOTONIC` ns.
    pub fn t(&self) -> u64 {
        self.get("t").parse().expect("t=")
    }
}

/// Milliseconds from `a` to `b` (both `t=` of events), negative if `b` is earlier.
pub fn ms_between(a: &Event, b: &Event) -> f64 {
    (b.t() as f64 - a.t() as f64) / 1e6
}

/// A fresh directory and a lock path in it.
pub fn lock_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ns.lck");
    (dir, path)
}

/// Asserts that a probe's reported wall-clock skew (its clock minus the file server's)
/// matches the libfaketime offset it ran under: libfaketime really moved its clock.
pub fn assert_skew(info: &Event, faketime: Option<&str>) {
    let skew: i64 = info.get("skew_ms").parse().expect("skew_ms");
    let want: i64 = match faketime {
        None => 0,
        Some(off) => {
            let s = off.trim_end_matches('s');
            s.parse::<i64>().expect("offset in seconds") * 1000
        }
    };
    assert!(
        (skew - want).abs() < 2000,
        "{}: expected a wall-clock skew of about {want} ms under faketime {faketime:?}, \
         measured {skew} ms: libfaketime is not in effect",
        info.tag
    );
}

/// Runs `f` for each case on its own thread and reports every failure, named.
pub fn run_cases<T: Send + 'static>(
    cases: Vec<(String, T)>,
    f: impl Fn(&str, T) -> String + Send + Sync + Copy + 'static,
) -> Vec<String> {
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, c)| {
            let n = name.clone();
            (name, std::thread::spawn(move || f(&n, c)))
        })
        .collect();
    let mut failures = Vec::new();
    let mut figures = Vec::new();
    for (name, h) in handles {
        match h.join() {
            Ok(line) => figures.push(format!("{name}: {line}")),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    for f in &figures {
        println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n\n")
    );
    figures
}

/// The shell words that run the probe binary with `args`, each quoted (for scripts that
/// wrap it in `setpriv`, `unshare --time`, `mount`...).
pub fn probe_cmd(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    probe_words(None, &args)
}

/// Starts `sh -c script` in its own process group (killed with everything it started when
/// the `Proc` is dropped), reading its event lines like a probe's.
pub fn spawn_script(name: &str, script: &str) -> Proc {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    Proc::start(name, c)
}

impl Proc {
    /// Waits at most `limit` for the process `spawn*` started (the probe, or the `sh` or
    /// `unshare` around it) to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts `cmd` (any program that prints event lines like a probe) in its own process group,
/// killed with everything it started when the `Proc` is dropped.
pub fn spawn_command(name: &str, cmd: Command) -> Proc {
    Proc::start(name, cmd)
}

//! The `flufl-lock` command on POSIX, spawned as users' scripts spawn it: every subcommand
//! and exit code, signal forwarding, the parent-death guarantee, lost-lock handling, the
//! JSON shape and bad input. Every wait has a time limit.

use super::{cmd, run, s, stderr, stdout, tmp, wait_timeout, BIN};
use flufl_lock::Lock;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits until `f` holds, or fails after `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z")
}

/// `run` runs COMMAND under the lock, passes its exit status through and leaves nothing.
#[test]
fn run_passes_exit_status() {
    let (dir, lock) = tmp();
    let o = run(&[
        "run",
        s(&lock),
        "--",
        "sh",
        "-c",
        "test -e \"$0\" && exit 3",
        s(&lock),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = run(&["run", s(&lock), "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

/// COMMAND killed by signal N gives 128+N.
#[test]
fn run_signal_status() {
    let (_d, lock) = tmp();
    let o = run(&["run", s(&lock), "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
}

/// COMMAND not found is 127, with a message naming it; the lock is released.
#[test]
fn run_command_not_found() {
    let (dir, lock) = tmp();
    let o = run(&["run", s(&lock), "--", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("/no/such/program"), "{}", stderr(&o));
    assert!(files(dir.path()).is_empty());
}

/// Timing out: exit 75 and one line naming the lock, its holder and its expiry.
#[test]
fn run_timeout_is_75() {
    let (_d, lock) = tmp();
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    let o = run(&["run", "--timeout", "200ms", s(&lock), "--", "true"]);
    assert_eq!(o.status.code(), Some(75));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(s(&lock))
            && err.contains(&std::process::id().to_string())
            && err.contains(holder.hostname()),
        "{err}"
    );
    assert!(err.contains("expires in"), "{err}");
    // From a script (this test process holds the lock and would be acquire's owner).
    let o = run(&[
        "run",
        &format!("{}.outer", s(&lock)),
        "--",
        "sh",
        "-c",
        &format!("{BIN} acquire --timeout 0 {}", s(&lock)),
    ]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
}

/// While COMMAND runs the lock is held (by flufl-lock's pid).
#[test]
fn run_holds_lock_while_command_runs() {
    let (d, lock) = tmp();
    let out = d.path().join("status.json");
    let script = format!("{BIN} status --json {} > {}", s(&lock), s(&out));
    let o = run(&["run", s(&lock), "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = std::fs::read_to_string(&out).unwrap();
    assert!(json.contains("\"state\": \"unknown\""), "{json}");
    assert!(json.contains("\"pid\": "), "{json}");
}

/// SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND; the lock is released afterwards.
#[test]
fn run_forwards_signals() {
    for (sig, name) in [(15, "TERM"), (2, "INT"), (1, "HUP")] {
        let (dir, lock) = tmp();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'exit 42' {name}; touch {}; while :; do sleep 0.02; done",
            s(&ready)
        );
        let mut child = cmd()
            .args(["run", s(&lock), "--", "sh", "-c", &script])
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(10), "COMMAND ready", || ready.exists());
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::from_named_raw(sig).unwrap(),
        )
        .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(42), "SIG{name}");
        assert!(!lock.exists(), "SIG{name}: lock left behind");
    }
}

/// If flufl-lock is SIGKILLed, COMMAND and what it started die too, and a waiter on this
/// host takes the lock over at once (the holder's pid is proven dead).
#[test]
fn run_parent_death_kills_command_group() {
    let (dir, lock) = tmp();
    let pids = dir.path().join("pids");
    let script = format!("sleep 300 & echo $$ $! > {}; wait", s(&pids));
    let mut child = cmd()
        .args([
            "run",
            "--lifetime",
            "60s",
            s(&lock),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "pids written", || {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.ends_with('\n'))
    });
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(Duration::from_secs(5), "COMMAND and its child gone", || {
        pids.iter().all(|&p| !alive(p))
    });
    let waiter = Lock::new(&lock).unwrap();
    let t = Instant::now();
    waiter.lock_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "takeover took {:?}",
        t.elapsed()
    );
}

/// A Ctrl-C at the terminal (SIGINT to flufl-lock's process group) does not reach the
/// watchdog, which is in a group of its own: COMMAND ignores the forwarded SIGINT and runs
/// on, and when flufl-lock is then SIGKILLed, COMMAND's whole group still goes.
#[test]
fn run_terminal_interrupt_spares_the_watchdog() {
    use std::os::unix::process::CommandExt;
    let (dir, lock) = tmp();
    let pids = dir.path().join("pids");
    let script = format!("trap '' INT; sleep 300 & echo $$ $! > {}; wait", s(&pids));
    let mut child = cmd()
        .args(["run", s(&lock), "--", "sh", "-c", &script])
        .process_group(0)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "pids written", || {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.ends_with('\n'))
    });
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::INT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pids.iter().all(|&p| alive(p)), "COMMAND ignores SIGINT");
    assert!(child.try_wait().unwrap().is_none(), "flufl-lock runs on");
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(Duration::from_secs(5), "COMMAND and its child gone", || {
        pids.iter().all(|&p| !alive(p))
    });
}

/// The keep-alive refreshes the lock while COMMAND runs past its lifetime.
#[test]
fn run_refreshes_while_command_runs() {
    let (d, lock) = tmp();
    let out = d.path().join("status.json");
    let script = format!("sleep 1.5; {BIN} status --json {} > {}", s(&lock), s(&out));
    let o = run(&[
        "run",
        "--lifetime",
        "600ms",
        s(&lock),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = std::fs::read_to_string(&out).unwrap();
    let ms: i64 = json
        .split("\"expires_in_ms\": ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('}')
        .parse()
        .unwrap();
    assert!(ms > 0, "not refreshed: {json}");
}

/// A lock lost while COMMAND runs: a message on stderr, COMMAND stopped, exit 76, and the
/// new holder keeps its lock.
#[test]
fn run_lost_lock() {
    let (dir, lock) = tmp();
    let ready = dir.path().join("ready");
    let script = format!("touch {}; sleep 60", s(&ready));
    let child = cmd()
        .args([
            "run",
            "--lifetime",
            "900ms",
            s(&lock),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "COMMAND ready", || ready.exists());
    // Someone removes the lock and takes it (as a breaker ignoring the protocol would).
    std::fs::remove_file(&lock).unwrap();
    let thief = Lock::builder(&lock)
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    thief.lock().unwrap();
    let mut child = child;
    let status = wait_timeout(&mut child, Duration::from_secs(15));
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(76), "{err}");
    assert!(
        err.contains("lost the lock") && err.contains(s(&lock)),
        "{err}"
    );
    assert!(thief.is_locked().unwrap());
}

/// acquire, status, refresh and release from a shell script, held for the script's pid.
#[test]
fn acquire_refresh_release_from_script() {
    let (d, lock) = tmp();
    let out = d.path().join("out");
    let l = s(&lock);
    let script = format!(
        "set -e; {BIN} acquire --lifetime 5s {l}; {BIN} refresh --lifetime 100s {l}; {BIN} status --json {l} > {o}; echo $$ >> {o}; {BIN} release {l}",
        o = s(&out)
    );
    let o = run(&["run", &format!("{l}.outer"), "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let (json, pid) = text.trim().rsplit_once('\n').unwrap();
    assert!(
        json.contains(&format!("\"pid\": {pid}")),
        "held for the script's pid: {json}"
    );
    let ms: i64 = json
        .split("\"expires_in_ms\": ")
        .nth(1)
        .unwrap()
        .trim_end_matches('}')
        .parse()
        .unwrap();
    assert!(ms > 90_000, "refresh did not extend: {ms}");
    assert!(!lock.exists());
    assert_eq!(files(d.path()), vec!["out".to_string()]);
}

/// release refuses someone else's lock (exit 1, message) unless --force; release of an
/// unlocked lock is exit 1.
#[test]
fn release_refuses_others() {
    let (_d, lock) = tmp();
    let o = run(&["release", s(&lock)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not locked"), "{}", stderr(&o));
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    // From a script, whose pid is not the holder's (this test process is).
    let o = run(&["release", "--owner-pid", "1", s(&lock)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert!(holder.is_locked().unwrap());
    let o = run(&["release", "--force", "--owner-pid", "1", s(&lock)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!holder.is_locked().unwrap());
}

/// refresh of a lock not held for us is exit 1.
#[test]
fn refresh_not_held() {
    let (_d, lock) = tmp();
    assert_eq!(run(&["refresh", s(&lock)]).status.code(), Some(1));
}

/// status --json: the documented shape, for unlocked and held.
#[test]
fn status_json_shape() {
    let (_d, lock) = tmp();
    let o = run(&["status", "--json", s(&lock)]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o).trim(),
        format!("{{\"lockfile\": \"{}\", \"state\": \"unlocked\", \"holder\": null, \"expires_at\": null, \"expires_in_ms\": null}}", s(&lock))
    );
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    let o = run(&["status", "--json", s(&lock)]);
    let j = stdout(&o);
    assert!(j.starts_with(&format!("{{\"lockfile\": \"{}\", \"state\": \"unknown\", \"holder\": {{\"hostname\": \"{}\", \"pid\": {}, \"claimfile\": \"{}\"}}, \"expires_at\": \"", s(&lock), holder.hostname(), std::process::id(), holder.claimfile().display())), "{j}");
    let at = j
        .split("\"expires_at\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    let ms: i64 = j
        .split("\"expires_in_ms\": ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('}')
        .parse()
        .unwrap();
    assert!((10_000..=15_000).contains(&ms), "{ms}");
    let o = run(&["status", s(&lock)]);
    assert!(
        stdout(&o).contains("held by") && stdout(&o).contains("expires in"),
        "{}",
        stdout(&o)
    );
}

/// break: an expired lock is broken (exit 0, says what); a live one refused (exit 1)
/// unless --force; unlocked is exit 0.
#[test]
fn break_subcommand() {
    let (dir, lock) = tmp();
    let o = run(&["break", s(&lock)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not locked"));
    let live = Lock::new(&lock).unwrap();
    live.lock().unwrap();
    let o = run(&["break", s(&lock)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing") && stderr(&o).contains("expires in"),
        "{}",
        stderr(&o)
    );
    let o = run(&["break", "--force", s(&lock)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("broke"));
    drop(live);
    let old = Lock::builder(&lock)
        .lifetime(Duration::from_millis(10))
        .build()
        .unwrap();
    old.lock().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let o = run(&["break", s(&lock)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pid {}", std::process::id())),
        "{}",
        stderr(&o)
    );
    std::mem::forget(old);
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

/// Bad input: one line naming the path or argument; 2 for usage, 1 otherwise; no panic.
#[test]
fn bad_input() {
    let (dir, lock) = tmp();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let link = dir.path().join("link.lck");
    std::os::unix::fs::symlink(dir.path().join("victim"), &link).unwrap();
    let missing = dir.path().join("missing/x.lck");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["run", s(&missing), "--", "true"], 1, "missing"),
        (vec!["status", s(&missing)], 0, "unlocked"),
        (vec!["run", s(&sub), "--", "true"], 1, "is a directory"),
        (vec!["status", s(&sub)], 1, "is a directory"),
        (vec!["run", s(&link), "--", "true"], 1, "symbolic link"),
        (vec!["status", s(&link)], 1, "symbolic link"),
        (vec!["break", s(&link)], 1, "symbolic link"),
        (
            vec!["run", "--lifetime", "5x", s(&lock), "--", "true"],
            2,
            "5x",
        ),
        (
            vec!["run", "--timeout", "soon", s(&lock), "--", "true"],
            2,
            "soon",
        ),
        (
            vec!["run", "--frobnicate", s(&lock), "--", "true"],
            2,
            "--frobnicate",
        ),
        (vec!["run", s(&lock)], 2, "COMMAND"),
        (vec!["acquire", "--owner-pid", "abc", s(&lock)], 2, "abc"),
        (vec!["nosuch"], 2, "nosuch"),
    ];
    for (args, code, words) in cases {
        let o = run(&args);
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}{out}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(words) || out.contains(words),
            "{args:?}: {err}{out}"
        );
        if code == 1 {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
    assert!(!dir.path().join("victim").exists());
}

/// --help has examples for each subcommand; --version works; completions and man render.
#[test]
fn help_version_completions_man() {
    for sub in ["run", "acquire", "release", "refresh", "status", "break"] {
        let o = run(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(
            stdout(&o).contains("Example"),
            "{sub} --help has no example"
        );
    }
    let o = run(&["--help"]);
    assert!(stdout(&o).contains("75") && stdout(&o).contains("Exit codes"));
    let o = run(&["--version"]);
    assert_eq!(
        stdout(&o).trim(),
        format!("flufl-lock {}", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(
            o.status.success() && stdout(&o).contains("acquire"),
            "{shell}"
        );
    }
    let o = run(&["man"]);
    assert!(o.status.success() && stdout(&o).contains(".TH"));
}

/// --quiet and a non-terminal stderr print no status line while waiting.
#[test]
fn no_status_line_when_not_a_terminal() {
    let (_d, lock) = tmp();
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    let o = run(&["run", "--timeout", "300ms", s(&lock), "--", "true"]);
    assert!(
        !stderr(&o).contains('\r') && !stderr(&o).contains("waited"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
}

/// -v shows the library's log messages (waiting).
#[test]
fn verbose_logs() {
    let (_d, lock) = tmp();
    let holder = Lock::new(&lock).unwrap();
    holder.lock().unwrap();
    let o = run(&["-v", "run", "--timeout", "200ms", s(&lock), "--", "true"]);
    assert!(stderr(&o).contains("waiting for"), "{}", stderr(&o));
}

/// `acquire` of a lock already held for the same owner refuses (exit 1) and leaves the lock
/// held; a failing `refresh` never releases it either.
#[test]
fn acquire_twice_keeps_the_lock() {
    let (d, lock) = tmp();
    let out = d.path().join("out");
    let l = s(&lock);
    let script = format!(
        "{BIN} acquire {l}; {BIN} acquire {l}; echo $? > {o}; {BIN} status --json {l} >> {o}; {BIN} release {l}",
        o = s(&out)
    );
    let o = run(&["run", &format!("{l}.outer"), "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let (code, json) = text.split_once('\n').unwrap();
    assert_eq!(code.trim(), "1");
    assert!(
        json.contains("\"state\": \"unknown\"") && json.contains("\"holder\": {"),
        "the second acquire released it: {json}"
    );
    assert!(!lock.exists(), "release at the end");
}

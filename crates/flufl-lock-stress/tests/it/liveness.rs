//! Adversarial review (issue 12): holders that look dead but are not, and other users.
//!
//! Real processes (the `flufl-lock-stress` probe) on this host, run as root and, through
//! `setpriv`, as other users. A live holder that holds a 60 s lock must keep it whatever
//! `/proc` says about it: its thread-group leader exited alone (state `Z`), it runs in
//! another time namespace (its start time reads differently), or `/proc` hides it
//! (`hidepid=2`, non-dumpable). A waiter must not take such a lock within 3 s,
//! `break_lock(false)` must call it live and `state()` must not call it stale. A holder
//! that really died is still recovered at once through such a `/proc`, and a lock left by a
//! dead holder of another user is recovered by a waiter of a third, in a directory all may
//! write, with `fs.protected_hardlinks` on, leaving no file behind.
//!
//! Missing root, `unshare` (time and mount namespaces) or `setpriv` is a failure that says
//! what to install, never a skip.

use crate::support::{
    ms_between, probe_cmd, require_namespaces, run_cases, spawn_script, Event, Proc, BIN,
};
use flufl_lock_stress::util::{claim_pid, proc_state};
use flufl_lock_testkit::assert_no_leftovers;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The lifetime of the live holders' locks: far beyond every wait of these tests.
const LONG_LIFE: &str = "60000";
/// How long a waiter tries to take a live holder's lock before it must give up.
const WAIT_MS: &str = "3000";
/// How long a live holder holds (it is killed at the end of the test).
const HOLD_MS: &str = "20000";
/// The user the holders (and the hidepid waiter) run as, and the other user.
const NOBODY: u32 = 65534;
const OTHER: u32 = 1000;
/// The time namespace's boot-time offset, in seconds.
const BOOT_OFFSET: &str = "100000";

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `sh -c script` with a 10 s limit: `Ok(stdout)` if it succeeded, else what it said.
fn run_sh(script: &str) -> Result<String, String> {
    let out = Command::new("timeout")
        .args(["10", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Fails unless the cached check `f` passed.
fn require(cell: &'static OnceLock<Result<(), String>>, f: fn() -> Result<(), String>) {
    if let Err(e) = cell.get_or_init(f) {
        panic!("{e}");
    }
}

/// Root, `unshare` and `setpriv` (util-linux), and the probe binary reachable by the users
/// the tests switch to.
fn require_setpriv() {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    require_namespaces();
    require(&OK, || {
        run_sh("command -v setpriv").map_err(|_| {
            "these tests need `setpriv` (util-linux) to run processes as other users; \
             install it (apt-get install util-linux)"
                .to_string()
        })?;
        for uid in [NOBODY, OTHER] {
            run_sh(&format!(
                "setpriv --reuid {uid} --regid {uid} --clear-groups test -x {}",
                sh_quote(BIN)
            ))
            .map_err(|e| {
                format!(
                    "uid {uid} cannot run the probe {BIN} through `setpriv` ({e}): every \
                     directory above it must be traversable by all (chmod o+x)"
                )
            })?;
        }
        Ok(())
    });
}

/// `unshare --time` with a boot-time offset works (kernel 5.6+ with CONFIG_TIME_NS,
/// util-linux 2.36+), and moves the start times `/proc` shows.
fn require_time_namespace() {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    require_namespaces();
    require(&OK, || {
        let host = std::fs::read_link("/proc/self/ns/time").map_err(|e| {
            format!("no /proc/self/ns/time ({e}): the kernel needs CONFIG_TIME_NS (Linux 5.6+)")
        })?;
        let child = run_sh(&format!(
            "unshare --time --boottime {BOOT_OFFSET} --fork readlink /proc/self/ns/time"
        ))
        .map_err(|e| {
            format!(
                "`unshare --time --boottime {BOOT_OFFSET} --fork` does not work here ({e}); \
                 these tests need util-linux 2.36+ and a kernel with CONFIG_TIME_NS, as root"
            )
        })?;
        if Path::new(&child) == host {
            return Err(format!(
                "`unshare --time` did not make a new time namespace ({child})"
            ));
        }
        Ok(())
    });
}

/// A new procfs instance with `hidepid=2` can be mounted in a new mount namespace.
fn require_hidepid() {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    require_namespaces();
    require(&OK, || {
        run_sh(
            "unshare --mount sh -c 'mount -t proc -o hidepid=2 proc /proc && \
             grep -q \"^proc /proc proc .*hidepid=\\(2\\|invisible\\)\" /proc/mounts'",
        )
        .map_err(|e| {
            format!(
                "cannot mount /proc with hidepid=2 in a new mount namespace ({e}): these \
                 tests need root with CAP_SYS_ADMIN, `unshare` (util-linux) and Linux 5.8+"
            )
        })?;
        Ok(())
    });
}

/// The shell words that run `words` as `uid` (and its gid), without supplementary groups.
fn as_user(uid: u32, words: &str) -> String {
    format!("setpriv --reuid {uid} --regid {uid} --clear-groups {words}")
}

/// A new directory every user may write in (0777, not sticky), inside a fresh temporary
/// directory all may traverse (0755), and the lock path in it.
fn shared_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let top = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = top.path().join("shared");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let lock = dir.join("shared.lck");
    (top, dir, lock)
}

/// The first line `<tag> <one of events> ...` `p` printed, waiting at most `limit`.
fn first_of(p: &Proc, tag: &str, events: &[&str], limit: Duration) -> Event {
    let deadline = Instant::now() + limit;
    loop {
        let found = p
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|l| Event::parse(l))
            .find(|e| e.tag == tag && events.contains(&e.event.as_str()));
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "{}: none of {events:?} within {limit:?}; output so far:\n{}",
            p.name,
            p.output()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `hold` probe arguments of a live holder of a 60 s lock.
fn live_holder_args<'a>(lock: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "hold",
        "--lock",
        lock,
        "--lifetime-ms",
        LONG_LIFE,
        "--hold-ms",
        HOLD_MS,
        "--tag",
        "holder",
    ];
    a.extend_from_slice(extra);
    a
}

/// The `acquire` probe arguments of a waiter that reports how it sees the holder, tries
/// `break_lock(false)`, then waits at most 3 s for the lock.
fn waiter_args(lock: &str) -> Vec<&str> {
    vec![
        "acquire",
        "--lock",
        lock,
        "--lifetime-ms",
        LONG_LIFE,
        "--timeout-ms",
        WAIT_MS,
        "--report-holder",
        "--try-break",
        "--tag",
        "waiter",
    ]
}

/// The waiter's judgement of a live holder's 60 s lock, once it is done: its state is not
/// `stale`, `break_lock(false)` says live, it did not take the lock in 3 s (it timed out),
/// and the lock file still names the holder.
fn assert_live_lock_kept(what: &str, holder: &Proc, holder_pid: u32, waiter: &Proc, lock: &Path) {
    let limit = Duration::from_secs(10);
    let all = || format!("holder:\n{}\nwaiter:\n{}", holder.output(), waiter.output());
    let state = first_of(waiter, "waiter", &["state"], limit);
    let s = state.fields.get("s").map(String::as_str).unwrap_or("none");
    assert!(
        !matches!(s, "stale" | "theirs_expired" | "unlocked" | "none"),
        "{what}: the waiter judged the live holder's (pid {holder_pid}) 60 s lock `{s}` \
         (expected `unknown`: someone else's live lock)\n{}",
        all()
    );
    let brk = first_of(waiter, "waiter", &["break"], limit);
    assert_eq!(
        brk.fields.get("outcome").map(String::as_str),
        Some("live"),
        "{what}: break_lock(false) did not find the live holder's (pid {holder_pid}) 60 s lock \
         live: {brk:?}\n{}",
        all()
    );
    let end = first_of(waiter, "waiter", &["acquired", "timeout"], limit);
    assert!(
        end.event == "timeout" && end.fields.get("kind").map(String::as_str) == Some("TimedOut"),
        "{what}: PREMATURE BREAK: the waiter was to time out after {WAIT_MS} ms on the live \
         holder's (pid {holder_pid}) 60 s lock, but: {end:?}\n{}",
        all()
    );
    assert_eq!(
        claim_pid(lock),
        Some(holder_pid),
        "{what}: the lock file no longer names the live holder\n{}",
        all()
    );
}

/// The pid of a probe from its `info` line.
fn pid_of(info: &Event) -> u32 {
    info.get("pid").parse().expect("pid=")
}

/// A holder whose main thread (the thread-group leader) exited while a second thread holds
/// its 60 s lock: `/proc/PID/stat` shows the leader as a zombie (`Z`) although the process
/// lives. A waiter on the same host must not call it dead: `state()` is not `stale`,
/// `break_lock(false)` says live, and `lock_timeout(3 s)` times out.
#[test]
fn thread_exited_leader_keeps_its_lock() {
    require_namespaces();
    let (_top, _dir, lock) = shared_dir();
    let lock_s = lock.to_str().expect("utf-8 temp path");
    let h = spawn_script(
        "holder",
        &format!(
            "exec {}",
            probe_cmd(&live_holder_args(lock_s, &["--exit-main-thread"]))
        ),
    );
    let limit = Duration::from_secs(10);
    let hpid = pid_of(&h.expect("holder", "info", limit));
    h.expect("holder", "locked", limit);
    h.expect("holder", "main-exit", limit);
    // Set-up: the leader is a zombie, another thread of the process lives.
    let t = Instant::now();
    while proc_state(hpid) != Some('Z') && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        proc_state(hpid),
        Some('Z'),
        "set-up: the holder's leader did not become a zombie after its main thread exited\n{}",
        h.output()
    );
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{hpid}/task"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let live_threads: Vec<&String> = tasks
        .iter()
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{hpid}/task/{tid}/stat"))
                .ok()
                .and_then(|s| s[s.rfind(')')? + 1..].trim_start().chars().next())
                .is_some_and(|c| c != 'Z' && c != 'X')
        })
        .collect();
    assert!(
        !live_threads.is_empty(),
        "set-up: no live thread left in the holder (tasks {tasks:?})\n{}",
        h.output()
    );
    println!("holder pid {hpid}: leader Z, tasks {tasks:?}, live {live_threads:?}");

    let w = spawn_script(
        "waiter",
        &format!("exec {}", probe_cmd(&waiter_args(lock_s))),
    );
    let seen = w.expect("waiter", "holder", limit);
    assert_eq!(
        (seen.get("pid"), seen.get("proc")),
        (hpid.to_string().as_str(), "Z"),
        "set-up: the waiter does not see the holder's leader as a zombie\n{}",
        w.output()
    );
    assert_live_lock_kept("thread-exited leader", &h, hpid, &w, &lock);
    assert_eq!(
        proc_state(hpid),
        Some('Z'),
        "the holder died during the test\n{}",
        h.output()
    );
}

/// A live holder and a waiter on the same host, in the same pid namespace, one of them in a
/// new time namespace (`unshare --time --boottime 100000 --fork`): `/proc/PID/stat` shows
/// start times in the reader's time namespace, so the holder's start time reads 100000 s
/// off from the one in its claim. Both ways round, the waiter must not take the live 60 s
/// lock as a reused pid: not `stale`, `break_lock(false)` says live, `lock_timeout(3 s)`
/// times out.
#[test]
fn other_time_namespace_keeps_its_lock() {
    require_time_namespace();
    // Both directions at once: each takes about 3 s.
    let cases: Vec<(String, bool)> = vec![
        (
            "holder in a child time namespace, waiter on the host".into(),
            true,
        ),
        (
            "holder on the host, waiter in a child time namespace".into(),
            false,
        ),
    ];
    run_cases(cases, |what, holder_inside| {
        let unshare = format!("unshare --time --boottime {BOOT_OFFSET} --fork");
        let (_top, _dir, lock) = shared_dir();
        let lock_s = lock.to_str().expect("utf-8 temp path");
        let (hwrap, wwrap) = if holder_inside {
            (unshare.as_str(), "")
        } else {
            ("", unshare.as_str())
        };
        let h = spawn_script(
            "holder",
            &format!("exec {hwrap} {}", probe_cmd(&live_holder_args(lock_s, &[]))),
        );
        let limit = Duration::from_secs(10);
        let hinfo = h.expect("holder", "info", limit);
        let hpid = pid_of(&hinfo);
        h.expect("holder", "locked", limit);
        let w = spawn_script(
            "waiter",
            &format!("exec {wwrap} {}", probe_cmd(&waiter_args(lock_s))),
        );
        let winfo = w.expect("waiter", "info", limit);
        let seen = w.expect("waiter", "holder", limit);
        let both = format!("holder:\n{}\nwaiter:\n{}", h.output(), w.output());
        assert_eq!(
            hinfo.get("origin"),
            "yes",
            "{what}: no proof in the claim\n{both}"
        );
        assert_eq!(
            (hinfo.get("host"), hinfo.get("pidns")),
            (winfo.get("host"), winfo.get("pidns")),
            "{what}: set-up: not the same host name and pid namespace\n{both}"
        );
        assert_ne!(
            hinfo.get("timens"),
            winfo.get("timens"),
            "{what}: set-up: holder and waiter in the same time namespace\n{both}"
        );
        assert_eq!(seen.get("pid"), hpid.to_string(), "{what}\n{both}");
        let own: u64 = hinfo.get("start").parse().expect("start=");
        let theirs: u64 = seen.get("start").parse().expect("start=");
        assert_ne!(
            own, theirs,
            "{what}: set-up: the waiter reads the holder's start time as the holder does; \
             the time namespace's offset is not in effect\n{both}"
        );
        assert_live_lock_kept(what, &h, hpid, &w, &lock);
        format!("holder's start time {own} ticks, as the waiter reads it {theirs}")
    });
}

/// The shell words that run `words` as uid 65534 in a new mount namespace whose /proc is a
/// new procfs instance (of the same pid namespace) mounted with `hidepid=2`.
fn in_hidepid(words: &str) -> String {
    let inner = format!(
        "mount -t proc -o hidepid=2 proc /proc && exec {}",
        as_user(NOBODY, words)
    );
    format!("unshare --mount sh -c {}", sh_quote(&inner))
}

/// Checks that this test's own /proc is not mounted with `hidepid` (the waiter's mount did
/// not leak).
fn assert_host_proc_untouched() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let leaked: Vec<&str> = mounts
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some("/proc") && l.contains("hidepid"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the test's own /proc got hidepid: {leaked:?}"
    );
}

/// A live holder of uid 65534 that made itself non-dumpable holds a 60 s lock; a waiter of
/// the same uid on the same host sees /proc through a procfs mounted with `hidepid=2`, where
/// `/proc/PID/stat` of that holder answers ENOENT although it lives. The waiter must not
/// take that for death: not `stale`, `break_lock(false)` says live, `lock_timeout(3 s)`
/// times out.
#[test]
fn hidden_live_holder_keeps_its_lock() {
    require_setpriv();
    require_hidepid();
    let (_top, _dir, lock) = shared_dir();
    let lock_s = lock.to_str().expect("utf-8 temp path");
    let h = spawn_script(
        "holder",
        &format!(
            "exec {}",
            as_user(
                NOBODY,
                &probe_cmd(&live_holder_args(lock_s, &["--nondumpable"]))
            )
        ),
    );
    let limit = Duration::from_secs(10);
    let hinfo = h.expect("holder", "info", limit);
    let hpid = pid_of(&hinfo);
    h.expect("holder", "locked", limit);
    assert_eq!(
        (hinfo.get("uid"), hinfo.get("dumpable")),
        (NOBODY.to_string().as_str(), "0"),
        "set-up: the holder is not a non-dumpable process of uid {NOBODY}\n{}",
        h.output()
    );
    let w = spawn_script("waiter", &in_hidepid(&probe_cmd(&waiter_args(lock_s))));
    let winfo = w.expect("waiter", "info", limit);
    let seen = w.expect("waiter", "holder", limit);
    let both = format!("holder:\n{}\nwaiter:\n{}", h.output(), w.output());
    assert_eq!(
        winfo.get("uid"),
        NOBODY.to_string(),
        "set-up: waiter's uid\n{both}"
    );
    assert_eq!(
        (hinfo.get("host"), hinfo.get("pidns"), hinfo.get("origin")),
        (winfo.get("host"), winfo.get("pidns"), "yes"),
        "set-up: not the same host name and pid namespace, or no proof in the claim\n{both}"
    );
    assert_eq!(
        (seen.get("pid"), seen.get("proc")),
        (hpid.to_string().as_str(), "enoent"),
        "set-up: hidepid=2 does not hide the live holder from the waiter\n{both}"
    );
    assert!(
        proc_state(hpid).is_some_and(|c| c != 'Z' && c != 'X'),
        "set-up: the holder is not alive\n{both}"
    );
    assert_live_lock_kept("hidden holder", &h, hpid, &w, &lock);
    assert_host_proc_untouched();
}

/// Companion of `hidden_live_holder_keeps_its_lock`: the same non-dumpable holder of uid
/// 65534 (lock lifetime 10 s) SIGKILLs itself and is reaped; a waiter of the same uid behind
/// the same `hidepid=2` /proc must still prove it dead and take the lock at once (within
/// 3 s of the death, long before the lock expires).
#[test]
fn hidden_dead_holder_is_still_broken_at_once() {
    require_setpriv();
    require_hidepid();
    let (_top, _dir, lock) = shared_dir();
    let lock_s = lock.to_str().expect("utf-8 temp path");
    let life = "10000";
    let mut h = spawn_script(
        "holder",
        // Not `exec`: `sh` waits for the probe, so it is reaped as soon as it dies.
        &format!(
            "{}; exit 0",
            as_user(
                NOBODY,
                &probe_cmd(&[
                    "hold",
                    "--lock",
                    lock_s,
                    "--lifetime-ms",
                    life,
                    "--hold-ms",
                    "200",
                    "--die",
                    "--nondumpable",
                    "--tag",
                    "holder",
                ])
            )
        ),
    );
    let limit = Duration::from_secs(10);
    let hinfo = h.expect("holder", "info", limit);
    let hpid = pid_of(&hinfo);
    h.expect("holder", "locked", limit);
    let dying = h.expect("holder", "dying", limit);
    assert!(
        h.wait_exit(limit).is_some(),
        "the holder did not die\n{}",
        h.output()
    );
    assert_eq!(hinfo.get("dumpable"), "0", "set-up\n{}", h.output());
    let w = spawn_script(
        "waiter",
        &in_hidepid(&probe_cmd(&[
            "acquire",
            "--lock",
            lock_s,
            "--lifetime-ms",
            life,
            "--timeout-ms",
            "8000",
            "--report-holder",
            "--try-break",
            "--tag",
            "waiter",
        ])),
    );
    let seen = w.expect("waiter", "holder", limit);
    let all = || format!("holder:\n{}\nwaiter:\n{}", h.output(), w.output());
    assert_eq!(seen.get("pid"), hpid.to_string(), "{}", all());
    let brk = first_of(&w, "waiter", &["break"], limit);
    assert_eq!(
        brk.fields.get("outcome").map(String::as_str),
        Some("broken"),
        "break_lock(false) did not prove the dead holder dead through a hidepid=2 /proc\n{}",
        all()
    );
    let end = first_of(&w, "waiter", &["acquired", "timeout"], limit);
    assert_eq!(end.event, "acquired", "{}", all());
    let after = ms_between(&dying, &end);
    assert!(
        after < 3000.0,
        "SLOW RECOVERY: the dead holder's lock (lifetime 10 s) was taken {after:.0} ms after \
         it died; the pid proof should take it at once\n{}",
        all()
    );
    println!("dead hidden holder's lock taken {after:.0} ms after its death (lifetime 10 s)");
    assert_host_proc_untouched();
}

/// Sets `fs.protected_hardlinks` to 1 for the test, restoring the old value on drop.
struct ProtectedHardlinks(Option<String>);

impl ProtectedHardlinks {
    const PATH: &'static str = "/proc/sys/fs/protected_hardlinks";

    fn on() -> ProtectedHardlinks {
        let old = std::fs::read_to_string(Self::PATH)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", Self::PATH));
        if old.trim() == "1" {
            return ProtectedHardlinks(None);
        }
        std::fs::write(Self::PATH, "1")
            .unwrap_or_else(|e| panic!("cannot set {} to 1 (needs root): {e}", Self::PATH));
        ProtectedHardlinks(Some(old))
    }
}

impl Drop for ProtectedHardlinks {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old.trim());
        }
    }
}

/// In a directory every user may write (0777, not sticky), with `fs.protected_hardlinks` =
/// 1, a holder of uid 65534 takes a lock (lifetime 1 s) and SIGKILLs itself; a waiter of
/// uid 1000 must recover it with `lock_timeout(15 s)`, well within that (under 5 s), and
/// after it releases, nothing is left in the directory (no claim, pin, marker).
#[test]
fn other_users_dead_holder_is_recovered() {
    require_setpriv();
    let _guard = ProtectedHardlinks::on();
    assert_eq!(
        std::fs::read_to_string(ProtectedHardlinks::PATH)
            .unwrap_or_default()
            .trim(),
        "1",
        "set-up: fs.protected_hardlinks is not 1"
    );
    let (_top, dir, lock) = shared_dir();
    let lock_s = lock.to_str().expect("utf-8 temp path");
    let mut h = spawn_script(
        "holder",
        &format!(
            "{}; exit 0",
            as_user(
                NOBODY,
                &probe_cmd(&[
                    "hold",
                    "--lock",
                    lock_s,
                    "--lifetime-ms",
                    "1000",
                    "--hold-ms",
                    "100",
                    "--die",
                    "--tag",
                    "holder",
                ])
            )
        ),
    );
    let limit = Duration::from_secs(10);
    let hinfo = h.expect("holder", "info", limit);
    h.expect("holder", "locked", limit);
    h.expect("holder", "dying", limit);
    assert!(
        h.wait_exit(limit).is_some(),
        "the holder did not die\n{}",
        h.output()
    );
    assert_eq!(
        hinfo.get("uid"),
        NOBODY.to_string(),
        "set-up\n{}",
        h.output()
    );
    let owner = std::fs::symlink_metadata(&lock).map(|m| m.uid());
    assert_eq!(
        owner.as_ref().ok(),
        Some(&NOBODY),
        "set-up: the dead holder's lock file is not there, owned by uid {NOBODY}: {owner:?}"
    );
    let mut w = spawn_script(
        "waiter",
        &format!(
            "exec {}",
            as_user(
                OTHER,
                &probe_cmd(&[
                    "acquire",
                    "--lock",
                    lock_s,
                    "--lifetime-ms",
                    "1000",
                    "--timeout-ms",
                    "15000",
                    "--tag",
                    "waiter",
                ])
            )
        ),
    );
    let winfo = w.expect("waiter", "info", limit);
    assert_eq!(
        winfo.get("uid"),
        OTHER.to_string(),
        "set-up\n{}",
        w.output()
    );
    let end = first_of(
        &w,
        "waiter",
        &["acquired", "timeout"],
        Duration::from_secs(18),
    );
    assert_eq!(
        end.event,
        "acquired",
        "uid {OTHER} could not take the lock uid {NOBODY}'s dead holder left: {end:?}\n{}",
        w.output()
    );
    let waited: f64 = end.get("waited_ms").parse().expect("waited_ms=");
    assert!(
        waited < 5000.0,
        "SLOW RECOVERY: uid {OTHER} waited {waited:.0} ms for a dead holder's 1 s lock\n{}",
        w.output()
    );
    let released = first_of(&w, "waiter", &["released", "lost"], limit);
    assert_eq!(released.event, "released", "{}", w.output());
    assert!(
        w.wait_exit(limit).is_some_and(|s| s.success()),
        "the waiter did not exit cleanly\n{}",
        w.output()
    );
    // No files left behind in the lock's directory after the waiter released.
    assert_no_leftovers(&dir, &[]);
}

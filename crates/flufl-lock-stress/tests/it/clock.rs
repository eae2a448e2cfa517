//! Adversarial review (issue 12): clocks that stop or step, and coarse timestamps.
//!
//! * **A suspend** (defect 1): while a machine is suspended `CLOCK_MONOTONIC` stops and the
//!   wall clock and the file server's clock run on. A holder that carries the server's clock
//!   forward on the monotonic clock alone would, after a suspend longer than its lifetime,
//!   write expiries in the past while its `refresh` says `Ok`, and a waiter could take the
//!   lock it believes it holds. The suspend is imitated for the holder process alone: an
//!   `LD_PRELOAD` shim (`shim/monotonic_shift.c`, compiled here with gcc) subtracts from
//!   `CLOCK_MONOTONIC` (and `_RAW`, `_COARSE`; not `CLOCK_BOOTTIME` or `CLOCK_REALTIME`) the
//!   nanoseconds written in a file; the test SIGSTOPs the holder, waits 8 s, writes 8e9 into
//!   the file and SIGCONTs it. The holder (`flufl-lock-clock refresh`) reports both its
//!   `Instant` clock (shifted) and the real monotonic clock (vDSO, not shifted), so a shim
//!   that does not take hold fails the test instead of passing it vacuously.
//! * **1-second timestamps** (defect 3b): on ext4 made with 128-byte inodes
//!   (`mkfs.ext4 -I 128`, loop-mounted) mtimes have no nanoseconds, so the server time a
//!   process learns from its claim and the expiry it stores are both truncated, by up to a
//!   second: more than the 0.5 s clock margin. A live holder's lock must still not be
//!   broken before its lifetime, whatever the sub-second phase of the acquisition.
//!
//! Needs gcc (the shim), and for the 1-second test root, `mkfs.ext4` (e2fsprogs), `mount`,
//! `umount`, `losetup` (util-linux / mount) and loop devices. A missing one fails the test
//! with what to install, never skips it.

use crate::support::{ms_between, run_cases, spawn_command, Event, Place, Proc, Spec};
use flufl_lock_stress::util::{claim_pid, signal, wait_stopped};
use flufl_lock_testkit::mono_ns;
use rustix::process::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// The holder program of these tests (`src/bin/flufl-lock-clock.rs`).
const CLOCK_BIN: &str = env!("CARGO_BIN_EXE_flufl-lock-clock");

/// The suspend tests' lock lifetime, refresh period, and imitated suspend.
const LIFETIME_MS: u64 = 3000;
const EVERY_MS: u64 = 1000;
const SUSPEND: Duration = Duration::from_secs(8);

/// How far in the future a refresh just made must leave the lock file's mtime: the lifetime
/// less a generous allowance for the estimate's error and for scheduling.
const MIN_LEAD_MS: f64 = 1500.0;

/// Nanoseconds since the epoch.
fn epoch_ns(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A numeric field of an event, `None` for `none`.
fn num(ev: &Event, key: &str) -> Option<i128> {
    match ev.get(key) {
        "none" => None,
        v => Some(
            v.parse()
                .unwrap_or_else(|_| panic!("{key}={v:?} is not a number in {ev:?}")),
        ),
    }
}

/// Where the program `name` is: on `PATH`, or in the sbin directories a non-login root
/// shell may lack.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd` with a time limit (`timeout`), returning its status and output as text.
fn run(limit_s: u32, cmd: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg(limit_s.to_string())
        .arg(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cmd.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "`{} {}` failed ({}): {}",
            cmd.display(),
            args.join(" "),
            out.status,
            text.trim()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// A suspend, imitated with the LD_PRELOAD shim
// ---------------------------------------------------------------------------------------

/// Compiles the monotonic-shift shim into `dir` with gcc; fails the test, saying what to
/// install, if gcc is missing or the compile fails.
fn build_shim(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim/monotonic_shift.c");
    let so = dir.join("monotonic_shift.so");
    let Some(gcc) = find_tool("gcc") else {
        panic!(
            "the suspend tests compile an LD_PRELOAD shim ({}) with gcc, which is not \
             installed: install it (apt-get install gcc)",
            src.display()
        );
    };
    let so_s = so.to_str().expect("utf-8 temp path");
    let src_s = src.to_str().expect("utf-8 source path");
    if let Err(e) = run(
        60,
        &gcc,
        &[
            "-shared", "-fPIC", "-O2", "-Wall", "-o", so_s, src_s, "-ldl",
        ],
    ) {
        panic!("cannot compile the suspend shim: {e}; the suspend tests need gcc and libc6-dev");
    }
    so
}

/// A holder under the shim, refreshing every second.
struct Holder {
    proc: Proc,
    pid: u32,
    lock: PathBuf,
    shift: PathBuf,
    /// Its last refresh before the imitated suspend.
    before: Event,
    _dir: tempfile::TempDir,
}

/// Starts `flufl-lock-clock refresh` (lifetime 3 s, refreshing every second) with the shim
/// preloaded and the shift at 0, and waits for its first successful refresh.
fn start_holder() -> Holder {
    // Under the target directory rather than /tmp: /tmp may be mounted noexec, and then the
    // dynamic loader cannot map the shim.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let shim = build_shim(dir.path());
    let shift = dir.path().join("monotonic-shift-ns");
    std::fs::write(&shift, "0").expect("write shift file");
    let lock = dir.path().join("suspend.lck");
    let mut cmd = Command::new(CLOCK_BIN);
    cmd.arg("refresh")
        .arg("--lock")
        .arg(&lock)
        .args(["--lifetime-ms", &LIFETIME_MS.to_string()])
        .args(["--every-ms", &EVERY_MS.to_string()])
        .args(["--tag", "holder"])
        .env("LD_PRELOAD", &shim)
        .env("FLUFL_MONO_SHIFT_FILE", &shift);
    let proc = spawn_command("holder", cmd);
    let start = proc.expect("holder", "start", Duration::from_secs(10));
    let pid: u32 = start.get("pid").parse().expect("pid=");
    proc.expect("holder", "locked", Duration::from_secs(10));
    let before = proc.expect("holder", "refresh", Duration::from_secs(5));
    assert_eq!(
        before.get("result"),
        "ok",
        "the holder's first refresh, before any suspend, failed: {before:?}\n{}",
        proc.output()
    );
    Holder {
        proc,
        pid,
        lock,
        shift,
        before,
        _dir: dir,
    }
}

/// SIGSTOPs `pid` and waits until it is stopped.
fn stop(name: &str, pid: u32) {
    signal(pid, Signal::STOP).unwrap_or_else(|e| panic!("SIGSTOP {name} ({pid}): {e}"));
    assert!(
        wait_stopped(pid, Duration::from_secs(3)),
        "{name} ({pid}) did not stop within 3 s"
    );
}

impl Holder {
    /// Ends the imitated suspend that began (with `stop`) at `stopped_at`: once `SUSPEND`
    /// has passed, sets the holder's monotonic clock back by it and continues the holder.
    /// Returns the (real) monotonic time of the SIGCONT.
    fn resume(&self, stopped_at: Instant) -> u64 {
        std::thread::sleep(SUSPEND.saturating_sub(stopped_at.elapsed()));
        std::fs::write(&self.shift, SUSPEND.as_nanos().to_string()).expect("write shift");
        let t = mono_ns();
        signal(self.pid, Signal::CONT).expect("SIGCONT holder");
        t
    }

    /// The holder's first refresh report made after real monotonic time `after`.
    fn refresh_after(&self, after: u64) -> Event {
        let deadline = Instant::now() + Duration::from_millis(EVERY_MS * 3);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.proc.expect("holder", "refresh", left);
            if ev.t() > after {
                return ev;
            }
        }
    }

    /// Asserts that the shim took hold: across the suspend the holder's `Instant` advanced
    /// about `SUSPEND` less than the real monotonic clock.
    fn assert_suspended(&self, after: &Event) {
        let real = after.t() as i128 - self.before.t() as i128;
        let inst = num(after, "inst").expect("inst=") - num(&self.before, "inst").expect("inst=");
        let gap_ms = (real - inst) as f64 / 1e6;
        assert!(
            gap_ms > SUSPEND.as_millis() as f64 - 1000.0,
            "the monotonic-shift shim did not take hold in the holder: between its refreshes \
             its Instant advanced {:.0} ms and the real monotonic clock {:.0} ms (expected \
             about {} ms less); holder output:\n{}",
            inst as f64 / 1e6,
            real as f64 / 1e6,
            SUSPEND.as_millis(),
            self.proc.output()
        );
    }
}

/// How far ahead of the holder's wall clock, when it reported `ev`, the mtime it read was
/// (ms; `None` without a lock file).
fn lead_ms(ev: &Event) -> Option<f64> {
    Some((num(ev, "mtime")? - num(ev, "wall").expect("wall=")) as f64 / 1e6)
}

/// A holder (lifetime 3 s, refreshing every second, nobody waiting) is suspended for 8 s
/// (SIGSTOP, then its monotonic clock is set back by the 8 s that passed). When it resumes,
/// its next refresh must say `Ok` (nobody took the lock) and leave the lock file's mtime at
/// least 1.5 s in the future (a full lifetime from now, less allowances), and `expires_in`
/// must not promise more than the file gives. A holder that carries the server's clock on
/// the stopped monotonic clock writes an expiry about 5 s in the past instead, while its
/// refresh says `Ok` and `expires_in` says 3 s are left.
#[test]
fn suspended_holder_refresh_writes_a_future_expiry() {
    let h = start_holder();
    stop("holder", h.pid);
    let stopped_at = Instant::now();
    let cont = h.resume(stopped_at);
    let after = h.refresh_after(cont);
    let now = SystemTime::now();
    let mtime = std::fs::metadata(&h.lock).and_then(|m| m.modified());
    h.assert_suspended(&after);
    let out = h.proc.output();
    assert_eq!(
        after.get("result"),
        "ok",
        "after an imitated {SUSPEND:?} suspend, with no waiter, the holder's refresh did not \
         succeed: {after:?}\nholder output:\n{out}"
    );
    let mtime = mtime.unwrap_or_else(|e| panic!("no lock file after the refresh: {e}\n{out}"));
    let lead = (epoch_ns(mtime) - epoch_ns(now)) as f64 / 1e6;
    assert!(
        lead >= MIN_LEAD_MS,
        "after an imitated {SUSPEND:?} suspend the holder's refresh said ok, but the lock \
         file's mtime is {:+.3} s from now (expected at least +{:.1} s with a {:.0} s \
         lifetime): the expiry was written in the past, so any waiter may break the lock \
         its holder believes it holds; the holder's line: {after:?}\nholder output:\n{out}",
        lead / 1e3,
        MIN_LEAD_MS / 1e3,
        LIFETIME_MS as f64 / 1e3,
    );
    if let (Some(left), Some(file)) = (num(&after, "left_ms"), lead_ms(&after)) {
        assert!(
            left as f64 <= file + 1000.0,
            "after the suspend the holder's expires_in says {left} ms are left, but the lock \
             file it just refreshed expires {file:.0} ms from its wall clock\n{out}"
        );
    }
    println!(
        "refresh after an imitated {SUSPEND:?} suspend: {}, lock file mtime {:+.3} s from now, \
         expires_in {} ms",
        after.get("result"),
        lead / 1e3,
        after.get("left_ms")
    );
}

/// A holder (lifetime 3 s, refreshing every second) is suspended for 8 s. A waiter is
/// started 0.3 s into the holder's stop and, once it waits for the lock (before the lock has
/// expired), stopped too (as if descheduled), so that it looks at the lock again only after
/// the holder has resumed and made its first refresh. Then the two must never both hold the
/// lock: whenever the waiter takes it, no refresh of the holder may have said `Ok` within the
/// lifetime less 1 s before, and none may say `Ok` while the waiter holds it; and every `Ok`
/// refresh must leave the mtime at least 1.5 s ahead. Expected after a fix: the holder's
/// refreshes succeed with expiries in the future and the waiter times out. A holder that
/// writes its post-suspend expiry in the past lets the waiter break the lock milliseconds
/// after its refresh said `Ok`.
///
/// (A waiter left running breaks the lock *during* the suspend; that case cannot show the
/// defect: the breaker removes the holder's claim file with the lock, so the resumed holder's
/// refresh reports the loss whatever its clock says.)
#[test]
fn suspended_holder_and_waiter_never_both_hold() {
    let h = start_holder();
    stop("holder", h.pid);
    let stopped_at = Instant::now();
    let stop_t = mono_ns();

    std::thread::sleep(Duration::from_millis(300));
    let lock = h.lock.to_str().expect("utf-8 temp path");
    let w = Proc::spawn(
        "waiter",
        &Spec::new(
            Place::Host,
            None,
            &[
                "acquire",
                "--lock",
                lock,
                "--lifetime-ms",
                &LIFETIME_MS.to_string(),
                "--timeout-ms",
                "11000",
                "--tag",
                "waiter",
            ],
        ),
    );
    let winfo = w.expect("waiter", "info", Duration::from_secs(5));
    let wpid: u32 = winfo.get("pid").parse().expect("pid=");
    w.expect("waiter", "state", Duration::from_secs(5));
    stop("waiter", wpid);
    let into_ms = (mono_ns() - stop_t) as f64 / 1e6;
    // The holder's last refresh came just before its stop: its lock expires a lifetime
    // after it, and may be broken only 0.5 s (the clock margin) later still.
    assert!(
        into_ms < (LIFETIME_MS - 300) as f64,
        "the waiter could be stopped only {into_ms:.0} ms into the holder's stop, when the \
         lock may already have expired: the machine is too slow for this test"
    );
    assert_eq!(
        claim_pid(&h.lock),
        Some(h.pid),
        "the lock changed hands before the holder's lock expired\nwaiter:\n{}",
        w.output()
    );

    let cont = h.resume(stopped_at);
    let first = h.refresh_after(cont);
    h.assert_suspended(&first);
    let wcont = mono_ns();
    signal(wpid, Signal::CONT).expect("SIGCONT waiter");

    // The waiter's outcome: it takes the lock (and releases it), or times out.
    let deadline = Instant::now() + Duration::from_secs(8);
    let outcome = loop {
        let seen: Vec<Event> = w
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|l| Event::parse(l))
            .collect();
        if let Some(ev) = seen
            .into_iter()
            .find(|e| e.event == "acquired" || e.event == "timeout")
        {
            break ev;
        }
        assert!(
            Instant::now() < deadline,
            "the waiter reported neither `acquired` nor `timeout` within 8 s of resuming:\n{}",
            w.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the holder make one more refresh after the waiter's outcome.
    std::thread::sleep(Duration::from_millis(EVERY_MS + 300));

    let hout = h.proc.output();
    let wout = w.output();
    let refreshes: Vec<Event> = hout
        .lines()
        .map(Event::parse)
        .filter(|e| e.event == "refresh" && e.t() > cont)
        .collect();
    let report = format!("holder:\n{hout}\nwaiter:\n{wout}");
    if outcome.event == "acquired" {
        let taken = outcome.t();
        let released = wout
            .lines()
            .map(Event::parse)
            .find(|e| e.event == "released" || e.event == "lost")
            .map_or(u64::MAX, |e| e.t());
        for r in refreshes.iter().filter(|r| r.get("result") == "ok") {
            let before_ms = (taken as f64 - r.t() as f64) / 1e6;
            let promised = (0.0..(LIFETIME_MS - 1000) as f64).contains(&before_ms);
            let during = r.t() > taken && r.t() < released;
            assert!(
                !promised && !during,
                "two processes held the lock: the holder's refresh n={} after an imitated \
                 {SUSPEND:?} suspend said ok (lock file mtime {} ms from its wall clock, \
                 expires_in {} ms), and the waiter took the lock {before_ms:.0} ms later \
                 ({:.0} ms after being continued)\n{report}",
                r.get("n"),
                lead_ms(r).map_or("none".to_string(), |l| format!("{l:+.0}")),
                r.get("left_ms"),
                (taken as f64 - wcont as f64) / 1e6,
            );
        }
    }
    for r in refreshes.iter().filter(|r| r.get("result") == "ok") {
        let lead = lead_ms(r).unwrap_or(f64::NEG_INFINITY);
        assert!(
            lead >= MIN_LEAD_MS,
            "the holder's refresh n={} after the suspend said ok but left the lock file's \
             mtime {lead:+.0} ms from its wall clock (expected at least +{MIN_LEAD_MS:.0} ms)\n\
             {report}",
            r.get("n")
        );
    }
    println!(
        "after an imitated {SUSPEND:?} suspend: holder's first refresh {} (mtime {} ms ahead); \
         waiter: {}",
        first.get("result"),
        lead_ms(&first).map_or("none".to_string(), |l| format!("{l:+.0}")),
        outcome.event
    );
}

// ---------------------------------------------------------------------------------------
// 1-second timestamps: ext4 with 128-byte inodes on a loop device
// ---------------------------------------------------------------------------------------

/// An ext4 file system with 128-byte inodes (no nanoseconds in its timestamps), made in a
/// 64 MiB image file and loop-mounted; unmounted and its loop device detached when dropped,
/// also when the test fails.
struct CoarseFs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    img: PathBuf,
    mounted: bool,
    umount: PathBuf,
    losetup: Option<PathBuf>,
}

impl CoarseFs {
    fn new() -> CoarseFs {
        if !rustix::process::geteuid().is_root() {
            panic!(
                "the 1-second-timestamp test loop-mounts an ext4 image: it needs root \
                 (CAP_SYS_ADMIN); run it as root"
            );
        }
        let tool = |name: &str, pkg: &str| {
            find_tool(name).unwrap_or_else(|| {
                panic!(
                    "the 1-second-timestamp test needs `{name}`: install it \
                     (apt-get install {pkg})"
                )
            })
        };
        let mkfs = tool("mkfs.ext4", "e2fsprogs");
        let mount = tool("mount", "mount");
        let umount = tool("umount", "mount");
        let losetup = find_tool("losetup");
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("coarse.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(64 << 20))
            .expect("create the image file");
        let img_s = img.to_str().expect("utf-8 temp path").to_string();
        let mnt_s = mnt.to_str().expect("utf-8 temp path").to_string();
        if let Err(e) = run(60, &mkfs, &["-q", "-F", "-I", "128", &img_s]) {
            panic!("cannot make the ext4 image: {e}");
        }
        let mut fs = CoarseFs {
            _dir: dir,
            mnt,
            img,
            mounted: false,
            umount,
            losetup,
        };
        if let Err(e) = run(30, &mount, &["-o", "loop", &img_s, &mnt_s]) {
            panic!(
                "cannot loop-mount the ext4 image: {e}; the 1-second-timestamp test needs \
                 loop devices (modprobe loop; in a container, access to /dev/loop-control \
                 and /dev/loop*, e.g. --privileged)"
            );
        }
        fs.mounted = true;
        fs.assert_coarse();
        fs
    }

    /// Fails unless files on it really get whole-second mtimes (so the test cannot pass
    /// vacuously on a file system with nanoseconds).
    fn assert_coarse(&self) {
        for i in 0..3 {
            let p = self.mnt.join(format!("granularity-{i}"));
            std::fs::write(&p, "x").expect("write on the ext4 image");
            let m = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .expect("mtime");
            std::fs::remove_file(&p).expect("remove");
            let ns = epoch_ns(m).rem_euclid(1_000_000_000);
            assert_eq!(
                ns, 0,
                "a file on the `mkfs.ext4 -I 128` image got an mtime with {ns} ns: this \
                 kernel stores sub-second timestamps there, so the test would prove nothing"
            );
            std::thread::sleep(Duration::from_millis(7));
        }
    }
}

impl Drop for CoarseFs {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = self.mnt.to_string_lossy().into_owned();
            if run(20, &self.umount, &[&mnt]).is_err() {
                let _ = run(20, &self.umount, &["-l", &mnt]);
            }
        }
        // `mount -o loop` sets autoclear, so unmounting normally detaches the loop device;
        // detach any that is still attached to the image.
        if let Some(losetup) = &self.losetup {
            let img = self.img.to_string_lossy().into_owned();
            if let Ok(list) = run(10, losetup, &["-j", &img]) {
                for dev in list.lines().filter_map(|l| l.split(':').next()) {
                    if dev.starts_with("/dev/") {
                        let _ = run(10, losetup, &["-d", dev]);
                    }
                }
            }
        }
    }
}

/// The 1-second test's lock lifetime and hold time.
const COARSE_LIFETIME_MS: u64 = 1900;
const COARSE_HOLD_MS: u64 = 4000;
const COARSE_ROUNDS: u64 = 8;

/// On ext4 with 1-second timestamps, eight rounds started at different sub-second phases
/// (0, 1/8, ... 7/8 s past a second): a holder (`flufl-lock-clock hold`) takes a lock with a
/// 1.9 s lifetime and holds it 4 s without refreshing; a waiter on the same host (its pid
/// check cannot fire: the holder is alive) waits for it with `lock_timeout(10 s)`. In every
/// round the waiter must take the lock no earlier than 1.9 s after the holder's `lock()`
/// began (real `CLOCK_MONOTONIC` of both processes), and the lock file's mtime right after
/// `lock()` returned must be at least 1.9 s - 0.05 s after the holder's wall clock just
/// before `lock()` (the server stamps with the wall clock here). A library that truncates
/// the learned server time and the stored expiry to the second stores an expiry up to a
/// second early, and its waiters break the live lock after as little as 0.6 s.
#[test]
fn one_second_timestamps_never_break_a_live_lock_early() {
    let fs = CoarseFs::new();
    let mnt = fs.mnt.clone();
    // Round k starts k/8 s (+ 20 ms) after the same whole second of the wall clock, 1 to 2 s
    // from now, so the rounds together cover the sub-second phases.
    let base = (epoch_ns(SystemTime::now()) / 1_000_000_000 + 2) * 1_000_000_000;
    let cases: Vec<(String, (PathBuf, i128))> = (0..COARSE_ROUNDS)
        .map(|k| {
            let at = base + (k * 1_000_000_000 / COARSE_ROUNDS) as i128 + 20_000_000;
            (
                format!("round {k}"),
                (mnt.join(format!("coarse-{k}.lck")), at),
            )
        })
        .collect();
    run_cases(cases, |name, (lock, at)| {
        let wait = at - epoch_ns(SystemTime::now());
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait as u64));
        }
        let life = COARSE_LIFETIME_MS.to_string();
        let mut cmd = Command::new(CLOCK_BIN);
        cmd.arg("hold")
            .arg("--lock")
            .arg(&lock)
            .args(["--lifetime-ms", &life])
            .args(["--hold-ms", &COARSE_HOLD_MS.to_string()])
            .args(["--tag", "holder"]);
        let h = spawn_command(&format!("{name} holder"), cmd);
        let lock_s = lock.to_str().expect("utf-8 path");
        let w = Proc::spawn(
            &format!("{name} waiter"),
            &Spec::new(
                Place::Host,
                None,
                &[
                    "acquire",
                    "--lock",
                    lock_s,
                    "--lifetime-ms",
                    &life,
                    "--timeout-ms",
                    "10000",
                    "--wait-for-lock-ms",
                    "5000",
                    "--tag",
                    "waiter",
                ],
            ),
        );
        let start = h.expect("holder", "start", Duration::from_secs(10));
        let locked = h.expect("holder", "locked", Duration::from_secs(10));
        let got = w.expect("waiter", "acquired", Duration::from_secs(14));
        let wall = num(&start, "wall").expect("wall=");
        let phase_ms = wall.rem_euclid(1_000_000_000) as f64 / 1e6;
        let waited = ms_between(&start, &got);
        let stamp = num(&locked, "mtime").map(|m| (m - wall) as f64 / 1e6);
        let mut wrong = Vec::new();
        if waited < COARSE_LIFETIME_MS as f64 {
            wrong.push(format!(
                "the waiter took the live holder's lock {waited:.0} ms after the holder's \
                 lock() began, before its {COARSE_LIFETIME_MS} ms lifetime"
            ));
        }
        match stamp {
            Some(s) if s >= COARSE_LIFETIME_MS as f64 - 50.0 => {}
            Some(s) => wrong.push(format!(
                "right after lock() returned the lock file's mtime (its expiry) was only \
                 {s:.0} ms after the holder's wall clock before lock(), less than the \
                 {COARSE_LIFETIME_MS} ms lifetime (- 50 ms)"
            )),
            None => wrong.push("there was no lock file right after lock() returned".into()),
        }
        assert!(
            wrong.is_empty(),
            "on 1-second timestamps, lock() began {phase_ms:.0} ms past a second: {}\n\
             holder:\n{}\nwaiter:\n{}",
            wrong.join("; "),
            h.output(),
            w.output()
        );
        format!(
            "lock() at +{phase_ms:.0} ms past a second: expiry stamped {:.0} ms ahead, \
             waiter took it after {waited:.0} ms",
            stamp.unwrap_or(f64::NAN)
        )
    });
    drop(fs);
}

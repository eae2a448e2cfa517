//! Separate OS processes: contention with counted overlaps, and instant recovery from a
//! crashed holder on this host (point 4), with the cases where it must not happen.
//! Children are re-runs of this test executable (`child_entry` with an environment).

use crate::support::{files_in, lock_path};
use flufl_lock::{ErrorKind, Lock};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "FLUFL_IT_CHILD";

fn spawn(mode: &str, lock: &Path, extra: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "processes::child_entry",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(CHILD, mode)
    .env("LOCK", lock)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

/// Reads the child's stdout until a line equals `want`, with a time limit.
fn wait_line(child: &mut Child, want: &str) {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = want.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() == want {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("child never reported");
}

/// Not a test on its own: the body of the child processes the other tests start.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let lock_path = std::env::var("LOCK").unwrap();
    match mode.as_str() {
        "contend" => {
            let n: usize = std::env::var("N").unwrap().parse().unwrap();
            let log = std::env::var("LOG").unwrap();
            let counter = std::env::var("COUNTER").unwrap();
            let lock = Lock::builder(&lock_path)
                .lifetime(Duration::from_secs(30))
                .build()
                .unwrap();
            let me = std::process::id();
            for i in 0..n {
                lock.lock_timeout(Duration::from_secs(60)).unwrap();
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)
                    .unwrap();
                writeln!(f, "E {me} {i}").unwrap();
                let v: u64 = std::fs::read_to_string(&counter)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                std::fs::write(&counter, (v + 1).to_string()).unwrap();
                writeln!(f, "X {me} {i}").unwrap();
                drop(f);
                lock.unlock().unwrap();
            }
        }
        "hold" => {
            let lock = Lock::builder(&lock_path)
                .lifetime(Duration::from_secs(120))
                .build()
                .unwrap();
            lock.lock().unwrap();
            println!("locked");
            std::io::stdout().flush().unwrap();
            if std::env::var("EXIT").is_ok() {
                // Exit without unlocking, as a crash would.
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_secs(300));
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Checks a log of enter/exit records: every enter is followed by the exit of the same
/// process and iteration before any other enter. Returns the number of critical sections.
pub fn check_log(log: &str) -> usize {
    let mut inside: Option<(String, String)> = None;
    let mut n = 0;
    for (i, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.as_slice(), &inside) {
            (["E", p, k], None) => inside = Some((p.to_string(), k.to_string())),
            (["X", p, k], Some((ip, ik))) if p == ip && k == ik => {
                inside = None;
                n += 1;
            }
            _ => panic!(
                "overlap or corrupt record at line {}: {line:?} while inside {inside:?}",
                i + 1
            ),
        }
    }
    assert!(inside.is_none(), "log ends inside a critical section");
    n
}

/// Four processes take one lock 50 times each: no overlapping critical sections, no lost
/// counter updates, nothing left behind.
#[test]
fn processes_contend_without_overlap() {
    let (dir, path) = lock_path();
    let log = dir.path().join("log");
    let counter = dir.path().join("counter");
    let (procs, n) = (4, 50);
    let env = [
        ("N", n.to_string()),
        ("LOG", log.display().to_string()),
        ("COUNTER", counter.display().to_string()),
    ];
    let children: Vec<Child> = (0..procs).map(|_| spawn("contend", &path, &env)).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let sections = check_log(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(sections, procs * n);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        (procs * n).to_string(),
        "lost updates"
    );
    assert_eq!(
        files_in(dir.path()),
        vec!["counter".to_string(), "log".to_string()]
    );
}

/// A holder killed by SIGKILL (reaped or left a zombie) on this host, in this boot and pid
/// namespace, is broken at once: with a 120 s lifetime, flufl.lock would wait 130 s.
#[test]
fn killed_holder_recovered_at_once() {
    for (exit, reap) in [(false, true), (false, false), (true, false)] {
        let (dir, path) = lock_path();
        let mut child = spawn(
            "hold",
            &path,
            &if exit {
                vec![("EXIT", "1".to_string())]
            } else {
                vec![]
            },
        );
        wait_line(&mut child, "locked");
        if !exit {
            child.kill().unwrap();
        }
        if reap || exit {
            // exit: wait until the child has exited but leave it unreaped (a zombie).
            let t = Instant::now();
            while Path::new(&format!("/proc/{}/stat", child.id())).exists()
                && !std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
                    .unwrap_or_default()
                    .contains(") Z")
                && t.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if reap {
            child.wait().unwrap();
        }
        let waiter = Lock::new(&path).unwrap();
        let t = Instant::now();
        waiter.lock_timeout(Duration::from_secs(10)).unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "exit={exit} reap={reap}: took {took:?}"
        );
        waiter.unlock().unwrap();
        let _ = child.wait();
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
    }
}

/// A live holder in another process is never broken by the pid check.
#[test]
fn live_holder_not_broken() {
    let (_dir, path) = lock_path();
    let mut child = spawn("hold", &path, &[]);
    wait_line(&mut child, "locked");
    let waiter = Lock::new(&path).unwrap();
    assert_eq!(
        waiter
            .lock_timeout(Duration::from_millis(500))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    child.kill().unwrap();
    child.wait().unwrap();
    waiter.lock_timeout(Duration::from_secs(5)).unwrap();
}

/// This process's boot id, pid namespace, and its claims' `<pidns>.<timens>` part and start time.
fn proc_identity() -> (String, u64, String, u64) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ns = ns
        .to_str()
        .unwrap()
        .trim_start_matches("pid:[")
        .trim_end_matches(']')
        .parse()
        .unwrap();
    let tns: u64 = std::fs::read_link("/proc/self/ns/time")
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("time:[")
        .trim_end_matches(']')
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    (boot, ns, format!("{ns}.{tns}"), start)
}

/// Plants a lock file holding the given claim (as if written by another process).
fn plant(path: &Path, host: &str, pid: u32, random: &str) {
    let claim = format!("{}|{host}|{pid}|{random}", path.display());
    std::fs::write(&claim, &claim).unwrap();
    std::fs::hard_link(&claim, path).unwrap();
    let f = std::fs::File::options().write(true).open(&claim).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(120))
        .unwrap();
}

/// A claim whose pid now belongs to a process started later is broken at once; one from
/// another pid namespace or boot, another host, or flufl.lock (no proof) waits for expiry.
#[test]
fn pid_reuse_and_unprovable_claims() {
    let (boot, ns, nss, start) = proc_identity();
    let me = std::process::id();
    let host = Lock::new("/x").unwrap().hostname().to_string();
    let tns: u64 = nss.rsplit('.').next().unwrap().parse().unwrap();
    // Our own pid, but a different start time: the pid was reused.
    let cases = [
        (
            format!("1.fl1.{boot}.{nss}.{}", start + 1),
            host.clone(),
            true,
        ),
        (
            format!("1.fl1.{boot}.{}.{tns}.{start}", ns + 1),
            host.clone(),
            false,
        ),
        (
            format!("1.fl1.{}.{nss}.{}", "0".repeat(32), start + 1),
            host.clone(),
            false,
        ),
        (
            format!("1.fl1.{boot}.{nss}.{}", start + 1),
            "other.example".to_string(),
            false,
        ),
        // Another time namespace: its start times are shifted, so they prove nothing.
        (
            format!("1.fl1.{boot}.{ns}.{}.{}", tns + 1, start + 1),
            host.clone(),
            false,
        ),
        // A claim of an earlier version, without the time namespace: no proof.
        (
            format!("1.fl1.{boot}.{ns}.{}", start + 1),
            host.clone(),
            false,
        ),
        ("5577006791947779410".to_string(), host.clone(), false),
    ];
    for (random, h, broken) in cases {
        let (_dir, path) = lock_path();
        plant(&path, &h, me, &random);
        let waiter = Lock::new(&path).unwrap();
        let r = waiter.try_lock();
        assert_eq!(r.is_ok(), broken, "{h} {random}: {r:?}");
    }
    // A dead pid in a flufl.lock claim on this host: not broken before expiry either.
    let (_dir, path) = lock_path();
    plant(&path, &host, 4_000_000, "42");
    assert!(Lock::new(&path).unwrap().try_lock().is_err());
}

/// `adopt` takes over only a claim of this lock, in its directory, that is the lock's own
/// inode: a lock file naming a file elsewhere (or a claim of another process start) is not
/// adopted, and the named file is untouched.
#[test]
fn adopt_checks_the_claim() {
    // `ns` here is the claim's `<pidns>.<timens>` part.
    let (boot, _, ns, start) = proc_identity();
    let me = std::process::id();
    let host = Lock::new("/x").unwrap().hostname().to_string();
    let (dir, path) = lock_path();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere
        .path()
        .join(format!("v|{host}|{me}|1.fl1.{boot}.{ns}.{start}"));
    std::fs::write(&victim, "precious").unwrap();
    std::fs::write(&path, victim.to_str().unwrap()).unwrap();
    let adopted = Lock::builder(&path).owner_pid(me).adopt().unwrap();
    assert!(adopted.is_none());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();
    // Same name and pid, but another process start time: not ours.
    plant(
        &path,
        &host,
        me,
        &format!("1.fl1.{boot}.{ns}.{}", start + 1),
    );
    assert!(Lock::builder(&path)
        .owner_pid(me)
        .adopt()
        .unwrap()
        .is_none());
    std::fs::remove_file(&path).unwrap();
    // Ours: adopted, and dropping it does not release it.
    let l = Lock::builder(&path).owner_pid(me).build().unwrap();
    l.lock().unwrap();
    l.leak();
    let a = Lock::builder(&path)
        .owner_pid(me)
        .adopt()
        .unwrap()
        .expect("ours");
    drop(a);
    assert!(path.exists(), "dropping an adopted lock released it");
    let a = Lock::builder(&path)
        .owner_pid(me)
        .adopt()
        .unwrap()
        .expect("ours");
    a.unlock().unwrap();
    assert!(!path.exists());
    let _ = dir;
}

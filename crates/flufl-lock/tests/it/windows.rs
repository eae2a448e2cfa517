//! Windows-only tests: the `^` separator and legal claim names, unlocking while another
//! handle is open, Windows error codes under the algorithm, reparse points, change
//! notification, and several processes contending for one lock.
//!
//! These run under Wine in CI (testbed/wine/README.md). Where Wine differs from Windows, the
//! test says so and asserts what holds on both.

use crate::support::{files_in, lock_path, Fault, FaultyFs, Op};
use flufl_lock::{ErrorKind, Lock};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ERROR_SHARING_VIOLATION: i32 = 32;
const ERROR_ALREADY_EXISTS: i32 = 183;
const ERROR_INVALID_NAME: i32 = 123;
const ERROR_PRIVILEGE_NOT_HELD: i32 = 1314;
const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// Whether this process runs under Wine (its loader sets these; Windows never does).
fn under_wine() -> bool {
    std::env::var_os("WINECONFIGDIR").is_some() || std::env::var_os("WINELOADER").is_some()
}

/// Whether `name` is a legal Windows file name that Windows keeps as given: no reserved
/// characters, no trailing dot or space (which Windows strips), no device name.
fn legal_windows_name(name: &str) -> bool {
    const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    let stem = name
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_uppercase();
    let device = DEVICES.contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    !name.is_empty()
        && !name.ends_with(['.', ' '])
        && !name.chars().any(|c| c < ' ' || "<>:\"/\\|?*".contains(c))
        && !device
}

/// `^` is the default separator on Windows, and the claim's file name is legal there: it is
/// created exactly as named, and read back as a claim.
#[test]
fn caret_is_default_and_claim_names_are_legal() {
    assert_eq!(flufl_lock::SEP, '^');
    let (dir, path) = lock_path();
    let lock = Lock::new(&path).unwrap();
    assert_eq!(lock.separator(), '^');
    let name = lock
        .claimfile()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let fields: Vec<&str> = name.split('^').collect();
    assert_eq!(fields.len(), 4, "{name}");
    assert_eq!(fields[0], "test.lck");
    assert_eq!(fields[1], lock.hostname());
    assert_eq!(fields[2], std::process::id().to_string());
    assert!(legal_windows_name(&name), "{name}");
    assert!(legal_windows_name(lock.hostname()), "{}", lock.hostname());
    lock.lock().unwrap();
    let mut both = vec![name.clone(), "test.lck".to_string()];
    both.sort();
    assert_eq!(files_in(dir.path()), both);
    let d = lock.details().unwrap();
    assert_eq!(
        (d.pid, d.lockfile.as_path(), d.claimfile.as_path()),
        (std::process::id(), path.as_path(), lock.claimfile())
    );
    lock.unlock().unwrap();
    assert!(files_in(dir.path()).is_empty());
}

/// A separator that Windows refuses in names (`|`, POSIX's default) fails at once with an
/// I/O error naming the claim file, and leaves nothing behind.
#[test]
fn illegal_separator_fails_at_once() {
    let (dir, path) = lock_path();
    let lock = Lock::builder(&path).separator('|').build().unwrap();
    let t = Instant::now();
    let e = lock.lock_timeout(Duration::from_secs(10)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "not prompt: {e}");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(
        e.io_error().and_then(|e| e.raw_os_error()),
        Some(ERROR_INVALID_NAME),
        "{e}"
    );
    assert!(e.to_string().contains("claim file"), "{e}");
    assert!(files_in(dir.path()).is_empty());
}

/// Unlocking while a reader holds the lock file open (sharing delete, as std and this
/// library open files) succeeds, and frees the lock file's and claim file's names at once:
/// another process takes the lock while the reader still has the old claim open and still
/// reads it.
///
/// Windows 10 and later on NTFS delete with POSIX semantics anyway, but Wine, FAT and older
/// Windows keep a deleted name until its last handle closes ("delete pending"); the backend
/// renames the file away before deleting it, so the name goes at once everywhere.
#[test]
fn unlock_while_reader_holds_lock_open() {
    let (dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let claim = a.claimfile().to_path_buf();
    let claim_name = claim.file_name().unwrap().to_str().unwrap().to_string();
    let reader = File::open(&path).unwrap();
    a.unlock().unwrap();
    assert!(!a.is_locked().unwrap());
    let names = files_in(dir.path());
    assert!(
        !names.contains(&"test.lck".to_string()) && !names.contains(&claim_name),
        "names linger: {names:?}"
    );

    // The lock is free for another at once; our own claim name can be created again too.
    let b = Lock::new(&path).unwrap();
    b.try_lock().unwrap();
    let e = a.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(
        !claim.exists(),
        "a's claim is removed again after its failed try"
    );

    let mut old = String::new();
    std::io::Read::read_to_string(&mut &reader, &mut old).unwrap();
    assert_eq!(
        Path::new(&old),
        claim,
        "the reader still reads the old claim"
    );
    drop(reader);
    b.unlock().unwrap();
    a.lock_timeout(Duration::from_secs(5)).unwrap();
    a.unlock().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// The same, with the reader opening the lock file at the last moment: between the holder's
/// identity check and its unlink (a fault-injection hook runs just before the unlink).
#[test]
fn reader_opens_just_before_unlink() {
    let (dir, path) = lock_path();
    let fs = FaultyFs::new();
    let reader: Arc<Mutex<Option<File>>> = Arc::default();
    let (r2, p2) = (reader.clone(), path.clone());
    fs.rule(
        Op::Unlink,
        Some("test.lck"),
        Fault::Hook(Arc::new(move || {
            *r2.lock().unwrap() = Some(File::open(&p2).unwrap());
        })),
        1,
    );
    let a = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    a.lock().unwrap();
    a.unlock().unwrap();
    assert!(reader.lock().unwrap().is_some(), "the hook ran");
    assert_eq!(fs.count(Op::Unlink), 2, "lock file, then claim file");
    reader.lock().unwrap().take();
    let b = Lock::new(&path).unwrap();
    b.lock_timeout(Duration::from_secs(5)).unwrap();
    b.unlock().unwrap();
    assert!(files_in(dir.path()).is_empty());
}

/// A lost reply with a Windows error code: the hard link is made, but the call reports
/// `ERROR_ALREADY_EXISTS` (as an SMB retransmission can). The lock is ours by file identity.
#[test]
fn lost_link_reply_with_windows_code() {
    let (_dir, path) = lock_path();
    let fs = FaultyFs::new();
    fs.rule(
        Op::Link,
        Some("test.lck"),
        Fault::AfterErr(ERROR_ALREADY_EXISTS),
        1,
    );
    let a = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    a.try_lock().unwrap();
    assert!(a.is_locked().unwrap());
    assert_eq!(fs.count(Op::Link), 1);
    a.unlock().unwrap();
}

/// A stale link count of 2 (our claim looking linked) never makes a waiter think it holds
/// someone else's lock: ownership is decided by file identity.
#[test]
fn stale_link_count_does_not_fool_waiter() {
    let (_dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let fs = FaultyFs::new();
    fs.rule(Op::Fstat, None, Fault::Nlink(2), usize::MAX);
    fs.rule(Op::Lstat, None, Fault::Nlink(2), usize::MAX);
    let b = Lock::builder(&path).filesystem(fs).build().unwrap();
    assert_eq!(b.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(a.is_locked().unwrap());
    assert!(!b.is_locked().unwrap());
    a.unlock().unwrap();
}

/// A process that opens the lock file without `FILE_SHARE_DELETE` (Python's `open()`, as
/// flufl.lock reads it) makes removal fail with `ERROR_SHARING_VIOLATION` for a moment. With
/// that code configured as retryable, unlock rides it out.
#[test]
fn sharing_violation_retried_when_configured() {
    let (dir, path) = lock_path();
    let fs = FaultyFs::new();
    let a = Lock::builder(&path)
        .filesystem(fs.clone())
        .retry_errnos([ERROR_SHARING_VIOLATION])
        .build()
        .unwrap();
    a.lock().unwrap();
    fs.rule(
        Op::Unlink,
        Some("test.lck"),
        Fault::Err(ERROR_SHARING_VIOLATION),
        3,
    );
    a.unlock().unwrap();
    assert_eq!(fs.count(Op::Unlink), 5, "3 refusals, the lock, the claim");
    assert!(files_in(dir.path()).is_empty());
}

/// A waiter with a long poll interval is woken at once by a release: the backend watches
/// the lock's directory (`ReadDirectoryChangesW`), which Wine implements with inotify.
#[test]
fn release_wakes_waiter() {
    let (_dir, path) = lock_path();
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    let p2 = path.clone();
    let t = std::thread::spawn(move || {
        let b = Lock::builder(&p2)
            .poll_interval(Duration::from_secs(20), Duration::from_secs(20))
            .build()
            .unwrap();
        let r = b.lock_timeout(Duration::from_secs(15));
        let at = Instant::now();
        r.map(|()| at)
    });
    std::thread::sleep(Duration::from_millis(500));
    let released = Instant::now();
    a.unlock().unwrap();
    let acquired = t.join().unwrap().expect("acquired");
    let lag = acquired.saturating_duration_since(released);
    assert!(
        lag < Duration::from_secs(2),
        "waiter slept through the release: {lag:?}"
    );
}

fn is_reparse_point(path: &Path) -> bool {
    use std::os::windows::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0)
}

/// A reparse point at the lock path (a symbolic link to a victim file, or a junction where
/// symbolic links need a privilege we lack) is refused at once and never followed: the
/// victim's content and time are unchanged.
///
/// Wine 8 cannot make reparse points: `symlink_file` returns Ok and creates nothing, and
/// `mklink /J` fails. Under Wine this test asserts exactly that (so it starts checking for
/// real the day the test bed can make them) and that the victim is untouched by a lock
/// taken at the free path; the classification of reparse points is unit-tested in the
/// backend (`reparse_points_are_symlinks`).
#[test]
fn reparse_point_at_lock_path_is_refused() {
    let (dir, path) = lock_path();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let made = match std::os::windows::fs::symlink_file(&victim, &path) {
        Ok(()) => is_reparse_point(&path),
        Err(e) if e.raw_os_error() == Some(ERROR_PRIVILEGE_NOT_HELD) => false,
        Err(e) => panic!("symlink_file: {e}"),
    };
    let made = made || {
        // A junction needs no privilege (it points at a directory).
        let _ = Command::new("cmd")
            .args(["/C", "mklink", "/J"])
            .arg(&path)
            .arg(victim_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        is_reparse_point(&path)
    };

    if made {
        let lock = Lock::new(&path).unwrap();
        let t = Instant::now();
        let e = lock.lock_timeout(Duration::from_secs(10)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "not prompt: {e}");
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(is_reparse_point(&path), "the reparse point was left alone");
        assert_eq!(files_in(dir.path()), vec!["test.lck"]);
    } else {
        assert!(
            under_wine(),
            "could not create a symbolic link or a junction on Windows"
        );
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "Wine made something at the lock path: check whether it is a reparse point"
        );
        let lock = Lock::new(&path).unwrap();
        lock.lock().unwrap();
        lock.unlock().unwrap();
        assert!(files_in(dir.path()).is_empty());
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::metadata(&victim).unwrap().modified().unwrap(), old);
    assert_eq!(files_in(victim_dir.path()), vec!["victim"]);
}

const CHILD: &str = "FLUFL_IT_WIN_CHILD";

/// Not a test on its own: the body of the child processes `processes_contend` starts.
/// Without the environment variable it does nothing.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    assert_eq!(mode, "contend");
    let env = |k: &str| std::env::var(k).unwrap();
    let n: usize = env("N").parse().unwrap();
    let (log, counter) = (env("LOG"), env("COUNTER"));
    let lock = Lock::builder(env("LOCK"))
        .lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let me = std::process::id();
    // Start together, so that the processes really contend.
    let go = Path::new(&log).with_file_name("go");
    let t = Instant::now();
    while !go.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "never told to go");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut waited = 0;
    for i in 0..n {
        match lock.try_lock() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                waited += 1;
                lock.lock_timeout(Duration::from_secs(90)).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
        let mut f = File::options()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        writeln!(f, "E {me} {i}").unwrap();
        let v: u64 = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        std::thread::yield_now();
        std::fs::write(&counter, (v + 1).to_string()).unwrap();
        writeln!(f, "X {me} {i}").unwrap();
        drop(f);
        lock.unlock().unwrap();
    }
    let mut f = File::options()
        .append(true)
        .create(true)
        .open(Path::new(&log).with_file_name("waits"))
        .unwrap();
    writeln!(f, "{waited}").unwrap();
}

/// Several Windows processes take one lock many times each: every entry into the critical
/// section is followed by its own exit before anyone else enters, and no increment of the
/// shared counter is lost.
#[test]
fn processes_contend() {
    const PROCS: usize = 6;
    const ROUNDS: usize = 40;
    let (dir, path) = lock_path();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("log");
    let counter = work.path().join("counter");
    let started = Instant::now();
    let mut children: Vec<Child> = (0..PROCS)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "windows::child_entry", "--nocapture", "-q"])
                .env(CHILD, "contend")
                .env("LOCK", &path)
                .env("N", ROUNDS.to_string())
                .env("LOG", &log)
                .env("COUNTER", &counter)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    std::fs::write(work.path().join("go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    for c in &mut children {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "child failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("children did not finish within 180 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let took = started.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * PROCS * ROUNDS, "{text}");
    for pair in lines.chunks(2) {
        let enter = pair[0].strip_prefix("E ").expect(pair[0]);
        let exit = pair[1].strip_prefix("X ").expect(pair[1]);
        assert_eq!(enter, exit, "overlap: {pair:?}");
    }
    let total: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, PROCS * ROUNDS, "lost updates");
    let waits: Vec<usize> = std::fs::read_to_string(work.path().join("waits"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(waits.len(), PROCS);
    let waited: usize = waits.iter().sum();
    assert!(
        waited > 0,
        "no process ever had to wait: no contention tested"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    eprintln!(
        "{PROCS} processes x {ROUNDS} rounds in {took:.2?} ({:.1?} per round), \
         {waited} acquisitions had to wait",
        took / (PROCS * ROUNDS) as u32
    );
}

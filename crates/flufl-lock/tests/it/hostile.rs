//! Hostile and broken files at the lock and claim paths: no hang, no panic, a clear error,
//! nothing outside the lock's own files modified.

use crate::support::{files_in, lock_path};
use flufl_lock::{ErrorKind, Lock};
use std::time::{Duration, Instant};

fn expect_refusal(path: &std::path::Path, words: &str) {
    let lock = Lock::new(path).unwrap();
    let t = Instant::now();
    let e = lock.lock_timeout(Duration::from_secs(10)).unwrap_err();
    // Malformed files get a short grace (flufl.lock rewrites its lock in place on re-lock).
    assert!(t.elapsed() < Duration::from_secs(3), "not prompt: {e}");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(words), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

/// The lock file is a directory.
#[test]
fn lock_is_directory() {
    let (dir, path) = lock_path();
    std::fs::create_dir(&path).unwrap();
    expect_refusal(&path, "is a directory");
    assert!(path.is_dir());
    assert_eq!(files_in(dir.path()), vec!["test.lck"]);
}

/// Binary garbage, an empty file and a huge sparse file are not claims: refused at once,
/// left untouched, and only a bounded prefix is ever read.
#[test]
fn lock_is_garbage_or_huge() {
    let (dir, path) = lock_path();
    for content in [&b"\x00\xff\x13garbage"[..], b"", b"no separators here"] {
        std::fs::write(&path, content).unwrap();
        expect_refusal(&path, "does not hold a flufl.lock claim");
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    expect_refusal(&path, "does not hold a flufl.lock claim");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 30);
    assert_eq!(files_in(dir.path()), vec!["test.lck"]);
}

/// A lock file that is empty only for a moment (flufl.lock rewrites its claim, which is the
/// lock, when a holder calls lock() again) is waited on, not reported as garbage.
#[test]
fn momentarily_empty_lock_is_waited_on() {
    let (_dir, path) = lock_path();
    let claim = format!("{}|elsewhere|77|1", path.display());
    std::fs::write(&path, "").unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let p2 = path.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut f = std::fs::File::options().write(true).open(&p2).unwrap();
        std::io::Write::write_all(&mut f, claim.as_bytes()).unwrap();
    });
    let lock = Lock::new(&path).unwrap();
    let e = lock.lock_timeout(Duration::from_millis(600)).unwrap_err();
    writer.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert_eq!(lock.details().unwrap().pid, 77);
}

/// A claim with an absurd pid from another host: waited on (until expiry), never a panic.
#[test]
fn absurd_pid() {
    let (_dir, path) = lock_path();
    std::fs::write(&path, format!("{}|elsewhere|4294967295|1", path.display())).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let lock = Lock::new(&path).unwrap();
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(lock.details().unwrap().pid, 4294967295);
    // A pid beyond u32 is not a claim at all.
    std::fs::write(&path, format!("{}|elsewhere|99999999999|1", path.display())).unwrap();
    expect_refusal(&path, "does not hold a flufl.lock claim");
}

/// A lock path containing the separator works.
#[test]
fn separator_in_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("a{}b.lck", flufl_lock::SEP));
    let a = Lock::new(&path).unwrap();
    a.lock().unwrap();
    assert_eq!(a.details().unwrap().lockfile, path);
    let b = Lock::new(&path).unwrap();
    assert_eq!(b.try_lock().unwrap_err().kind(), ErrorKind::TimedOut);
    a.unlock().unwrap();
    assert!(files_in(dir.path()).is_empty());
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The lock path is a symlink to a victim: refused, and the victim's content and mtime
    /// are unchanged.
    #[test]
    fn lock_is_symlink_to_victim() {
        let (dir, path) = lock_path();
        let victim_dir = tempfile::tempdir().unwrap();
        let victim = victim_dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
        symlink(&victim, &path).unwrap();
        expect_refusal(&path, "symbolic link");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::metadata(&victim).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(files_in(dir.path()), vec!["test.lck"]);
        // A dangling one too.
        std::fs::remove_file(&path).unwrap();
        symlink(dir.path().join("nowhere"), &path).unwrap();
        expect_refusal(&path, "symbolic link");
        assert!(!dir.path().join("nowhere").exists());
    }

    /// A symlink or FIFO planted at our claim path is never followed or opened.
    #[test]
    fn planted_claim_path() {
        let (dir, path) = lock_path();
        let victim_dir = tempfile::tempdir().unwrap();
        let victim = victim_dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let lock = Lock::new(&path).unwrap();
        symlink(&victim, lock.claimfile()).unwrap();
        lock.lock().unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        lock.unlock().unwrap();
        assert!(victim.exists());
        let lock = Lock::new(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            lock.claimfile(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        lock.lock_timeout(Duration::from_secs(2)).unwrap();
        lock.unlock().unwrap();
        assert!(files_in(dir.path()).is_empty());
    }

    /// The lock file is a FIFO: refused without blocking on open.
    #[test]
    fn lock_is_fifo() {
        let (_dir, path) = lock_path();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        expect_refusal(&path, "not a regular file");
    }

    /// A non-UTF-8 lock path works, and its claim names it byte for byte.
    #[test]
    fn non_utf8_path() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.lck"));
        let lock = Lock::new(&path).unwrap();
        lock.lock().unwrap();
        assert_eq!(lock.details().unwrap().lockfile, path);
        lock.unlock().unwrap();
        assert!(files_in(dir.path()).is_empty());
    }

    /// A missing or read-only directory is an error at once, naming the path.
    #[test]
    fn missing_or_readonly_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").join("x.lck");
        let e = Lock::new(&missing).unwrap().lock().unwrap_err();
        assert!(
            e.to_string().contains("failed to create claim file") && e.to_string().contains("nope"),
            "{e}"
        );
        // Root ignores permission bits, so make the directory read-only by a bind mount when
        // root; otherwise by its mode.
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        let mut perms = std::fs::metadata(&ro).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
        std::fs::set_permissions(&ro, perms).unwrap();
        let lock = Lock::new(ro.join("x.lck")).unwrap();
        if rustix::process::geteuid().is_root() {
            // root can write anyway: the lock must simply work.
            lock.lock().unwrap();
            lock.unlock().unwrap();
        } else {
            let e = lock.lock().unwrap_err();
            assert!(e.to_string().contains("Permission denied"), "{e}");
        }
    }
}

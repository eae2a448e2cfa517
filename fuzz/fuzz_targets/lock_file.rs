//! Arbitrary bytes as a lock file: `state()`, `details()`, `try_lock()` and
//! `break_lock(false)` never panic, and a lock file that is not a claim is never modified or
//! removed, an unexpired claim from another host is never broken, nothing outside the
//! lock's own files is touched, and no claim, marker or pin of ours is left behind.
//!
//! The claim parser is private to the library, so it is reached through the public API.
//! Input: one mode byte, then the content.
//!
//! | mode bit | meaning |
//! |---|---|
//! | 0 | the lock's mtime (its expiry) is an hour in the past, else an hour ahead |
//! | 1 | the lock uses `^` as its separator, else `|` |
//! | 2 | the content is prefixed with the lock's own path (so that claims naming it are easy to reach) |
//! | 3 | the lock file is a hard link to a planted file named by its content, as a real holder's claim is |
//! | 4 | the lock file is written with a trailing newline |

#![no_main]

use flufl_lock::{BreakOutcome, Lock};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const HOST: &str = "fuzz.host.invalid";

struct Env {
    dir: PathBuf,
    lock: PathBuf,
    pipe: Lock,
    caret: Lock,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // One directory per fuzzing process; remove those of processes that are gone.
        let tmp = std::env::temp_dir();
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("flufl-lock-fuzz-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("flufl-lock-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("fz.lck");
        let build = |sep| {
            Lock::builder(&lock)
                .separator(sep)
                .hostname(HOST)
                .lifetime(Duration::from_secs(60))
                .marker_lifetime(Duration::from_secs(1))
                .build()
                .unwrap()
        };
        Env {
            pipe: build('|'),
            caret: build('^'),
            dir,
            lock,
        }
    })
}

/// Every file in the directory: name -> (inode, length, mtime, content head).
fn snapshot(dir: &Path) -> BTreeMap<OsString, (u64, u64, i64, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let head = std::fs::read(e.path()).unwrap_or_default();
            (
                e.file_name(),
                (
                    m.ino(),
                    m.len(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    head,
                ),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > 16 * 1024 {
        return;
    }
    let e = env();
    for entry in std::fs::read_dir(&e.dir).unwrap() {
        let p = entry.unwrap().path();
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
    }
    let lock = if mode & 2 != 0 { &e.caret } else { &e.pipe };

    let mut content = Vec::new();
    if mode & 4 != 0 {
        content.extend_from_slice(e.lock.as_os_str().as_bytes());
    }
    content.extend_from_slice(rest);
    if mode & 16 != 0 {
        content.push(b'\n');
    }
    // Files that must never be touched: one named like a claim of this lock, one not.
    let victims = [e.dir.join("fz.lck|victim|1|1"), e.dir.join("victim")];
    for v in &victims {
        std::fs::write(v, b"precious").unwrap();
    }
    // The planted "holder's claim": a file at the path the content names, if that path is
    // a plain name in our directory.
    let mut planted = None;
    let named = PathBuf::from(OsString::from_vec(
        content.strip_suffix(b"\n").unwrap_or(&content).to_vec(),
    ));
    if mode & 8 != 0
        && named.parent() == Some(e.dir.as_path())
        && named
            .file_name()
            .is_some_and(|n| n != "fz.lck" && n != "victim" && n != "fz.lck|victim|1|1")
        && !content.contains(&0)
        && std::fs::write(&named, &content).is_ok()
    {
        // The harness plants a holder's files itself; the seam rule is for the library.
        #[allow(clippy::disallowed_methods)]
        let linked = std::fs::hard_link(&named, &e.lock).is_ok();
        if linked {
            planted = Some(named);
        } else {
            let _ = std::fs::remove_file(&named);
        }
    }
    if planted.is_none() {
        std::fs::write(&e.lock, &content).unwrap();
    }
    let expiry = if mode & 1 != 0 {
        SystemTime::now() - Duration::from_secs(3600)
    } else {
        SystemTime::now() + Duration::from_secs(3600)
    };
    std::fs::File::options()
        .write(true)
        .open(&e.lock)
        .unwrap()
        .set_modified(expiry)
        .unwrap();
    let before = snapshot(&e.dir);

    let _ = lock.state();
    let details = lock.details();
    let is_claim = details.is_ok();
    let _ = lock.expires_in();
    if lock.try_lock().is_ok() {
        let _ = lock.unlock();
    }
    let broken = lock.break_lock(false);
    let _ = lock.state();

    let after = snapshot(&e.dir);
    for v in &victims {
        let n = v.file_name().unwrap();
        assert_eq!(after.get(n), before.get(n), "a victim file was touched");
    }
    let lock_name = e.lock.file_name().unwrap();
    if !is_claim {
        assert_eq!(
            after.get(lock_name),
            before.get(lock_name),
            "a lock file that is not a claim was modified or removed ({broken:?})"
        );
        assert!(!matches!(broken, Ok(BreakOutcome::Broken(_))));
    }
    let foreign = details.as_ref().is_ok_and(|d| d.hostname != HOST);
    if is_claim && foreign && mode & 1 == 0 {
        assert_eq!(
            after.get(lock_name),
            before.get(lock_name),
            "an unexpired claim from another host was broken"
        );
    }
    // Nothing new, and nothing removed but the lock and the planted claim it was.
    for name in after.keys() {
        assert!(before.contains_key(name), "left behind: {name:?}");
    }
    for name in before.keys() {
        if !after.contains_key(name) {
            let is_planted = planted.as_ref().and_then(|p| p.file_name()) == Some(name.as_os_str());
            assert!(
                is_claim && (name.as_os_str() == lock_name || is_planted),
                "removed: {name:?}"
            );
        }
    }
});

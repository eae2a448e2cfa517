//! Unit tests of the Windows backend (run under Wine by the test command).

use super::watch::names_removed;
use super::*;

/// FILETIME converts to SystemTime at both sides of the Unix epoch, to 100 ns.
#[test]
fn filetime_conversion() {
    let ft = |t: u64| FILETIME {
        dwLowDateTime: t as u32,
        dwHighDateTime: (t >> 32) as u32,
    };
    assert_eq!(from_filetime(ft(FILETIME_UNIX_EPOCH)), UNIX_EPOCH);
    assert_eq!(
        from_filetime(ft(FILETIME_UNIX_EPOCH + 15_000_000_001)),
        UNIX_EPOCH + Duration::new(1500, 100)
    );
    assert_eq!(
        from_filetime(ft(FILETIME_UNIX_EPOCH - 10_000_001)),
        UNIX_EPOCH - Duration::new(1, 100)
    );
}

/// Every reparse point is a symlink, even a directory one (a junction).
#[test]
fn reparse_points_are_symlinks() {
    assert_eq!(kind_of(FILE_ATTRIBUTE_REPARSE_POINT), FileKind::Symlink);
    assert_eq!(
        kind_of(FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY),
        FileKind::Symlink
    );
    assert_eq!(kind_of(FILE_ATTRIBUTE_DIRECTORY), FileKind::Directory);
    assert_eq!(kind_of(0x20 /* ARCHIVE */), FileKind::Regular);
}

fn record(next: u32, action: u32, name: &str) -> Vec<u8> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let mut v = Vec::new();
    v.extend(next.to_ne_bytes());
    v.extend(action.to_ne_bytes());
    v.extend((units.len() as u32 * 2).to_ne_bytes());
    for u in units {
        v.extend(u.to_ne_bytes());
    }
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// Change records wake a waiter only for the removal or renaming of the lock's own
/// name, in any case; truncated records do not panic.
#[test]
fn change_records_filter_the_lock_name() {
    let added = record(0, 1, "db.lck");
    assert!(!names_removed(&added, "db.lck"));
    let mut two = record(0, FILE_ACTION_REMOVED, "db.lck^host^1^2");
    let next = two.len() as u32;
    two[..4].copy_from_slice(&next.to_ne_bytes());
    two.extend(record(0, FILE_ACTION_RENAMED_OLD_NAME, "DB.LCK"));
    assert!(names_removed(&two, "db.lck"));
    assert!(!names_removed(&two[..next as usize], "db.lck"));
    assert!(!names_removed(&two[..next as usize + 14], "db.lck"));
    assert!(!names_removed(&[], "db.lck"));
}

/// Metadata of a fresh file: regular, one link, its length, distinct ids per file, and a
/// hard link shares the id and raises the count.
#[test]
fn fstat_lstat_ids_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let f = RealFs.create_new(&a).unwrap();
    RealFs.write_all(&f, b"hello").unwrap();
    let m = RealFs.fstat(&f).unwrap();
    assert_eq!((m.kind, m.nlink, m.len), (FileKind::Regular, 1, 5));
    drop(f);
    let b = dir.path().join("b");
    RealFs.link(&a, &b).unwrap();
    let (ma, mb) = (RealFs.lstat(&a).unwrap(), RealFs.lstat(&b).unwrap());
    assert_eq!(ma.id, mb.id);
    assert_eq!(ma.nlink, 2);
    assert_eq!(
        RealFs.link(&a, &b).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        RealFs.create_new(&b).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    std::fs::write(dir.path().join("c"), b"x").unwrap();
    assert_ne!(RealFs.lstat(&dir.path().join("c")).unwrap().id, ma.id);
    assert_eq!(RealFs.lstat(dir.path()).unwrap().kind, FileKind::Directory);
    RealFs.unlink(&b).unwrap();
    assert_eq!(RealFs.lstat(&a).unwrap().nlink, 1);
    assert_eq!(
        RealFs.lstat(&b).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        RealFs.unlink(&b).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    // unlink(2) refuses a directory.
    assert!(RealFs.unlink(dir.path()).is_err());
    assert!(dir.path().is_dir());
}

/// Times set through a handle or a path read back as set, to Windows' 100 ns.
#[test]
fn set_times_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let f = RealFs.create_new(&a).unwrap();
    let t = UNIX_EPOCH + Duration::new(2_000_000_000, 123_456_700);
    RealFs.set_times(&f, t).unwrap();
    assert_eq!(RealFs.fstat(&f).unwrap().modified, t);
    drop(f);
    let t2 = t + Duration::from_secs(60);
    RealFs.set_path_times(&a, t2).unwrap();
    assert_eq!(RealFs.lstat(&a).unwrap().modified, t2);
    let r = RealFs.open_read(&a).unwrap();
    assert_eq!(RealFs.fstat(&r).unwrap().modified, t2);
}

/// A reader's open handle (sharing delete) does not stop unlink or rename.
#[test]
fn reader_does_not_block_unlink_or_rename() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::write(&a, b"claim").unwrap();
    let r = RealFs.open_read(&a).unwrap();
    RealFs.rename(&a, &dir.path().join("b")).unwrap();
    assert_eq!(RealFs.read_head(&r, 100).unwrap(), b"claim");
    RealFs.unlink(&dir.path().join("b")).unwrap();
    drop(r);
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// Unlink frees the name at once, even while a reader holds the file open: the name can
/// be created again at once, the reader keeps reading the old file, and the old file
/// goes when the reader closes it. Another name of the same file is untouched.
#[test]
fn unlink_frees_the_name_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, b"old").unwrap();
    RealFs.link(&a, &b).unwrap();
    let r = RealFs.open_read(&a).unwrap();
    RealFs.unlink(&a).unwrap();
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(!names().contains(&"a".to_string()), "{:?}", names());
    let new = RealFs.create_new(&a).unwrap();
    RealFs.write_all(&new, b"new").unwrap();
    drop(new);
    assert_eq!(RealFs.read_head(&r, 10).unwrap(), b"old");
    assert_eq!(std::fs::read(&b).unwrap(), b"old");
    assert_ne!(RealFs.lstat(&a).unwrap().id, RealFs.lstat(&b).unwrap().id);
    drop(r);
    RealFs.unlink(&b).unwrap();
    assert_eq!(names(), vec!["a"]);
    assert_eq!(std::fs::read(&a).unwrap(), b"new");
}

/// Verbatim paths: drive and UNC paths get the `\\\\?\\` prefix, others are kept.
#[test]
fn verbatim_paths() {
    let v = |p: &str| String::from_utf16(&verbatim(Path::new(p)).unwrap()).unwrap();
    assert_eq!(v(r"C:\a\b"), "\\\\?\\C:\\a\\b\0");
    assert_eq!(v(r"\\srv\share\x"), "\\\\?\\UNC\\srv\\share\\x\0");
    assert_eq!(v(r"\\?\C:\x"), "\\\\?\\C:\\x\0");
    assert!(verbatim(Path::new("a\0b")).is_err());
}

/// Our own process runs; a pid that cannot exist is gone or unknown, never running.
#[test]
fn process_states() {
    assert_eq!(
        RealFs.process(std::process::id()),
        ProcState::Running { start: None }
    );
    assert_eq!(RealFs.process(0), ProcState::Unknown);
    // Windows pids are multiples of 4; this one is not.
    assert!(matches!(
        RealFs.process(0xffff_fff1),
        ProcState::Gone | ProcState::Unknown
    ));
}

/// Not a test on its own: the child `process_handle_wait` starts sleeps a little.
#[test]
fn child_sleeper() {
    if let Ok(ms) = std::env::var("FLUFL_SYS_SLEEP_MS") {
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
    }
}

/// A waiter watching a process wakes when it exits, well before its timeout; the
/// process reads as running, then exited (while we hold a handle on it), then gone.
#[test]
fn process_handle_wait() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sys::imp::tests::child_sleeper", "-q"])
        .env("FLUFL_SYS_SLEEP_MS", "700")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(RealFs.process(pid), ProcState::Running { start: None });
    let mut w = WaiterImpl::new(Path::new(r"C:\nowhere\x.lck"), false);
    w.watch_process(Some(pid));
    assert!(w.process.is_some());
    let t = Instant::now();
    w.wait(Duration::from_secs(20));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        w.process.is_none(),
        "the exited holder is no longer watched"
    );
    // `child` still holds a handle, so the pid is not reused: exited, not gone.
    assert_eq!(RealFs.process(pid), ProcState::Zombie);
    assert!(child.wait().unwrap().success());
    drop(child);
    // Once the last handle is closed the process object goes (under Wine a moment
    // later), and with it the pid: gone. It never reads as running again (unless the
    // pid were reused that fast).
    let t = Instant::now();
    loop {
        match RealFs.process(pid) {
            ProcState::Gone => break,
            ProcState::Zombie if t.elapsed() < Duration::from_secs(5) => {}
            s => panic!("{s:?} after {:?}", t.elapsed()),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Without anything to watch, wait sleeps its time.
    let mut idle = WaiterImpl::default();
    let t = Instant::now();
    idle.wait(Duration::from_millis(50));
    assert!(t.elapsed() >= Duration::from_millis(50));
}

/// A directory watch ignores other names' changes and wakes the waiter at once when the
/// lock's name (in any case) is removed or renamed away.
#[test]
fn dir_watch_wakes_on_lock_removal_only() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("x.lck");
    std::fs::write(&lock, b"claim").unwrap();
    let mut w = WaiterImpl::new(&dir.path().join("X.LCK"), true);
    assert!(w.dir.is_some(), "no directory watch");
    let other = dir.path().join("other");
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&other, b"").unwrap();
        std::fs::remove_file(&other).unwrap();
    });
    let start = Instant::now();
    w.wait(Duration::from_millis(400));
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "woken by another name"
    );
    t.join().unwrap();
    let l2 = lock.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        RealFs.unlink(&l2).unwrap();
    });
    let start = Instant::now();
    w.wait(Duration::from_secs(20));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();
    assert!(w.dir.is_some(), "the watch is re-armed");
    // Deleting the name the classic way wakes it too.
    std::fs::write(&lock, b"claim").unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_file(&lock).unwrap();
    });
    let start = Instant::now();
    w.wait(Duration::from_secs(20));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();
    drop(w);
}

/// A local temporary directory is not remote; a UNC path is.
#[test]
fn remote_detection() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!RealFs.is_remote(dir.path()).unwrap());
    assert!(RealFs.is_remote(Path::new(r"\\server\share\dir")).unwrap());
}

/// The host name is a non-empty DNS-style name, legal in a file name.
#[test]
fn hostname_is_a_name() {
    let h = hostname();
    assert!(!h.is_empty());
    assert!(
        h.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '_'),
        "{h}"
    );
    assert_eq!(host_identity(), HostIdentity::default());
}

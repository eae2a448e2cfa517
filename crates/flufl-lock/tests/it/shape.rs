//! Defects that came from the library's old shape (issue 13), each fixed with the move:
//! queries on a `Lock` that is waiting answer at once; the async path holds one claim for
//! the whole wait and makes the same calls as the blocking one; the builder's process
//! check and the host identity go through the filesystem seam.

use crate::support::{lock_path, FaultyFs, Layer, Layered, Op};
use flufl_lock::sys::{HostIdentity, ProcState};
use flufl_lock::{ErrorKind, Lock};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// From another thread, `lifetime()`, `is_locked()`, `state()` and `Debug` of a `Lock`
/// that is waiting for a held lock answer at once (the wait lets go of the state).
#[test]
fn queries_on_a_waiting_lock_answer_at_once() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let waiter = Arc::new(Lock::new(&path).unwrap());
    let w2 = waiter.clone();
    let t = std::thread::spawn(move || w2.lock_timeout(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(waiter.lifetime(), flufl_lock::DEFAULT_LIFETIME);
    assert!(!waiter.is_locked().unwrap());
    let _ = waiter.state().unwrap();
    let shown = format!("{waiter:?}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(200),
        "queries waited {took:?} for the acquisition (Debug: {shown})"
    );
    assert!(!t.is_finished(), "the waiter should still be waiting");
    holder.unlock().unwrap();
    t.join().unwrap().unwrap();
    assert!(waiter.is_locked().unwrap());
    waiter.unlock().unwrap();
}

/// An async wait of 600 ms on a held lock writes one claim file, not one per poll, and
/// polls with a `link` and one read of the lock file, as the blocking wait does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_wait_holds_one_claim() {
    let (_dir, path) = lock_path();
    let holder = Lock::new(&path).unwrap();
    holder.lock().unwrap();
    let fs = FaultyFs::new();
    let waiter = Lock::builder(&path).filesystem(fs.clone()).build().unwrap();
    let e = waiter
        .lock_timeout_async(Duration::from_millis(600))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let (creates, links, reads) = (
        fs.count(Op::CreateNew),
        fs.count(Op::Link),
        fs.count(Op::OpenRead),
    );
    assert_eq!(creates, 1, "claim files created during one wait");
    assert!(links >= 5, "only {links} polls in 600 ms");
    assert!(reads <= links, "{reads} reads for {links} links");
    assert_eq!(
        fs.count(Op::Unlink),
        1,
        "the claim is removed once, at the end"
    );
}

/// A filesystem seam whose process table and host identity are the test's.
#[derive(Debug)]
struct Seam {
    start: u64,
}

impl Layer for Seam {
    fn process(&self, _pid: u32) -> ProcState {
        ProcState::Running {
            start: Some(self.start),
        }
    }
    fn host_identity(&self) -> HostIdentity {
        HostIdentity {
            boot_id: Some("0123456789abcdef0123456789abcdef".into()),
            pid_ns: Some(11),
            time_ns: Some(22),
            start_time: Some(33),
        }
    }
}

/// The builder asks the seam, not the real `/proc`, for the owner's start time and the
/// host's identity: the claim carries exactly what the seam said.
#[test]
fn builder_asks_the_seam() {
    let (_dir, path) = lock_path();
    let lock = Lock::builder(&path)
        .filesystem(Arc::new(Layered(Seam { start: 4242 })))
        .owner_pid(1)
        .build()
        .unwrap();
    let name = lock.claimfile().to_string_lossy().into_owned();
    let random = name.rsplit(lock.separator()).next().unwrap();
    assert!(
        random.ends_with(".fl1.0123456789abcdef0123456789abcdef.11.22.4242"),
        "{random}"
    );
    let own = Lock::builder(&path)
        .filesystem(Arc::new(Layered(Seam { start: 4242 })))
        .build()
        .unwrap();
    let name = own.claimfile().to_string_lossy().into_owned();
    assert!(name.ends_with(".11.22.33"), "{name}");
}

//! The algorithm, as plain code over [`Fs`], in docs/protocol.md's order: this file holds
//! the state, the calls, the claim and the reading and judging of a lock; the steps follow
//! in [`acquire`] (Acquiring, Waiting), [`marker`] (the break marker), [`breaking`]
//! (Breaking) and [`release`] (Unlocking, Refreshing, queries).

mod acquire;
mod breaking;
mod marker;
mod queue;
mod release;

#[cfg(feature = "tokio")]
pub(crate) use acquire::{Acquisition, Next};
pub(crate) use marker::Marker;

use crate::claim::{self, Claim, Facts, Liveness, LockState, ServerClock};
use crate::config::{Clock, Config, WaitCallback, WaitStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, FileId, FileKind, Fs, HostIdentity, Meta, ProcState, Waiter};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Our claim file, while it exists.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimState {
    pub(crate) id: FileId,
    /// When we last wrote the claim's expiry, on the boot clock ([`Fs::boot_clock`]).
    pub(crate) stamped: Duration,
    /// Until when, on the boot clock, the expiry written is surely in the future of the
    /// server's clock ([`ServerClock::deadline`]).
    pub(crate) deadline: Duration,
    /// When the server made the claim file (its first mtime), for turns in arrival order.
    pub(crate) born: SystemTime,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) lifetime: Duration,
    pub(crate) claim: Option<ClaimState>,
    /// The server clock's offset, learned from our latest claim; kept after it is removed.
    pub(crate) offset: Option<ServerClock>,
    pub(crate) held: bool,
    /// Until when our lock is surely unexpired, on the boot clock: never later than what
    /// any waiter computes from the file.
    pub(crate) expires_at: Duration,
    /// Kept across acquisitions (see `acquire`).
    pub(crate) waiter: Option<Waiter>,
    /// Taken over by `adopt`: held for another process, so not released on drop.
    pub(crate) adopted: bool,
    /// An acquisition is under way (it lets go of the state lock while it sleeps); other
    /// operations that change the lock wait for it to end ([`Inner::begin_op`]).
    pub(crate) busy: bool,
    /// A malformed lock file seen, and since when (kept across `try_lock` attempts).
    pub(crate) malformed: Option<(FileId, Instant)>,
    /// While we hold the break marker: when we set out to take it, on the boot clock (a
    /// removal whose outcome is unknown is made again only while the marker is young).
    pub(crate) marker_taken: Option<Duration>,
    /// Whether the lock's directory is on a remote filesystem, once a wait asked.
    pub(crate) remote: Option<bool>,
    /// The lock's directory could not be listed to take turns (docs/protocol.md: Waiting).
    pub(crate) unlisted: bool,
}

pub(crate) struct Inner {
    pub(crate) lockfile: PathBuf,
    pub(crate) claimfile: PathBuf,
    pub(crate) claim_bytes: Vec<u8>,
    pub(crate) marker: PathBuf,
    pub(crate) taken: PathBuf,
    pub(crate) sep: char,
    pub(crate) hostname: String,
    pub(crate) identity: HostIdentity,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) on_wait: Option<WaitCallback>,
    pub(crate) cfg: Config,
    pub(crate) state: Mutex<State>,
    /// Signalled when an acquisition ends (`State::busy` goes false).
    pub(crate) idle: Condvar,
    /// The pid written into our claims.
    pub(crate) pid: u32,
    /// The process that built this `Lock`: a child forked from it must not write claims
    /// that name its parent (waiters would break its lock once the parent exits).
    pub(crate) built_in: u32,
}

/// The outcome of stamping our claim's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// Stamped and read back; `State::claim` has the new deadline.
    Done,
    /// Our claim file is gone: a breaker removed it with the lock it was (flufl.lock's
    /// break removes the claim first, then the lock), or a cleaner did.
    Gone,
    /// The file read back is not our claim: the lock changed hands.
    NotOurs,
    /// Our estimate of the server's clock was behind (the expiry written is short) and the
    /// stamp was not made under the marker: make it again under the marker.
    Behind,
}

/// What the lock file is, read without following links.
#[derive(Debug)]
pub(crate) enum View {
    /// No lock file (or it vanished while we looked).
    Gone,
    /// The lock file is our claim: we hold the lock.
    Ours,
    /// Someone else's well-formed claim.
    Theirs(Meta, Box<Claim>),
    /// A regular file that does not hold a claim. flufl.lock rewrites its claim (so the
    /// lock) in place when it re-locks, so this can be a passing state; it is never broken.
    Malformed(Meta),
}

/// A judgement of someone else's lock (docs/protocol.md: Judging a lock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judgement {
    /// Whether its holder is alive, proven dead, or unknown.
    pub(crate) live: Liveness,
    /// Expired (plus the slop for the clock its expiry is in).
    pub(crate) expired: bool,
    /// How long until it expires (plus the slop); zero once it has.
    pub(crate) left: Duration,
}

impl Judgement {
    /// Expired, or its holder proven dead.
    pub(crate) fn breakable(&self) -> bool {
        self.expired || self.live == Liveness::Dead
    }

    /// Why it may be broken, for the log.
    pub(crate) fn why(&self) -> &'static str {
        if self.live == Liveness::Dead {
            "its holder is dead"
        } else {
            "it expired"
        }
    }
}

/// How long a lock file may stay the same malformed file before waiters give up on it.
pub(crate) const MALFORMED_GRACE: Duration = Duration::from_secs(1);

pub(crate) fn malformed_error(path: &Path, meta: &Meta) -> Error {
    Error::malformed(path, meta.len)
}

pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || sys::is_stale(e)
}

pub(crate) fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// `t + d` on the monotonic clock, saturating at a far future.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365 * 100)))
        .unwrap_or(t)
}

impl Inner {
    #[cfg(feature = "tokio")]
    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.cfg.default_timeout
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn lifetime(&self) -> Duration {
        self.lock_state().lifetime
    }

    /// Whether our own lease may have run out (by the boot clock, which counts a suspend).
    pub(crate) fn expired_locally(&self) -> bool {
        self.fs.boot_clock() >= self.lock_state().expires_at
    }

    /// Whether our lease has less than twice the clock margin left: a breaker may be judging
    /// it now, so removing or re-stamping it must serialise with breakers (the marker).
    pub(crate) fn near_expiry(&self, st: &State) -> bool {
        self.fs
            .boot_clock()
            .saturating_add(self.cfg.clock_margin.saturating_mul(2))
            >= st.expires_at
    }

    /// The state, for a moment: queries take it and let go at once.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, for an operation that changes the lock (acquire, unlock, refresh, break):
    /// waits until no acquisition is under way on this `Lock` (in another thread, or an
    /// async task), as flufl.lock's operations on one `Lock` follow each other.
    pub(crate) fn begin_op(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock_state();
        while st.busy {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st
    }

    /// Whether the lock file is our claim now, read (open, `fstat`) through its name.
    pub(crate) fn lock_is_ours(&self, st: &State) -> Result<bool> {
        Ok(matches!(self.read_lock(&self.lockfile)?,
            Some((m, _)) if st.claim.is_some_and(|c| c.id == m.id)))
    }

    /// Runs one filesystem call, retrying `EINTR` transparently and the configured
    /// retryable errors up to `max_retries` times.
    pub(crate) fn call<T>(&self, f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.retry(f, |_| true)
    }

    /// Runs a removal by name (`unlink`, `rename`) of a file that may not be ours a moment
    /// later, retrying only errors that say the call was not made: `EINTR`, and a Windows
    /// sharing or lock violation when configured as retryable. Others (`ESTALE`, `EIO`) are
    /// not retried: on NFS the server may have done it, and a retry could remove what has
    /// that name a moment later.
    pub(crate) fn call_removal(&self, f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
        self.retry(f, sys::is_sharing_violation)
    }

    /// The retry loop of [`Inner::call`] and [`Inner::call_removal`]: `EINTR` always (up to
    /// a thousand times in a row), the configured errors that `retryable` accepts up to
    /// `max_retries` times, with a short growing pause.
    fn retry<T>(
        &self,
        mut f: impl FnMut() -> io::Result<T>,
        retryable: impl Fn(&io::Error) -> bool,
    ) -> io::Result<T> {
        let (mut interrupts, mut retries) = (0u32, 0u32);
        loop {
            match f() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < 1000 => {
                    interrupts += 1
                }
                Err(e)
                    if e.raw_os_error()
                        .is_some_and(|n| self.cfg.retry_errnos.contains(&n))
                        && retryable(&e)
                        && retries < self.cfg.max_retries =>
                {
                    retries += 1;
                    self.fs.sleep(Duration::from_millis(1 << retries.min(3)));
                }
                r => return r,
            }
        }
    }

    /// The least the file server's time can be now, by our estimate; the wall clock until
    /// we have one.
    pub(crate) fn server_now(&self, st: &State) -> SystemTime {
        match st.offset {
            Some(o) => o.now(self.fs.boot_clock()),
            None => self.clock.now(),
        }
    }

    /// The "now" a claim's expiry is judged against: the file server's clock for claims we
    /// wrote (their expiry is in it), the wall clock (the `clock` hook, flufl.lock's `_now`)
    /// for claims written by flufl.lock, whose expiry is in their writer's clock.
    pub(crate) fn now_for(&self, st: &State, c: &Claim) -> SystemTime {
        if c.ours {
            self.server_now(st)
        } else {
            self.clock.now()
        }
    }

    /// Creates our claim file: exclusive create, write its own path into it, learn the
    /// server's clock from the time it stamped, and set the expiry in that clock.
    pub(crate) fn create_claim(&self, st: &mut State) -> Result<()> {
        let path = &self.claimfile;
        if std::process::id() != self.built_in {
            return Err(Error::forked(&self.lockfile, self.built_in));
        }
        // Taken before the create: the server stamped the claim after this moment.
        let before = self.fs.boot_clock();
        // protocol.md: Acquiring, steps 1-5.
        let mut replaced = 0;
        let file = loop {
            match self.call(|| self.fs.create_new(path)) {
                Ok(f) => break f,
                // A claim of ours left by an earlier failure in this process, or made by a
                // create whose reply was lost: replace it.
                Err(e) if is_exists(&e) && replaced < 3 => {
                    replaced += 1;
                    match self.call(|| self.fs.unlink(path)) {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(Error::io("remove stale claim file", path, e)),
                    }
                }
                Err(e) => {
                    if replaced > 0 {
                        // Possibly made, its reply lost again: leave nothing behind.
                        let _ = self.call(|| self.fs.unlink(path));
                    }
                    return Err(Error::io("create claim file", path, e));
                }
            }
        };
        let stamped = (|| {
            self.call(|| self.fs.write_all(&file, &self.claim_bytes))
                .map_err(|e| ("write claim file", e))?;
            let meta = self
                .call(|| self.fs.fstat(&file))
                .map_err(|e| ("stat claim file", e))?;
            let now = self.fs.boot_clock();
            let clock = ServerClock::learn(meta.modified, before, now);
            let expiry = clock.expiry(now, st.lifetime);
            self.call(|| self.fs.set_times(&file, expiry))
                .map_err(|e| ("set expiry of claim file", e))?;
            Ok::<_, (&str, io::Error)>((meta.id, meta.modified, clock, clock.deadline(expiry)))
        })();
        drop(file);
        match stamped {
            Ok((id, born, clock, deadline)) => {
                st.offset = Some(clock);
                st.claim = Some(ClaimState {
                    id,
                    // The expiry is reckoned from the server's time at the create: a pause
                    // before the `fstat` makes it old already (the soak found a lock born
                    // expired), and an old stamp is renewed before linking, or confirmed
                    // under the marker after.
                    stamped: before,
                    deadline,
                    born,
                });
                Ok(())
            }
            Err((step, e)) => {
                let _ = self.call(|| self.fs.unlink(path));
                Err(Error::io(step, path, e))
            }
        }
    }

    /// Learns the server's clock without touching the lock: create a private probe file,
    /// read the time the server stamped on it, remove it.
    pub(crate) fn learn_offset(&self) -> Result<ServerClock> {
        let probe = claim::probe_path(&self.claimfile);
        let before = self.fs.boot_clock();
        let file = match self.call(|| self.fs.create_new(&probe)) {
            // Left by a crash, or made by a create whose reply was lost: make it again.
            Err(e) if is_exists(&e) => {
                let _ = self.call(|| self.fs.unlink(&probe));
                let again = self.call(|| self.fs.create_new(&probe));
                if again.is_err() {
                    // Possibly made, its reply lost again: leave nothing behind.
                    let _ = self.call(|| self.fs.unlink(&probe));
                }
                again
            }
            r => r,
        }
        .map_err(|e| Error::io("create clock probe file", &probe, e))?;
        let meta = self.call(|| self.fs.fstat(&file));
        let after = self.fs.boot_clock();
        drop(file);
        let _ = self.call(|| self.fs.unlink(&probe));
        let meta = meta.map_err(|e| Error::io("stat clock probe file", &probe, e))?;
        Ok(ServerClock::learn(meta.modified, before, after))
    }

    /// Re-stamps our (unlinked) claim with a fresh expiry after a long wait, so that the
    /// lock it becomes is not born expired. A claim removed meanwhile (a breaker took it with
    /// a lock it had become, a cleaner) is written again.
    pub(crate) fn restamp_claim(&self, st: &mut State) -> Result<()> {
        match self.stamp(st, &self.claimfile, false)? {
            Stamp::Done | Stamp::Behind => Ok(()),
            Stamp::Gone | Stamp::NotOurs => self.create_claim(st),
        }
    }

    /// Writes our claim's expiry, a lifetime from the server's time now, then reads the
    /// attributes back through `check` (the claim, or the lock when we hold it: one inode).
    ///
    /// The read-back is also a fresh reading of the server's clock: the change time the
    /// server stamped while setting the times. If our estimate had fallen behind (a suspend
    /// our boot clock did not see, a step of the server's clock, or of the wall clock on a
    /// local filesystem), the expiry just written is short: it is written again from the
    /// fresh reading. Our deadline is computed from the expiry as stored.
    pub(crate) fn stamp(&self, st: &mut State, check: &Path, fast: bool) -> Result<Stamp> {
        let Some(ClaimState { id, born, .. }) = st.claim else {
            return Ok(Stamp::Gone);
        };
        let mut clock = match st.offset {
            Some(c) => c,
            None => self.learn_offset()?,
        };
        for again in [false, true] {
            let before = self.fs.boot_clock();
            let expiry = clock.expiry(before, st.lifetime);
            // From the call on, the file may say this, whether or not we hear the reply:
            // believe no more than it (a shorter lifetime, a failed read-back).
            self.lower_deadline(st, clock.deadline(expiry));
            match self.call(|| self.fs.set_path_times(&self.claimfile, expiry)) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => return Ok(Stamp::Gone),
                Err(e) => return Err(Error::io("set expiry of claim file", &self.claimfile, e)),
            }
            let meta = match self.call(|| self.fs.lstat(check)) {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => return Ok(Stamp::NotOurs),
                Err(e) => return Err(Error::io("stat after setting expiry", check, e)),
            };
            if meta.id != id {
                return Ok(Stamp::NotOurs);
            }
            let after = self.fs.boot_clock();
            // The expiry as stored, by the clock that wrote it.
            let mut deadline = clock.deadline(meta.modified);
            let fresh = self.fresh_reading(&meta, before, after);
            if let Some(f) =
                fresh.filter(|f| clock.behind(f, after) > self.cfg.clock_margin + f.granularity())
            {
                // Our estimate had fallen behind the server's clock (a suspend our boot clock
                // did not see, a forward step): the expiry just written is short. (A reading
                // behind our estimate is not taken: a change time that was not stamped now.)
                st.offset = Some(f);
                deadline = f.deadline(meta.modified);
                self.lower_deadline(st, deadline);
                if !again {
                    log::warn!(
                        "the file server's clock is {:.1?} ahead of our estimate (a suspend, \
                         or a clock step); stamping {} again",
                        clock.behind(&f, after),
                        self.claimfile.display()
                    );
                    if fast {
                        // A breaker may be judging the lock right now: redo it under the marker.
                        return Ok(Stamp::Behind);
                    }
                    clock = f;
                    continue;
                }
            }
            st.claim = Some(ClaimState {
                id,
                stamped: before,
                deadline,
                born,
            });
            break;
        }
        Ok(Stamp::Done)
    }

    /// Lowers our claim's deadline, and our lease's if we hold the lock, to `deadline`.
    fn lower_deadline(&self, st: &mut State, deadline: Duration) {
        if let Some(c) = st.claim.as_mut() {
            c.deadline = c.deadline.min(deadline);
        }
        if st.held {
            st.expires_at = st.expires_at.min(deadline);
        }
    }

    /// A reading of the server's clock from the change time it stamped on `meta`'s file
    /// during a call made between boot-clock times `before` and `after` — where the change
    /// time is a server stamp: on POSIX, and not a copy of the mtime (sshfs reports ctime =
    /// mtime, the expiry we just set).
    fn fresh_reading(&self, meta: &Meta, before: Duration, after: Duration) -> Option<ServerClock> {
        (sys::CHANGE_TIME_IS_SERVER_TIME && meta.changed != meta.modified)
            .then(|| ServerClock::learn(meta.changed, before, after))
    }

    pub(crate) fn remove_claim(&self, st: &mut State) -> Result<()> {
        let removed = match st.claim.take() {
            Some(c) => self.unlink_ours(&self.claimfile, c.id, || true),
            None => self.call(|| self.fs.unlink(&self.claimfile)),
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::io("remove claim file", &self.claimfile, e)),
        }
    }

    /// Removes `path`, the file `id`, ours to remove. A removal that failed with an error
    /// that does not say whether the server made it (`ESTALE`; `ENOENT` where a reply was
    /// lost) is settled by looking: while `path` is still that file and `may_retry` allows,
    /// the removal is made again (at most `max_retries` times). `Ok` once it is gone.
    pub(crate) fn unlink_ours(
        &self,
        path: &Path,
        id: FileId,
        may_retry: impl Fn() -> bool,
    ) -> io::Result<()> {
        let mut again = 0;
        loop {
            match self.call_removal(|| self.fs.unlink(path)) {
                Err(e) if is_not_found(&e) => match self.call(|| self.fs.lstat(path)) {
                    // Still that inode, and still ours: our claim file links it, so the
                    // number was not freed and given to another file.
                    Ok(m)
                        if m.id == id
                            && again < self.cfg.max_retries
                            && may_retry()
                            && self.claim_is(path, id) =>
                    {
                        again += 1;
                    }
                    Ok(m) if m.id == id => return Err(e),
                    Ok(_) => return Ok(()),
                    Err(e2) if is_not_found(&e2) => return Ok(()),
                    // Unknown whether it is gone: say so.
                    Err(_) => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// Whether our claim file is the inode `id` (trivially, when `path` is the claim file,
    /// just looked at).
    fn claim_is(&self, path: &Path, id: FileId) -> bool {
        path == self.claimfile
            || matches!(self.call(|| self.fs.lstat(&self.claimfile)), Ok(m) if m.id == id)
    }

    /// Whether the break marker we took (`taken`: when we set out to take it, on the boot
    /// clock) is young: surely not yet judged stale by anyone (half its lifetime), so a
    /// removal made under it cannot meet a marker taken by another breaker since.
    pub(crate) fn marker_young(&self, taken: Option<Duration>) -> bool {
        taken.is_some_and(|t| self.fs.boot_clock() < t.saturating_add(self.cfg.marker_lifetime / 2))
    }

    /// Opens and reads a lock-like file (the lock, the pin or the marker) without following
    /// links: its attributes and, if it holds one, its claim. `None` if it does not exist.
    pub(crate) fn read_lock(&self, path: &Path) -> Result<Option<(Meta, Option<Claim>)>> {
        let file = match self.call(|| self.fs.open_read(path)) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) if self.is_symlink(path) => return Err(Error::symlink(path, &e)),
            Err(e) => return Err(Error::io("open lock file", path, e)),
        };
        let meta = match self.call(|| self.fs.fstat(&file)) {
            Ok(m) => m,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("stat lock file", path, e)),
        };
        if meta.kind != FileKind::Regular {
            return Ok(Some((meta, None)));
        }
        let bytes = match self.call(|| self.fs.read_head(&file, claim::MAX_CLAIM_LEN + 1)) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("read lock file", path, e)),
        };
        Ok(Some((meta, claim::parse_any(&bytes, self.sep))))
    }

    pub(crate) fn is_symlink(&self, path: &Path) -> bool {
        matches!(self.fs.lstat(path), Ok(m) if m.kind == FileKind::Symlink)
    }

    /// What the lock file is now.
    pub(crate) fn view(&self, st: &State) -> Result<View> {
        let path = &self.lockfile;
        let Some((meta, parsed)) = self.read_lock(path)? else {
            return Ok(View::Gone);
        };
        if st.claim.is_some_and(|c| c.id == meta.id) {
            return Ok(View::Ours);
        }
        match (meta.kind, parsed) {
            (FileKind::Regular, Some(c)) => Ok(View::Theirs(meta, Box::new(c))),
            (FileKind::Regular, None) => Ok(View::Malformed(meta)),
            (kind, _) => Err(Error::not_regular(path, "lock file", kind_name(kind))),
        }
    }

    /// Whether the process that wrote `c` is alive. Dead only with proof: same host name,
    /// same boot, pid and time namespaces, and the kernel says the pid is gone or every
    /// thread of it has exited, or `/proc` shows a later process under that pid.
    pub(crate) fn liveness(&self, c: &Claim) -> Liveness {
        if !self.cfg.pid_check || c.details.hostname != self.hostname {
            return Liveness::Unknown;
        }
        let Some(o) = &c.origin else {
            return Liveness::Unknown;
        };
        let id = &self.identity;
        // The same boot and pid namespace, so the pid names the same process table; the same
        // time namespace, so start times read from /proc compare.
        if id.boot_id.as_deref() != Some(o.boot_id.as_str())
            || id.pid_ns != Some(o.pid_ns)
            || id.time_ns != Some(o.time_ns)
        {
            return Liveness::Unknown;
        }
        match self.fs.process(c.details.pid) {
            ProcState::Gone | ProcState::Zombie => Liveness::Dead,
            ProcState::Running { start: Some(s) } if s != o.start_time => Liveness::Dead,
            ProcState::Running { .. } => Liveness::Alive,
            ProcState::Unknown => Liveness::Unknown,
        }
    }

    /// Judges the lock whose file says it expires at `expiry` and holds claim `c`, at server
    /// time `now` (see [`Inner::now_for`]), its holder's liveness already established.
    pub(crate) fn judge(
        &self,
        expiry: SystemTime,
        now: SystemTime,
        c: &Claim,
        live: Liveness,
    ) -> Judgement {
        let slop = self.slop(c);
        Judgement {
            live,
            expired: claim::expired(expiry, now, slop),
            left: claim::time_left(expiry, now, slop),
        }
    }

    pub(crate) fn slop(&self, c: &Claim) -> Duration {
        if c.ours {
            self.cfg.clock_margin
        } else {
            self.cfg.foreign_slop
        }
    }
}

pub(crate) fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Regular => "regular file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Other => "FIFO, socket or device",
    }
}

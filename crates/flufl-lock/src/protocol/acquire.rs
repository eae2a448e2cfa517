//! Acquiring and waiting (docs/protocol.md: Acquiring; Judging a lock; Waiting).
//!
//! An acquisition is [`Inner::begin_acquire`], then [`Inner::attempt`] until it says
//! `Acquired` (or fails), sleeping for what it says between attempts, then
//! [`Inner::end_acquire`]. The blocking path ([`Inner::acquire`]) and the async one
//! (`asynk.rs`) run the same attempts on one claim; neither holds the state lock while it
//! sleeps, so queries from other threads answer at once.

use super::queue::{self, Queue};
use super::*;
use crate::wait::{jitter, Backoff};

/// With a change notification that wakes a waiter when the lock is removed (inotify, on a
/// local Linux filesystem), polling is only a safety net: from this pause up to at most once
/// a second (the jitter takes 20 % off the cap at most).
const NOTIFIED_POLL: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_millis(1250));

/// What one acquisition carries from attempt to attempt.
pub(crate) struct Acquisition {
    start: Instant,
    deadline: Option<Instant>,
    backoff: Backoff,
    /// Whether waits may use change notification (the blocking path; the async path sleeps
    /// on its runtime's timer).
    notify: bool,
    /// The inotify watch and the holder's pidfd, while waiting (see `end_acquire`).
    pub(crate) waiter: Option<Waiter>,
    /// The lock file last waited on: the backoff restarts when the lock changes hands.
    last_holder: Option<FileId>,
    /// Transient failures in a row (a vanished claim, a lock file that keeps changing).
    transient: u32,
    logged: bool,
    /// A holder proven alive, whose process the waiter's pidfd watches.
    last_alive: Option<FileId>,
    /// Our link made the lock file our claim at least once: an acquisition that fails
    /// after that removes the lock file if it is still ours.
    linked: bool,
    /// The lock file last read (its identity and change time) and its claim: while the lock
    /// file is still that inode, unchanged, a poll is `link` and `lstat` alone
    /// (docs/protocol.md: Waiting). The change time tells a recycled inode number: linking a
    /// claim to the lock name stamps it.
    known: Option<(FileId, SystemTime, Box<Claim>)>,
    /// Our place in line, waiting on a remote filesystem.
    queue: Option<Queue>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The lock is ours.
    Acquired,
    /// Try again at once (the lock changed, was broken, or a watch was just set up).
    Again,
    /// Wait this long, or until woken, then try again.
    Wait(Duration),
}

impl Inner {
    /// Takes the lock, waiting at most `timeout` (docs/protocol.md: Acquiring, Waiting).
    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<()> {
        let mut a = self.begin_acquire(timeout, self.cfg.notify)?;
        let result = loop {
            match self.attempt(&mut a) {
                Ok(Next::Acquired) => break Ok(()),
                Ok(Next::Again) => {}
                // Sleep without the state lock: queries from other threads answer at once.
                Ok(Next::Wait(pause)) => match a.waiter.as_mut() {
                    Some(w) => self.fs.wait(w, pause),
                    None => self.fs.sleep(pause),
                },
                Err(e) => break Err(e),
            }
        };
        self.end_acquire(a, result)
    }

    /// Starts an acquisition: waits for any other operation on this `Lock` to finish, marks
    /// it busy, and writes our claim (docs/protocol.md: Acquiring, steps 1–5).
    pub(crate) fn begin_acquire(
        &self,
        timeout: Option<Duration>,
        notify: bool,
    ) -> Result<Acquisition> {
        let start = self.fs.monotonic();
        let mut st = self.begin_op();
        if st.held {
            return Err(Error::already_locked(&self.lockfile));
        }
        self.create_claim(&mut st)?;
        st.busy = true;
        // Kept for the Lock's life: closing an inotify descriptor waits for an RCU grace
        // period (milliseconds), which would otherwise be paid on every contended
        // acquisition, between winning the lock and returning.
        let waiter = if notify { st.waiter.take() } else { None };
        Ok(Acquisition {
            start,
            // A timeout too large for the clock (`Duration::MAX`) is no timeout.
            deadline: timeout.and_then(|t| start.checked_add(t)),
            backoff: self.backoff_for(waiter.as_ref()),
            notify,
            waiter,
            last_holder: None,
            transient: 0,
            logged: false,
            last_alive: None,
            linked: false,
            known: None,
            queue: None,
        })
    }

    /// Ends an acquisition with `result`: the lock is held, or our claim is removed; the
    /// `Lock` is free for other operations again.
    pub(crate) fn end_acquire(&self, a: Acquisition, result: Result<()>) -> Result<()> {
        let mut st = self.lock_state();
        if a.waiter.is_some() {
            st.waiter = a.waiter;
        }
        st.busy = false;
        let r = match result {
            Ok(()) => {
                st.held = true;
                st.expires_at = st.claim.map_or(Duration::ZERO, |c| c.deadline);
                log::debug!("acquired {}", self.lockfile.display());
                Ok(())
            }
            Err(e) => {
                if a.linked {
                    self.abandon(&mut st);
                }
                if let Err(e2) = self.remove_claim(&mut st) {
                    log::warn!("{e2}");
                }
                Err(e)
            }
        };
        drop(st);
        self.idle.notify_all();
        r
    }

    /// One attempt: keep our claim fresh, link it to the lock file; if the lock is held,
    /// judge it, break it if it is breakable, or say how long to wait.
    pub(crate) fn attempt(&self, a: &mut Acquisition) -> Result<Next> {
        let mut st = self.lock_state();
        let st = &mut *st;
        // Keep our claim's expiry fresh while we wait, so the lock is not born expired (and,
        // in line, so that those behind see we still wait).
        if self.restamp_in(st, a.queue.is_some()).is_zero() {
            self.restamp_claim(st)?;
        }
        // protocol.md: Waiting. On a remote filesystem a newcomer first joins the line, so
        // that it does not take a lock just let go from under the first in line; in line
        // behind others (while our timeout allows), it looks without taking. (A `try_lock`,
        // whose deadline has come, never waits in line.)
        let due = a.deadline.is_some_and(|d| self.fs.monotonic() >= d);
        if a.queue.is_none() && !due && self.is_remote(st) {
            a.queue = Some(self.join_line(st));
        }
        let in_line = a.queue.as_ref().is_some_and(Queue::in_line) && !due;
        let seen = if in_line {
            self.look_in_line(st, a)
        } else {
            if let Some(next) = self.try_link(st, a)? {
                return Ok(next);
            }
            self.look_again(a)
        };
        let found = match seen {
            Some(found) => found,
            None => self.inspect(st, a)?,
        };
        let (meta, holder) = match found {
            Ok(held) => held,
            Err(next) => return Ok(next),
        };
        let j = self.judge_holder(st, a, &meta, &holder);
        if j.breakable() && self.break_lock(st, (meta.id, &holder), j.why(), false)? {
            a.backoff.reset();
            a.known = None;
            return Ok(Next::Again);
        }
        self.plan_wait(st, a, &meta, &holder, &j)
    }

    /// Acquiring, step 6: `link(claim, L)`. `None`: the lock is held by someone (`EEXIST`),
    /// look at it. A link that succeeded is confirmed if our claim's stamp is old
    /// ([`Inner::confirm_fresh`]).
    fn try_link(&self, st: &mut State, a: &mut Acquisition) -> Result<Option<Next>> {
        // protocol.md: Acquiring, step 6.
        match self.call(|| self.fs.link(&self.claimfile, &self.lockfile)) {
            Ok(()) => {
                a.linked = true;
                Ok(Some(self.confirmed(st)?))
            }
            Err(e) if is_exists(&e) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The claim vanished (a cleaner, a breaker that took it with a lock it was)
                // or the directory entry cache lied: retry, bounded. (ESTALE was already
                // retried by `call`.)
                a.transient += 1;
                if a.transient > self.cfg.max_retries {
                    return Err(Error::io("link claim file to lock file", &self.lockfile, e));
                }
                if matches!(self.fs.lstat(&self.claimfile), Err(ref e) if e.kind() == io::ErrorKind::NotFound)
                {
                    log::warn!(
                        "claim file {} vanished; writing it again",
                        self.claimfile.display()
                    );
                    self.create_claim(st)?;
                }
                Ok(Some(Next::Again))
            }
            Err(e) => Err(Error::io("link claim file to lock file", &self.lockfile, e)),
        }
    }

    /// `Acquired` if our new lock is confirmed, else `Again` (it was broken meanwhile).
    fn confirmed(&self, st: &mut State) -> Result<Next> {
        Ok(if self.confirm_fresh(st)? {
            Next::Acquired
        } else {
            Next::Again
        })
    }

    /// After `EEXIST` (docs/protocol.md: Waiting): the lock file's attributes alone, while it
    /// is still the inode read last time (`link`'s exclusive lookup has just asked the
    /// server about the name, so on NFS the `lstat` reads fresh attributes and costs no
    /// further call). `None`: look at it afresh ([`Inner::inspect`]).
    #[allow(clippy::type_complexity)]
    fn look_again(
        &self,
        a: &mut Acquisition,
    ) -> Option<std::result::Result<(Meta, Box<Claim>), Next>> {
        let (id, changed, c) = a.known.as_ref()?;
        match self.call(|| self.fs.lstat(&self.lockfile)) {
            Ok(m) if m.id == *id && m.changed == *changed && m.kind == FileKind::Regular => {
                Some(Ok((m, c.clone())))
            }
            Err(e) if is_not_found(&e) => {
                a.known = None;
                Some(Err(Next::Again))
            }
            _ => {
                a.known = None;
                None
            }
        }
    }

    /// Waiting in line behind others on a remote filesystem (docs/protocol.md: Waiting):
    /// looks at the lock file without taking it. The first in line on this host asks the
    /// server, through `open` (close-to-open on NFS) and the attributes the kernel then has;
    /// the others behind it here read the host's cache that its looks keep fresh (`lstat`).
    /// The claim is read only when the lock file is another inode than last time. A lock
    /// seen free is left to the waiters ahead for a moment, then taken.
    #[allow(clippy::type_complexity)]
    fn look_in_line(
        &self,
        st: &State,
        a: &mut Acquisition,
    ) -> Option<std::result::Result<(Meta, Box<Claim>), Next>> {
        let now = self.fs.monotonic();
        let seen = if a.queue.as_mut().is_some_and(|q| q.ask_server(now)) {
            self.call(|| self.fs.open_read(&self.lockfile))
                .and_then(|f| self.call(|| self.fs.fstat_cached(&f)))
        } else {
            self.call(|| self.fs.lstat(&self.lockfile))
        };
        match seen {
            Err(e) if is_not_found(&e) => {
                let q = a.queue.as_mut()?;
                Some(Err(match self.saw_free(st, q) {
                    Some(pause) => Next::Wait(match a.deadline {
                        Some(d) => pause.min(d.saturating_duration_since(self.fs.monotonic())),
                        None => pause,
                    }),
                    None => Next::Again,
                }))
            }
            Ok(m) if m.kind == FileKind::Regular => {
                let (id, changed, c) = a.known.as_ref()?;
                (m.id == *id && m.changed == *changed).then(|| Ok((m, c.clone())))
            }
            // Another kind of file, or an error: the full look says what it is.
            _ => None,
        }
    }

    /// After `EEXIST`: what the lock file is (docs/protocol.md: Acquiring, after step 6).
    /// `Ok`: someone else's well-formed lock, to judge; `Err(next)`: what to do instead.
    #[allow(clippy::type_complexity)]
    fn inspect(
        &self,
        st: &mut State,
        a: &mut Acquisition,
    ) -> Result<std::result::Result<(Meta, Box<Claim>), Next>> {
        // protocol.md: Acquiring, after step 6 (the lock file read through open + fstat).
        match self.view(st)? {
            View::Theirs(meta, c) => {
                a.transient = 0;
                st.malformed = None;
                a.known = Some((meta.id, meta.changed, c.clone()));
                Ok(Ok((meta, c)))
            }
            View::Ours => {
                // The link succeeded on the server though it reported EEXIST (a lost NFS
                // reply): the lock file is our claim, so the lock is ours.
                log::info!(
                    "link reported EEXIST but {} is our claim: acquired",
                    self.lockfile.display()
                );
                a.linked = true;
                Ok(Err(self.confirmed(st)?))
            }
            View::Gone => {
                a.transient += 1;
                if a.transient > self.cfg.max_retries.max(100) {
                    return Err(Error::keeps_changing(&self.lockfile, a.transient));
                }
                // A name that lingers (a delete pending on Windows): back off a little.
                Ok(Err(if a.transient > 3 {
                    Next::Wait(Duration::from_micros(100 << a.transient.min(6)))
                } else {
                    Next::Again
                }))
            }
            View::Malformed(meta) => {
                // flufl.lock rewrites its claim in place when a holder re-locks: wait a
                // moment before calling it an error.
                let since = match st.malformed {
                    Some((id, t)) if id == meta.id => t,
                    _ => self.fs.monotonic(),
                };
                st.malformed = Some((meta.id, since));
                if self.fs.monotonic().saturating_duration_since(since) >= MALFORMED_GRACE {
                    return Err(malformed_error(&self.lockfile, &meta));
                }
                if a.deadline.is_some_and(|d| self.fs.monotonic() >= d) {
                    return Err(Error::timed_out_rewriting(
                        &self.lockfile,
                        self.fs.monotonic().saturating_duration_since(a.start),
                    ));
                }
                Ok(Err(Next::Wait(Duration::from_millis(5))))
            }
        }
    }

    /// Judging a lock: expired in the clock it was written in, or its holder proven dead. A
    /// holder proven alive whose process the waiter watches (pidfd) stays alive until the
    /// watch says otherwise, so `/proc` is not read on every wake.
    fn judge_holder(
        &self,
        st: &State,
        a: &mut Acquisition,
        meta: &Meta,
        holder: &Claim,
    ) -> Judgement {
        let watched = a.waiter.as_ref().and_then(|w| w.watching());
        let live = match a.last_alive {
            Some(id) if id == meta.id && watched == Some(holder.details.pid) => Liveness::Alive,
            _ => self.liveness(holder),
        };
        a.last_alive = (live == Liveness::Alive).then_some(meta.id);
        self.judge(meta.modified, self.now_for(st, holder), holder, live)
    }

    /// Waiting: time out, or report, set up the watches and say how long to sleep: our turn's
    /// period on a remote filesystem, else the backoff; never past the holder's expiry, our
    /// timeout, or the next re-stamp of our claim.
    fn plan_wait(
        &self,
        st: &mut State,
        a: &mut Acquisition,
        meta: &Meta,
        holder: &Claim,
        j: &Judgement,
    ) -> Result<Next> {
        let now = self.fs.monotonic();
        if a.deadline.is_some_and(|d| now >= d) {
            return Err(Error::timed_out_waiting(
                &self.lockfile,
                now - a.start,
                &holder.details,
                j.left,
            ));
        }
        if !a.logged {
            log::info!(
                "waiting for {} held by {} pid {}",
                self.lockfile.display(),
                holder.details.hostname,
                holder.details.pid
            );
            a.logged = true;
        }
        if a.last_holder != Some(meta.id) {
            a.backoff.reset();
            a.last_holder = Some(meta.id);
        }
        if let Some(cb) = &self.on_wait {
            cb(&WaitStatus {
                lockfile: self.lockfile.clone(),
                holder: Some(holder.details.clone()),
                waited: now - a.start,
                expires_in: Some(j.left),
            });
        }
        let remote = self.is_remote(st);
        if a.notify && a.waiter.is_none() {
            // Watch first, then try again at once, so a release in between is not missed.
            let w = self.fs.waiter(&self.lockfile, !remote);
            a.backoff = self.backoff_for(Some(&w));
            a.waiter = Some(w);
            return Ok(Next::Again);
        }
        if let Some(w) = a.waiter.as_mut() {
            w.watch_process(if self.cfg.pid_check && j.live == Liveness::Alive {
                Some(holder.details.pid)
            } else {
                None
            });
        }
        let mut pause = match a.queue.as_mut() {
            Some(q) => {
                q.saw_held();
                jitter(self.take_turn(st, q, meta.id.ino), self.fs.random())
            }
            None => a.backoff.step(self.fs.random()),
        };
        // Wake for the holder's expiry, and within 7/8 of our claim's re-stamp period, so that
        // a stamp made now is still fresh at the next attempt (one re-stamp a period).
        let in_line = a.queue.is_some();
        pause = pause
            .min(j.left + Duration::from_millis(1))
            .min((self.restamp_period(st, in_line) / 8 * 7).max(self.cfg.min_poll));
        let timing_out = a
            .deadline
            .is_some_and(|d| d.saturating_duration_since(now) <= pause);
        if let Some(d) = a.deadline {
            pause = pause.min(d.saturating_duration_since(now));
        }
        // A re-stamp due before we wake is made now rather than woken for (a poll saved);
        // not when we wake only to time out.
        if !timing_out && self.restamp_in(st, in_line) < pause {
            self.restamp_claim(st)?;
        }
        Ok(Next::Wait(pause))
    }

    /// Whether the lock's directory is on a remote filesystem (asked once per `Lock`).
    fn is_remote(&self, st: &mut State) -> bool {
        *st.remote.get_or_insert_with(|| {
            let dir = self.lockfile.parent().unwrap_or(Path::new("/"));
            !matches!(self.fs.is_remote(dir), Ok(false))
        })
    }

    /// The backoff between polls: `poll_interval`'s, or [`NOTIFIED_POLL`] (when longer)
    /// when `waiter` is woken by a release.
    fn backoff_for(&self, waiter: Option<&Waiter>) -> Backoff {
        let (min, max) = (self.cfg.min_poll, self.cfg.max_poll);
        if waiter.is_some_and(Waiter::notifies) {
            Backoff::new(min.max(NOTIFIED_POLL.0), max.max(NOTIFIED_POLL.1))
        } else {
            Backoff::new(min, max)
        }
    }

    /// After an acquisition failed once our link had made the lock file our claim (a
    /// confirmation that failed): remove the lock file if it is still ours, as an unlock
    /// would (fast with plenty of lease left, else under the marker), so that it does not
    /// stay held until it expires.
    fn abandon(&self, st: &mut State) {
        let Some(c) = st.claim else { return };
        let plenty = || {
            self.fs
                .boot_clock()
                .saturating_add(self.cfg.clock_margin.saturating_mul(2))
                < c.deadline
        };
        let r = match self.call(|| self.fs.lstat(&self.lockfile)) {
            Ok(m) if m.id == c.id && plenty() => self.unlink_lock(c.id, plenty),
            Ok(m) if m.id == c.id => self.release_near_expiry(st),
            _ => Ok(()),
        };
        if let Err(e) = r {
            log::warn!(
                "{} is left to expire after a failed acquisition: {e}",
                self.lockfile.display()
            );
        }
    }

    /// How long until our waiting claim is re-stamped: a quarter of the lifetime after its
    /// last stamp, and in line at most [`queue::HEARTBEAT`] after (zero: now; never without
    /// a claim).
    fn restamp_in(&self, st: &State, in_line: bool) -> Duration {
        let Some(c) = st.claim else {
            return Duration::MAX;
        };
        c.stamped
            .saturating_add(self.restamp_period(st, in_line))
            .saturating_sub(self.fs.boot_clock())
    }

    /// How often our waiting claim is re-stamped: every quarter lifetime, and in line at
    /// least every [`queue::HEARTBEAT`].
    fn restamp_period(&self, st: &State, in_line: bool) -> Duration {
        if in_line {
            (st.lifetime / 4).min(queue::HEARTBEAT)
        } else {
            st.lifetime / 4
        }
    }

    /// Whether our claim's expiry was stamped a quarter of the lifetime ago or more.
    pub(crate) fn stamp_is_old(&self, st: &State) -> bool {
        self.restamp_in(st, false).is_zero()
    }

    /// After our link succeeded: if our claim's expiry was stamped long ago (we were paused
    /// between stamping and linking), or a call returned so late that our deadline has
    /// passed, the lock may have been born expired, and a breaker may already have judged it
    /// so. Under the marker, which every breaker holds while it acts, confirm the lock is
    /// still ours and stamp a fresh expiry. `Ok(false)`: it was broken; go on waiting. Costs
    /// nothing when the stamp is fresh (always, uncontended): a lock whose deadline has
    /// passed is never handed out.
    ///
    /// A deadline that has passed although the stamp is fresh comes from a server clock
    /// learned across a slow call (its uncertainty is the call's length): the clock is
    /// learned again (a probe file) before the stamp.
    ///
    /// A claim file that vanished here means the lock was broken (flufl.lock's break
    /// removes the claim, then the lock): it is never written again in the confirmation.
    pub(crate) fn confirm_fresh(&self, st: &mut State) -> Result<bool> {
        for _ in 0..3 {
            let old = self.stamp_is_old(st);
            let past = st.claim.is_none_or(|c| self.fs.boot_clock() >= c.deadline);
            if !old && !past {
                return Ok(true);
            }
            let relearn = !old;
            let ours = self.with_marker(st, "confirm a new lock", |st| {
                if relearn {
                    st.offset = Some(self.learn_offset()?);
                }
                Ok(self.lock_is_ours(st)? && self.stamp(st, &self.lockfile, false)? == Stamp::Done)
            })?;
            // `None`: a breaker removed our claim with the lock it was. (The link loop writes
            // the claim again.)
            if !ours.unwrap_or(false) {
                log::warn!(
                    "{} was broken while we were paused after taking it; waiting again",
                    self.lockfile.display()
                );
                return Ok(false);
            }
        }
        // Every confirmation outlasted the lease: never hand out a lock already expired
        // (`end_acquire` removes it).
        Err(Error::too_slow(&self.lockfile, st.lifetime))
    }
}

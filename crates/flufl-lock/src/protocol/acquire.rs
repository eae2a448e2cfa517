//! Acquiring and waiting (docs/protocol.md: Acquiring, Waiting).

use super::*;
use crate::wait::Backoff;

impl Inner {
    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut st = self.lock_state();
        if st.held {
            return Err(Error::new(
                ErrorKind::AlreadyLocked,
                &self.lockfile,
                format!(
                    "{} is already locked by this process (pid {})",
                    self.lockfile.display(),
                    std::process::id()
                ),
            ));
        }
        self.create_claim(&mut st)?;
        // The waiter (an inotify descriptor) is kept for the Lock's life: closing an inotify
        // descriptor waits for an RCU grace period (milliseconds), which would otherwise be
        // paid on every contended acquisition, between winning the lock and returning.
        let mut waiter = st.waiter.take();
        let result = self.acquire_loop(&mut st, start, deadline, &mut waiter);
        st.waiter = waiter;
        match result {
            Ok(()) => {
                st.held = true;
                st.expires_at = st.claim.map_or(Duration::ZERO, |c| c.deadline);
                log::debug!("acquired {}", self.lockfile.display());
                Ok(())
            }
            Err(e) => {
                if let Err(e2) = self.remove_claim(&mut st) {
                    log::warn!("{e2}");
                }
                Err(e)
            }
        }
    }

    pub(crate) fn acquire_loop(
        &self,
        st: &mut State,
        start: Instant,
        deadline: Option<Instant>,
        waiter: &mut Option<Waiter>,
    ) -> Result<()> {
        let mut backoff = Backoff {
            next: self.cfg.min_poll,
            min: self.cfg.min_poll,
            max: self.cfg.max_poll,
        };
        let mut last_holder: Option<FileId> = None;
        let mut transient = 0u32;
        let mut logged = false;
        let mut last_alive: Option<FileId> = None;
        loop {
            // Keep our claim's expiry fresh while we wait, so the lock is not born expired.
            if self.stamp_is_old(st) {
                self.restamp_claim(st)?;
            }
            match self.call(|| self.fs.link(&self.claimfile, &self.lockfile)) {
                Ok(()) => {
                    if self.confirm_fresh(st)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if is_exists(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The claim vanished (a cleaner?) or the directory entry cache lied:
                    // retry, bounded. (ESTALE was already retried by `call`.)
                    transient += 1;
                    if transient > self.cfg.max_retries {
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
                    continue;
                }
                Err(e) => return Err(Error::io("link claim file to lock file", &self.lockfile, e)),
            }
            let (meta, holder) = match self.view(st)? {
                View::Ours => {
                    // The link succeeded on the server though it reported EEXIST (a lost NFS
                    // reply): the lock file is our claim, so the lock is ours.
                    log::info!(
                        "link reported EEXIST but {} is our claim: acquired",
                        self.lockfile.display()
                    );
                    if self.confirm_fresh(st)? {
                        return Ok(());
                    }
                    continue;
                }
                View::Gone => {
                    transient += 1;
                    if transient > 3 {
                        // A name that lingers (a delete pending on Windows): back off a little.
                        std::thread::sleep(Duration::from_micros(100 << transient.min(6)));
                    }
                    if transient > self.cfg.max_retries.max(100) {
                        return Err(Error::new(
                            ErrorKind::Io,
                            &self.lockfile,
                            format!(
                                "{} keeps changing; giving up after {transient} tries",
                                self.lockfile.display()
                            ),
                        ));
                    }
                    continue;
                }
                View::Theirs(meta, c) => (meta, c),
                View::Malformed(meta) => {
                    let since = match st.malformed {
                        Some((id, t)) if id == meta.id => t,
                        _ => Instant::now(),
                    };
                    st.malformed = Some((meta.id, since));
                    if since.elapsed() >= MALFORMED_GRACE {
                        return Err(malformed_error(&self.lockfile, &meta));
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::new(
                            ErrorKind::TimedOut,
                            &self.lockfile,
                            format!(
                                "timed out after {:.1?} waiting for {}: its content is being rewritten",
                                start.elapsed(),
                                self.lockfile.display()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            transient = 0;
            st.malformed = None;
            let server_now = self.now_for(st, &holder);
            let slop = self.slop(&holder);
            // A holder proven alive whose process we watch (pidfd) stays alive until the watch
            // says otherwise: no need to read /proc on every wake.
            let watched = waiter.as_ref().and_then(|w| w.watching());
            let live = match last_alive {
                Some(id) if id == meta.id && watched == Some(holder.details.pid) => Liveness::Alive,
                _ => self.liveness(&holder),
            };
            last_alive = (live == Liveness::Alive).then_some(meta.id);
            let expired = claim::expired(meta.modified, server_now, slop);
            if live == Liveness::Dead || expired {
                let why = if live == Liveness::Dead {
                    "its holder is dead"
                } else {
                    "it expired"
                };
                if self.break_lock(st, (meta.id, &holder), why, false)? {
                    backoff.reset();
                    continue;
                }
            }
            // We wait. Time out?
            let now = Instant::now();
            let expires_in = claim::time_left(meta.modified, server_now, slop);
            if deadline.is_some_and(|d| now >= d) {
                let waited = now - start;
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    &self.lockfile,
                    format!(
                        "timed out after {:.1?} waiting for {}: held by {} pid {}, {}",
                        waited,
                        self.lockfile.display(),
                        holder.details.hostname,
                        holder.details.pid,
                        if expires_in.is_zero() {
                            "expired".to_string()
                        } else {
                            format!("expires in {:.1?}", expires_in)
                        }
                    ),
                ));
            }
            if !logged {
                log::info!(
                    "waiting for {} held by {} pid {}",
                    self.lockfile.display(),
                    holder.details.hostname,
                    holder.details.pid
                );
                logged = true;
            }
            if last_holder != Some(meta.id) {
                backoff.reset();
                last_holder = Some(meta.id);
            }
            if let Some(cb) = &self.on_wait {
                cb(&WaitStatus {
                    lockfile: self.lockfile.clone(),
                    holder: Some(holder.details.clone()),
                    waited: now - start,
                    expires_in: Some(expires_in),
                });
            }
            let w = match waiter {
                Some(w) => w,
                None => {
                    let dir = self.lockfile.parent().unwrap_or(Path::new("/"));
                    let notify = self.cfg.notify && matches!(self.fs.is_remote(dir), Ok(false));
                    // Watch first, then try again at once, so a release in between is not missed.
                    *waiter = Some(Waiter::new(&self.lockfile, notify));
                    continue;
                }
            };
            w.watch_process(if self.cfg.pid_check && live == Liveness::Alive {
                Some(holder.details.pid)
            } else {
                None
            });
            let mut pause = backoff.step().min(expires_in + Duration::from_millis(1));
            if let Some(d) = deadline {
                pause = pause.min(d.saturating_duration_since(now));
            }
            self.fs.wait(w, pause);
        }
    }

    /// Whether our claim's expiry was stamped more than a quarter of the lifetime ago.
    pub(crate) fn stamp_is_old(&self, st: &State) -> bool {
        st.claim
            .is_some_and(|c| self.fs.boot_clock().saturating_sub(c.stamped) > st.lifetime / 4)
    }

    /// After our link succeeded: if our claim's expiry was stamped long ago (we were paused
    /// between stamping and linking), the lock may have been born expired, and a breaker may
    /// already have judged it so. Under the marker, which every breaker holds while it acts,
    /// confirm the lock is still ours and stamp a fresh expiry. `Ok(false)`: it was broken;
    /// go on waiting. Costs nothing when the stamp is fresh (always, uncontended).
    ///
    /// A claim file that vanished here means the lock was broken (flufl.lock's break
    /// removes the claim, then the lock): it is never written again in the confirmation.
    pub(crate) fn confirm_fresh(&self, st: &mut State) -> Result<bool> {
        if !self.stamp_is_old(st) {
            return Ok(true);
        }
        if !self.take_marker_patiently(st, "confirm a new lock")? {
            // A breaker removed our claim with the lock it was: broken. (The link loop
            // writes the claim again.)
            return Ok(false);
        }
        // The marker is released with the claim it was taken with, whatever `stamp` finds.
        let marker_claim = st.claim;
        let ours = match self.read_lock(&self.lockfile) {
            Ok(Some((m, _))) if st.claim.is_some_and(|c| c.id == m.id) => {
                self.stamp(st, &self.lockfile).map(|s| s == Stamp::Done)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        self.release_marker_of(marker_claim);
        let ours = ours?;
        if !ours {
            log::warn!(
                "{} was broken while we were paused after taking it; waiting again",
                self.lockfile.display()
            );
        }
        Ok(ours)
    }
}

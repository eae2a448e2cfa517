//! Unlocking, refreshing and the read-only queries (docs/protocol.md: Unlocking;
//! Refreshing, keep-alive, queries).

use super::*;

impl Inner {
    /// `is_locked`: whether the lock file is our claim (`lstat`, read only).
    pub(crate) fn is_ours(&self, st: &State) -> Result<bool> {
        let Some(c) = st.claim else { return Ok(false) };
        match self.call(|| self.fs.lstat(&self.lockfile)) {
            Ok(m) => Ok(m.id == c.id),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::io("stat lock file", &self.lockfile, e)),
        }
    }

    /// The error for a lock found broken during `what` ("unlock", "refresh"), naming who
    /// holds it now.
    pub(crate) fn lost(&self, what: &str) -> Error {
        let holder = match self.read_lock(&self.lockfile) {
            Ok(Some((_, Some(c)))) => {
                format!("now held by {} pid {}", c.details.hostname, c.details.pid)
            }
            Ok(_) => "no one holds it now".to_string(),
            Err(e) => format!("its state cannot be read: {e}"),
        };
        Error::lost(&self.lockfile, what, &holder)
    }

    /// Unlocking: with plenty of lease left, check the lock is ours and unlink it (no
    /// breaker touches an unexpired lock); near or past our deadline, under the marker.
    /// Our claim file is removed either way. `unconditionally` (flufl.lock's) turns
    /// "not ours" into success.
    pub(crate) fn release(&self, unconditionally: bool) -> Result<()> {
        let mut st = self.begin_op();
        if !st.held {
            if st.claim.is_some() || unconditionally {
                self.remove_claim(&mut st)?;
            }
            if unconditionally {
                return Ok(());
            }
            return Err(Error::not_held(&self.lockfile, "unlock"));
        }
        st.held = false;
        let Some(c) = st.claim else { return Ok(()) };
        // protocol.md: Unlocking.
        let result = if !self.near_expiry(&st) {
            // Comfortably unexpired: no correct breaker touches it, so check and unlink.
            match self.call(|| self.fs.lstat(&self.lockfile)) {
                // (Unless the check itself was slow enough to bring the deadline near.)
                Ok(m) if m.id == c.id && self.near_expiry(&st) => self.release_near_expiry(&mut st),
                // Retried (after an ESTALE that left it) only while no breaker may act; if
                // that time ran out meanwhile, the unlock goes on under the marker.
                Ok(m) if m.id == c.id => match self.unlink_lock(c.id, || !self.near_expiry(&st)) {
                    Err(e) => match self.call(|| self.fs.lstat(&self.lockfile)) {
                        Ok(m) if m.id == c.id => self.release_near_expiry(&mut st),
                        // Broken meanwhile (our claim was removed with it, or it is another's).
                        Ok(_) => Err(self.lost("unlock")),
                        Err(e2) if is_not_found(&e2) => Err(self.lost("unlock")),
                        Err(_) => Err(e),
                    },
                    r => r,
                },
                Ok(_) => Err(self.lost("unlock")),
                Err(e) if is_not_found(&e) => Err(self.lost("unlock")),
                Err(e) => Err(Error::io("stat lock file", &self.lockfile, e)),
            }
        } else {
            self.release_near_expiry(&mut st)
        };
        let claim = self.remove_claim(&mut st);
        match (result, claim) {
            (Err(e), _) if unconditionally && e.kind() == ErrorKind::NotLocked => Ok(()),
            (Err(e), _) => Err(e),
            (Ok(()), r) => r.map(|()| log::debug!("released {}", self.lockfile.display())),
        }
    }

    /// Removes the lock file, which we have just confirmed is ours (the inode `id`).
    /// `may_retry`: whether a removal that did not happen may be made again (no breaker
    /// may act on our lock meanwhile).
    pub(crate) fn unlink_lock(&self, id: FileId, may_retry: impl Fn() -> bool) -> Result<()> {
        self.unlink_ours(&self.lockfile, id, may_retry)
            .map_err(|e| Error::io("remove lock file", &self.lockfile, e))
    }

    /// An unlock near or after expiry: serialised with breakers by the marker, so that
    /// "check it is ours, then unlink" cannot remove a lock a breaker just handed on.
    pub(crate) fn release_near_expiry(&self, st: &mut State) -> Result<()> {
        let released = self.with_marker(st, "unlock safely", |st| {
            if !self.lock_is_ours(st)? {
                return Err(self.lost("unlock"));
            }
            // Re-check the marker: a stale-marker remover elsewhere may have displaced it,
            // and then a breaker may be acting; leave the lock to expire rather than race.
            if !self.marker_is_ours(st) {
                return Err(Error::marker_displaced(&self.marker, &self.lockfile));
            }
            // Under the marker no breaker acts: a removal that did not happen is made again,
            // while the marker is surely not yet judged stale by anyone.
            let id = st.claim.map(|c| c.id).ok_or_else(|| self.lost("unlock"))?;
            let taken = st.marker_taken;
            self.unlink_lock(id, || self.marker_young(taken))
        })?;
        // `None`: a breaker removed our claim file, which was the lock: it is gone.
        released.ok_or_else(|| self.lost("unlock"))
    }

    /// Extends our lock by a lifetime from the server's time now: stamp our claim (the
    /// lock's inode), read it back through the lock's name to check it is still ours and to
    /// re-learn the server's clock ([`Inner::stamp`]). Near or past our deadline, under the
    /// marker, as an unlock is.
    pub(crate) fn refresh(&self, lifetime: Option<Duration>, unconditionally: bool) -> Result<()> {
        let mut st = self.begin_op();
        if let Some(l) = lifetime {
            st.lifetime = l;
        }
        if !st.held {
            if unconditionally {
                return Ok(());
            }
            return Err(Error::not_held(&self.lockfile, "refresh"));
        }
        let fast = if self.near_expiry(&st) {
            None
        } else {
            Some(self.stamp(&mut st, &self.lockfile, true)?)
        };
        let stamped = match fast {
            Some(done) if done != Stamp::Behind => done,
            // Near or past expiry (or our estimate of the server's clock was behind) a breaker
            // may be judging our lock right now: refresh under the marker, as an unlock does,
            // so its judgement and our new expiry cannot cross.
            _ => self
                .with_marker(&mut st, "refresh safely", |st| {
                    if self.lock_is_ours(st)? {
                        self.stamp(st, &self.lockfile, false)
                    } else {
                        Ok(Stamp::NotOurs)
                    }
                })?
                // `None`: our claim file is gone (a breaker removed it with the lock it was).
                .unwrap_or(Stamp::Gone),
        };
        match stamped {
            Stamp::Done | Stamp::Behind => {
                st.expires_at = st.claim.map_or(Duration::ZERO, |c| c.deadline);
                Ok(())
            }
            // Our claim file gone (a breaker removed it with the lock it was), or the lock is
            // someone else's: lost.
            Stamp::Gone | Stamp::NotOurs if unconditionally => Ok(()),
            Stamp::Gone | Stamp::NotOurs => Err(self.lost("refresh")),
        }
    }

    /// flufl.lock's six-valued state, read without changing anything: present, ours,
    /// expired (no slop, as flufl.lock reports it), holder dead.
    pub(crate) fn state(&self) -> Result<LockState> {
        let st = self.lock_state();
        let Some((meta, parsed)) = self.read_lock(&self.lockfile)? else {
            return Ok(LockState::Unlocked);
        };
        if meta.kind != FileKind::Regular {
            return Err(Error::not_regular(
                &self.lockfile,
                "lock file",
                kind_name(meta.kind),
            ));
        }
        let ours = st.claim.is_some_and(|c| c.id == meta.id);
        let now = match &parsed {
            Some(c) => self.now_for(&st, c),
            None => self.server_now(&st),
        };
        let liveness = match &parsed {
            Some(c) => match self.liveness(c) {
                // Like flufl.lock's report: same host name and no such pid reads as stale.
                Liveness::Unknown if c.details.hostname == self.hostname && c.origin.is_none() => {
                    match self.fs.process(c.details.pid) {
                        ProcState::Gone | ProcState::Zombie => Liveness::Dead,
                        _ => Liveness::Unknown,
                    }
                }
                l => l,
            },
            None => Liveness::Unknown,
        };
        Ok(claim::classify(Facts {
            present: true,
            parsed: parsed.is_some() && meta.kind == FileKind::Regular,
            ours,
            expired: claim::expired(meta.modified, now, Duration::ZERO),
            liveness,
        }))
    }
}

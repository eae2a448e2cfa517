//! The break marker `<lock>.break`: taken with our claim by the same link protocol as the
//! lock, held for the few calls a removal takes (docs/protocol.md: Breaking, step 1).

use super::*;

/// The outcome of trying to take the break marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Taken,
    /// Another process holds it.
    Busy,
    /// Our claim file is gone (a breaker removed it with the lock it was).
    NoClaim,
}

impl Inner {
    /// Takes the break marker, waiting (with backoff) while another process holds it, at
    /// most the marker's lifetime and a second. `Ok(false)`: our claim file is gone.
    pub(crate) fn take_marker_patiently(&self, st: &State, purpose: &str) -> Result<bool> {
        let give_up = later(
            self.fs.monotonic(),
            self.cfg
                .marker_lifetime
                .saturating_add(Duration::from_secs(1)),
        );
        let mut pause = Duration::from_millis(1);
        loop {
            // Judged before the attempt, so that the last attempt is made after the time is
            // up: a process stopped while it waited sees what happened meanwhile (its claim
            // removed with a lock that was broken) rather than a stale "busy".
            let last = self.fs.monotonic() >= give_up;
            match self.take_marker(st)? {
                Marker::Taken => return Ok(true),
                Marker::NoClaim => return Ok(false),
                Marker::Busy if !last => {
                    self.fs.sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Marker::Busy => return Err(Error::marker_busy(&self.marker, purpose)),
            }
        }
    }

    /// Runs `act` under the marker (docs/protocol.md: "under the marker"): take it
    /// patiently, act, release it with the claim it was taken with, whatever `act` did.
    /// `Ok(None)`: our claim file is gone, so the marker could not be taken (a breaker
    /// removed our claim with the lock it was).
    pub(crate) fn with_marker<T>(
        &self,
        st: &mut State,
        purpose: &str,
        act: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<Option<T>> {
        let setting_out = self.fs.boot_clock();
        if !self.take_marker_patiently(st, purpose)? {
            return Ok(None);
        }
        let taken_with = st.claim;
        st.marker_taken = Some(setting_out);
        let r = act(st);
        st.marker_taken = None;
        self.release_marker_of(taken_with, Some(setting_out));
        r.map(Some)
    }

    /// Takes the break marker `<lock>.break` with our claim (the same link protocol).
    pub(crate) fn take_marker(&self, st: &State) -> Result<Marker> {
        for _ in 0..3 {
            match self.call(|| self.fs.link(&self.claimfile, &self.marker)) {
                Ok(()) => return Ok(Marker::Taken),
                Err(e) if is_exists(&e) => {}
                Err(e) if is_not_found(&e) => return Ok(Marker::NoClaim),
                Err(e) => {
                    return Err(Error::io(
                        "link claim file to break marker",
                        &self.marker,
                        e,
                    ))
                }
            }
            let Some((meta, parsed)) = self.read_lock(&self.marker)? else {
                continue;
            };
            if st.claim.is_some_and(|c| c.id == meta.id) {
                return Ok(Marker::Taken); // lost reply
            }
            if meta.kind != FileKind::Regular {
                // No process of ours made it, and none will remove it: waiting would hang.
                return Err(Error::not_regular(
                    &self.marker,
                    "break marker",
                    kind_name(meta.kind),
                ));
            }
            let Some(writer) = parsed else {
                // Markers are links to claims: no process of ours made this one.
                return Err(Error::malformed_marker(&self.marker, meta.len));
            };
            if self.marker_is_stale(st, &meta, &writer)? {
                log::warn!(
                    "removing break marker {} left by a crashed breaker",
                    self.marker.display()
                );
                self.remove_exact(&self.marker, meta.id, |_, c| {
                    c.is_some_and(|c| c.path == writer.path)
                })?;
                continue;
            }
            return Ok(Marker::Busy);
        }
        Ok(Marker::Busy)
    }

    /// Whether a marker (`meta`, written by `writer`) was left by a crashed breaker: its
    /// writer is proven dead, or it is older than `marker_lifetime` (by its change time, in
    /// the server's clock). Age is judged on our estimate *and* on a fresh reading of the
    /// server's clock (a probe file): an estimate that ran ahead (the server's clock stepped
    /// back) must not make a fresh marker look old.
    fn marker_is_stale(&self, st: &State, meta: &Meta, writer: &Claim) -> Result<bool> {
        if self.liveness(writer) == Liveness::Dead {
            return Ok(true);
        }
        let old = |now| claim::expired(meta.changed, now, self.cfg.marker_lifetime);
        if !old(self.server_now(st)) {
            return Ok(false);
        }
        let probe = self.learn_offset()?;
        Ok(old(probe.now(self.fs.boot_clock())))
    }

    pub(crate) fn marker_is_ours(&self, st: &State) -> bool {
        matches!(self.call(|| self.fs.lstat(&self.marker)), Ok(m) if st.claim.is_some_and(|c| c.id == m.id))
    }

    pub(crate) fn release_marker(&self, st: &State) {
        self.release_marker_of(st.claim, st.marker_taken);
    }

    /// Releases the marker taken with `claim` (`taken`: when we set out to take it). A
    /// removal whose outcome is unknown is made again only while the marker is young.
    pub(crate) fn release_marker_of(&self, claim: Option<ClaimState>, taken: Option<Duration>) {
        // Under the marker protocol no one else removes a fresh marker; check anyway.
        match self.call(|| self.fs.lstat(&self.marker)) {
            Ok(m) if claim.is_some_and(|c| c.id == m.id) => {
                if let Err(e) = self.unlink_ours(&self.marker, m.id, || self.marker_young(taken)) {
                    // Not removed, and too old to remove by name: another process may be
                    // judging it stale right now. Remove it only as the exact file it is
                    // (rename away, compare, put back what is not ours).
                    let ours =
                        |_: &Meta, c: Option<&Claim>| c.is_some_and(|c| c.path == self.claimfile);
                    if !matches!(self.remove_exact(&self.marker, m.id, ours), Ok(true)) {
                        log::warn!(
                            "failed to remove break marker {}: {e}",
                            self.marker.display()
                        );
                    }
                }
            }
            _ => log::warn!(
                "break marker {} was not ours any more",
                self.marker.display()
            ),
        }
    }
}

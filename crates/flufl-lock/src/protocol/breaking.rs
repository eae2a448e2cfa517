//! Breaking an expired lock, or one whose holder is proven dead, under the marker
//! (docs/protocol.md: Breaking).

use super::*;
use crate::lock::BreakOutcome;

impl Inner {
    /// Breaks the lock if it is expired or its holder is proven dead (or, with `force`,
    /// whatever its state), through the same safe path waiters use.
    pub(crate) fn break_now(&self, force: bool) -> Result<BreakOutcome> {
        let mut st = self.begin_op();
        if st.held {
            return Err(Error::held_here(&self.lockfile));
        }
        self.create_claim(&mut st)?;
        let r = (|| {
            for _ in 0..50 {
                let (meta, holder) = match self.view(&st)? {
                    View::Gone | View::Ours => return Ok(BreakOutcome::Unlocked),
                    View::Theirs(m, c) => (m, c),
                    View::Malformed(m) => return Err(malformed_error(&self.lockfile, &m)),
                };
                let j = self.judge(
                    meta.modified,
                    self.now_for(&st, &holder),
                    &holder,
                    self.liveness(&holder),
                );
                if !(force || j.breakable()) {
                    return Ok(BreakOutcome::Live(holder.details));
                }
                let why = if j.breakable() { j.why() } else { "forced" };
                let before = self.fs.lstat(&self.lockfile).ok().map(|m| m.id);
                self.break_lock(&mut st, (meta.id, &holder), why, force)?;
                let after = self.fs.lstat(&self.lockfile).ok().map(|m| m.id);
                if after != before || after.is_none() {
                    return Ok(BreakOutcome::Broken(holder.details));
                }
                self.fs.sleep(Duration::from_millis(20));
            }
            Err(Error::marker_busy(
                &self.marker,
                "break the lock: another process keeps breaking",
            ))
        })();
        let _ = self.remove_claim(&mut st);
        r
    }

    /// Removes `path` only if it is still the file `id` with the same content: rename it to
    /// a private name, read it there, and put back what was not ours to remove.
    ///
    /// `still` re-judges the file taken, on the attributes and claim read after the rename
    /// (which no one else can change by that name any more): a lock refreshed between our
    /// judgement and our rename is put back. The content (a claim's unique path) tells a
    /// recycled inode number from the file judged, so no pin is needed to hold the inode.
    pub(crate) fn remove_exact(
        &self,
        path: &Path,
        id: FileId,
        still: impl Fn(&Meta, Option<&Claim>) -> bool,
    ) -> Result<bool> {
        match self.call_removal(|| self.fs.rename(path, &self.taken)) {
            Ok(()) => {}
            // Gone, or a lost NFS reply to a RENAME that was done: look at the private name.
            Err(e) if is_not_found(&e) && self.call(|| self.fs.lstat(&self.taken)).is_ok() => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(Error::io("rename away", path, e)),
        }
        let taken = self.read_lock(&self.taken);
        let same = matches!(&taken, Ok(Some((m, c))) if m.id == id && still(m, c.as_ref()));
        if !same {
            // A peer that ignores the marker (flufl.lock) replaced it, or its holder
            // refreshed it meanwhile: put it back, never over a name that exists again.
            match self.call(|| self.fs.link(&self.taken, path)) {
                Ok(()) => log::warn!("{} changed while being broken; put it back", path.display()),
                Err(e) => log::error!(
                    "{} changed while being broken and could not be put back: {e}",
                    path.display()
                ),
            }
        }
        let _ = self.call(|| self.fs.unlink(&self.taken));
        Ok(same)
    }

    /// Breaks the lock file we judged dead or expired (`judged`: its identity and its
    /// holder's claim), under the marker. `Ok(true)` if the lock changed (broken, or gone),
    /// so the caller should try again.
    pub(crate) fn break_lock(
        &self,
        st: &mut State,
        judged: (FileId, &Claim),
        why: &str,
        force: bool,
    ) -> Result<bool> {
        // protocol.md: Breaking, step 1.
        let setting_out = self.fs.boot_clock();
        match self.take_marker(st)? {
            Marker::Taken => {}
            Marker::Busy => return Ok(false),
            Marker::NoClaim => return Ok(true), // the acquire loop writes it again
        }
        st.marker_taken = Some(setting_out);
        let r = self.break_under_marker(st, judged, why, force);
        // protocol.md: Breaking, step 5.
        self.release_marker(st);
        st.marker_taken = None;
        r
    }

    /// With the marker held (no breaker of ours can act): judge the lock file again as it is
    /// now, and remove it only if it is still the file judged, with the same claim, and
    /// still breakable. Nothing is linked to the lock: a third link would make a flufl.lock
    /// holder that took the lock meanwhile believe it lost it (its `is_locked` needs a link
    /// count of 2), and linking another user's claim is refused under
    /// `fs.protected_hardlinks`.
    pub(crate) fn break_under_marker(
        &self,
        st: &State,
        (judged, judged_claim): (FileId, &Claim),
        why: &str,
        force: bool,
    ) -> Result<bool> {
        // protocol.md: Breaking, step 2.
        // Taking the marker linked our claim, so the server stamped its change time then: a
        // fresh reading of the server's clock. Judged on the lesser of it and our estimate,
        // an estimate that ran ahead (the server's clock stepped back) breaks nothing early.
        let marker = match self.call(|| self.fs.lstat(&self.marker)) {
            Ok(m) if st.claim.is_some_and(|c| c.id == m.id) => m,
            _ => return Ok(false), // displaced: leave it to the marker's new holder
        };
        let server_now = marker.changed;
        let now = |c: &Claim| {
            let estimate = self.now_for(st, c);
            if c.ours && sys::CHANGE_TIME_IS_SERVER_TIME {
                estimate.min(server_now)
            } else {
                estimate
            }
        };
        // protocol.md: Breaking, step 3.
        let Some((meta, parsed)) = self.read_lock(&self.lockfile)? else {
            return Ok(true);
        };
        let holder = match parsed {
            Some(c) if meta.id == judged && c.path == judged_claim.path => c,
            // Changed hands (or became something else): judge afresh.
            _ => return Ok(true),
        };
        if meta.kind != FileKind::Regular {
            return Ok(false);
        }
        let live = self.liveness(&holder);
        if !(force
            || self
                .judge(meta.modified, now(&holder), &holder, live)
                .breakable())
        {
            return Ok(false); // refreshed meanwhile
        }
        // protocol.md: Breaking, step 4.
        // Still our marker, untouched since we took it? A stale-marker remover elsewhere may
        // have displaced it, even put it back after another breaker acted: either changes
        // its change time (rename and link do), and our judgement may then be stale.
        if !matches!(self.call(|| self.fs.lstat(&self.marker)),
            Ok(m) if m.id == marker.id && m.changed == marker.changed && m.nlink == marker.nlink)
        {
            return Ok(false);
        }
        let still = |m: &Meta, c: Option<&Claim>| {
            c.is_some_and(|c| c.path == holder.path)
                && (force
                    || self
                        .judge(m.modified, now(&holder), &holder, live)
                        .breakable())
        };
        if !self.remove_exact(&self.lockfile, meta.id, still)? {
            return Ok(true);
        }
        log::warn!(
            "broke lock {} held by {} pid {}: {why}",
            self.lockfile.display(),
            holder.details.hostname,
            holder.details.pid
        );
        self.remove_holder_claim(&holder, meta.id);
        Ok(true)
    }

    /// Removes a broken holder's claim file: only the exact inode we broke, only in the lock's
    /// directory, only with a claim file's name for this lock.
    pub(crate) fn remove_holder_claim(&self, holder: &Claim, id: FileId) {
        let (Some(dir), Some(name)) = (self.lockfile.parent(), holder.path.file_name()) else {
            return;
        };
        if !self.is_claim_name(name) {
            return;
        }
        let path = dir.join(name);
        if matches!(self.call(|| self.fs.lstat(&path)), Ok(m) if m.id == id && m.kind == FileKind::Regular)
        {
            if let Err(e) = self.call_removal(|| self.fs.unlink(&path)) {
                log::warn!(
                    "failed to remove broken holder's claim file {}: {e}",
                    path.display()
                );
            }
        }
    }

    /// Whether `name` is a claim file name for this lock: `<lock name><SEP>...`, with our
    /// separator or the other platform's.
    pub(crate) fn is_claim_name(&self, name: &std::ffi::OsStr) -> bool {
        self.lockfile
            .file_name()
            .is_some_and(|lock| claim::is_claim_name(lock, self.sep, name))
    }

    /// Whether `path` is a claim file of this lock, in the lock's own directory.
    pub(crate) fn is_sibling_claim(&self, path: &Path) -> bool {
        path.parent() == self.lockfile.parent()
            && path.file_name().is_some_and(|n| self.is_claim_name(n))
    }
}

//! A peer that follows flufl.lock 10.0.0's own algorithm (`flufl/lock/_lockfile.py`),
//! step for step, over the same simulated filesystem: it ignores the break marker, breaks
//! an expired lock by touching it, reading the winner's claim and unlinking both, and
//! judges expiry on its host's wall clock plus `CLOCK_SLOP` (10 s).

use flufl_lock::sys::Fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// flufl.lock's `CLOCK_SLOP`.
const CLOCK_SLOP: Duration = Duration::from_secs(10);
const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const ESTALE: i32 = 116;

/// flufl.lock's `ERRORS`: ignored where it ignores them.
fn in_errors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(ENOENT | ESTALE))
}

/// One flufl.lock `Lock` object.
pub(crate) struct FluflLock<'a> {
    pub(crate) fs: &'a dyn Fs,
    pub(crate) lockfile: PathBuf,
    pub(crate) claimfile: PathBuf,
    pub(crate) lifetime: Duration,
    /// Its `_now()`: the host's wall clock.
    pub(crate) now: Box<dyn Fn() -> SystemTime + 'a>,
}

impl FluflLock<'_> {
    /// `Lock(lockfile, lifetime)`: the claim file is `lockfile|hostname|pid|random`.
    pub(crate) fn claim_path(lockfile: &Path, host: &str, pid: u32, random: u64) -> PathBuf {
        PathBuf::from(format!(
            "{}|{host}|{pid}|{}",
            lockfile.display(),
            random % 2_147_483_647
        ))
    }

    /// `_write`: `open(claimfile, 'w').write(claimfile)`.
    fn write(&self) -> io::Result<()> {
        let f = match self.fs.create_new(&self.claimfile) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(EEXIST) => {
                // 'w' truncates an existing file: ours from an earlier round.
                self.fs.unlink(&self.claimfile)?;
                self.fs.create_new(&self.claimfile)?
            }
            Err(e) => return Err(e),
        };
        self.fs
            .write_all(&f, self.claimfile.to_string_lossy().as_bytes())
    }

    /// `_touch`: `utime(file, now + lifetime)` in whole seconds (`time.mktime` of a
    /// `timetuple`); `ERRORS` ignored.
    fn touch(&self, file: Option<&Path>) -> io::Result<()> {
        let t = (self.now)() + self.lifetime;
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        match self.fs.set_path_times(file.unwrap_or(&self.claimfile), t) {
            Err(e) if !in_errors(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// `_read`: the lock file's content, `None` if it does not exist. (Its retry loop
    /// runs only for `retry_errnos`, empty by default.)
    fn read(&self) -> io::Result<Option<String>> {
        let r = self
            .fs
            .open_read(&self.lockfile)
            .and_then(|f| self.fs.read_head(&f, 4096));
        match r {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if in_errors(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `_linkcount`: the lock file's link count, -1 if it does not exist.
    fn linkcount(&self) -> io::Result<i64> {
        match self.fs.lstat(&self.lockfile) {
            Ok(m) => Ok(m.nlink as i64),
            Err(e) if in_errors(&e) => Ok(-1),
            Err(e) => Err(e),
        }
    }

    /// `_releasetime`: the lock file's mtime, `None` if it does not exist.
    fn releasetime(&self) -> io::Result<Option<SystemTime>> {
        match self.fs.lstat(&self.lockfile) {
            Ok(m) => Ok(Some(m.modified)),
            Err(e) if in_errors(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `lock()` without a timeout.
    pub(crate) fn lock(&self) -> io::Result<()> {
        self.write()?;
        self.touch(None)?;
        loop {
            match self.fs.link(&self.claimfile, &self.lockfile) {
                Ok(()) => {
                    self.touch(None)?;
                    return Ok(());
                }
                Err(e) if in_errors(&e) => {}
                Err(e) if e.raw_os_error() != Some(EEXIST) => {
                    self.fs.unlink(&self.claimfile)?;
                    return Err(e);
                }
                Err(_) => {
                    if self.linkcount()? != 2 {
                        // log.error('unexpected linkcount')
                    } else if self.read()?.as_deref() == Some(&*self.claimfile.to_string_lossy()) {
                        return Err(io::Error::other("AlreadyLockedError"));
                    }
                }
            }
            if let Some(release) = self.releasetime()? {
                if (self.now)() > release + CLOCK_SLOP {
                    self.break_()?;
                }
            }
            // `_sleep`: random.random() * 2.0 + 0.01 seconds.
            let r = self.fs.random() % 2_000_000;
            self.fs.sleep(Duration::from_micros(r + 10_000));
        }
    }

    /// `_break`.
    fn break_(&self) -> io::Result<()> {
        // `self.details`: the content must split into four fields.
        match self.read()? {
            Some(c) if c.trim().split('|').count() == 4 => {}
            _ => return Ok(()),
        }
        self.touch(Some(&self.lockfile))?;
        let winner = self.read()?;
        match self.fs.unlink(&self.lockfile) {
            Err(e) if !in_errors(&e) => return Err(e),
            _ => {}
        }
        if let Some(w) = winner.filter(|w| !w.is_empty()) {
            match self.fs.unlink(Path::new(&w)) {
                Err(e) if !in_errors(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// `is_locked`: touches our claim, then link count 2 and the lock file is our claim.
    pub(crate) fn is_locked(&self) -> io::Result<bool> {
        self.touch(None)?;
        if self.linkcount()? != 2 {
            return Ok(false);
        }
        Ok(self.read()?.as_deref() == Some(&*self.claimfile.to_string_lossy()))
    }

    /// `unlock()`: `Ok(false)` is its `NotLockedError`.
    pub(crate) fn unlock(&self) -> io::Result<bool> {
        let locked = self.is_locked()?;
        if !locked {
            return Ok(false);
        }
        match self.fs.unlink(&self.lockfile) {
            Err(e) if !in_errors(&e) => return Err(e),
            _ => {}
        }
        match self.fs.unlink(&self.claimfile) {
            Err(e) if !in_errors(&e) => return Err(e),
            _ => {}
        }
        Ok(true)
    }
}

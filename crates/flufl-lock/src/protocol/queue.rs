//! Taking turns while waiting on a remote filesystem (docs/protocol.md: Waiting).
//!
//! On NFS every poll is a round trip to the one server all hosts share. Waiters can see each
//! other: their claim files sit beside the lock. A waiter lists the directory once it has to
//! wait; the claims there then belong to the waiters ahead of it. The first in line polls
//! fast, the others the slower the further back they are, so that all polls together stay
//! near a fixed rate whatever the number of waiters, and the lock passes in arrival order.
//! A waiter moves up when a claim ahead of it becomes the lock (seen at its own polls: the
//! lock file is that claim's inode), is gone from the directory, expired, or was written
//! by a process proven dead on this host (whose claim file it then removes).
//!
//! All of it is a hint for speed: `link` alone decides who holds the lock, so a wrong guess
//! (a claim that looks alive, a recycled inode number, a flufl.lock waiter that takes no
//! turns, a directory that cannot be read) only makes a waiter poll faster or slower than
//! it should.

use super::*;
use std::ffi::{OsStr, OsString};

/// How often the first in line polls.
const FIRST: Duration = Duration::from_millis(50);
/// How often the second in line polls: often enough to see the first take the lock before
/// it lets go, so that it is first in line when it does.
const SECOND: Duration = Duration::from_millis(100);
/// Further back: this much more per waiter ahead, up to [`LAST`].
const PER_PLACE: Duration = Duration::from_millis(150);
const LAST: Duration = Duration::from_secs(2);
/// The claims ahead are looked at (one `lstat` each) this often by the waiters near the
/// front, to pass over dead ones.
const CHECK: Duration = Duration::from_secs(1);

/// How long a waiter with `ahead` waiters ahead of it waits between polls.
pub(crate) fn period(ahead: usize) -> Duration {
    match ahead {
        0 => FIRST,
        1 => SECOND,
        n => PER_PLACE.saturating_mul(n as u32).min(LAST),
    }
}

/// How long a waiter with `ahead` waiters ahead of it goes between listings of the
/// directory (one `READDIR` on NFS), which drop claims gone since.
fn relist(ahead: usize) -> Duration {
    (Duration::from_secs(1) + Duration::from_millis(250).saturating_mul(ahead as u32))
        .min(Duration::from_secs(10))
}

/// A waiter's view of the line, for one acquisition.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// The claims that were there when we started waiting and are still waiting, by name
    /// and inode number (0 where the listing gives none).
    ahead: Vec<(OsString, u64)>,
    listed: Option<Instant>,
    checked: Option<Instant>,
    /// The directory could not be listed: we take no turn (we poll as the first in line).
    blind: bool,
}

impl Queue {
    /// How many waiters are ahead of us.
    pub(crate) fn ahead(&self) -> usize {
        self.ahead.len()
    }

    /// The lock file is now the inode `holder`: a waiter ahead of us whose claim that is
    /// has had its turn.
    fn served(&mut self, holder: u64) {
        if holder != 0 {
            self.ahead.retain(|(_, ino)| *ino != holder);
        }
    }
}

impl Inner {
    /// Brings `q` up to date with this poll (the lock file is the inode `holder`) and, when
    /// due, with the directory; returns how long to wait before the next poll.
    pub(crate) fn take_turn(&self, st: &State, q: &mut Queue, holder: u64) -> Duration {
        let now = self.fs.monotonic();
        q.served(holder);
        if q.listed.is_none_or(|t| now >= later(t, relist(q.ahead()))) {
            self.list_line(q, holder);
            q.listed = Some(now);
        }
        if (1..=2).contains(&q.ahead()) && q.checked.is_none_or(|t| now >= later(t, CHECK)) {
            self.check_ahead(st, q);
            q.checked = Some(now);
        }
        period(if q.blind { 0 } else { q.ahead() })
    }

    /// Lists the lock's directory: the first time, the claims there (other than ours and the
    /// holder's) are the waiters ahead of us; later, those no longer there are dropped.
    /// Claims of processes proven dead on this host are passed over.
    fn list_line(&self, q: &mut Queue, holder: u64) {
        let Some(dir) = self.lockfile.parent() else {
            q.blind = true;
            return;
        };
        let names = match self.fs.list_dir(dir) {
            Ok(names) => names,
            Err(e) => {
                if !q.blind {
                    log::info!(
                        "cannot list {} to wait in turn ({e}); polling as the first in line",
                        dir.display()
                    );
                }
                q.blind = true;
                q.ahead.clear();
                return;
            }
        };
        q.blind = false;
        let ours = self.claimfile.file_name();
        let waiting: Vec<(OsString, u64)> = names
            .into_iter()
            .filter(|(name, ino)| {
                Some(name.as_os_str()) != ours
                    && (holder == 0 || *ino != holder)
                    && self.is_waiting_claim(name)
            })
            .collect();
        if q.listed.is_none() {
            q.ahead = waiting;
        } else {
            q.ahead.retain(|a| waiting.contains(a));
        }
        q.ahead
            .retain(|(name, ino)| !self.dead_waiter(dir, name, *ino));
    }

    /// Looks at each claim ahead of us (the first few in line only): one gone, linked as the
    /// lock, expired or of a process proven dead is passed over.
    fn check_ahead(&self, st: &State, q: &mut Queue) {
        let Some(dir) = self.lockfile.parent() else {
            return;
        };
        q.ahead.retain(|(name, ino)| {
            let path = dir.join(name);
            match self.call(|| self.fs.lstat(&path)) {
                Err(e) => !is_not_found(&e),
                Ok(m) if (*ino != 0 && m.id.ino != *ino) || m.nlink > 1 => false,
                Ok(m) => match claim::parse_any(&claim::path_to_bytes(&path), self.sep) {
                    Some(c) => {
                        let live = self.liveness(&c);
                        live != Liveness::Dead
                            && !self
                                .judge(m.modified, self.now_for(st, &c), &c, live)
                                .expired
                    }
                    None => false,
                },
            }
        });
    }

    /// Whether the claim `name` in `dir` was written by a process proven dead on this host
    /// (docs/protocol.md: Judging a lock). Its file is then removed, if it is still that
    /// inode and not linked as the lock: a dead process never takes its turn.
    fn dead_waiter(&self, dir: &Path, name: &OsStr, ino: u64) -> bool {
        let path = dir.join(name);
        let Some(c) = claim::parse_any(&claim::path_to_bytes(&path), self.sep) else {
            return false;
        };
        if self.liveness(&c) != Liveness::Dead {
            return false;
        }
        if matches!(self.call(|| self.fs.lstat(&path)),
            Ok(m) if m.kind == FileKind::Regular && m.nlink == 1 && (ino == 0 || m.id.ino == ino))
        {
            match self.call_removal(|| self.fs.unlink(&path)) {
                Ok(()) => log::info!(
                    "removed the claim file {} of a waiter that died (pid {})",
                    path.display(),
                    c.details.pid
                ),
                Err(e) => log::debug!("could not remove {}: {e}", path.display()),
            }
        }
        true
    }

    /// Whether `name` is a waiter's claim file for this lock (not a breaker's or a clock
    /// probe's private file).
    fn is_waiting_claim(&self, name: &OsStr) -> bool {
        let bytes = claim::path_to_bytes(Path::new(name));
        self.is_claim_name(name) && !bytes.ends_with(b".brk") && !bytes.ends_with(b".clk")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first in line polls every 50 ms, the second every 100 ms, then 150 ms more per
    /// place up to 2 s: the polls of N waiters add up to less than 20 + 10 + 6.7 × ln N a
    /// second.
    #[test]
    fn polls_slow_down_with_the_place_in_line() {
        assert_eq!(period(0), Duration::from_millis(50));
        assert_eq!(period(1), Duration::from_millis(100));
        assert_eq!(period(2), Duration::from_millis(300));
        assert_eq!(period(13), Duration::from_millis(1950));
        assert_eq!(period(14), Duration::from_secs(2));
        assert_eq!(period(usize::MAX), Duration::from_secs(2));
        let rate = |n: usize| (0..n).map(|k| 1.0 / period(k).as_secs_f64()).sum::<f64>();
        assert!(rate(100) < 90.0, "{}", rate(100));
        assert!(rate(10) < 45.0, "{}", rate(10));
        assert!(relist(usize::MAX) == Duration::from_secs(10));
    }
}

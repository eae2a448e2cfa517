//! Taking turns while waiting on a remote filesystem (docs/protocol.md: Waiting).
//!
//! On NFS every poll is a round trip to the one server all hosts share. Waiters can see each
//! other: their claim files sit beside the lock. A newcomer lists the directory before its
//! first try; the claims there belong to the waiters ahead of it. Only the first in line
//! tries `link`, often; the others look at the lock without taking it (the first on each
//! host asking the server, the rest reading their host's cache), often while the line
//! moves and less while it stands still, so that the calls all waiters send stay near a
//! fixed rate whatever their number, and the lock passes in arrival order. A waiter moves
//! up when a claim ahead of it becomes the lock (the lock file is that claim's inode), is
//! gone from the directory, expired, no longer re-stamped, or was written by a process
//! proven dead on this host (whose claim file it then removes). A lock left free is taken
//! out of turn after a grace.
//!
//! All of it is a hint for speed: `link` alone decides who holds the lock, so a wrong guess
//! (a claim that looks alive, a recycled inode number, a flufl.lock waiter that takes no
//! turns, a directory that cannot be read) only makes a waiter try sooner or later than it
//! should.

use super::*;
use std::ffi::{OsStr, OsString};

/// How often the first in line tries to take the lock (`link`).
const FIRST: Duration = Duration::from_millis(40);
/// How often a waiter in line looks at the lock just after the line moved (the second in
/// line must see the first take the lock before it lets go, to be first in line by then);
/// it backs off (×1.5 a look) while nothing changes, to twice that for the second in line
/// and to [`LAST`] further back.
const SECOND: Duration = Duration::from_millis(100);
const LAST: Duration = Duration::from_millis(300);
/// A lock seen free by a waiter in line is left to the waiters ahead for this long: until
/// each has surely looked (a waiter ahead may not have seen the line move yet).
const FREE_GRACE: Duration = Duration::from_millis(400);
/// A newcomer that finds the lock free (it has not seen it held) leaves it to those ahead
/// for three polls of the first in line, and more than a look of the second (who finds
/// itself first when it sees the lock free): a live line would have taken it by then, so
/// what is ahead is most likely a claim left by a waiter that died elsewhere.
const NEWCOMER_GRACE: Duration = Duration::from_millis(150);
/// A directory of more names than this is not listed again: its waiters take no turns.
const MAX_LISTED: usize = 10_000;
/// The claims ahead are looked at (one `lstat` each) this often by the waiters near the
/// front, to pass over dead ones.
const CHECK: Duration = Duration::from_secs(1);
/// A waiter in line re-stamps its claim at least this often (its expiry, a lifetime ahead:
/// the server stamps the change time), so that those behind can tell a claim left by a
/// waiter that died elsewhere: one not changed for twice this long (or half its lifetime).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);
/// A waiter in line that reads its host's cache asks the server itself at least this often,
/// in case the first in line here stopped looking (a stopped process).
const FRESH: Duration = Duration::from_secs(10);
/// The directory is listed at most this often when the line moved in a way our looks did
/// not follow (a holder not in line ahead of us, a lock seen free).
const RELIST_SOON: Duration = Duration::from_millis(300);

/// The longest pause between looks of a waiter with `ahead` waiters ahead of it.
fn pace_cap(ahead: usize) -> Duration {
    match ahead {
        0 => FIRST,
        1 => SECOND * 2,
        _ => LAST,
    }
}

/// How long a waiter with `ahead` waiters ahead of it goes between listings of the
/// directory (one `READDIR` on NFS), which drop claims gone since.
fn relist(ahead: usize) -> Duration {
    (Duration::from_secs(2) + Duration::from_millis(500).saturating_mul(ahead as u32))
        .min(Duration::from_secs(10))
}

/// A waiter ahead of us: its claim's name and inode number (0 where the listing gives
/// none), and whether its claim names our host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ahead {
    name: OsString,
    ino: u64,
    here: bool,
}

/// A waiter's view of the line, for one acquisition.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// The waiters that were there when we started waiting and are still waiting.
    ahead: Vec<Ahead>,
    listed: Option<Instant>,
    /// List again soon: the line moved in a way our looks did not follow.
    relist_soon: bool,
    checked: Option<Instant>,
    /// The directory could not be listed (unreadable, or too large to list every second):
    /// we take no turn, and poll as the second in line would.
    blind: bool,
    /// The lock file's inode at our last look (0: free or unknown).
    holder: u64,
    /// The pause between our looks: [`SECOND`] after the line moved, growing while it
    /// does not.
    pace: Duration,
    /// When we last asked the server about the lock ourselves (in line).
    asked: Option<Instant>,
    /// When we saw the lock free while waiting in line, and how long we leave it then.
    free_since: Option<(Instant, Duration)>,
    /// We saw the lock held during this acquisition.
    seen_held: bool,
    /// The lock stayed free past [`FREE_GRACE`]: take it.
    take: bool,
}

impl Queue {
    /// How many waiters are ahead of us.
    pub(crate) fn ahead(&self) -> usize {
        self.ahead.len()
    }

    /// Whether we wait behind others: we look at the lock without trying to take it.
    pub(crate) fn in_line(&self) -> bool {
        !self.blind && !self.ahead.is_empty() && !self.take
    }

    /// Whether our next look must ask the server: we are the first in line on our host, or
    /// have not asked for [`FRESH`]. (Those behind the first in line here read what its
    /// looks, or the first in line's polls, left in the host's cache.)
    pub(crate) fn ask_server(&mut self, now: Instant) -> bool {
        let ask =
            !self.ahead.iter().any(|a| a.here) || self.asked.is_none_or(|t| now >= later(t, FRESH));
        if ask {
            self.asked = Some(now);
        }
        ask
    }

    /// We saw the lock held.
    pub(crate) fn saw_held(&mut self) {
        self.seen_held = true;
        self.free_since = None;
        self.take = false;
    }

    /// The lock file is now the inode `holder`: a waiter ahead of us whose claim that is
    /// has had its turn. Whether one had.
    fn served(&mut self, holder: u64) -> bool {
        let before = self.ahead.len();
        if holder != 0 {
            self.ahead.retain(|a| a.ino != holder);
        }
        self.ahead.len() < before
    }

    /// The line moved: look often again.
    fn moved(&mut self) {
        self.pace = SECOND;
    }

    fn relist_due(&self, now: Instant) -> bool {
        !self.blind
            && self.listed.is_none_or(|t| {
                now >= later(t, relist(self.ahead()))
                    || (self.relist_soon && now >= later(t, RELIST_SOON))
            })
    }
}

impl Inner {
    /// Joins the line, before the first try: the claims beside the lock are the waiters
    /// ahead; the first few are looked at (one `lstat` each) to pass over those that no
    /// longer wait (expired, abandoned, dead) and those made after ours (two newcomers that
    /// each listed the other's claim), up to three that do.
    pub(crate) fn join_line(&self, st: &mut State) -> Queue {
        let mut q = Queue::default();
        if st.unlisted {
            q.blind = true;
            return q;
        }
        self.list_line(&mut q, 0);
        // Not listed again for this `Lock`: a directory too large to read at every
        // acquisition, or unreadable, stays so.
        st.unlisted = q.blind;
        q.listed = Some(self.fs.monotonic());
        let born = st
            .claim
            .map(|c| c.born)
            .filter(|_| sys::CHANGE_TIME_IS_SERVER_TIME);
        self.check_ahead(st, &mut q, 3, born);
        q.checked = q.listed;
        q
    }

    /// Brings `q` up to date with this poll (the lock file is the inode `holder`) and, when
    /// due, with the directory; returns how long to wait before the next poll.
    pub(crate) fn take_turn(&self, st: &State, q: &mut Queue, holder: u64) -> Duration {
        let now = self.fs.monotonic();
        if holder != q.holder {
            q.holder = holder;
            q.moved();
            // A holder that was not in line ahead of us: we may have missed turns.
            q.relist_soon |= !q.served(holder);
        } else {
            q.pace = q.pace.mul_f64(1.5).min(pace_cap(q.ahead()));
        }
        let before = q.ahead();
        if q.relist_due(now) {
            self.list_line(q, holder);
            q.listed = Some(now);
        }
        if (1..=2).contains(&q.ahead()) && q.checked.is_none_or(|t| now >= later(t, CHECK)) {
            self.check_ahead(st, q, 2, None);
            q.checked = Some(now);
        }
        if q.ahead() < before {
            q.moved();
        }
        match (q.blind, q.ahead()) {
            (true, _) => SECOND,
            (false, 0) => FIRST,
            (false, _) => q.pace.clamp(SECOND, pace_cap(q.ahead())),
        }
    }

    /// Waiting in line, we saw the lock free: pass over the waiters ahead that are gone
    /// (when a few are left: one `lstat` each; else a listing), then leave the lock to the
    /// first in line for a moment. `Some(pause)` to look again after, `None` to take it.
    pub(crate) fn saw_free(&self, st: &State, q: &mut Queue) -> Option<Duration> {
        let now = self.fs.monotonic();
        q.holder = 0;
        if q.ahead() <= 3 {
            // (Not again right after joining.)
            if q.checked.is_none_or(|t| now >= later(t, NEWCOMER_GRACE)) {
                self.check_ahead(st, q, 3, None);
                q.checked = Some(now);
            }
        } else {
            q.relist_soon = true;
            if q.relist_due(now) {
                self.list_line(q, 0);
                q.listed = Some(now);
            }
        }
        if !q.in_line() {
            return None;
        }
        let grace = if q.seen_held {
            FREE_GRACE
        } else {
            NEWCOMER_GRACE
        };
        let (since, grace) = *q.free_since.get_or_insert((now, grace));
        let waited = now.saturating_duration_since(since);
        q.take = waited >= grace;
        (!q.take).then(|| (grace - waited).min(SECOND))
    }

    /// Lists the lock's directory: the first time, the claims there (other than ours and the
    /// holder's) are the waiters ahead of us; later, those no longer there are dropped.
    /// Claims of processes proven dead on this host are passed over.
    fn list_line(&self, q: &mut Queue, holder: u64) {
        q.relist_soon = false;
        let Some(dir) = self.lockfile.parent() else {
            q.blind = true;
            return;
        };
        let names = match self.fs.list_dir(dir, MAX_LISTED) {
            Ok(names) => names,
            Err(e) => {
                log::info!(
                    "waiting for {} without taking turns: cannot list {} ({e})",
                    self.lockfile.display(),
                    dir.display()
                );
                q.blind = true;
                q.ahead.clear();
                return;
            }
        };
        let ours = self.claimfile.file_name();
        let waiting: Vec<Ahead> = names
            .into_iter()
            .filter(|(name, ino)| {
                Some(name.as_os_str()) != ours
                    && (holder == 0 || *ino != holder)
                    && self.is_waiting_claim(name)
            })
            .filter_map(|(name, ino)| {
                let c = claim::parse_any(&claim::path_to_bytes(&dir.join(&name)), self.sep)?;
                (!self.dead_waiter(dir, &name, ino, &c)).then(|| Ahead {
                    here: c.details.hostname == self.hostname,
                    name,
                    ino,
                })
            })
            .collect();
        if q.listed.is_none() {
            q.ahead = waiting;
        } else {
            q.ahead.retain(|a| waiting.contains(a));
        }
    }

    /// Looks at the claims ahead of us, in turn, until `enough` are found still waiting:
    /// one gone, linked as the lock, expired, no longer re-stamped, or of a process proven
    /// dead is passed over, and, given when ours was made (`born`, just after), one changed
    /// since.
    fn check_ahead(&self, st: &State, q: &mut Queue, enough: usize, born: Option<SystemTime>) {
        let Some(dir) = self.lockfile.parent() else {
            return;
        };
        let mut waiting = 0;
        q.ahead.retain(|a| {
            if waiting >= enough {
                return true;
            }
            let path = dir.join(&a.name);
            let keep = match self.call(|| self.fs.lstat(&path)) {
                Err(e) => !is_not_found(&e),
                Ok(m) if (a.ino != 0 && m.id.ino != a.ino) || m.nlink > 1 => false,
                Ok(m) if born.is_some_and(|b| m.changed > b) => false,
                Ok(m) => match claim::parse_any(&claim::path_to_bytes(&path), self.sep) {
                    Some(c) => {
                        let live = self.liveness(&c);
                        let now = self.now_for(st, &c);
                        live != Liveness::Dead
                            && !self.judge(m.modified, now, &c, live).expired
                            && !(c.ours && abandoned(&m, now))
                    }
                    None => false,
                },
            };
            waiting += usize::from(keep);
            keep
        });
    }

    /// Whether the claim `c`, named `name` in `dir`, was written by a process proven dead on
    /// this host (docs/protocol.md: Judging a lock). Its file is then removed, if it is still
    /// that inode and not linked as the lock: a dead process never takes its turn.
    fn dead_waiter(&self, dir: &Path, name: &OsStr, ino: u64, c: &Claim) -> bool {
        let path = dir.join(name);
        if self.liveness(c) != Liveness::Dead {
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

/// Whether a waiting claim of ours, with attributes `m`, stopped being re-stamped at server
/// time `now`: a waiter re-stamps its claim's expiry (a lifetime ahead) every quarter of its
/// lifetime, and in line at least every [`HEARTBEAT`], and the server stamps the change time
/// then, so the lifetime is the expiry less the change time, and a claim not changed for
/// half of it or two heartbeats (and a second) is abandoned.
fn abandoned(m: &Meta, now: SystemTime) -> bool {
    let Ok(lifetime) = m.modified.duration_since(m.changed) else {
        return false;
    };
    let limit = (lifetime / 2).min(HEARTBEAT * 2) + Duration::from_secs(1);
    sys::CHANGE_TIME_IS_SERVER_TIME && now.duration_since(m.changed).is_ok_and(|age| age > limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks back off from 100 ms to 200 ms for the second in line, 300 ms further back;
    /// listings from 2 s to 10 s.
    #[test]
    fn looks_slow_down_with_the_place_in_line() {
        assert_eq!(pace_cap(0), FIRST);
        assert_eq!(pace_cap(1), Duration::from_millis(200));
        assert_eq!(pace_cap(2), Duration::from_millis(300));
        assert_eq!(pace_cap(3), Duration::from_millis(300));
        assert_eq!(pace_cap(usize::MAX), Duration::from_millis(300));
        assert_eq!(relist(0), Duration::from_secs(2));
        assert_eq!(relist(usize::MAX), Duration::from_secs(10));
    }

    /// A claim ahead that becomes the lock has had its turn; another holder does not count.
    #[test]
    fn a_claim_ahead_that_becomes_the_lock_is_served() {
        let w = |name: &str, ino, here| Ahead {
            name: name.into(),
            ino,
            here,
        };
        let mut q = Queue {
            ahead: vec![w("x", 7, false), w("y", 8, true)],
            ..Queue::default()
        };
        assert!(q.in_line());
        let t = Instant::now();
        assert!(q.ask_server(t), "never asked yet");
        assert!(!q.ask_server(t + Duration::from_secs(1)));
        assert!(q.ask_server(t + FRESH));
        assert!(!q.served(9));
        assert!(!q.served(0));
        assert!(q.served(8));
        assert_eq!(q.ahead(), 1);
        assert!(q.ask_server(t + FRESH), "first in line here");
        q.take = true;
        assert!(!q.in_line());
        q.saw_held();
        assert!(q.in_line());
        assert!(q.served(7));
        assert!(!q.in_line());
    }
}

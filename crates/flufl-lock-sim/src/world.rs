//! The simulated world: one directory of files on a simulated file server, hosts with their
//! own clocks, processes, and the scheduler that owns every step.
//!
//! Each simulated process runs the real library on its own OS thread, but only one runs at
//! a time: the one holding the *turn*. A process gives up the turn only at a scheduling
//! point (every filesystem call, every liveness query, every sleep), where the decision
//! source ([`Decide`]) picks who runs next and which fault, if any, the call meets. Nothing
//! else is shared between the threads, so a run is a pure function of its decisions, and
//! the decisions are a pure function of the seed (random exploration) or of the choice
//! vector (exhaustive exploration).

use crate::decide::{Choice, Decide};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Nanoseconds of simulated true time since the start of a run.
pub type Ns = u64;

/// Nanoseconds per second.
pub const SEC: Ns = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const MS: Ns = 1_000_000;

/// The simulated server's clock at true time 0: 2026-12-03 00:00:00 UTC.
pub(crate) const EPOCH_OFFSET: Duration = Duration::from_secs(1_796_256_000);

/// How much earlier than its timeout the scheduler may wake a waiter (as a preemption),
/// so that two pollers' wake-ups can meet in any order.
pub const SLACK: Ns = 50 * MS;

/// The directory every simulated file lives in.
pub const DIR: &str = "/sim";
/// The lock file.
pub const LOCK: &str = "/sim/lock";

/// A fault a filesystem call (or liveness query) can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The call takes effect, the caller sees an error (`EEXIST` after a `link` or a create,
    /// `ENOENT` after an `unlink` or `rename`, `ESTALE` otherwise).
    LostReply,
    /// `ESTALE`, without effect.
    Stale,
    /// `EINTR`, without effect.
    Interrupted,
    /// The process dies before the call reaches the server.
    CrashBefore,
    /// The process dies after the call took effect, before it hears the reply.
    CrashAfter,
    /// The process is stopped (SIGSTOP, a VM paused) after the call, for [`Faults::pause`].
    Pause,
    /// The call reaches the server [`Faults::pause`] late (a slow NFS call).
    Slow,
    /// The caller's host suspends before the call for [`Faults::pause`]: its monotonic clock
    /// stops, its boot clock, wall clock and the server's clock run on.
    Suspend,
    /// The server's clock steps forward by [`Faults::step`].
    ServerAhead,
    /// The server's clock steps back by [`Faults::step`].
    ServerBack,
    /// The caller's host's wall clock steps forward by [`Faults::step`].
    WallAhead,
    /// The caller's host's wall clock steps back by [`Faults::step`].
    WallBack,
    /// A liveness query about a live process cannot see its start time (`/proc` mounted
    /// with `hidepid`, another user's process): `Running { start: None }`.
    Hidden,
    /// A liveness query cannot ask the kernel at all: `Unknown`.
    Unknowable,
    /// A broken kernel, for the self-test only: a live process reads as gone.
    Liar,
}

impl Fault {
    /// Every fault, in menu order.
    pub const ALL: [Fault; 15] = [
        Fault::LostReply,
        Fault::Stale,
        Fault::Interrupted,
        Fault::CrashBefore,
        Fault::CrashAfter,
        Fault::Pause,
        Fault::Slow,
        Fault::Suspend,
        Fault::ServerAhead,
        Fault::ServerBack,
        Fault::WallAhead,
        Fault::WallBack,
        Fault::Hidden,
        Fault::Unknowable,
        Fault::Liar,
    ];

    /// Whether the fault can happen at a call of this kind.
    pub fn applies(self, op: OpKind) -> bool {
        use Fault::*;
        match self {
            Hidden | Unknowable | Liar => op == OpKind::Process,
            LostReply => matches!(
                op,
                OpKind::Link | OpKind::Unlink | OpKind::Rename | OpKind::Create
            ),
            Stale | Interrupted => op.is_file_op(),
            CrashBefore | CrashAfter | Pause | Slow | Suspend => op != OpKind::Wait,
            ServerAhead | ServerBack | WallAhead | WallBack => op.is_file_op(),
        }
    }

    /// A short name, for traces and the command line.
    pub fn name(self) -> &'static str {
        use Fault::*;
        match self {
            LostReply => "lost-reply",
            Stale => "estale",
            Interrupted => "eintr",
            CrashBefore => "crash-before",
            CrashAfter => "crash-after",
            Pause => "pause",
            Slow => "slow",
            Suspend => "suspend",
            ServerAhead => "server-ahead",
            ServerBack => "server-back",
            WallAhead => "wall-ahead",
            WallBack => "wall-back",
            Hidden => "hidden",
            Unknowable => "unknowable",
            Liar => "liar",
        }
    }
}

/// The faults a scenario may meet, and their sizes.
#[derive(Debug, Clone)]
pub struct Faults {
    /// The menu, in the order the decision source sees it (option 0 is "no fault").
    pub menu: Vec<Fault>,
    /// How many faults one run may meet.
    pub budget: u32,
    /// How long a pause, a slow call or a suspend lasts.
    pub pause: Ns,
    /// How far a clock steps.
    pub step: Ns,
}

/// The kinds of scheduling points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `open(O_CREAT|O_EXCL)`.
    Create,
    /// `write`.
    Write,
    /// `fstat`.
    Fstat,
    /// `futimens`.
    SetTimes,
    /// `utimensat`.
    SetPathTimes,
    /// `open(O_RDONLY)`.
    Open,
    /// `read`.
    Read,
    /// `lstat`.
    Lstat,
    /// `link`.
    Link,
    /// `rename`.
    Rename,
    /// `unlink`.
    Unlink,
    /// The liveness query (`pidfd_open`, `/proc`).
    Process,
    /// A sleep or a wait for a change.
    Wait,
}

impl OpKind {
    fn is_file_op(self) -> bool {
        !matches!(self, OpKind::Process | OpKind::Wait)
    }
}

/// How a host's clocks and identity look.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Its host name (claims carry it).
    pub name: String,
    /// Its wall clock minus the server's, at the start.
    pub skew: i64,
}

/// A simulated host.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) spec: HostSpec,
    /// The wall clock's offset from the server's clock (steps move it).
    pub(crate) skew: i64,
    /// Time the host spent suspended (its monotonic clock stopped).
    pub(crate) suspended: Ns,
    /// Its boot clock at true time 0.
    pub(crate) boot_base: Ns,
}

/// Whether a process's program still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// It may take the turn.
    Ready,
    /// Sleeping or stopped until `until`; `wake` if a change of the lock file or the exit
    /// of the watched process may end it early; `early` if the scheduler may end it up to
    /// [`SLACK`] early (a wait for a change, a program's own sleep: timers are not exact).
    Blocked {
        until: Ns,
        wake: bool,
        watch: Option<u32>,
        early: bool,
    },
    /// Its program finished: the process exited.
    Done,
    /// It crashed (or the run was aborted): the process is gone.
    Dead,
}

/// A simulated process.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) host: usize,
    pub(crate) pid: u32,
    /// Its start time, in clock ticks since boot (what `/proc` shows).
    pub(crate) start: u64,
    /// A passive process (a shell that owns locks taken by commands it ran): alive, never
    /// scheduled.
    pub(crate) passive: bool,
    pub(crate) run: Run,
    /// A flufl.lock 10.0.0 peer (judged by the same invariants, reported apart).
    pub(crate) flufl: bool,
    /// The pid its claims carry: its own, or (for a command run by a shell that keeps the
    /// lock across commands) the shell's.
    pub(crate) owner: u32,
    /// Believes it holds the lock: the inode it holds.
    pub(crate) holding: Option<usize>,
    /// The last claim file it created (the inode its lock is, once linked).
    pub(crate) last_claim: Option<usize>,
    /// A fault stopped it after its last call (a pause it could not see before returning).
    pub(crate) paused_last: bool,
    /// Its current call reaches the server later than what it relies on (its lease, or the
    /// break marker it holds) lasts: the lease's limit, not the protocol's.
    pub(crate) late: bool,
}

/// A simulated inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) nlink: u32,
    /// Server time, ns since the Unix epoch.
    pub(crate) mtime: u128,
    pub(crate) ctime: u128,
    pub(crate) data: Vec<u8>,
    /// The process that created it.
    pub(crate) creator: usize,
    /// The expiry its owner (a process with the creator's host and owner pid) last wrote:
    /// the lease of a lock that is this inode.
    pub(crate) lease: Option<u128>,
}

/// A violation of an invariant, or an observation reported apart (flufl.lock races).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What kind.
    pub kind: ViolationKind,
    /// What happened, with the names of those involved.
    pub what: String,
}

/// The invariants the world checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// Two of our processes believe they hold the lock, both leases unexpired in the
    /// server's clock.
    TwoHolders,
    /// As `TwoHolders`, with a flufl.lock peer among the two (it ignores the marker).
    FluflRace,
    /// A lock file (or break marker) removed by a process that neither owned it nor could
    /// have judged it expired or its holder dead.
    UnjustRemoval,
    /// A claim, marker or lock file left at the end of a run with no crash to explain it.
    Leftover,
    /// The run did not end within the time bound: someone waited forever.
    Stuck,
    /// Too many steps without the run ending (a livelock).
    Livelock,
    /// A panic in the library or the program.
    Panic,
    /// A removal (or, after it, two holders) caused by a request that reached the server
    /// after what its sender relied on ran out: a call delayed in flight (a slow NFS call,
    /// a suspend) longer than the lease left, or than the break marker's lifetime. The
    /// limit of any lease without fencing tokens (docs/protocol.md: Honest limits).
    LeaseLimit,
    /// A removal (or, after it, two holders) by a process whose lease a forward step of the
    /// server's clock had cut short without its knowing (docs/protocol.md: Honest limits,
    /// clock steps).
    ClockStep,
    /// An operation failed where the scenario expects success.
    Failed,
    /// `lock()` returned a lock whose lease had already run out in the server's clock,
    /// with no pause after the library's last call to explain it.
    BornExpired,
}

impl ViolationKind {
    /// A documented limit (docs/protocol.md: Honest limits), reported apart, not a failure.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            ViolationKind::FluflRace | ViolationKind::LeaseLimit | ViolationKind::ClockStep
        )
    }
}

/// The world's tunables.
#[derive(Debug, Clone)]
pub struct WorldCfg {
    /// Simulated time each filesystem call takes.
    pub op_cost: Ns,
    /// Timestamp granularity of the file server (1 for nanoseconds).
    pub granularity: Ns,
    /// Whether the filesystem is local: change notification wakes waiters, `is_remote` is
    /// false.
    pub local: bool,
    /// Faults.
    pub faults: Faults,
    /// Most preemptions (switching away from a process that could go on) per run.
    pub preemptions: u32,
    /// A run still going at this simulated time is stuck.
    pub time_limit: Ns,
    /// A run still going after this many steps livelocks.
    pub step_limit: u64,
    /// Record a readable trace.
    pub trace: bool,
}

/// The mutable state of a run.
pub(crate) struct Ws {
    pub(crate) now: Ns,
    current: Option<usize>,
    pub(crate) procs: Vec<Proc>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) inodes: Vec<Inode>,
    /// Open file descriptors (the sentinel handles given out) to inodes.
    pub(crate) fds: BTreeMap<i32, usize>,
    /// The server's clock minus true time.
    pub(crate) server_offset: i64,
    pub(crate) cfg: WorldCfg,
    dec: Box<dyn Decide>,
    faults_used: u32,
    preemptions: u32,
    pub(crate) steps: u64,
    pub(crate) aborted: bool,
    pub(crate) violations: Vec<Violation>,
    /// A `LeaseLimit` or `ClockStep` removal happened: two holders after it are its
    /// consequence, of that kind.
    pub(crate) limit_hit: Option<ViolationKind>,
    /// The server's clock stepped forward in this run.
    pub(crate) stepped_ahead: bool,
    pub(crate) trace: Vec<String>,
    /// Random state for the library's `Fs::random` (seeded by the run).
    pub(crate) rand: u64,
}

/// The world: its state behind one lock, and one turn signal per process.
pub(crate) struct World {
    ws: Mutex<Ws>,
    turn: Vec<Condvar>,
    /// The monotonic clock's zero.
    pub(crate) base: Instant,
}

/// The panic payload a crashed (or aborted) process unwinds with.
#[derive(Debug)]
pub(crate) struct Crashed;

impl Ws {
    /// The server's clock now, ns since the Unix epoch, at its granularity.
    pub(crate) fn server_now(&self) -> u128 {
        self.truncate(self.server_exact())
    }

    fn server_exact(&self) -> u128 {
        (EPOCH_OFFSET.as_nanos() as i128 + self.now as i128 + self.server_offset as i128) as u128
    }

    /// A time as the server stores it: truncated to its granularity.
    pub(crate) fn truncate(&self, t: u128) -> u128 {
        let g = u128::from(self.cfg.granularity.max(1));
        t / g * g
    }

    /// Host `h`'s wall clock now.
    pub(crate) fn wall(&self, h: usize) -> SystemTime {
        let t = self.server_exact() as i128 + self.hosts[h].skew as i128;
        SystemTime::UNIX_EPOCH + Duration::from_nanos(t.max(0) as u64)
    }

    pub(crate) fn boot(&self, h: usize) -> Duration {
        Duration::from_nanos(self.hosts[h].boot_base + self.now)
    }

    pub(crate) fn mono(&self, h: usize) -> Duration {
        Duration::from_nanos(self.hosts[h].boot_base + self.now - self.hosts[h].suspended)
    }

    pub(crate) fn note(&mut self, me: usize, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!(
                "{:>4} t={:>10.6} {:<4} {}",
                self.steps,
                self.now as f64 / SEC as f64,
                self.procs[me].name,
                what()
            );
            self.trace.push(line);
        }
    }

    pub(crate) fn violate(&mut self, kind: ViolationKind, what: String) {
        if self.cfg.trace {
            self.trace.push(format!("     !!! {kind:?}: {what}"));
        }
        if !self.violations.iter().any(|v| v.kind == kind) {
            self.violations.push(Violation { kind, what });
        }
    }

    /// The decision "who runs next" at a point where `me` (if ready) could go on.
    fn pick(&mut self, me: Option<usize>) -> Option<usize> {
        loop {
            let ready: Vec<usize> = (0..self.procs.len())
                .filter(|&i| self.procs[i].run == Run::Ready && !self.procs[i].passive)
                .collect();
            if ready.is_empty() {
                if !self.advance_time() {
                    return None;
                }
                continue;
            }
            // Option 0 is `me` (no preemption) when it may go on, else the first ready.
            let mut order = ready.clone();
            if let Some(m) = me.filter(|m| ready.contains(m)) {
                order.retain(|&i| i != m);
                order.insert(0, m);
                if self.preemptions >= self.cfg.preemptions || order.len() == 1 {
                    return Some(m);
                }
                let c = self.dec.choose(order.len(), Choice::Preempt);
                if c != 0 {
                    self.preemptions += 1;
                }
                return Some(order[c]);
            }
            if order.len() == 1 {
                return Some(order[0]);
            }
            let c = self.dec.choose(order.len(), Choice::Next);
            return Some(order[c]);
        }
    }

    /// Nobody is ready: let time run to the earliest wake-up. False if nobody is blocked.
    fn advance_time(&mut self) -> bool {
        let next = self
            .procs
            .iter()
            .filter_map(|p| match p.run {
                Run::Blocked { until, .. } => Some(until),
                _ => None,
            })
            .min();
        let Some(t) = next else { return false };
        if t > self.cfg.time_limit {
            let waiting: Vec<String> = self
                .procs
                .iter()
                .filter(|p| matches!(p.run, Run::Blocked { .. }))
                .map(|p| p.name.clone())
                .collect();
            let lock = match self.names.get("lock") {
                Some(&i) => format!(
                    "lock file held by {}'s claim",
                    self.procs[self.inodes[i].creator].name
                ),
                None => "no lock file".to_string(),
            };
            self.violate(
                ViolationKind::Stuck,
                format!(
                    "still waiting at t={:.1}s: {} ({lock})",
                    t as f64 / SEC as f64,
                    waiting.join(", ")
                ),
            );
            self.abort();
            return false;
        }
        self.now = self.now.max(t);
        // Wake-ups close together may come in any order: waking the near ones too is a
        // decision (counted as a preemption).
        let near = |p: &Proc| matches!(p.run, Run::Blocked { until, early: true, .. } if until > t && until <= t + SLACK);
        let early = self.preemptions < self.cfg.preemptions
            && self.procs.iter().any(near)
            && self.dec.choose(2, Choice::Preempt) == 1;
        if early {
            self.preemptions += 1;
        }
        for p in &mut self.procs {
            if matches!(p.run, Run::Blocked { until, .. } if until <= t) || (early && near(p)) {
                p.run = Run::Ready;
            }
        }
        true
    }

    /// Ends the run: every process still running unwinds at its next step.
    pub(crate) fn abort(&mut self) {
        self.aborted = true;
        for p in &mut self.procs {
            if !matches!(p.run, Run::Done) {
                p.run = Run::Dead;
            }
        }
    }

    /// The lock file changed name (removed or renamed away): wake waiters that watch it.
    pub(crate) fn lock_changed(&mut self) {
        if !self.cfg.local {
            return;
        }
        for p in &mut self.procs {
            if matches!(p.run, Run::Blocked { wake: true, .. }) {
                p.run = Run::Ready;
            }
        }
    }

    /// A fault for a call of kind `op`, if the budget and the menu allow.
    pub(crate) fn fault(&mut self, op: OpKind) -> Option<Fault> {
        if self.faults_used >= self.cfg.faults.budget {
            return None;
        }
        let options: Vec<Fault> = self
            .cfg
            .faults
            .menu
            .iter()
            .copied()
            .filter(|f| f.applies(op))
            .collect();
        if options.is_empty() {
            return None;
        }
        let c = self.dec.choose(options.len() + 1, Choice::Fault);
        (c > 0).then(|| {
            self.faults_used += 1;
            options[c - 1]
        })
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // splitmix64: the library's randomness, a pure function of the run's seed.
        self.rand = self.rand.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rand;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Checks the holders after a step: no two believed holders with unexpired leases.
    pub(crate) fn check_holders(&mut self) {
        let now = self.server_now();
        let live: Vec<usize> = (0..self.procs.len())
            .filter(|&i| {
                let p = &self.procs[i];
                !matches!(p.run, Run::Dead)
                    && p.holding
                        .is_some_and(|ino| self.inodes[ino].lease.is_some_and(|e| e > now))
            })
            .collect();
        if live.len() >= 2 {
            let (a, b) = (live[0], live[1]);
            let kind = if self.procs[a].flufl || self.procs[b].flufl {
                ViolationKind::FluflRace
            } else if let Some(k) = self.limit_hit {
                k
            } else {
                ViolationKind::TwoHolders
            };
            let lease = |i: usize| {
                let ino = self.procs[i].holding.unwrap_or_default();
                let e = self.inodes[ino].lease.unwrap_or_default();
                e.saturating_sub(now) as f64 / SEC as f64
            };
            let what = format!(
                "{} and {} both hold the lock (leases {:.3}s and {:.3}s left in the server's clock)",
                self.procs[a].name,
                self.procs[b].name,
                lease(a),
                lease(b)
            );
            self.violate(kind, what);
        }
    }

    /// Checks a removal by `me` of `name` (the lock file or the break marker): the remover
    /// owns it, or it is expired in the server's clock, or its owner is dead.
    pub(crate) fn check_removal(&mut self, me: usize, name: &str) {
        if self.procs[me].flufl || (name != "lock" && name != "lock.break") {
            return;
        }
        let Some(&ino) = self.names.get(name) else {
            return;
        };
        let owner = self.inodes[ino].creator;
        let same_owner = self.same_owner(owner, me);
        let dead = matches!(self.procs[owner].run, Run::Dead | Run::Done);
        let now = self.server_now();
        let expired = if name == "lock" {
            now >= self.inodes[ino].mtime
        } else {
            // A break marker is stale after its lifetime (5 s by default) from its change time.
            now >= self.inodes[ino].ctime + 5 * u128::from(SEC)
        };
        if !(same_owner || dead || expired) {
            let left = (self.inodes[ino].mtime.saturating_sub(now)) as f64 / SEC as f64;
            // The remover's own lease, as the file says: expired in the server's clock
            // although it believed otherwise.
            let own_expired = self.procs[me]
                .last_claim
                .and_then(|c| self.inodes[c].lease)
                .is_some_and(|e| e <= now);
            let kind = if self.procs[me].late {
                ViolationKind::LeaseLimit
            } else if self.stepped_ahead && own_expired {
                ViolationKind::ClockStep
            } else {
                ViolationKind::UnjustRemoval
            };
            if kind != ViolationKind::UnjustRemoval {
                self.limit_hit = Some(kind);
            }
            self.violate(
                kind,
                format!(
                    "{} removed {name} (the claim of live {}, {left:.3}s before its expiry)",
                    self.procs[me].name, self.procs[owner].name
                ),
            );
        }
    }
}

impl World {
    pub(crate) fn new(ws: Ws) -> World {
        let n = ws.procs.len();
        World {
            ws: Mutex::new(ws),
            turn: (0..n).map(|_| Condvar::new()).collect(),
            base: Instant::now(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Ws> {
        self.ws.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `me` has the turn (or the run is aborted).
    fn wait_turn<'a>(&'a self, mut g: MutexGuard<'a, Ws>, me: usize) -> MutexGuard<'a, Ws> {
        while g.current != Some(me) && !g.aborted {
            g = self.turn[me].wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g
    }

    /// Gives the turn to `next` (or, if nobody can run, ends the run).
    fn hand_to(&self, g: &mut Ws, next: Option<usize>) {
        g.current = next;
        match next {
            Some(n) => self.turn[n].notify_one(),
            None => {
                // Everyone is done or dead: wake whoever still waits (aborted runs).
                for c in &self.turn {
                    c.notify_all();
                }
            }
        }
    }

    /// Waits for `me`'s first turn. False if the run ended first.
    pub(crate) fn first_turn(&self, me: usize) -> bool {
        let g = self.wait_turn(self.lock(), me);
        !(g.aborted || g.procs[me].run == Run::Dead)
    }

    /// Starts the run: the first decision.
    pub(crate) fn start(&self) {
        let mut g = self.lock();
        let first = g.pick(None);
        self.hand_to(&mut g, first);
    }

    /// A scheduling point of `me`: the scheduler may let others run first. Returns with
    /// the turn, or `Err` if `me` must unwind (it crashed, or the run was aborted).
    pub(crate) fn point(&self, me: usize) -> Result<MutexGuard<'_, Ws>, Crashed> {
        let mut g = self.lock();
        if g.procs[me].run == Run::Dead || g.aborted {
            return Err(Crashed);
        }
        g.steps += 1;
        if g.steps > g.cfg.step_limit {
            let what = format!("no end after {} steps", g.cfg.step_limit);
            g.violate(ViolationKind::Livelock, what);
            g.abort();
            self.hand_to(&mut g, None);
            return Err(Crashed);
        }
        let next = g.pick(Some(me));
        if next != Some(me) {
            self.hand_to(&mut g, next);
            g = self.wait_turn(g, me);
        }
        if g.procs[me].run == Run::Dead || g.aborted {
            return Err(Crashed);
        }
        Ok(g)
    }

    /// Blocks `me` until simulated time `until` (or an early wake), letting others run.
    pub(crate) fn block<'a>(
        &'a self,
        mut g: MutexGuard<'a, Ws>,
        me: usize,
        until: Ns,
        wake: bool,
        watch: Option<u32>,
        early: bool,
    ) -> Result<MutexGuard<'a, Ws>, Crashed> {
        // A watched process already gone wakes at once.
        if watch.is_some_and(|pid| g.pid_gone(me, pid)) {
            return Ok(g);
        }
        g.procs[me].run = Run::Blocked {
            until,
            wake,
            watch,
            early,
        };
        let next = g.pick(None);
        self.hand_to(&mut g, next);
        g = self.wait_turn(g, me);
        if g.procs[me].run == Run::Dead || g.aborted {
            return Err(Crashed);
        }
        Ok(g)
    }

    /// `me` crashes: it is dead from now on; the turn goes on.
    pub(crate) fn crash(&self, mut g: MutexGuard<'_, Ws>, me: usize) -> Crashed {
        g.note(me, || "CRASHES".to_string());
        g.procs[me].run = Run::Dead;
        g.procs[me].holding = None;
        g.process_exited(me);
        let next = g.pick(None);
        self.hand_to(&mut g, next);
        Crashed
    }

    /// `me`'s program ended (normally, or by unwinding after a crash).
    pub(crate) fn finish(&self, me: usize, panic: Option<String>) {
        let mut g = self.lock();
        if let Some(msg) = panic {
            let name = g.procs[me].name.clone();
            g.violate(ViolationKind::Panic, format!("{name} panicked: {msg}"));
            g.abort();
            self.hand_to(&mut g, None);
            return;
        }
        if g.procs[me].run == Run::Dead {
            return; // the turn was handed on at the crash
        }
        if g.current != Some(me) {
            return;
        }
        g.procs[me].run = Run::Done;
        g.procs[me].holding = None;
        g.process_exited(me);
        let next = g.pick(None);
        self.hand_to(&mut g, next);
    }

    /// The outcome, once every thread has ended.
    pub(crate) fn into_ws(self) -> Ws {
        self.ws.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ws {
    /// How long what `me` relies on lasts from now, in the server's clock: the break
    /// marker, while it is `me`'s claim; else its own lock's lease.
    pub(crate) fn reliance_left(&self, me: usize) -> u128 {
        let now = self.server_now();
        let Some(claim) = self.procs[me].last_claim else {
            return 0;
        };
        if self.names.get("lock.break") == Some(&claim) {
            // The marker's lifetime (5 s) from its change time.
            return (self.inodes[claim].ctime + 5 * u128::from(SEC)).saturating_sub(now);
        }
        self.inodes[claim]
            .lease
            .map_or(0, |e| e.saturating_sub(now))
    }

    /// Whether process `i`'s program has ended (done or dead).
    pub(crate) fn ended(&self, i: usize) -> bool {
        matches!(self.procs[i].run, Run::Done | Run::Dead)
    }

    /// Whether processes `a` and `b` write claims for the same owner (host and pid).
    pub(crate) fn same_owner(&self, a: usize, b: usize) -> bool {
        self.procs[a].owner == self.procs[b].owner && self.procs[a].host == self.procs[b].host
    }

    /// Whether process `pid`, as seen from `me`'s host, has exited.
    pub(crate) fn pid_gone(&self, me: usize, pid: u32) -> bool {
        let host = self.procs[me].host;
        !self
            .procs
            .iter()
            .any(|p| p.host == host && p.pid == pid && !matches!(p.run, Run::Dead | Run::Done))
    }

    /// A process exited: waiters watching it wake.
    fn process_exited(&mut self, who: usize) {
        let (host, pid) = (self.procs[who].host, self.procs[who].pid);
        if self
            .procs
            .iter()
            .any(|p| p.host == host && p.pid == pid && !matches!(p.run, Run::Dead | Run::Done))
        {
            return;
        }
        for p in &mut self.procs {
            if p.host == host && matches!(p.run, Run::Blocked { watch: Some(w), .. } if w == pid) {
                p.run = Run::Ready;
            }
        }
    }

    /// The files left in the directory: each must belong to a process that crashed.
    pub(crate) fn check_leftovers(&mut self) {
        let mut left = Vec::new();
        for (name, &ino) in &self.names {
            let creator = self.inodes[ino].creator;
            let crashed = |i: usize| self.procs[i].run == Run::Dead;
            // Explained by a crash of a process that writes for the inode's owner, or for
            // the owner a claim-derived name (claim, probe, taken) carries.
            let explained = (0..self.procs.len()).any(|i| {
                crashed(i)
                    && !self.procs[i].passive
                    && (self.same_owner(i, creator)
                        || name.contains(&format!("|{}|", self.procs[i].owner)))
            });
            if !explained {
                left.push(format!("{name} (inode of {})", self.procs[creator].name));
            }
        }
        if !left.is_empty() && !self.aborted {
            self.violate(ViolationKind::Leftover, left.join(", "));
        }
    }

    /// The trace, for printing.
    pub(crate) fn trace_text(&self) -> String {
        let mut s = String::new();
        for l in &self.trace {
            let _ = writeln!(s, "{l}");
        }
        s
    }

    pub(crate) fn new(
        cfg: WorldCfg,
        hosts: Vec<HostSpec>,
        procs: Vec<Proc>,
        dec: Box<dyn Decide>,
        seed: u64,
    ) -> Ws {
        Ws {
            now: 0,
            current: None,
            procs,
            hosts: hosts
                .into_iter()
                .enumerate()
                .map(|(i, spec)| Host {
                    skew: spec.skew,
                    spec,
                    suspended: 0,
                    boot_base: 1000 * SEC + i as u64 * 7 * SEC,
                })
                .collect(),
            names: BTreeMap::new(),
            inodes: Vec::new(),
            fds: BTreeMap::new(),
            server_offset: 0,
            cfg,
            dec,
            faults_used: 0,
            preemptions: 0,
            steps: 0,
            aborted: false,
            violations: Vec::new(),
            limit_hit: None,
            stepped_ahead: false,
            trace: Vec::new(),
            rand: seed,
        }
    }

    /// The decision source, back after the run.
    pub(crate) fn into_decider(self) -> Box<dyn Decide> {
        self.dec
    }
}

impl Proc {
    pub(crate) fn new(name: String, host: usize, pid: u32, flufl: bool, passive: bool) -> Proc {
        Proc {
            name,
            host,
            pid,
            owner: pid,
            start: 5000 + u64::from(pid) * 3,
            passive,
            run: Run::Ready,
            flufl,
            holding: None,
            last_claim: None,
            late: false,
            paused_last: false,
        }
    }
}

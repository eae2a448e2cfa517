//! Scenarios (who runs which program on which host, with which faults) and one run of a
//! scenario under a decision source.

use crate::decide::Decide;
use crate::flufl::FluflLock;
use crate::simfs::SimFs;
use crate::world::{
    Crashed, Fault, Faults, HostSpec, Proc, Violation, World, WorldCfg, Ws, LOCK, MS, SEC,
};
use flufl_lock::sys::Fs;
use flufl_lock::{ErrorKind, Lock, LockBuilder};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a simulated process does.
#[derive(Debug, Clone)]
pub enum Program {
    /// Our library: `rounds` times lock, hold for `hold` (refreshing halfway if `refresh`),
    /// unlock.
    Ours {
        /// Acquisitions.
        rounds: u32,
        /// Time in the critical section.
        hold: u64,
        /// Refresh halfway through the critical section.
        refresh: bool,
    },
    /// flufl.lock 10.0.0's algorithm: `rounds` times lock, hold, unlock.
    Flufl {
        /// Acquisitions.
        rounds: u32,
        /// Time in the critical section.
        hold: u64,
    },
    /// `Lock::break_lock(false)` once (the `flufl-lock break` command).
    Breaker,
    /// A command run by the shell (the passive process `shell`): takes the lock for it and
    /// exits leaving it held (`flufl-lock acquire`).
    Acquire {
        /// Index of the shell process.
        shell: usize,
    },
    /// A later command of the same shell: adopts the lock it holds, keeps it `hold`, unlocks
    /// it (`flufl-lock release`).
    Release {
        /// Index of the shell process.
        shell: usize,
        /// Time it keeps the lock before releasing it.
        hold: u64,
    },
    /// A shell: alive, owning what its commands leave, never scheduled.
    Shell,
}

/// A simulated process: its host, program and start time.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Index into [`Scenario::hosts`].
    pub host: usize,
    /// What it runs.
    pub program: Program,
    /// When it starts (simulated ns).
    pub start: u64,
    /// It starts only once this process (an index) has ended, as a shell runs one command
    /// after another.
    pub after: Option<usize>,
}

/// A scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (the command line's and the regression file's).
    pub name: &'static str,
    /// What it explores, in a sentence.
    pub about: &'static str,
    /// Hosts.
    pub hosts: Vec<HostSpec>,
    /// Processes.
    pub procs: Vec<ProcSpec>,
    /// The world's tunables.
    pub cfg: WorldCfg,
    /// The lifetime our processes and flufl.lock peers use.
    pub lifetime: Duration,
    /// A self-test of the simulation: a broken world in which the exploration must find
    /// two holders.
    pub self_test: bool,
}

/// What one run gave.
#[derive(Debug)]
pub struct Outcome {
    /// Invariants violated (empty: a clean run).
    pub violations: Vec<Violation>,
    /// Scheduling points passed.
    pub steps: u64,
    /// Simulated time at the end, ns.
    pub sim_time: u64,
    /// The decisions made, `(chosen, of how many)`: the exhaustive explorer's next vector
    /// and a replay's input.
    pub record: Vec<(usize, usize)>,
    /// The readable trace, if asked for.
    pub trace: String,
}

/// What a program sees: its filesystem and its place in the world.
struct Ctx {
    world: Arc<World>,
    me: usize,
    fs: Arc<SimFs>,
    lifetime: Duration,
}

impl Ctx {
    fn builder(&self, owner: Option<usize>) -> LockBuilder {
        let (host, pid, local) = {
            let g = self.world.lock();
            let p = &g.procs[owner.unwrap_or(self.me)];
            (g.hosts[p.host].spec.name.clone(), p.pid, g.cfg.local)
        };
        let world = self.world.clone();
        let me = self.me;
        Lock::builder(LOCK)
            .filesystem(self.fs.clone())
            .hostname(host)
            .owner_pid(pid)
            .lifetime(self.lifetime)
            .notify(local)
            .clock(move || {
                let g = world.lock();
                g.wall(g.procs[me].host)
            })
    }

    fn note(&self, what: impl FnOnce() -> String) {
        self.world.lock().note(self.me, what);
    }

    /// The program's own sleep (a critical section, a start delay): its end may come a
    /// little early, as any timer's.
    fn sleep(&self, ns: u64) {
        if ns > 0 {
            self.fs.sleep_for(Duration::from_nanos(ns), true);
        }
    }

    /// The program believes it holds the lock whose claim file is `claim`: the inode at
    /// that name, or (if a breaker removed it meanwhile) the claim it last created. A lock
    /// adopted after it was broken names no inode: nothing to check.
    ///
    /// `acquired`: the lock was just taken by `lock()`, which must not return a lock whose
    /// lease already ran out (unless a pause after its last call explains it).
    fn hold(&self, claim: &Path, acquired: bool) {
        let mut g = self.world.lock();
        let name = claim.file_name().map(|n| n.to_string_lossy().into_owned());
        let ino = name
            .and_then(|n| g.names.get(&n).copied())
            .or(g.procs[self.me].last_claim);
        g.procs[self.me].holding = ino;
        g.note(self.me, || "holds the lock".to_string());
        let now = g.server_now();
        let lease = ino.and_then(|i| g.inodes[i].lease);
        if acquired && !g.procs[self.me].paused_last && lease.is_none_or(|e| e <= now) {
            let me = g.procs[self.me].name.clone();
            let left = lease.map_or(0.0, |e| (e as f64 - now as f64) / SEC as f64);
            // After a forward step of the server's clock, the lease written before it is
            // short: the clock-step limit.
            let kind = if g.stepped_ahead {
                crate::world::ViolationKind::ClockStep
            } else {
                crate::world::ViolationKind::BornExpired
            };
            g.violate(
                kind,
                format!(
                    "{me}'s lock() returned a lock whose lease ran out {:.3}s ago",
                    -left
                ),
            );
        }
        g.check_holders();
    }

    fn unhold(&self) {
        let mut g = self.world.lock();
        g.procs[self.me].holding = None;
        g.note(self.me, || "leaves the critical section".to_string());
    }

    /// An operation failed where the scenario expects success.
    fn failed(&self, what: String) {
        let mut g = self.world.lock();
        let me = g.procs[self.me].name.clone();
        g.violate(crate::world::ViolationKind::Failed, format!("{me}: {what}"));
    }

    /// A lost lock (`NotLocked` from unlock or refresh) is expected only if the lease ran
    /// out: a pause, a slow call or a clock step the scenario allows.
    fn lost(&self, what: &str, e: &dyn std::fmt::Display) {
        self.note(|| format!("{what}: lost the lock: {e}"));
    }
}

fn run_ours(ctx: &Ctx, rounds: u32, hold: u64, refresh: bool) {
    let lock = match ctx.builder(None).build() {
        Ok(l) => l,
        Err(e) => return ctx.failed(format!("build: {e}")),
    };
    for _ in 0..rounds {
        if let Err(e) = lock.lock() {
            return ctx.failed(format!("lock: {e}"));
        }
        ctx.hold(lock.claimfile(), true);
        if refresh {
            ctx.sleep(hold / 2);
            match lock.refresh(None, false) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotLocked => {
                    ctx.unhold();
                    ctx.lost("refresh", &e);
                    let _ = lock.unlock_unconditionally();
                    continue;
                }
                Err(e) => return ctx.failed(format!("refresh: {e}")),
            }
            ctx.sleep(hold - hold / 2);
        } else {
            ctx.sleep(hold);
        }
        ctx.unhold();
        match lock.unlock() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotLocked => ctx.lost("unlock", &e),
            Err(e) => return ctx.failed(format!("unlock: {e}")),
        }
    }
}

fn run_flufl(ctx: &Ctx, rounds: u32, hold: u64) {
    let (host, pid, random) = {
        let mut g = ctx.world.lock();
        let p = &g.procs[ctx.me];
        let (h, pid) = (g.hosts[p.host].spec.name.clone(), p.pid);
        (h, pid, g.next_random())
    };
    let world = ctx.world.clone();
    let me = ctx.me;
    let lock = FluflLock {
        fs: &*ctx.fs,
        lockfile: LOCK.into(),
        claimfile: FluflLock::claim_path(Path::new(LOCK), &host, pid, random),
        lifetime: ctx.lifetime,
        now: Box::new(move || {
            let g = world.lock();
            g.wall(g.procs[me].host)
        }),
    };
    for _ in 0..rounds {
        if let Err(e) = lock.lock() {
            return ctx.failed(format!("flufl lock: {e}"));
        }
        ctx.hold(&lock.claimfile, false);
        ctx.sleep(hold);
        ctx.unhold();
        match lock.unlock() {
            Ok(true) => {}
            Ok(false) => {
                ctx.lost("flufl unlock", &"NotLockedError");
                // As `unlock(unconditionally=True)` would: remove the claim file.
                let _ = ctx.fs.unlink(&lock.claimfile);
            }
            Err(e) => return ctx.failed(format!("flufl unlock: {e}")),
        }
    }
}

fn run_program(ctx: &Ctx, program: &Program) {
    match *program {
        Program::Ours {
            rounds,
            hold,
            refresh,
        } => run_ours(ctx, rounds, hold, refresh),
        Program::Flufl { rounds, hold } => run_flufl(ctx, rounds, hold),
        Program::Breaker => {
            let lock = match ctx.builder(None).build() {
                Ok(l) => l,
                Err(e) => return ctx.failed(format!("build: {e}")),
            };
            match lock.break_lock(false) {
                Ok(outcome) => ctx.note(|| format!("break_lock: {outcome:?}")),
                Err(e) => ctx.failed(format!("break_lock: {e}")),
            }
        }
        Program::Acquire { shell } => {
            let lock = match ctx.builder(Some(shell)).build() {
                Ok(l) => l,
                Err(e) => return ctx.failed(format!("build: {e}")),
            };
            if let Err(e) = lock.lock() {
                return ctx.failed(format!("acquire: {e}"));
            }
            ctx.note(|| "leaves the lock held for its shell".to_string());
            lock.leak();
        }
        Program::Release { shell, hold } => {
            let lock = match ctx.builder(Some(shell)).adopt() {
                Ok(Some(l)) => l,
                // The lock was broken meanwhile (the acquirer paused or crashed): nothing
                // to release, as `flufl-lock release` reports.
                Ok(None) => return ctx.note(|| "nothing to adopt".to_string()),
                Err(e) => return ctx.failed(format!("adopt: {e}")),
            };
            ctx.hold(lock.claimfile(), false);
            ctx.sleep(hold);
            ctx.unhold();
            match lock.unlock() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotLocked => ctx.lost("release", &e),
                Err(e) => ctx.failed(format!("release: {e}")),
            }
        }
        Program::Shell => {}
    }
}

/// Runs `sc` once under `dec`, with `seed` for the library's randomness.
pub fn run(sc: &Scenario, dec: Box<dyn Decide>, seed: u64, trace: bool) -> Outcome {
    let procs: Vec<Proc> = sc
        .procs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let flufl = matches!(p.program, Program::Flufl { .. });
            let passive = matches!(p.program, Program::Shell);
            let prefix = if flufl {
                "F"
            } else if passive {
                "S"
            } else {
                "P"
            };
            let mut proc = Proc::new(
                format!("{prefix}{}", i + 1),
                p.host,
                1001 + i as u32,
                flufl,
                passive,
            );
            if let Program::Acquire { shell } | Program::Release { shell, .. } = p.program {
                proc.owner = 1001 + shell as u32;
            }
            proc
        })
        .collect();
    let mut cfg = sc.cfg.clone();
    cfg.trace = trace;
    let world = Arc::new(World::new(Ws::new(cfg, sc.hosts.clone(), procs, dec, seed)));
    std::thread::scope(|s| {
        for (i, spec) in sc.procs.iter().enumerate() {
            if matches!(spec.program, Program::Shell) {
                continue;
            }
            let world = world.clone();
            let lifetime = sc.lifetime;
            std::thread::Builder::new()
                .name(format!("sim-p{}", i + 1))
                .spawn_scoped(s, move || {
                    let ctx = Ctx {
                        fs: Arc::new(SimFs {
                            world: world.clone(),
                            me: i,
                        }),
                        world: world.clone(),
                        me: i,
                        lifetime,
                    };
                    if !world.first_turn(i) {
                        return;
                    }
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ctx.sleep(spec.start);
                        if let Some(a) = spec.after {
                            while !ctx.world.lock().ended(a) {
                                ctx.sleep(5 * MS);
                            }
                        }
                        run_program(&ctx, &spec.program);
                    }));
                    let panic = match r {
                        Ok(()) => None,
                        Err(p) if p.is::<Crashed>() => None,
                        Err(p) => Some(
                            p.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "a panic".into()),
                        ),
                    };
                    drop(ctx);
                    world.finish(i, panic);
                })
                .expect("spawn a simulated process");
        }
        world.start();
    });
    let world = Arc::into_inner(world).expect("every simulated process has ended");
    let mut ws = world.into_ws();
    ws.check_leftovers();
    let outcome = Outcome {
        violations: std::mem::take(&mut ws.violations),
        steps: ws.steps,
        sim_time: ws.now,
        record: Vec::new(),
        trace: ws.trace_text(),
    };
    let dec = ws.into_decider();
    Outcome {
        record: dec.record().to_vec(),
        ..outcome
    }
}

/// The fault menu of the local scenarios: every fault of a file call that is not a clock's.
pub fn file_faults() -> Vec<Fault> {
    use Fault::*;
    vec![
        LostReply,
        Stale,
        Interrupted,
        CrashBefore,
        CrashAfter,
        Pause,
        Slow,
    ]
}

fn cfg(local: bool, menu: Vec<Fault>, budget: u32, preemptions: u32) -> WorldCfg {
    WorldCfg {
        op_cost: if local { 20_000 } else { 400_000 },
        granularity: 1,
        local,
        faults: Faults {
            menu,
            budget,
            // Past the lifetime (2 s) and the clock margin.
            pause: 3 * SEC,
            step: 3 * SEC,
        },
        preemptions,
        time_limit: 300 * SEC,
        step_limit: 200_000,
        trace: false,
    }
}

/// flufl.lock judges expiry with a 10 s slop: its peers need pauses past lifetime + 10 s.
fn flufl_cfg() -> WorldCfg {
    let mut c = cfg(
        false,
        vec![Fault::Pause, Fault::Slow, Fault::CrashAfter],
        1,
        2,
    );
    c.faults.pause = 13 * SEC;
    c
}

fn host(name: &str, skew: i64) -> HostSpec {
    HostSpec {
        name: name.to_string(),
        skew,
    }
}

/// A flufl.lock 10.0.0 peer on `host`: one round, `hold` in the critical section.
fn flufl(host: usize, hold: u64, start: u64) -> ProcSpec {
    ProcSpec {
        host,
        program: Program::Flufl { rounds: 1, hold },
        start,
        after: None,
    }
}

fn ours(host: usize, rounds: u32, hold: u64, start: u64) -> ProcSpec {
    ProcSpec {
        host,
        program: Program::Ours {
            rounds,
            hold,
            refresh: false,
        },
        start,
        after: None,
    }
}

/// Every scenario, by name.
pub fn scenarios() -> Vec<Scenario> {
    use Fault::*;
    let lifetime = Duration::from_secs(2);
    let hold = 50 * MS;
    let mut all = vec![
        Scenario {
            name: "pair",
            about: "two of our processes on one host, local disk, two rounds each; one fault of a file call",
            hosts: vec![host("a", 0)],
            procs: vec![ours(0, 2, hold, 0), ours(0, 2, hold, 0)],
            cfg: cfg(true, file_faults(), 1, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "trio",
            about: "three of our processes on one host, local disk, one round each; one fault",
            hosts: vec![host("a", 0)],
            procs: vec![ours(0, 1, hold, 0), ours(0, 1, hold, 0), ours(0, 1, hold, 0)],
            cfg: cfg(true, file_faults(), 1, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "nfs",
            about: "two hosts over NFS (skewed wall clocks, no change notification); faults of calls, clocks and suspends",
            hosts: vec![host("a", 0), host("b", 700 * MS as i64)],
            procs: vec![ours(0, 1, hold, 0), ours(1, 1, hold, 0), ours(1, 1, hold, 0)],
            cfg: cfg(
                false,
                vec![LostReply, Stale, CrashAfter, Pause, Slow, Suspend, ServerAhead, ServerBack, WallAhead, WallBack],
                1,
                2,
            ),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "coarse",
            about: "1-second timestamps on the server, two hosts; pauses and slow calls",
            hosts: vec![host("a", 0), host("b", -400 * MS as i64)],
            procs: vec![ours(0, 2, hold, 0), ours(1, 2, hold, 0)],
            cfg: WorldCfg {
                granularity: SEC,
                ..cfg(false, vec![LostReply, CrashAfter, Pause, Slow, Suspend], 1, 2)
            },
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "coarse2",
            about: "2-second timestamps on the server, one host",
            hosts: vec![host("a", 0)],
            procs: vec![ours(0, 2, hold, 0), ours(0, 2, hold, 0)],
            cfg: WorldCfg {
                granularity: 2 * SEC,
                ..cfg(true, vec![CrashAfter, Pause, Slow], 1, 2)
            },
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "refresh",
            about: "a holder that refreshes while a waiter on another host waits; pauses and slow calls around the refresh",
            hosts: vec![host("a", 0), host("b", 300 * MS as i64)],
            procs: vec![
                ProcSpec {
                    host: 0,
                    program: Program::Ours {
                        rounds: 1,
                        hold: 3 * SEC,
                        refresh: true,
                    },
                    start: 0,
                    after: None,
                },
                ours(1, 1, hold, 10 * MS),
            ],
            cfg: cfg(false, vec![LostReply, Stale, Pause, Slow, Suspend, ServerAhead, ServerBack], 1, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "liveness",
            about: "crashed holders recovered by the pid proof on one host, while liveness queries are hidden or unknowable",
            hosts: vec![host("a", 0)],
            procs: vec![ours(0, 1, hold, 0), ours(0, 1, hold, 0), ours(0, 1, hold, 0)],
            cfg: cfg(true, vec![CrashBefore, CrashAfter, Hidden, Unknowable], 2, 1),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "breaker",
            about: "two holders in turn and `flufl-lock break` between them",
            hosts: vec![host("a", 0)],
            procs: vec![
                ours(0, 1, hold, 0),
                ours(0, 1, hold, 0),
                ProcSpec {
                    host: 0,
                    program: Program::Breaker,
                    start: 0,
                    after: None,
                },
            ],
            cfg: cfg(true, vec![CrashAfter, Pause, Slow], 1, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "adopt",
            about: "`flufl-lock acquire` then `release` for one shell (adopt), with a contender",
            hosts: vec![host("a", 0)],
            procs: vec![
                ProcSpec {
                    host: 0,
                    program: Program::Shell,
                    start: 0,
                    after: None,
                },
                ProcSpec {
                    host: 0,
                    program: Program::Acquire { shell: 0 },
                    start: 0,
                    after: None,
                },
                ProcSpec {
                    host: 0,
                    program: Program::Release {
                        shell: 0,
                        hold,
                    },
                    start: 0,
                    after: Some(1),
                },
                ours(0, 1, hold, 0),
            ],
            cfg: cfg(true, vec![CrashAfter, Pause, Slow, LostReply], 1, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "mixed",
            about: "one of our processes and one flufl.lock 10.0.0 peer on two hosts; pauses make locks expire",
            hosts: vec![host("a", 0), host("b", 0)],
            procs: vec![
                ours(0, 1, hold, 0),
                flufl(1, hold, 0),
                ours(0, 1, hold, 0),
            ],
            cfg: flufl_cfg(),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "flufl-pair",
            about: "three flufl.lock 10.0.0 peers (the comparison for `mixed`): its break races itself",
            hosts: vec![host("a", 0), host("b", 0)],
            procs: vec![
                flufl(0, hold, 0),
                flufl(1, hold, 0),
                flufl(1, hold, 0),
            ],
            cfg: flufl_cfg(),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "step",
            about: "a holder and a waiter on two hosts over NFS while the server's clock steps forward past the lease",
            hosts: vec![host("a", 0), host("b", 0)],
            procs: vec![ours(0, 1, 700 * MS, 0), ours(1, 1, hold, 690 * MS)],
            cfg: cfg(false, vec![ServerAhead], 1, 3),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "marker",
            about: "a crashed holder, two breakers; a breaker paused past the marker's lifetime while it holds the marker",
            hosts: vec![host("a", 0), host("b", 0)],
            procs: vec![ours(0, 1, 5 * SEC, 0), ours(1, 1, hold, 10 * MS), ours(1, 1, hold, 10 * MS)],
            cfg: {
                let mut c = cfg(false, vec![LostReply, Stale, CrashAfter, Pause, Slow], 2, 2);
                c.faults.pause = 6 * SEC;
                c
            },
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "skew",
            about: "one of our processes and a flufl.lock peer whose host's clock is 12 s ahead (past its 10 s slop)",
            hosts: vec![host("a", 0), host("b", 12 * SEC as i64)],
            procs: vec![
                ours(0, 1, 500 * MS, 0),
                flufl(1, hold, 10 * MS),
            ],
            cfg: cfg(false, vec![], 0, 2),
            lifetime,
            self_test: false,
        },
        Scenario {
            name: "liar",
            about: "self-test: a broken kernel that says a live holder is gone; the exploration must find two holders",
            hosts: vec![host("a", 0)],
            procs: vec![ours(0, 1, hold, 0), ours(0, 1, hold, 0)],
            cfg: cfg(true, vec![Liar], 2, 1),
            lifetime,
            self_test: true,
        },
    ];
    for s in &mut all {
        s.cfg.faults.menu.sort();
    }
    all
}

/// The scenario called `name`.
pub fn scenario(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}

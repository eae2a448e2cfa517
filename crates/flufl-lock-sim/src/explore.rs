//! Exploration: every schedule within a scenario's bounds (depth first), or seeded random
//! schedules; the counts, and the first failing schedule of each kind of violation.

use crate::decide::{next_schedule, Dfs, Random, Schedule};
use crate::scenario::{run, Outcome, Scenario};
use crate::world::ViolationKind;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How to replay a run: a seed of random exploration or an exhaustive schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// A seed of random exploration.
    Seed(u64),
    /// A choice vector of exhaustive exploration.
    Schedule(Schedule),
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replay::Seed(s) => write!(f, "{s}"),
            Replay::Schedule(s) => write!(f, "{s}"),
        }
    }
}

impl std::str::FromStr for Replay {
    type Err = String;
    fn from_str(s: &str) -> Result<Replay, String> {
        if s.starts_with('x') {
            s.parse().map(Replay::Schedule)
        } else {
            s.parse()
                .map(Replay::Seed)
                .map_err(|_| format!("not a seed (a number) nor a schedule (x...): {s:?}"))
        }
    }
}

/// The library's own randomness in exhaustive runs (claim names, backoff jitter).
pub const EXHAUSTIVE_SEED: u64 = 1;

/// Runs one replay of `sc`.
pub fn replay(sc: &Scenario, r: &Replay, trace: bool) -> Outcome {
    match r {
        Replay::Seed(seed) => run(sc, Box::new(Random::new(*seed)), *seed, trace),
        Replay::Schedule(s) => run(
            sc,
            Box::new(Dfs::replay(s.0.clone())),
            EXHAUSTIVE_SEED,
            trace,
        ),
    }
}

/// What an exploration found.
#[derive(Debug, Default)]
pub struct Stats {
    /// Runs (schedules) explored.
    pub runs: u64,
    /// Whether the exhaustive exploration covered every schedule within the bounds.
    pub complete: bool,
    /// Runs with each kind of violation, and the first such run.
    pub found: BTreeMap<ViolationKind, (u64, Replay, String)>,
    /// Scheduling points passed in all runs.
    pub steps: u64,
    /// Wall time taken.
    pub elapsed: Duration,
}

impl Stats {
    fn add(&mut self, o: &Outcome, how: impl FnOnce() -> Replay) {
        self.runs += 1;
        self.steps += o.steps;
        if o.violations.is_empty() {
            return;
        }
        let r = how();
        for v in &o.violations {
            let e = self
                .found
                .entry(v.kind)
                .or_insert_with(|| (0, r.clone(), v.what.clone()));
            e.0 += 1;
        }
    }

    /// Merges another worker's figures.
    pub fn merge(&mut self, o: Stats) {
        self.runs += o.runs;
        self.steps += o.steps;
        self.elapsed = self.elapsed.max(o.elapsed);
        for (k, (n, r, w)) in o.found {
            let e = self.found.entry(k).or_insert((0, r, w));
            e.0 += n;
        }
    }

    /// Runs that violated an invariant among our own processes (flufl.lock races, the
    /// lease's limit and forward clock steps apart: the honest limits).
    pub fn failures(&self) -> u64 {
        self.found
            .iter()
            .filter(|(k, _)| !k.is_limit())
            .map(|(_, v)| v.0)
            .sum()
    }
}

/// Every schedule of `sc` within its bounds, depth first, at most `limit` runs.
pub fn exhaustive(sc: &Scenario, limit: u64) -> Stats {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut prefix = Some(Vec::new());
    while let Some(p) = prefix {
        if stats.runs >= limit {
            stats.elapsed = start.elapsed();
            return stats;
        }
        let o = run(sc, Box::new(Dfs::replay(p)), EXHAUSTIVE_SEED, false);
        stats.add(&o, || Replay::Schedule(Schedule(o.record.clone())));
        prefix = next_schedule(&o.record);
    }
    stats.complete = true;
    stats.elapsed = start.elapsed();
    stats
}

/// Random schedules of `sc` for each seed in `seeds`.
pub fn random(sc: &Scenario, seeds: impl Iterator<Item = u64>) -> Stats {
    let start = Instant::now();
    let mut stats = Stats::default();
    for seed in seeds {
        let o = run(sc, Box::new(Random::new(seed)), seed, false);
        stats.add(&o, || Replay::Seed(seed));
    }
    stats.elapsed = start.elapsed();
    stats
}

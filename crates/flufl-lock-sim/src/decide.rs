//! Decision sources: who runs next and which fault a call meets. Exhaustive exploration
//! enumerates every choice vector (depth first); random exploration draws each choice from
//! a seeded generator. Either way a run is replayed exactly from what [`Decide::record`]
//! returns.

use flufl_lock_testkit::Rng;
use std::fmt;

/// What a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Switch away from the process that could go on (a preemption); option 0 keeps it.
    Preempt,
    /// Which of the ready processes runs, the last one having blocked.
    Next,
    /// Which fault the call meets; option 0 is none.
    Fault,
}

/// A source of decisions.
pub trait Decide: Send {
    /// One of `n ≥ 2` options; option 0 is the default (no preemption, no fault).
    fn choose(&mut self, n: usize, what: Choice) -> usize;
    /// The choices made in this run, `(chosen, of how many)`.
    fn record(&self) -> &[(usize, usize)];
}

/// Depth-first enumeration of every choice vector: replays a prefix, then takes option 0.
#[derive(Debug, Default, Clone)]
pub struct Dfs {
    made: Vec<(usize, usize)>,
    pos: usize,
}

impl Dfs {
    /// A source that replays `prefix` (chosen, of how many), then takes option 0.
    pub fn replay(prefix: Vec<(usize, usize)>) -> Dfs {
        Dfs {
            made: prefix,
            pos: 0,
        }
    }
}

/// The choice vector after `made` (a run's whole record), depth first: the last choice that
/// has another option takes it, and everything after it is dropped (to be taken as option
/// 0). `None` when every vector has been run.
pub fn next_schedule(made: &[(usize, usize)]) -> Option<Vec<(usize, usize)>> {
    let mut v = made.to_vec();
    while let Some((c, n)) = v.pop() {
        if c + 1 < n {
            v.push((c + 1, n));
            return Some(v);
        }
    }
    None
}

impl Decide for Dfs {
    fn choose(&mut self, n: usize, _what: Choice) -> usize {
        let c = match self.made.get(self.pos) {
            Some(&(c, m)) => {
                // A run is a pure function of its choices: the options are the same again.
                // (A parsed schedule does not know the counts: 0, learned here.)
                assert!(
                    m == 0 || m == n,
                    "non-deterministic run: choice {} had {m} options, now {n}",
                    self.pos
                );
                // A parsed schedule replayed on changed code may name an option that no
                // longer exists there: the last one is taken.
                let c = c.min(n - 1);
                self.made[self.pos] = (c, n);
                c
            }
            None => {
                self.made.push((0, n));
                0
            }
        };
        self.pos += 1;
        c
    }

    fn record(&self) -> &[(usize, usize)] {
        &self.made[..self.pos]
    }
}

/// Random choices from a seed: a preemption with probability `switch`, a fault with
/// probability `fault`, the next process uniformly.
#[derive(Debug, Clone)]
pub struct Random {
    rng: Rng,
    switch: f64,
    fault: f64,
    made: Vec<(usize, usize)>,
}

impl Random {
    /// A source for `seed`: the switch and fault probabilities are themselves drawn from
    /// the seed, so that some runs preempt often and others rarely.
    pub fn new(seed: u64) -> Random {
        let mut rng = Rng::new(seed);
        let switch = [0.02, 0.1, 0.3, 0.6][rng.below(4) as usize];
        let fault = [0.005, 0.02, 0.08][rng.below(3) as usize];
        Random {
            rng,
            switch,
            fault,
            made: Vec::new(),
        }
    }
}

impl Decide for Random {
    fn choose(&mut self, n: usize, what: Choice) -> usize {
        let c = match what {
            Choice::Next => self.rng.below(n as u64) as usize,
            Choice::Preempt if self.rng.chance(self.switch) => {
                1 + self.rng.below(n as u64 - 1) as usize
            }
            Choice::Fault if self.rng.chance(self.fault) => {
                1 + self.rng.below(n as u64 - 1) as usize
            }
            _ => 0,
        };
        self.made.push((c, n));
        c
    }

    fn record(&self) -> &[(usize, usize)] {
        &self.made
    }
}

/// A choice vector in its printed form: `x` and the non-default choices as
/// `position=option`, joined by `,` (every other choice is option 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<(usize, usize)>);

impl Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, &(c, _))| c != 0)
            .map(|(i, (c, _))| format!("{i}={c}"))
            .collect();
        write!(f, "x{}", parts.join(","))
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Schedule, String> {
        let body = s
            .strip_prefix('x')
            .ok_or_else(|| format!("a schedule starts with x: {s:?}"))?;
        let mut v: Vec<(usize, usize)> = Vec::new();
        for p in body.split(',').filter(|p| !p.is_empty()) {
            let bad = || format!("bad choice {p:?} in {s:?} (expected position=option)");
            let (i, c) = p.split_once('=').ok_or_else(bad)?;
            let i: usize = i.parse().map_err(|_| bad())?;
            let c: usize = c.parse().map_err(|_| bad())?;
            if i < v.len() || c == 0 {
                return Err(bad());
            }
            v.resize(i, (0, 0));
            // The option count is not printed: 0 means "learn it" (see `Dfs::choose`).
            v.push((c, 0));
        }
        Ok(Schedule(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Depth-first enumeration visits every vector once, and a schedule prints and parses.
    #[test]
    fn dfs_enumerates_and_schedules_round_trip() {
        // A tree: a 2-way choice, then (after option 1 only) a 3-way choice.
        let mut seen = Vec::new();
        let mut prefix = Some(Vec::new());
        while let Some(p) = prefix {
            let mut d = Dfs::replay(p);
            let a = d.choose(2, Choice::Next);
            let b = if a == 1 {
                d.choose(3, Choice::Fault)
            } else {
                0
            };
            seen.push((a, b));
            prefix = next_schedule(d.record());
        }
        assert_eq!(seen, vec![(0, 0), (1, 0), (1, 1), (1, 2)]);
        let s: Schedule = "x1=2".parse().unwrap();
        assert_eq!(s.0, vec![(0, 0), (2, 0)]);
        assert_eq!(s.to_string(), "x1=2");
        assert_eq!(
            Schedule(vec![(1, 2), (0, 4), (3, 5)]).to_string(),
            "x0=1,2=3"
        );
        assert_eq!("x".parse::<Schedule>().unwrap().0, vec![]);
        assert!("x2=1,1=1".parse::<Schedule>().is_err());
        assert!("x1=0".parse::<Schedule>().is_err());
    }
}

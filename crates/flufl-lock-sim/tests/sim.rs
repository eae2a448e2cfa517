//! The CI slice of the simulation: every scenario explored within fixed bounds (the first
//! schedules depth first, then fixed random seeds), every seed that ever failed, and the
//! proof that the simulated world can fail. The long exploration is
//! `cargo run --release -p flufl-lock-sim -- explore` (see the crate's README).

use flufl_lock_sim::explore::{self, Replay, Stats};
use flufl_lock_sim::scenario::{scenario, scenarios, Scenario};
use flufl_lock_sim::world::ViolationKind;
use std::sync::Mutex;

/// Schedules per scenario in the slice: depth first, then random seeds `1..=RANDOM`.
const EXHAUSTIVE: u64 = 2_000;
const RANDOM: u64 = 1_500;

/// The scenarios that must hold every invariant (the self-test `liar` must not).
fn safe_scenarios() -> Vec<Scenario> {
    scenarios()
        .into_iter()
        .filter(|s| s.name != "liar")
        .collect()
}

fn describe(name: &str, st: &Stats) -> String {
    st.found
        .iter()
        .map(|(k, (n, r, what))| {
            format!("  {k:?} in {n} run(s): flufl-lock-sim replay {name} {r}\n    {what}\n")
        })
        .collect()
}

/// Every scenario, within the slice's bounds, on two threads: no invariant among our own
/// processes is violated (flufl.lock's races and the lease's limit are reported, not
/// failures).
#[test]
fn every_scenario_keeps_its_invariants() {
    let list = safe_scenarios();
    let jobs: Vec<(usize, bool)> = (0..list.len())
        .flat_map(|i| [(i, true), (i, false)])
        .collect();
    let queue = Mutex::new(jobs.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let job = queue.lock().unwrap().next();
                let Some((i, ex)) = job else { return };
                let st = if ex {
                    explore::exhaustive(&list[i], EXHAUSTIVE)
                } else {
                    explore::random(&list[i], 1..=RANDOM)
                };
                results.lock().unwrap().push((i, ex, st));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut report = String::new();
    let mut total = 0;
    for (i, ex, st) in &results {
        total += st.runs;
        // Every job ran its schedules: the bounds are not silently cut.
        if *ex {
            assert!(
                st.runs == EXHAUSTIVE || st.complete,
                "{}: {} runs",
                list[*i].name,
                st.runs
            );
        } else {
            assert_eq!(st.runs, RANDOM, "{}", list[*i].name);
        }
        if st.failures() > 0 {
            report.push_str(&describe(list[*i].name, st));
        }
    }
    assert!(report.is_empty(), "invariants violated:\n{report}");
    assert!(
        total >= list.len() as u64 * RANDOM,
        "{total} schedules explored"
    );
}

/// Every seed or schedule that ever failed, replayed: clean now.
#[test]
fn regressions_stay_fixed() {
    let text = include_str!("../regressions.txt");
    let mut n = 0;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (name, how) = line.split_once(' ').expect("`scenario seed-or-schedule`");
        let sc = scenario(name).unwrap_or_else(|| panic!("no scenario {name:?}"));
        let r: Replay = how.trim().parse().unwrap();
        let o = explore::replay(&sc, &r, true);
        let bad: Vec<_> = o.violations.iter().filter(|v| !v.kind.is_limit()).collect();
        assert!(bad.is_empty(), "{name} {how}: {bad:?}\n{}", o.trace);
        n += 1;
    }
    assert!(n >= 5, "the regression file lists {n} cases");
}

/// The world can fail: with a kernel that says a live holder is gone, the exhaustive
/// exploration finds two holders and prints the schedule that shows it.
#[test]
fn a_broken_kernel_lets_two_holders_in_and_the_schedule_shows_it() {
    let sc = scenario("liar").unwrap();
    let st = explore::exhaustive(&sc, 10_000);
    assert!(
        st.complete,
        "the self-test scenario is small enough to explore whole"
    );
    let (n, r, what) = st
        .found
        .get(&ViolationKind::TwoHolders)
        .unwrap_or_else(|| panic!("no two holders found: {:?}", st.found));
    assert!(*n > 0 && what.contains("both hold"), "{what}");
    let again = explore::replay(&sc, r, true);
    assert!(
        again
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::TwoHolders),
        "the replay shows it again"
    );
    assert!(
        again.trace.contains("[fault: liar] process(")
            && again.trace.contains("holds the lock")
            && again.trace.contains("TwoHolders"),
        "the trace names the step:\n{}",
        again.trace
    );
}

/// flufl.lock's own algorithm (breaking without the marker) lets two holders in: a seed
/// found by random exploration, replayed.
#[test]
fn flufl_locks_break_race_is_found() {
    let sc = scenario("flufl-pair").unwrap();
    let o = explore::replay(&sc, &Replay::Seed(13_045), true);
    assert!(
        o.violations
            .iter()
            .any(|v| v.kind == ViolationKind::FluflRace),
        "{:?}\n{}",
        o.violations,
        o.trace
    );
}

/// A run is a pure function of its seed or schedule: replayed twice, the same trace; a
/// schedule prints in a form that replays.
#[test]
fn replays_are_exact() {
    for name in ["nfs", "marker", "mixed"] {
        let sc = scenario(name).unwrap();
        for seed in [3, 17] {
            let a = explore::replay(&sc, &Replay::Seed(seed), true);
            let b = explore::replay(&sc, &Replay::Seed(seed), true);
            assert!(!a.trace.is_empty());
            assert_eq!(a.trace, b.trace, "{name} seed {seed}");
            assert_eq!(a.record, b.record);
        }
    }
    // A schedule that preempts at the first point where two processes are ready.
    let sc = scenario("pair").unwrap();
    let base = explore::replay(&sc, &"x".parse().unwrap(), false);
    let at = base.record.iter().position(|&(_, n)| n >= 2).unwrap();
    let mut choices = base.record[..=at].to_vec();
    choices[at].0 = 1;
    let printed = flufl_lock_sim::decide::Schedule(choices).to_string();
    assert_eq!(printed, format!("x{at}=1"));
    let first = explore::replay(&sc, &printed.parse().unwrap(), true);
    let second = explore::replay(&sc, &printed.parse().unwrap(), true);
    assert_eq!(first.trace, second.trace);
    assert_ne!(first.record, base.record, "the choice changed the run");
}

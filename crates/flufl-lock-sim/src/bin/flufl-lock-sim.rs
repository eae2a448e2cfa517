//! `flufl-lock-sim`: explore scenarios, replay a failing seed or schedule.
//!
//! ```text
//! flufl-lock-sim list
//! flufl-lock-sim explore [--scenario NAME]... [--exhaustive N] [--random N] [--first-seed S] [--jobs J]
//! flufl-lock-sim replay SCENARIO SEED|SCHEDULE
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use flufl_lock_sim::explore::{self, Replay, Stats};
use flufl_lock_sim::scenario::{scenario, scenarios, Scenario};
use std::process::ExitCode;
use std::sync::Mutex;

const USAGE: &str = "usage:
  flufl-lock-sim list
  flufl-lock-sim explore [--scenario NAME]... [--exhaustive N] [--random N] [--first-seed S] [--jobs J]
      every schedule of each scenario within its bounds (at most N runs each; default 60000),
      then N random schedules each (default 20000) from seed S on (default 1), on J threads
      (default: the number of CPUs). Exit status 1 if an invariant among our own processes
      was violated, or a self-test scenario (a deliberately broken world) found nothing.
  flufl-lock-sim replay SCENARIO SEED|SCHEDULE
      runs one schedule again and prints it step by step";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for s in scenarios() {
                println!("{:<11} {}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        Some("explore") => match explore_cmd(&args[1..]) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("flufl-lock-sim: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("replay") if args.len() == 3 => {
            let Some(sc) = scenario(&args[1]) else {
                eprintln!(
                    "flufl-lock-sim: no scenario {:?} (see `flufl-lock-sim list`)",
                    args[1]
                );
                return ExitCode::from(2);
            };
            let r: Replay = match args[2].parse() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("flufl-lock-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let o = explore::replay(&sc, &r, true);
            print!("{}", o.trace);
            println!(
                "-- {} steps, {:.3} s simulated, {} violation(s)",
                o.steps,
                o.sim_time as f64 / 1e9,
                o.violations.len()
            );
            for v in &o.violations {
                println!("{:?}: {}", v.kind, v.what);
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn explore_cmd(args: &[String]) -> Result<ExitCode, String> {
    let mut names = Vec::new();
    let (mut exhaustive, mut random, mut first, mut jobs) = (60_000u64, 20_000u64, 1u64, 0usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: &String| {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {v:?}"))
        };
        match a.as_str() {
            "--scenario" => names.push(val()?.clone()),
            "--exhaustive" => exhaustive = num(val()?)?,
            "--random" => random = num(val()?)?,
            "--first-seed" => first = num(val()?)?,
            "--jobs" => jobs = num(val()?)? as usize,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    let list: Vec<Scenario> = if names.is_empty() {
        scenarios()
    } else {
        names
            .iter()
            .map(|n| scenario(n).ok_or_else(|| format!("no scenario {n:?}")))
            .collect::<Result<_, _>>()?
    };
    if jobs == 0 {
        jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    // Work items: each scenario's exhaustive exploration, and its random seeds in slices.
    #[derive(Clone)]
    enum Item {
        Exhaustive(usize),
        Random(usize, u64, u64),
    }
    let mut items = Vec::new();
    for i in 0..list.len() {
        if exhaustive > 0 {
            items.push(Item::Exhaustive(i));
        }
        let slice = 2_000;
        let mut s = first;
        while s < first + random {
            let end = (s + slice).min(first + random);
            items.push(Item::Random(i, s, end));
            s = end;
        }
    }
    let queue = Mutex::new(items.into_iter());
    let results: Mutex<Vec<(usize, bool, Stats)>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let item = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(item) = item else { return };
                let (i, ex, stats) = match item {
                    Item::Exhaustive(i) => (i, true, explore::exhaustive(&list[i], exhaustive)),
                    Item::Random(i, a, b) => (i, false, explore::random(&list[i], a..b)),
                };
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, ex, stats));
            });
        }
    });
    let wall = started.elapsed();
    let mut by: Vec<(Stats, Stats)> = (0..list.len()).map(|_| Default::default()).collect();
    for (i, ex, st) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        if ex {
            by[i].0 = st;
        } else {
            let cpu = by[i].1.elapsed + st.elapsed;
            by[i].1.merge(st);
            by[i].1.elapsed = cpu;
        }
    }
    println!(
        "{:<11} {:>10} {:>9} {:>10} {:>9} {:>8}  violations",
        "scenario", "exhaustive", "complete", "random", "steps/run", "cpu s"
    );
    let (mut total, mut failures, mut missed) = (0u64, 0u64, Vec::new());
    for (sc, (ex, rnd)) in list.iter().zip(&by) {
        total += ex.runs + rnd.runs;
        if sc.self_test {
            // The broken world must be caught.
            if ex.failures() + rnd.failures() == 0 {
                missed.push(sc.name);
            }
        } else {
            failures += ex.failures() + rnd.failures();
        }
        let runs = (ex.runs + rnd.runs).max(1);
        let mut found = String::new();
        for (label, st) in [("exhaustive", ex), ("random", rnd)] {
            for (k, (n, r, what)) in &st.found {
                found.push_str(&format!(
                    "\n    {label}: {k:?} in {n} run(s); first: flufl-lock-sim replay {} {r}\n      {what}",
                    sc.name
                ));
            }
        }
        println!(
            "{:<11} {:>10} {:>9} {:>10} {:>9} {:>8.1}  {}{}",
            sc.name,
            ex.runs,
            if ex.complete { "yes" } else { "no" },
            rnd.runs,
            (ex.steps + rnd.steps) / runs,
            (ex.elapsed + rnd.elapsed).as_secs_f64(),
            if found.is_empty() { "none" } else { "" },
            found
        );
    }
    println!(
        "total: {total} schedules in {:.1} s wall ({jobs} threads); {failures} run(s) violated an invariant among our own processes",
        wall.as_secs_f64()
    );
    for name in &missed {
        println!("self-test {name}: the broken world was NOT caught");
    }
    Ok(if failures == 0 && missed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `flufl-lock-bench`: flufl_lock side by side with a bare-syscall floor, Python's
//! flufl.lock 10.0.0 and flock(2), in one invocation (project issue 6).
//!
//! ```text
//! cargo run --release -p flufl-lock-bench -- [--quick] [--json PATH] [--only LIST]
//! ```
//!
//! Prints one table (Markdown) on stdout, progress on stderr, and writes every sample to
//! JSON (default `target/bench.json`). See `docs/benchmarks.md`.
//!
//! The same binary is its own worker: `flufl-lock-bench worker KIND PATH LIFETIME_MS`
//! serves a line protocol on stdin/stdout, `flufl-lock-bench loop KIND PATH N` runs N
//! uncontended cycles (for strace); KIND is `ours`, `ours-nfs`, `floor` or `flock`.
//!
//! Modules by job: [`args`] the command line, [`setup`] what a run needs and the machine,
//! [`measure`] the seven measurements (driving [`worker`] processes through [`driver`]),
//! [`report`] the table and the JSON.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod driver;
mod measure;
mod report;
mod setup;
mod util;
mod worker;

use args::{Command, Options, USAGE};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use util::BoxResult;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = args::parse(&args, &repo_root()).and_then(|cmd| match cmd {
        Command::Worker {
            kind,
            path,
            lifetime,
        } => worker::serve(&kind, &path, lifetime),
        Command::Loop { kind, path, n } => worker::run_loop(&kind, &path, n),
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Bench(opts) => bench(&opts),
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flufl-lock-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// Sets up, measures, reports; keeps the scratch directory if a section failed.
fn bench(opts: &Options) -> BoxResult<()> {
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let setup = setup::prepare(&repo_root(), exe, opts.quick)?;
    let results = measure::run_all(&setup.cfg, opts);
    let run = report::Run {
        opts,
        setup: &setup,
        results: &results,
        load_after: setup::loadavg(),
        elapsed: started.elapsed(),
    };
    report::publish(&run)?;
    let dir = &setup.cfg.env.dir;
    if !results.errors.is_empty() {
        return Err(format!(
            "{} section(s) failed; scratch files kept in {}",
            results.errors.len(),
            dir.display()
        )
        .into());
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

//! The command line: the benchmark's options, and the two worker modes the benchmark runs
//! itself in.

use crate::util::BoxResult;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "usage: flufl-lock-bench [--quick] [--json PATH] [--only LIST]

Benchmarks flufl_lock against a bare-syscall floor, Python's flufl.lock 10.0.0 and flock(2);
prints one table and writes JSON (default target/bench.json).

  --quick       shorter runs (about a minute instead of about two)
  --json PATH   where to write the JSON results
  --only LIST   run only these sections (comma-separated: uncontended, syscalls, handoff,
                contention, crash, cli, poll); the others show n/a

The cli section compares `flufl-lock run L -- true` with util-linux's `flock L true`, and
fails without flock(1) (apt-get install -y util-linux).

Environment: FLUFL_PY (python with flufl.lock 10.0.0; default target/interop-venv/bin/python,
made by `bash testbed/interop/setup.sh`), FLUFL_LOCK_CLI (the flufl-lock binary; default:
built with `cargo build --release -p flufl-lock-cli` next to this binary),
FLUFL_BENCH_DIR (scratch directory; default target/bench-tmp, must not be tmpfs for
meaningful figures).";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Run the benchmark.
    Bench(Options),
    /// `-h`, `--help`: print [`USAGE`].
    Help,
    /// `worker KIND PATH LIFETIME_MS`: serve the line protocol on stdin/stdout.
    Worker {
        kind: String,
        path: PathBuf,
        lifetime: Duration,
    },
    /// `loop KIND PATH N`: N uncontended cycles (counted under strace).
    Loop { kind: String, path: PathBuf, n: u64 },
}

/// The benchmark's options.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--quick`: shorter runs.
    pub quick: bool,
    /// `--only LIST`: the sections to run (all when `None`).
    pub only: Option<Vec<String>>,
    /// `--json PATH`: where the JSON goes (default `target/bench.json` under `root`).
    pub json: PathBuf,
}

impl Options {
    /// Whether section `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
    }
}

/// Parses the arguments (without the program name); `root` is the repository's root.
pub fn parse(args: &[String], root: &Path) -> BoxResult<Command> {
    match args.first().map(String::as_str) {
        Some("worker") if args.len() == 4 => Ok(Command::Worker {
            kind: args[1].clone(),
            path: PathBuf::from(&args[2]),
            lifetime: Duration::from_millis(args[3].parse()?),
        }),
        Some("loop") if args.len() == 4 => Ok(Command::Loop {
            kind: args[1].clone(),
            path: PathBuf::from(&args[2]),
            n: args[3].parse()?,
        }),
        _ => parse_options(args, root),
    }
}

fn parse_options(args: &[String], root: &Path) -> BoxResult<Command> {
    let mut o = Options {
        quick: false,
        only: None,
        json: root.join("target/bench.json"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--only" => {
                let list = it.next().ok_or("--only needs a list")?;
                o.only = Some(list.split(',').map(str::to_string).collect());
            }
            "--json" => o.json = PathBuf::from(it.next().ok_or("--json needs a PATH")?),
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}").into()),
        }
    }
    Ok(Command::Bench(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> BoxResult<Command> {
        let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        parse(&args, Path::new("/repo"))
    }

    /// Options, their defaults, and the errors the old parser gave.
    #[test]
    fn options() {
        let Command::Bench(o) = parse_words(&[]).unwrap() else {
            panic!("not a bench")
        };
        assert!(!o.quick && o.only.is_none() && o.runs("poll"));
        assert_eq!(o.json, Path::new("/repo/target/bench.json"));
        let Command::Bench(o) =
            parse_words(&["--quick", "--only", "cli,poll", "--json", "x.json"]).unwrap()
        else {
            panic!("not a bench")
        };
        assert!(o.quick && o.runs("poll") && o.runs("cli") && !o.runs("crash"));
        assert_eq!(o.json, Path::new("x.json"));
        assert!(matches!(parse_words(&["-h"]).unwrap(), Command::Help));
        assert!(parse_words(&["--only"]).is_err());
        assert!(parse_words(&["--json"]).is_err());
        let e = parse_words(&["--bogus"]).unwrap_err().to_string();
        assert!(e.starts_with("unknown argument \"--bogus\"\nusage:"), "{e}");
        // A worker mode with the wrong number of arguments is an unknown argument.
        assert!(parse_words(&["worker", "ours"]).is_err());
    }

    /// The worker modes.
    #[test]
    fn worker_modes() {
        let Command::Worker {
            kind,
            path,
            lifetime,
        } = parse_words(&["worker", "ours", "/x.lck", "1500"]).unwrap()
        else {
            panic!("not a worker")
        };
        assert_eq!((kind.as_str(), path), ("ours", PathBuf::from("/x.lck")));
        assert_eq!(lifetime, Duration::from_millis(1500));
        assert!(matches!(
            parse_words(&["loop", "flock", "/x.lck", "10"]).unwrap(),
            Command::Loop { n: 10, .. }
        ));
        assert!(parse_words(&["loop", "flock", "/x.lck", "ten"]).is_err());
    }
}

//! `flufl-lock-stress`: the reliability harness of flufl-lock (Linux only).
//!
//! ```text
//! flufl-lock-stress coordinator --dir DIR [--workers 8] [--acquisitions 2000]
//!     [--lifetime-ms 1500] [--kill-chance 0.03] [--stop-every-ms 150]
//!     [--stop-min-ms 20] [--stop-max-ms 2*lifetime] [--max-stopped 2] [--margin-ms 1000]
//!     [--hold-max-ms 3] [--think-max-ms 2] [--max-seconds 150] [--min-kills 1]
//!     [--min-stops 1] [--seed N] [--json PATH] [--wait-limit-ms 20000]
//!     [--shared DIR,DIR... [--wrap PREFIX,PREFIX...] [--server-dir DIR]]
//! flufl-lock-stress worker ...        (started by the coordinator)
//! flufl-lock-stress hold --lock P [--lifetime-ms L] [--hold-ms H] [--die] [--nondumpable]
//!     [--exit-main-thread] [--tag T]
//! flufl-lock-stress acquire --lock P [--lifetime-ms L] [--timeout-ms T]
//!     [--wait-for-lock-ms W] [--report-holder] [--try-break] [--tag T]
//! ```
//!
//! `--shared` puts the lock and counter in other directories (the mounts of one shared file
//! system; worker `i` uses the `i mod n`th, started under the `i mod n`th `--wrap` command
//! prefix, words split on whitespace, which must exec the worker); the log and stop file stay
//! in `--dir`. `--server-dir` is that shared directory as the server sees it, where the
//! counter, lock and marker are read and leftovers looked for (default: the first `--shared`).
//!
//! The coordinator exits 0 when every check passed and 1 when one failed; 2 is a usage or
//! set-up error.

// A command-line harness: printing is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[cfg(target_os = "linux")]
fn main() {
    use flufl_lock_stress::{coordinator, probe, util::Args, worker};
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let flags: &[&str] = match cmd.as_str() {
        "hold" => &["die", "nondumpable", "exit-main-thread"],
        "acquire" => &["try-break", "report-holder"],
        _ => &[],
    };
    let result = Args::parse(argv, flags).and_then(|args| match cmd.as_str() {
        "coordinator" => coordinator::main(&args).map(|(code, summary)| {
            print!("{summary}");
            code
        }),
        "worker" => worker::run(&args),
        "hold" => probe::hold(&args),
        "acquire" => probe::acquire(&args),
        other => Err(format!(
            "unknown command {other:?}; expected coordinator, worker, hold or acquire"
        )),
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("flufl-lock-stress {cmd}: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("flufl-lock-stress runs on Linux only");
    std::process::exit(2);
}

//! `flufl-lock`: run a command under an NFS-safe lock, and manage flufl.lock-compatible
//! locks from shell scripts. See `flufl-lock --help`.
//!
//! One job per module: [`args`] defines the command line, [`commands`] the subcommands that
//! manage a lock, [`run`] supervises COMMAND under the lock, [`exit`] holds the exit codes
//! and [`output`] everything printed; on POSIX [`watchdog`] kills COMMAND's group if we die.
//! This file parses and dispatches.

mod args;
mod commands;
mod exit;
mod output;
mod run;
#[cfg(unix)]
mod watchdog;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    output::init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let Exit(code, msg) = Exit::from_error(e);
            output::say(&msg);
            ExitCode::from(code)
        }
    }
}

/// Runs the subcommand; its exit code, or the error that ends it.
fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            timing,
            no_refresh,
            quiet,
            lockfile,
            command,
        } => return run::run(&lockfile, &timing, !no_refresh, quiet, &command),
        Command::Acquire {
            timing,
            owner_pid,
            lockfile,
        } => commands::acquire(&lockfile, &timing, owner_pid)?,
        Command::Release {
            force,
            owner_pid,
            lockfile,
        } => commands::release(&lockfile, force, owner_pid)?,
        Command::Refresh {
            lifetime,
            owner_pid,
            lockfile,
        } => commands::refresh(&lockfile, lifetime, owner_pid)?,
        Command::Status { json, lockfile } => commands::status(&lockfile, json)?,
        Command::Break { force, lockfile } => commands::break_lock(&lockfile, force)?,
        Command::Completions { shell } => commands::completions(shell),
        Command::Man => commands::man()?,
    }
    Ok(ExitCode::SUCCESS)
}

//! The command's surface as trycmd snapshots, `tests/cmd/*.toml`: `--help` of the command
//! and of each subcommand, usage errors (exit 2) and `status` of an unlocked lock. After a
//! deliberate change, `TRYCMD=overwrite cargo test -p flufl-lock-cli --test cli snapshots`
//! rewrites them (then restore the `[..]` wildcards for paths).

/// Every case in tests/cmd matches.
#[test]
fn cmd() {
    trycmd::TestCases::new()
        .register_bin("flufl-lock", trycmd::cargo::cargo_bin!("flufl-lock"))
        // clap wraps help to the terminal's width, else to $COLUMNS, else to 100.
        .env("COLUMNS", "100")
        .case("tests/cmd/*.toml");
}

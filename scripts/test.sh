#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first (apt packages, the
# Python venv with the real flufl.lock, the Windows target, Wine). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "Prerequisites"
missing=()
# gcc, libc6-dev: the suspend shim (LD_PRELOAD); e2fsprogs, mount: the 1-second-timestamp
# filesystem (mkfs.ext4 -I 128, loop mount); util-linux: unshare, setpriv, losetup.
for pkg in strace faketime util-linux mount e2fsprogs gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
rustup target add x86_64-pc-windows-gnu
rustup component add clippy rustfmt >/dev/null 2>&1 || true

step "Formatting, lints (Linux and Windows), docs, dependency policy"
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p flufl-lock -p flufl-lock-cli --target x86_64-pc-windows-gnu --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features -q
# The policy of deny.toml (licenses, one version of each crate, no wildcards), with a pinned
# cargo-deny; it needs no network beyond crates.io (the advisory database is not used).
if ! command -v cargo-deny >/dev/null || [ "$(cargo-deny --version)" != "cargo-deny 0.20.2" ]; then
  cargo install cargo-deny --version 0.20.2 --locked --quiet
fi
cargo deny --exclude-unpublished check licenses bans

step "Minimum Rust version: the two published crates build with Rust 1.85 (rust-version), for Linux and Windows"
rustup toolchain install 1.85 --profile minimal
rustup target add x86_64-pc-windows-gnu --toolchain 1.85
CARGO_TARGET_DIR=target/msrv cargo +1.85 check -p flufl-lock -p flufl-lock-cli --all-features
CARGO_TARGET_DIR=target/msrv cargo +1.85 check -p flufl-lock -p flufl-lock-cli --all-features --target x86_64-pc-windows-gnu

step "Python venv with the real flufl.lock 10.0.0; libfaketime for the skew tests"
bash testbed/interop/setup.sh
sh crates/flufl-lock-stress/setup.sh

step "Linux tests (unit, property, integration, async, CLI, interop, doctests)"
cargo test --workspace --all-features

step "Python package flufl_lock_rs: our tests, flufl.lock 10.0.0's own suite, mixed contention, bench"
bash scripts/test-python.sh

step "Examples"
for example in cron_job long_job shared_with_python; do
  cargo run -q -p flufl-lock --example "$example"
done
cargo run -q -p flufl-lock --features tokio --example async_service

step "Fuzz target builds (run it longer with: cd fuzz && cargo +nightly fuzz run lock_file)"
(cd fuzz && cargo +nightly check --bins -q)

step "Windows tests under Wine"
bash testbed/wine/setup.sh >/dev/null
# shellcheck source=/dev/null
source testbed/wine/env.sh
trap 'wineserver -k 2>/dev/null || true' EXIT
# One persistent wineserver for all the test executables: by default it exits a moment after
# each one, and the next may connect while it is going ("recvmsg: Connection reset by peer").
# Then start Wine's own services with nothing attached, so that they do not inherit (and
# hold open) the output pipe of whichever test starts them first.
wineserver -p </dev/null >/dev/null 2>&1
wine cmd /c exit </dev/null >/dev/null 2>&1
cargo test -p flufl-lock -p flufl-lock-cli --all-features --target x86_64-pc-windows-gnu 2>&1 | tee target/wine-tests.log
grep -E '^test result' target/wine-tests.log | awk '{p+=$4; f+=$6} END {printf "Windows tests under Wine: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0)}'

step "NFS test bed: nfs-ganesha and two FUSE-bridge clients (testbed/nfs)"
cargo build --release -q -p flufl-lock-cli
# Server and each client in its own network namespace. e-scale (issue 15) at N = 20, time-boxed
# (about 2 minutes): fails on an overlap, a lost update or a stuck waiter; prints its targets.
E_NS=20 E_ATTR_TIMEOUTS=1000 E_LOOP_SECS=15 E_WINDOW_S=5 \
  bash testbed/nfs/run.sh --require-cli --netns

step "Packaging"
cargo package -p flufl-lock -p flufl-lock-cli --allow-dirty

step "Done"

#!/usr/bin/env bash
# The Python part of the tests (issue 16): builds the flufl_lock_rs wheel, installs it into
# a venv, and runs
#   1. our own tests of the package (crates/flufl-lock-py/tests: API, threads, Ctrl-C,
#      fork, _now, stubs) and its example;
#   2. flufl.lock 10.0.0's own test suite against it (testbed/python/run_suite.py);
#   3. mixed contention over one lock: our package, the real flufl.lock and the
#      flufl-lock command, then a crashed holder recovered (testbed/python/mixed.py);
#   4. the Python bench, side by side with flufl.lock (testbed/python/bench.py).
#
#   bash scripts/test-python.sh             # all of it (about 3 minutes on 2 cores, 2 once built)
#   bash scripts/test-python.sh --no-bench  # without the bench
#
# Needs python3 (3.11 or newer; PYTHON= picks another), cargo, and PyPI for the pinned
# packages of testbed/python/requirements.txt (into target/python-venv). The real
# flufl.lock comes from testbed/interop/setup.sh (target/interop-venv). Builds go to
# $CARGO_TARGET_DIR (default target/). A missing prerequisite fails with what to install;
# nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
start=$(date +%s)
step() { printf '\n==> python: %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
die() { printf 'test-python: error: %s\n' "$*" >&2; exit 1; }
exec </dev/null

bench=1
for arg in "$@"; do
  case "$arg" in
    --no-bench) bench=0 ;;
    *) die "unknown argument $arg (usage: $0 [--no-bench])" ;;
  esac
done

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET" in /*) ;; *) TARGET="$REPO/$TARGET" ;; esac
VENV="$REPO/target/python-venv"
REQS="$REPO/testbed/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PY="$VENV/bin/python"
WHEELS="$TARGET/wheels"

step "venv with pinned maturin, pytest, sybil, psutil ($VENV)"
base="${PYTHON:-python3}"
command -v "$base" >/dev/null || die "no $base on PATH: install Python 3.11+ (apt-get install python3 python3-venv) or set PYTHON"
"$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$base is older than 3.11; flufl_lock_rs and flufl.lock 10.0.0 need 3.11+"
"$base" -c 'import venv, ensurepip' 2>/dev/null || die "$base has no venv/ensurepip: apt-get install python3-venv"
command -v cargo >/dev/null || die "no cargo on PATH: install Rust (rustup)"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if ! { [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; }; then
  rm -rf "$VENV"
  mkdir -p "$REPO/target"
  "$base" -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$REQS"
  "$PY" -m pip check
  printf '%s\n' "$want" >"$STAMP"
fi
echo "$("$PY" --version), maturin $("$VENV/bin/maturin" --version | cut -d' ' -f2), pytest $("$PY" -c 'import pytest; print(pytest.__version__)')"

step "The real flufl.lock 10.0.0 (testbed/interop/setup.sh)"
FLUFL_PY="$(bash testbed/interop/setup.sh)"
export FLUFL_PY

step "Build the wheel (maturin build --release) and install it"
rm -rf "$WHEELS"
CARGO_TARGET_DIR="$TARGET" "$VENV/bin/maturin" build --release --quiet \
  -m crates/flufl-lock-py/Cargo.toml --out "$WHEELS"
wheel="$(ls "$WHEELS"/flufl_lock_rs-*.whl)"
echo "$wheel ($(du -h "$wheel" | cut -f1))"
"$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps --force-reinstall "$wheel"
"$PY" -c 'import flufl_lock_rs, sys; print("flufl_lock_rs", flufl_lock_rs.__version__, "from", flufl_lock_rs.__file__)'

step "The flufl-lock command, for the mixed-contention test"
CARGO_TARGET_DIR="$TARGET" cargo build -q -p flufl-lock-cli
FLUFL_LOCK_CLI="$TARGET/debug/flufl-lock"
export FLUFL_LOCK_CLI

step "Our tests of the package (crates/flufl-lock-py/tests)"
"$PY" -m pytest -p no:cacheprovider -q crates/flufl-lock-py/tests
"$PY" crates/flufl-lock-py/examples/spool.py

step "flufl.lock 10.0.0's own suite against flufl_lock_rs"
"$PY" testbed/python/run_suite.py "$REPO/target/python-suite"

step "Mixed contention: flufl_lock_rs, flufl.lock and the flufl-lock command on one lock"
"$PY" testbed/python/mixed.py

if [ "$bench" = 1 ]; then
  step "Bench: flufl_lock_rs and flufl.lock side by side"
  "$PY" testbed/python/bench.py
fi

step "Python part done"

#!/usr/bin/env bash
# Set up the Python side of the flufl.lock interop tests (project issue 4).
#
#   bash testbed/interop/setup.sh          # progress on stderr; the venv's python on stdout
#   FLUFL_PY="$(bash testbed/interop/setup.sh)" cargo test -p flufl-lock-interop
#
# Creates the virtual environment $REPO/target/interop-venv with the interpreter named by
# $PYTHON (default python3, which must be 3.11 or newer, as flufl.lock 10.0.0 requires) and
# installs exactly the pinned packages of requirements.txt. A re-run with nothing to do
# takes a fraction of a second: the venv records the hash of the requirements it was built
# from, and is rebuilt when they change or its interpreter is gone.
#
# Needs PyPI (or a wheel directory pip is configured with). Safe as root, with no terminal
# and no stdin (CI).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/target/interop-venv"
REQS="$HERE/requirements.txt"
STAMP="$VENV/.interop-requirements.sha256"
PY="$VENV/bin/python"

log() { printf 'interop-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

exec </dev/null

want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$PY" -c 'import flufl.lock' 2>/dev/null; then
    log "up to date: $VENV"
    printf '%s\n' "$PY"
    exit 0
fi

base="${PYTHON:-python3}"
command -v "$base" >/dev/null || die "no $base on PATH; install Python 3.11+ or set PYTHON"
"$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$base is $("$base" -c 'import sys; print(sys.version.split()[0])'); flufl.lock 10.0.0 needs 3.11+"

log "creating $VENV with $("$base" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
rm -rf "$VENV"
mkdir -p "$REPO/target"
"$base" -m venv "$VENV"
log "installing $(grep -v '^#' "$REQS" | tr '\n' ' ')"
"$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$REQS" >&2
"$PY" -m pip check >&2 || die "the pinned set in $REQS is incomplete or inconsistent"
"$PY" -c 'import importlib.metadata as m, sys; v = m.version("flufl.lock"); sys.exit(v != "10.0.0" and f"flufl.lock is {v}")'
printf '%s\n' "$want" >"$STAMP"
log "ready: $PY"
printf '%s\n' "$PY"

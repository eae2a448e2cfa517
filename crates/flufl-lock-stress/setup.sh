#!/bin/sh
# Installs what the flufl-lock-stress tests need on a fresh Debian or Ubuntu machine, as
# root: libfaketime (Debian package `faketime`, which pulls in `libfaketime`) for the
# clock-skew tests, and util-linux's `unshare` for the namespace tests (normally present).
# Idempotent: does nothing when both are there. The tests run it themselves when libfaketime
# is missing.
set -eu

have_libfaketime() {
    for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 \
             /usr/lib64/faketime/libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1; do
        [ -f "$f" ] && return 0
    done
    return 1
}

missing=""
have_libfaketime && command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: need root to install:$missing" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: no apt-get; install by hand:$missing (libfaketime, unshare)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual reason for "Unable to locate package" on fresh images.
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y --no-install-recommends $missing >/dev/null
}
have_libfaketime || { echo "setup.sh: libfaketime still missing" >&2; exit 1; }
echo "setup.sh: installed$missing" >&2

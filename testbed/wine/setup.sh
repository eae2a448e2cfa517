#!/usr/bin/env bash
# Set up the Windows-under-Wine test bed (project issue 8).
#
#   testbed/wine/setup.sh            # progress on stderr, exports on stdout
#   testbed/wine/setup.sh --check    # also run the smoke test under Wine
#   eval "$(testbed/wine/setup.sh)"  # set up and export WINEPREFIX, WINEDEBUG
#
# What it does, each step skipped when already done (a re-run takes well
# under a second):
#   1. apt-installs mingw-w64 (x86_64) and Wine if they are missing;
#   2. rustup target add x86_64-pc-windows-gnu;
#   3. creates the Wine prefix $REPO/target/wine-prefix (wineboot -i);
#   4. builds testbed/wine/bcryptprimitives.c with mingw and puts the DLL in
#      the prefix's system32, unless this Wine has its own bcryptprimitives;
#   5. when anything changed (or with --check), runs a smoke test under Wine,
#      then stops the prefix's wineserver, so nothing is left running;
#   6. prints the variables a caller must export (or: source env.sh).
#
# Safe as root, with no DISPLAY, no terminal and no stdin (CI).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TARGET_TRIPLE=x86_64-pc-windows-gnu
PREFIX="$REPO/target/wine-prefix"
BUILD="$REPO/target/wine-testbed"
MINGW_CC=x86_64-w64-mingw32-gcc
APT_PACKAGES=(gcc-mingw-w64-x86-64 wine64 wine)

log() { printf 'wine-testbed: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Everything below talks to the user through stderr; stdout carries only the
# export lines at the end, so that eval "$(setup.sh)" works.
exec 3>&1 1>&2
# Never wait on a terminal.
exec </dev/null

export DEBIAN_FRONTEND=noninteractive
export WINEPREFIX="$PREFIX"
export WINEDEBUG=-all
# No Mono/Gecko download prompts (and no network to fetch them anyway).
export WINEDLLOVERRIDES="mscoree,mshtml="
# Headless: make sure Wine does not try to reach some inherited X display.
unset DISPLAY WAYLAND_DISPLAY
: "${HOME:=/root}"; export HOME

# ---- 1. packages -------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi
command -v wine >/dev/null || die "wine not found after install"
command -v "$MINGW_CC" >/dev/null || die "$MINGW_CC not found after install"
WINESERVER="$(command -v wineserver || true)"
if [ -z "$WINESERVER" ]; then
    for c in /usr/lib/wine/wineserver /usr/lib/wine/wineserver64; do
        [ -x "$c" ] && WINESERVER="$c" && break
    done
fi
[ -n "$WINESERVER" ] || die "wineserver not found"

# ---- 2. Rust target ----------------------------------------------------
if command -v rustup >/dev/null; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET_TRIPLE"; then
        log "rustup target add $TARGET_TRIPLE"
        rustup target add "$TARGET_TRIPLE" >/dev/null
    fi
else
    log "warning: no rustup; make sure the $TARGET_TRIPLE standard library is installed"
fi

# ---- 3-5. prefix, DLL ---------------------------------------------------
mkdir -p "$REPO/target" "$BUILD"
# One setup at a time per repository (parallel CI jobs, two shells...).
exec 9>"$REPO/target/wine-prefix.lock"
flock 9

WINE_TIMEOUT=300   # seconds; nothing here should take more than a few

# Whenever this script itself starts Wine, stop this prefix's wineserver on
# the way out (whatever happens) so that setup leaves no process behind.
# The fast path starts no Wine process and so touches no running one.
started_wine=no
cleanup() {
    if [ "$started_wine" = yes ]; then
        "$WINESERVER" -k >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

wine_version="$(wine --version 2>/dev/null || true)"

# Does this Wine ship bcryptprimitives.dll itself (Wine >= 9)?
wine_has_own_bcp=no
for d in /usr/lib/x86_64-linux-gnu/wine/x86_64-windows /usr/lib/wine/x86_64-windows \
         /usr/lib64/wine/x86_64-windows /opt/wine*/lib*/wine/x86_64-windows; do
    if [ -f "$d/bcryptprimitives.dll" ]; then wine_has_own_bcp=yes; break; fi
done

changed=no
if [ ! -f "$PREFIX/system.reg" ] || [ ! -d "$PREFIX/drive_c/windows/system32" ]; then
    log "creating Wine prefix $PREFIX ($wine_version)"
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    t0=$SECONDS
    started_wine=yes
    # (3>&- 9>&-: the wineserver that Wine leaves behind must not hold our
    # stdout, which may be an eval "$(...)" pipe, nor the setup lock.)
    timeout "$WINE_TIMEOUT" wineboot -i >"$BUILD/wineboot.log" 2>&1 3>&- 9>&- \
        || { cat "$BUILD/wineboot.log" >&2; die "wineboot -i failed or timed out"; }
    # Let wineserver write the registry out and exit (a few seconds).
    timeout 60 "$WINESERVER" -w 3>&- 9>&- || "$WINESERVER" -k || true
    [ -f "$PREFIX/system.reg" ] || { cat "$BUILD/wineboot.log" >&2; die "wineboot made no registry"; }
    log "prefix ready in $((SECONDS - t0)) s"
    changed=yes
fi

SYS32="$PREFIX/drive_c/windows/system32"
if [ "$wine_has_own_bcp" = no ]; then
    src="$HERE/bcryptprimitives.c"
    def="$HERE/bcryptprimitives.def"
    dll="$BUILD/bcryptprimitives.dll"
    if [ ! -f "$dll" ] || [ "$src" -nt "$dll" ] || [ "$def" -nt "$dll" ]; then
        log "building stand-in bcryptprimitives.dll"
        "$MINGW_CC" -O2 -Wall -Wextra -shared -s -static-libgcc \
            -o "$dll.tmp" "$src" "$def" -ladvapi32
        mv -f "$dll.tmp" "$dll"
    fi
    if ! cmp -s "$dll" "$SYS32/bcryptprimitives.dll"; then
        log "installing bcryptprimitives.dll into $SYS32"
        cp -f "$dll" "$SYS32/bcryptprimitives.dll"
        changed=yes
    fi
else
    # A stand-in left from an older Wine would shadow the real one.
    if [ -f "$SYS32/bcryptprimitives.dll" ] && [ -f "$BUILD/bcryptprimitives.dll" ] \
        && cmp -s "$BUILD/bcryptprimitives.dll" "$SYS32/bcryptprimitives.dll"; then
        log "this Wine has its own bcryptprimitives.dll; removing the stand-in"
        rm -f "$SYS32/bcryptprimitives.dll"
        changed=yes
    fi
fi

# Smoke test when something changed (or when asked with --check): the DLL
# loads under Wine and ProcessPrng works.  Without it every Rust test
# executable would exit with status 53 before main().
if [ "$changed" = yes ] || [ "${1:-}" = --check ]; then
    smoke="$BUILD/smoke.exe"
    if [ ! -f "$smoke" ] || [ "$HERE/smoke.c" -nt "$smoke" ]; then
        "$MINGW_CC" -O2 -Wall -s -o "$smoke.tmp" "$HERE/smoke.c"
        mv -f "$smoke.tmp" "$smoke"
    fi
    started_wine=yes
    timeout "$WINE_TIMEOUT" wine "$smoke" >&2 3>&- 9>&- || die "smoke test failed under Wine (status $?)"
fi

# ---- 6. what the caller must export ------------------------------------
cat >&3 <<EOT
export WINEPREFIX='$PREFIX'
export WINEDEBUG=-all
export WINEDLLOVERRIDES='mscoree,mshtml='
EOT
log "ready: source testbed/wine/env.sh (or eval the lines above), then"
log "  cargo test --target $TARGET_TRIPLE"

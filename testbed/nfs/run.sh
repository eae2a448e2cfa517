#!/usr/bin/env bash
# NFS test bed for flufl-lock: nfs-ganesha serving NFSv3 on loopback, two
# FUSE-to-NFS bridge mounts A and B ("two hosts"), fault injection, and the
# scenarios in scenarios/*.sh. See README.md next to this file.
#
# usage: testbed/nfs/run.sh [options]
#   --only LIST      run only these scenarios (comma list of ids or prefixes: a,c)
#   --list           list the scenarios and exit
#   --up             set everything up, print the environment, and wait until
#                    interrupted (for running things by hand); no scenarios
#   --netns          run the server and each bridge in a network namespace of
#                    its own, joined by veth pairs (default: all on loopback)
#   --require-cli    fail (not skip) when the flufl-lock binary is missing
#   --no-py          do not compare with Python's flufl.lock
#   --no-install     do not install missing Debian packages
#   --keep           keep the state directory (logs, export) after the run
#
# Environment: FLUFL_LOCK_BIN (default $REPO/target/release/flufl-lock),
# FLUFL_PY (a python that imports flufl.lock 10.0.0; default
# $REPO/target/interop-venv/bin/python, else a venv made under
# $REPO/target/nfs-testbed/venv), NFS_TESTBED_TIMEOUT (whole run, s, default
# 900), NFS_TESTBED_SCENARIO_TIMEOUT (each scenario, s, default 300; a scenario
# may ask for more, and the whole run's limit grows by as much),
# NFS_TESTBED_BRIDGE_OPTS (default bridge options, default --attr-timeout 0),
# plus each scenario's own knobs (see the scenario files).
set -euo pipefail
set +m

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

ARGS=("$@")
ONLY="" KEEP=0 UP=0 NETNS=${NFS_TESTBED_NETNS:-0} REQUIRE_CLI=${NFS_TESTBED_REQUIRE_CLI:-0} NO_PY=0 INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --list)
            for f in "$HERE"/scenarios/*.sh; do
                printf '%-20s %s\n' "$(basename "$f" .sh)" "$(sed -n '2s/^# *//p' "$f")"
            done
            exit 0 ;;
        --up) UP=1 ;;
        --netns) NETNS=1 ;;
        --require-cli) REQUIRE_CLI=1 ;;
        --no-py) NO_PY=1 ;;
        --no-install) INSTALL=0 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

SCENARIO_TIMEOUT=${NFS_TESTBED_SCENARIO_TIMEOUT:-300}

selected() {
    local id=$1 want
    [ -z "$ONLY" ] && return 0
    for want in ${ONLY//,/ }; do
        case "$id" in "$want"|"$want"-*|"$want"*) return 0 ;; esac
    done
    return 1
}

# A scenario may need longer than SCENARIO_TIMEOUT: one whose header has the line
# "# nfs-testbed: asks-time-limit" prints, when run as `bash FILE --time-limit`
# (nothing else runs), the seconds its knobs need; the larger of the two is its limit.
scenario_limit() {
    local need=0
    if grep -q '^# nfs-testbed: asks-time-limit' "$1"; then
        need=$(timeout 30 bash "$1" --time-limit 2>/dev/null) || need=0
        [[ "$need" =~ ^[0-9]+$ ]] || need=0
    fi
    echo $((need > SCENARIO_TIMEOUT ? need : SCENARIO_TIMEOUT))
}

# ------------------------------------------------------------------ time limit
# The whole run is bounded: re-run this script under timeout(1), whose SIGTERM
# lands in the cleanup trap below. The limit grows by what the selected
# scenarios ask beyond SCENARIO_TIMEOUT.
TOTAL_TIMEOUT=${NFS_TESTBED_TIMEOUT:-900}
if [ -z "${NFS_TESTBED_INNER:-}" ]; then
    extra=0
    if [ "$UP" = 0 ]; then
        for f in "$HERE"/scenarios/*.sh; do
            selected "$(basename "$f" .sh)" || continue
            extra=$((extra + $(scenario_limit "$f") - SCENARIO_TIMEOUT))
        done
    fi
    NFS_TESTBED_INNER=1 NFS_TESTBED_TOTAL_LIMIT=$((TOTAL_TIMEOUT + extra)) \
        exec timeout --kill-after=60 "$((TOTAL_TIMEOUT + extra))" bash "$0" "${ARGS[@]}"
fi
TOTAL_TIMEOUT=${NFS_TESTBED_TOTAL_LIMIT:-$TOTAL_TIMEOUT}
BRIDGE_DEFAULT_OPTS=${NFS_TESTBED_BRIDGE_OPTS:---attr-timeout 0}
T_START=$(date +%s.%N)
log() { printf '[nfs-testbed %s] %s\n' "$(date +%T)" "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || { log "must run as root (FUSE mounts, network namespaces, ganesha)"; exit 2; }

# ------------------------------------------------------------------ state and cleanup
STATE=$(mktemp -d /tmp/nfs-testbed.XXXXXX)
chmod 755 "$STATE"
export TESTBED_STATE=$STATE
export EXPORT_DIR=$STATE/export
export MOUNT_A=$STATE/mnt/A MOUNT_B=$STATE/mnt/B
export BRIDGE_A_STATS=$STATE/bridge-A.stats BRIDGE_B_STATS=$STATE/bridge-B.stats
mkdir -p "$EXPORT_DIR" "$MOUNT_A" "$MOUNT_B" "$STATE/ganesha"
RUN_ID=$(date +%Y%m%d-%H%M%S)
export RESULTS_DIR=$REPO/target/nfs-testbed/results/$RUN_ID
mkdir -p "$RESULTS_DIR"
ln -sfn "$RUN_ID" "$REPO/target/nfs-testbed/results/latest"

GANESHA_PID="" RPCBIND_PID="" NETNS_MADE=""

# Processes this run started carry TESTBED_STATE=$STATE in their environment;
# find them by that and end them by pid (never by name).
kill_leftovers() {
    local keep="$$ ${GANESHA_PID:-} ${RPCBIND_PID:-}"
    python3 - "$STATE" "$keep" <<'EOF' || true
import os, sys, signal, time
token = ('TESTBED_STATE=' + sys.argv[1]).encode()
keep = {int(p) for p in sys.argv[2].split()} | {os.getpid()}
for name in ('bridge-A.pid', 'bridge-B.pid'):
    try:
        keep.add(int(open(os.path.join(sys.argv[1], name)).read()))
    except (OSError, ValueError):
        pass
found = []
for d in os.listdir('/proc'):
    if not d.isdigit() or int(d) in keep:
        continue
    try:
        with open(f'/proc/{d}/environ', 'rb') as f:
            if token in f.read().split(b'\0'):
                found.append(int(d))
    except OSError:
        pass
for pid in found:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
if found:
    print(f'[nfs-testbed] killed {len(found)} leftover process(es): {found}', file=sys.stderr)
EOF
}

stop_pid() {  # stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local pid=$1 name=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$name ($pid) did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# run_bounded SECS CMD...: run CMD in the background and wait for it (so that
# signals reach the traps at once). If it is still running after SECS, stop
# both bridges, which ends any file operation stuck in them, and kill it.
run_bounded() {
    local secs=$1 pid end rc=0
    shift
    "$@" &
    pid=$!
    end=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$end" ]; then
            log "still running after ${secs} s: stopping the bridges to end stuck file operations"
            "$HERE/bridgectl.sh" stop A || true
            "$HERE/bridgectl.sh" stop B || true
            kill -KILL "$pid" 2>/dev/null || true
            kill_leftovers
            break
        fi
        sleep 0.2
    done
    wait "$pid" || rc=$?
    return "$rc"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    log "tearing down"
    # Bridges first: a process stuck in a file operation on a mount cannot be
    # killed until the bridge answers or goes away.
    for b in A B; do timeout 20 "$HERE/bridgectl.sh" stop "$b" || true; done
    kill_leftovers
    stop_pid "$GANESHA_PID" ganesha
    stop_pid "$RPCBIND_PID" rpcbind
    for m in "$MOUNT_A" "$MOUNT_B"; do is_mounted "$m" && umount -l "$m"; done
    # Keep the server's and the bridges' logs with the results.
    mkdir -p "$RESULTS_DIR/logs"
    cp "$STATE"/bridge-*.log "$STATE"/ganesha.log "$STATE"/ganesha.out "$RESULTS_DIR/logs/" 2>/dev/null
    for ns in $NETNS_MADE; do ip netns delete "$ns" 2>/dev/null; done
    if [ -n "$NETNS_MADE" ]; then ip link delete tb-srv-a 2>/dev/null; ip link delete tb-srv-b 2>/dev/null; fi
    if [ "$KEEP" = 1 ]; then
        log "state kept in $STATE"
    elif ! is_mounted "$MOUNT_A" && ! is_mounted "$MOUNT_B"; then
        rm -rf --one-file-system "$STATE"
    else
        log "a mount is still present; not removing $STATE"
    fi
    log "done in $(elapsed "$T_START") s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated (time limit ${TOTAL_TIMEOUT}s?)"; [ "$UP" = 1 ] && exit 0; exit 143' TERM

# ------------------------------------------------------------------ packages
if [ "$INSTALL" = 1 ]; then
    missing=()
    command -v ganesha.nfsd >/dev/null || missing+=(nfs-ganesha)
    dpkg -s nfs-ganesha-vfs >/dev/null 2>&1 || missing+=(nfs-ganesha-vfs)
    command -v rpcbind >/dev/null || missing+=(rpcbind)
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    command -v ip >/dev/null || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Keep the packages' own services (a system ganesha or rpcbind) from starting.
        policy_made=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy_made=1
        fi
        timeout 600 apt-get update -q >"$STATE/apt.log" 2>&1 &&
            timeout 900 apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1 ||
            { tail -n 30 "$STATE/apt.log" >&2; [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d; log "package installation failed"; exit 1; }
        [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d
    fi
fi
for c in ganesha.nfsd rpcbind rpcinfo unshare nsenter setsid python3 cargo; do
    command -v "$c" >/dev/null || { log "missing command: $c"; exit 1; }
done
[ -e /dev/fuse ] || { log "/dev/fuse is missing"; exit 1; }

# ------------------------------------------------------------------ bridge build
log "building nfs-bridge (release)"
export CARGO_TARGET_DIR=$REPO/target/nfs-bridge
( cd "$HERE/bridge" && timeout 1200 cargo build --release --locked -q ) || { log "bridge build failed"; exit 1; }
export BRIDGE_BIN=$CARGO_TARGET_DIR/release/nfs-bridge
unset CARGO_TARGET_DIR

# ------------------------------------------------------------------ lock implementations
export FLUFL_LOCK_BIN=${FLUFL_LOCK_BIN:-$REPO/target/release/flufl-lock}
if [ ! -x "$FLUFL_LOCK_BIN" ]; then
    if [ "$REQUIRE_CLI" = 1 ]; then log "flufl-lock binary not found at $FLUFL_LOCK_BIN"; exit 1; fi
    log "flufl-lock binary not found at $FLUFL_LOCK_BIN: the scenarios will skip our implementation"
fi
py_ok() { [ -x "$1" ] && timeout 30 "$1" -c 'import flufl.lock, sys; sys.exit(flufl.lock.__version__ != "10.0.0")' 2>/dev/null; }
if [ "$NO_PY" = 1 ]; then
    FLUFL_PY=""
elif [ -n "${FLUFL_PY:-}" ]; then
    py_ok "$FLUFL_PY" || { log "FLUFL_PY=$FLUFL_PY does not import flufl.lock 10.0.0"; exit 1; }
elif py_ok "$REPO/target/interop-venv/bin/python"; then
    FLUFL_PY=$REPO/target/interop-venv/bin/python
else
    venv=$REPO/target/nfs-testbed/venv
    if ! py_ok "$venv/bin/python"; then
        log "creating $venv with flufl.lock 10.0.0"
        rm -rf "$venv"
        { timeout 120 python3 -m venv "$venv" && timeout 300 "$venv/bin/pip" install -q flufl.lock==10.0.0; } >"$STATE/pip.log" 2>&1 ||
            { tail -n 20 "$STATE/pip.log" >&2; log "could not install flufl.lock; comparisons skipped"; }
    fi
    FLUFL_PY=$venv/bin/python
    py_ok "$FLUFL_PY" || FLUFL_PY=""
fi
export FLUFL_PY

# ------------------------------------------------------------------ network
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
export NFS_PORT=${NFS_TESTBED_NFS_PORT:-2049} MNT_PORT=${NFS_TESTBED_MNT_PORT:-20048}
SRV_EXEC=()
if [ "$NETNS" = 1 ]; then
    # Three namespaces of our own: the server, host A, host B, joined by veth
    # pairs with addresses only they use (198.18.0.0/15 is reserved for
    # network test beds; nothing here routes anywhere else).
    tag=$(basename "$STATE" | tr -dc 'a-zA-Z0-9' | tail -c 6)
    NS_SRV=tb-srv-$tag NS_A=tb-a-$tag NS_B=tb-b-$tag
    for ns in "$NS_SRV" "$NS_A" "$NS_B"; do ip netns add "$ns"; NETNS_MADE="$NETNS_MADE $ns"; done
    ip link add tb-srv-a netns "$NS_SRV" type veth peer name tb-a netns "$NS_A"
    ip link add tb-srv-b netns "$NS_SRV" type veth peer name tb-b netns "$NS_B"
    ip -n "$NS_SRV" addr add 198.18.1.1/30 dev tb-srv-a
    ip -n "$NS_SRV" addr add 198.18.2.1/30 dev tb-srv-b
    ip -n "$NS_A" addr add 198.18.1.2/30 dev tb-a
    ip -n "$NS_B" addr add 198.18.2.2/30 dev tb-b
    for ns in "$NS_SRV" "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
    ip -n "$NS_SRV" link set tb-srv-a up; ip -n "$NS_SRV" link set tb-srv-b up
    ip -n "$NS_A" link set tb-a up; ip -n "$NS_B" link set tb-b up
    export NETNS_A=/run/netns/$NS_A NETNS_B=/run/netns/$NS_B
    export NFS_SERVER_A=198.18.1.1 NFS_SERVER_B=198.18.2.1
    BIND_ADDR=0.0.0.0
    SRV_EXEC=(nsenter "--net=/run/netns/$NS_SRV")
    log "network namespaces: server $NS_SRV, A $NS_A (198.18.1.2), B $NS_B (198.18.2.2)"
else
    export NFS_SERVER_A=127.0.0.1 NFS_SERVER_B=127.0.0.1
    BIND_ADDR=127.0.0.1
    # Another NFS server on this machine: use other ports.
    if port_busy 127.0.0.1 "$NFS_PORT"; then NFS_PORT=12049; fi
    if port_busy 127.0.0.1 "$MNT_PORT"; then MNT_PORT=12048; fi
fi

# ------------------------------------------------------------------ rpcbind + ganesha
if [ "$NETNS" = 1 ] || ! timeout 3 rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    mkdir -p /run/rpcbind
    "${SRV_EXEC[@]}" rpcbind -f -w </dev/null >"$STATE/rpcbind.log" 2>&1 &
    RPCBIND_PID=$!
    for i in $(seq 1 50); do
        "${SRV_EXEC[@]}" timeout 2 rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break
        kill -0 "$RPCBIND_PID" 2>/dev/null || { cat "$STATE/rpcbind.log" >&2; log "rpcbind exited"; exit 1; }
        sleep 0.1
    done
else
    log "using the rpcbind already running"
fi

sed -e "s|@EXPORT_DIR@|$EXPORT_DIR|g; s|@BIND_ADDR@|$BIND_ADDR|g; s|@STATE_DIR@|$STATE/ganesha|g" \
    -e "s|@NFS_PORT@|$NFS_PORT|g; s|@MNT_PORT@|$MNT_PORT|g" "$HERE/ganesha.conf.in" >"$STATE/ganesha.conf"
"${SRV_EXEC[@]}" ganesha.nfsd -F -L "$STATE/ganesha.log" -f "$STATE/ganesha.conf" -p "$STATE/ganesha.pid" \
    </dev/null >"$STATE/ganesha.out" 2>&1 &
GANESHA_PID=$!
ok=0
for i in $(seq 1 300); do
    if grep -q 'NFS SERVER INITIALIZED' "$STATE/ganesha.log" 2>/dev/null; then ok=1; break; fi
    kill -0 "$GANESHA_PID" 2>/dev/null || break
    sleep 0.1
done
if [ $ok != 1 ]; then
    grep -v -i 'dbus\|krb5\|keytab\|gssapi' "$STATE/ganesha.log" 2>/dev/null | tail -n 20 >&2
    cat "$STATE/ganesha.out" >&2
    log "ganesha did not start within 30 s"
    exit 1
fi
log "ganesha serving $EXPORT_DIR (NFS port $NFS_PORT, MOUNT port $MNT_PORT) after $(elapsed "$T_START") s"

# ------------------------------------------------------------------ bridges
export TESTBED_DIR=$HERE SCENARIOS=$HERE/scenarios BRIDGECTL=$HERE/bridgectl.sh
export ON_A="$HERE/onhost.sh host-a" ON_B="$HERE/onhost.sh host-b"
# shellcheck disable=SC2086
"$BRIDGECTL" start A $BRIDGE_DEFAULT_OPTS
# shellcheck disable=SC2086
"$BRIDGECTL" start B $BRIDGE_DEFAULT_OPTS
# Two hosts, one file system: a link made through A is seen through B.
probe_mounts() {
    local p=$MOUNT_A/probe.$$ q=$MOUNT_B/probe.$$
    echo probe >"$p" && ln "$p" "$p.l" || { log "cannot write through mount A"; return 1; }
    [ "$(stat -c %h "$q")" = 2 ] || { log "mount B does not see the link made through A"; return 1; }
    if ln "$q" "$q.l" 2>/dev/null; then log "a link onto an existing name succeeded"; return 1; fi
    rm -f "$p" "$q.l"
}
run_bounded 30 probe_mounts || { log "the mounts do not behave as one NFS file system"; exit 1; }
log "bridges up: A=$MOUNT_A B=$MOUNT_B ($(elapsed "$T_START") s)"

if [ "$UP" = 1 ]; then
    {
        echo "# The test bed is up. In another shell:"
        for v in TESTBED_STATE EXPORT_DIR MOUNT_A MOUNT_B BRIDGE_A_STATS BRIDGE_B_STATS BRIDGE_BIN BRIDGECTL \
                 TESTBED_DIR SCENARIOS RESULTS_DIR ON_A ON_B FLUFL_LOCK_BIN FLUFL_PY NFS_PORT MNT_PORT \
                 NFS_SERVER_A NFS_SERVER_B NETNS_A NETNS_B; do
            printf 'export %s=%q\n' "$v" "${!v:-}"
        done
        echo "# Interrupt this script (Ctrl-C or SIGTERM) to tear everything down."
    } | tee "$STATE/env.sh"
    while true; do sleep 1; done
fi

# ------------------------------------------------------------------ scenarios
passed=0 failed=0 skipped=0
summary=()
for f in "$HERE"/scenarios/*.sh; do
    id=$(basename "$f" .sh)
    selected "$id" || continue
    log "scenario $id: $(sed -n '2s/^# *//p' "$f")"
    # Default bridges (a scenario sets its own with "$BRIDGECTL" ensure ...).
    # shellcheck disable=SC2086
    "$BRIDGECTL" ensure A $BRIDGE_DEFAULT_OPTS
    # shellcheck disable=SC2086
    "$BRIDGECTL" ensure B $BRIDGE_DEFAULT_OPTS
    limit=$(scenario_limit "$f")
    [ "$limit" = "$SCENARIO_TIMEOUT" ] || log "scenario $id asks for a time limit of $limit s"
    t0=$(date +%s.%N)
    rc=0
    run_bounded $((limit + 30)) bash -c \
        'setsid timeout --kill-after=10 "$1" bash "$2" 2>&1 | tee "$3"; exit "${PIPESTATUS[0]}"' \
        _ "$limit" "$f" "$RESULTS_DIR/$id.log" || rc=$?
    kill_leftovers
    secs=$(elapsed "$t0")
    case $rc in
        0) res=PASS; passed=$((passed + 1)) ;;
        77) if [ "$REQUIRE_CLI" = 1 ]; then res=FAIL; failed=$((failed + 1)); else res=SKIP; skipped=$((skipped + 1)); fi ;;
        124|137) res="FAIL (time limit ${limit}s)"; failed=$((failed + 1)) ;;
        *) res="FAIL (exit $rc)"; failed=$((failed + 1)) ;;
    esac
    summary+=("$(printf '%-22s %-28s %6s s' "$id" "$res" "$secs")")
    log "scenario $id: $res in $secs s"
done

echo
python3 "$SCENARIOS/lockbench.py" summary "$RESULTS_DIR" >"$RESULTS_DIR/summary.md" 2>/dev/null &&
    { echo "Key figures (also in $RESULTS_DIR/summary.md):"; cat "$RESULTS_DIR/summary.md"; echo; }
echo "NFS test bed summary ($RESULTS_DIR):"
for line in "${summary[@]}"; do echo "  $line"; done
echo "nfs-testbed: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

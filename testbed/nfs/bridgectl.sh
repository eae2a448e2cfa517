#!/usr/bin/env bash
# Start, stop and query the test bed's FUSE-to-NFS bridges (mount A, mount B).
#
#   bridgectl.sh start   A|B [bridge options...]   mount (fails if already running)
#   bridgectl.sh restart A|B [bridge options...]   stop if running, then start
#   bridgectl.sh ensure  A|B [bridge options...]   restart only if the options differ
#   bridgectl.sh stop    A|B                       unmount and stop
#   bridgectl.sh stats   A|B                       ask for fresh NFS call counts, print the JSON
#   bridgectl.sh pid     A|B
#
# Bridge options are nfs-bridge's (--attr-timeout MS, --lose-reply SPEC,
# --delay-ms N, ...; see `nfs-bridge --help`). Server, export, mount point and
# stats file come from the environment that run.sh exports:
#   TESTBED_STATE  state directory      BRIDGE_BIN   nfs-bridge binary
#   EXPORT_DIR     exported directory   NFS_SERVER_A / NFS_SERVER_B  server address per bridge
#   NFS_PORT, MNT_PORT                  MOUNT_A, MOUNT_B, BRIDGE_A_STATS, BRIDGE_B_STATS
#   NETNS_A / NETNS_B  (optional) network namespace file a bridge runs in
set -euo pipefail
set +m  # no job control: a background job must not lead its own process group (see setsid below)

die() { echo "bridgectl: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: bridgectl.sh start|restart|ensure|stop|stats|pid A|B [options...]"
cmd=$1; name=$2; shift 2
case "$name" in A|B) ;; *) die "bridge name must be A or B, not $name" ;; esac
: "${TESTBED_STATE:?run from run.sh (TESTBED_STATE unset)}"

mnt_var=MOUNT_$name; stats_var=BRIDGE_${name}_STATS; srv_var=NFS_SERVER_$name; ns_var=NETNS_$name
mnt=${!mnt_var}; stats=${!stats_var}; server=${!srv_var:-127.0.0.1}; netns=${!ns_var:-}
pidf=$TESTBED_STATE/bridge-$name.pid
optf=$TESTBED_STATE/bridge-$name.opts
logf=$TESTBED_STATE/bridge-$name.log

running_pid() {
    local pid
    [ -f "$pidf" ] || return 1
    pid=$(cat "$pidf")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

is_mounted() { awk -v m="$mnt" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

do_stop() {
    local pid i
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "bridgectl: bridge $name ($pid) did not stop, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
    rm -f "$pidf" "$optf"
    if is_mounted; then umount -l "$mnt" 2>/dev/null || true; fi
}

do_start() {
    local pid i
    if running_pid >/dev/null; then die "bridge $name is already running"; fi
    if is_mounted; then umount -l "$mnt" 2>/dev/null || true; fi
    mkdir -p "$mnt"
    local -a pre=()
    [ -n "$netns" ] && pre=(nsenter "--net=$netns")
    # setsid: the bridge must not share the process group of a scenario
    # (whose leftovers run.sh kills as a group).
    setsid "${pre[@]}" "$BRIDGE_BIN" --server "$server" --nfs-port "$NFS_PORT" --mount-port "$MNT_PORT" \
        --export "$EXPORT_DIR" --mountpoint "$mnt" --name "$name" --stats-file "$stats" \
        --machine-name "host-$(echo "$name" | tr AB ab)" "$@" >>"$logf" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidf"
    printf '%s\n' "$*" >"$optf"
    for i in $(seq 1 100); do
        if is_mounted && [ -f "$stats" ]; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$logf" >&2 || true
    do_stop
    die "bridge $name did not mount $mnt within 10 s"
}

case "$cmd" in
    start) rm -f "$stats"; do_start "$@" ;;
    restart) do_stop; rm -f "$stats"; do_start "$@" ;;
    ensure)
        if running_pid >/dev/null && is_mounted && [ "$(cat "$optf" 2>/dev/null)" = "$*" ]; then exit 0; fi
        do_stop; rm -f "$stats"; do_start "$@" ;;
    stop) do_stop ;;
    pid) running_pid || die "bridge $name is not running" ;;
    stats)
        pid=$(running_pid) || die "bridge $name is not running"
        old=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$stats" 2>/dev/null || true)
        kill -USR1 "$pid"
        for i in $(seq 1 50); do
            new=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$stats" 2>/dev/null || true)
            if [ -n "$new" ] && [ "$new" != "$old" ]; then cat "$stats"; exit 0; fi
            sleep 0.1
        done
        die "bridge $name wrote no stats within 5 s" ;;
    *) die "unknown command $cmd" ;;
esac

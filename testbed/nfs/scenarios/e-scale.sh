#!/usr/bin/env bash
# N waiters on one lock through A and B: NFS calls/s while they wait, drain hand-off, service order, looping fairness, mixed and SIGKILLed waiters; ours vs flufl.lock 10.0.0
#
# For each attribute timeout and each N: a holder on A holds the lock while N
# waiters (alternately on B and A) start one by one, each once the previous
# one's claim file is on the export (so the arrival order is known). Parts
# (E_PARTS, comma list):
#   drain  the bridges' NFS calls per second (total, per waiter, by procedure)
#          over E_WINDOW_S while all wait; then the holder releases and each
#          waiter holds the lock once for E_HOLD_MS: hand-off gaps (one
#          holder's exit to the next one's entry, median / max / mean) and the
#          order of service against the order of arrival. At N=1, E_SINGLE_REPS
#          more one-waiter hand-offs.
#   loop   the same queue, but every waiter re-queues after its turn for
#          E_LOOP_SECS: per-process acquisitions, min/max.
#   mix    (first attribute timeout only) E_MIX_N waiters, ours and flufl.lock
#          alternately, in one queue: all served.
#   kill   (first attribute timeout only) E_KILL_N of ours; every 4th is
#          SIGKILLed while waiting; the rest all served, the killed ones' claim
#          files named.
# Every critical section logs enter/exit and increments a counter on the
# mount; the export directory is checked: 0 overlaps, 0 lost updates. Exit 1 on
# an overlap, a lost update, a waiter not served within E_DRAIN_LIMIT_BASE_S +
# N x (hold + E_DRAIN_LIMIT_PER_WAITER_S) of the release (stuck), or a file
# left behind by a served waiter, in any run with our waiters (flufl.lock's own
# queues are reported, not judged). Issue 15's targets are printed as
# PASS/MISS lines and saved in e-scale-targets.json; a MISS does not fail.
#
# Knobs: E_NS ("1 10 50 100"), E_ATTR_TIMEOUTS ("1000 0"), E_LOOP_ATTR_TIMEOUTS
# (attribute timeouts with the loop part, "1000"), E_PARTS (drain,loop,mix,kill),
# E_FLUFL_MAX_N (largest N run with flufl.lock, 100), E_HOLD_MS (100),
# E_LIFETIME_S (waiters' lifetime, 60), E_GAP_MS (40), E_SETTLE_S (3),
# E_WINDOW_S (10), E_LOOP_SECS (60), E_SINGLE_REPS (4), E_MIX_N and E_KILL_N
# (default: the largest N, the mix at most E_FLUFL_MAX_N), E_DRAIN_LIMIT_BASE_S (60),
# E_DRAIN_LIMIT_PER_WAITER_S (2), E_NO_PY=1 (ours only).
# CI (time-boxed, about 100 s; its time limit 406 s): E_NS=20 E_ATTR_TIMEOUTS=1000 E_LOOP_SECS=15 E_WINDOW_S=5
#
# run.sh asks `bash e-scale.sh --time-limit` for the seconds these knobs need
# and raises this scenario's time limit (and the whole run's) to it.
# nfs-testbed: asks-time-limit
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ns=${E_NS:-1 10 50 100}
attrs=${E_ATTR_TIMEOUTS:-1000 0}
loop_attrs=${E_LOOP_ATTR_TIMEOUTS:-1000}
parts=${E_PARTS:-drain,loop,mix,kill}
flufl_max=${E_FLUFL_MAX_N:-100}
nmax=0
for n in $ns; do [ "$n" -gt "$nmax" ] && nmax=$n; done
mix_n=${E_MIX_N:-$((nmax < flufl_max ? nmax : flufl_max))}
kill_n=${E_KILL_N:-$nmax}
py=()
[ "${E_NO_PY:-0}" = 1 ] && py=(--no-py)
common=(--ns "$ns" --flufl-max-n "$flufl_max" --hold-ms "${E_HOLD_MS:-100}" --lifetime "${E_LIFETIME_S:-60}"
    --gap-ms "${E_GAP_MS:-40}" --settle "${E_SETTLE_S:-3}" --window "${E_WINDOW_S:-10}"
    --loop-secs "${E_LOOP_SECS:-60}" --single-reps "${E_SINGLE_REPS:-4}" --mix-n "$mix_n" --kill-n "$kill_n"
    --drain-limit-base "${E_DRAIN_LIMIT_BASE_S:-60}" --drain-limit-per-waiter "${E_DRAIN_LIMIT_PER_WAITER_S:-2}"
    "${py[@]}")

# The parts that run at one attribute timeout: the loop only at E_LOOP_ATTR_TIMEOUTS,
# the mix and the kill only at the first.
parts_at() {
    local attr=$1 first=$2 p out=""
    for p in ${parts//,/ }; do
        case $p in
            loop) [[ " $loop_attrs " == *" $attr "* ]] || continue ;;
            mix|kill) [ "$attr" = "$first" ] || continue ;;
        esac
        out="$out${out:+,}$p"
    done
    echo "$out"
}

first=${attrs%% *}
if [ "${1:-}" = --time-limit ]; then
    total=0
    for attr in $attrs; do
        p=$(parts_at "$attr" "$first")
        [ -n "$p" ] || continue
        s=$(python3 "$HERE/lockbench.py" scale --attr "$attr" --parts "$p" "${common[@]}" --estimate)
        total=$((total + s))
    done
    echo "$total"
    exit 0
fi

echo "e-scale: N = $ns; attribute timeouts: $attrs (loop at: $loop_attrs); parts: $parts;" \
    "flufl.lock up to N = $flufl_max; mix N = $mix_n; kill N = $kill_n; $FLUFL_LOCK_BIN"
rc=0
for attr in $attrs; do
    p=$(parts_at "$attr" "$first")
    [ -n "$p" ] || continue
    "$BRIDGECTL" ensure A --attr-timeout "$attr"
    "$BRIDGECTL" ensure B --attr-timeout "$attr"
    r=0
    python3 "$SCENARIOS/lockbench.py" scale --attr "$attr" --parts "$p" "${common[@]}" || r=$?
    [ $r = 77 ] && exit 77
    [ $r = 0 ] || rc=1
done
python3 "$SCENARIOS/lockbench.py" scale-report || rc=1
echo "e-scale: export directory afterwards (files other than log and counter in each run's directory):"
for d in "$EXPORT_DIR"/e-a*; do
    [ -d "$d" ] || continue
    left=$(cd "$d" && ls -A | grep -v -x -e log -e counter || true)
    [ -z "$left" ] || printf '  %s:\n%s\n' "$(basename "$d")" "$(printf '%s\n' "$left" | sed 's/^/    /')"
done
exit $rc

#!/usr/bin/env bash
# Soak of real processes (issue 14, beside the deterministic simulation): the stress
# coordinator of crates/flufl-lock-stress runs worker processes against one lock, SIGKILLs
# holders inside their critical sections (and respawns them) and SIGSTOPs waiters, then its
# checker asserts no overlap, no lost update, every killed holder's lock recovered, and no
# claim or marker file left.
#
#   1. local disk: --local N acquisitions (default 100000) by 8 workers, lifetime 1.5 s;
#   2. NFS: --nfs N acquisitions (default 10000) through the NFS test bed's two mounts
#      (testbed/nfs/run.sh --only f-soak, scenario testbed/nfs/scenarios/f-soak.sh): 6
#      workers, even ones on mount A as host-a, odd ones on mount B as host-b, lifetime 3 s,
#      the server and each client in its own network namespace (--netns).
#
# usage: scripts/soak.sh [options]        (as root: the NFS part mounts FUSE file systems and
#                                          makes network namespaces; the local part does not)
#   --local N         acquisitions on local disk (default 100000; 0 skips the part)
#   --nfs N           acquisitions through the NFS mounts (default 10000; 0 skips the part)
#   --local-dir DIR   where the local part runs (an empty or new directory on the disk to
#                     test; default OUT/local)
#   --out DIR         logs and figures (default target/soak/YYYYmmdd-HHMMSS)
#   --seed N          random seed of both coordinators (default: a fresh one each)
#   --loopback        NFS part on 127.0.0.1 instead of network namespaces
#   --nfs-attr-ms MS  the NFS bridges' attribute cache time (default 0: always ask the server)
#   -h, --help        this text
#
# Environment: CARGO_TARGET_DIR (default target), where flufl-lock-stress is built (release).
#
# Prints the figures of both parts (also OUT/summary.md, and each part's JSON report in OUT)
# and exits 0 when both passed; 1 on any overlap, lost update, file left, unrecovered kill,
# worker failure or missed count; 2 on a usage error.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL_N=100000 NFS_N=10000 LOCAL_DIR="" OUT="" SEED="" NETNS=1 ATTR_MS=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL_N=$2; shift ;;
        --nfs) NFS_N=$2; shift ;;
        --local-dir) LOCAL_DIR=$2; shift ;;
        --out) OUT=$2; shift ;;
        --seed) SEED=$2; shift ;;
        --loopback) NETNS=0 ;;
        --nfs-attr-ms) ATTR_MS=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in "$LOCAL_N" "$NFS_N" "$ATTR_MS" ${SEED:+"$SEED"}; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "soak.sh: not a number: $v" >&2; exit 2; }
done
if [ "$NFS_N" -gt 0 ] && [ "$(id -u)" != 0 ]; then
    echo "soak.sh: the NFS part needs root (or --nfs 0)" >&2
    exit 2
fi

TARGET=$(realpath -m "${CARGO_TARGET_DIR:-$REPO/target}")
OUT=$(realpath -m "${OUT:-$REPO/target/soak/$(date +%Y%m%d-%H%M%S)}")
LOCAL_DIR=$(realpath -m "${LOCAL_DIR:-$OUT/local}")
mkdir -p "$OUT"
if [ "$LOCAL_N" -gt 0 ] && [ -n "$(ls -A "$LOCAL_DIR" 2>/dev/null)" ]; then
    echo "soak.sh: $LOCAL_DIR is not empty" >&2
    exit 2
fi
log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)

log "building flufl-lock-stress (release) into $TARGET"
(cd "$REPO" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p flufl-lock-stress)
BIN=$TARGET/release/flufl-lock-stress
log "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" status --porcelain 2>/dev/null | grep -q . && echo ' (working tree modified)'); results in $OUT"

seed=()
[ -n "$SEED" ] && seed=(--seed "$SEED")
LOCAL_RC=skipped NFS_RC=skipped LOCAL_WALL="" NFS_WALL=""

# ------------------------------------------------------------------ 1. local disk
if [ "$LOCAL_N" -gt 0 ]; then
    min_kills=$((LOCAL_N / 100 > 0 ? LOCAL_N / 100 : 1))
    min_stops=$((LOCAL_N / 1000 > 0 ? LOCAL_N / 1000 : 1))
    max_s=$((LOCAL_N / 50 > 600 ? LOCAL_N / 50 : 600))
    cmd=("$BIN" coordinator --dir "$LOCAL_DIR" --json "$OUT/local.json"
        --workers 8 --acquisitions "$LOCAL_N" --lifetime-ms 1500 --margin-ms 1000
        --kill-chance 0.03 --stop-every-ms 100 --stop-max-ms 3000
        --min-kills "$min_kills" --min-stops "$min_stops" --max-seconds "$max_s" "${seed[@]}")
    log "part 1, local disk ($(findmnt -n -o FSTYPE -T "$(dirname "$LOCAL_DIR")" 2>/dev/null || echo '?')): $LOCAL_N acquisitions"
    printf '%q ' "${cmd[@]}" >"$OUT/local.cmd"
    t=$(now)
    LOCAL_RC=0
    "${cmd[@]}" 2>&1 | tee "$OUT/local.out" || LOCAL_RC=${PIPESTATUS[0]}
    LOCAL_WALL=$(secs "$t" "$(now)")
    log "part 1: exit $LOCAL_RC after $LOCAL_WALL s"
fi

# ------------------------------------------------------------------ 2. NFS, two clients
if [ "$NFS_N" -gt 0 ]; then
    # Time limits: the run.sh default rate is far above 20 acquisitions/s; give 10 per second.
    scen=$((NFS_N / 10 + 120 > 300 ? NFS_N / 10 + 120 : 300))
    netns=()
    [ "$NETNS" = 1 ] && netns=(--netns)
    log "part 2, NFS through mounts A and B: $NFS_N acquisitions (scenario limit $scen s)"
    rm -f "$OUT/nfs.json"
    cmd=(env SOAK_STRESS_BIN="$BIN" SOAK_NFS_JSON="$OUT/nfs.json" F_ACQUISITIONS="$NFS_N"
        F_MIN_KILLS=$((NFS_N / 100 > 0 ? NFS_N / 100 : 1)) F_MIN_STOPS=$((NFS_N / 1000 > 0 ? NFS_N / 1000 : 1))
        F_ATTR_TIMEOUT_MS="$ATTR_MS" ${SEED:+F_SEED="$SEED"}
        NFS_TESTBED_SCENARIO_TIMEOUT="$scen" NFS_TESTBED_TIMEOUT=$((scen + 600))
        bash "$REPO/testbed/nfs/run.sh" --only f-soak --no-py "${netns[@]}")
    printf '%q ' "${cmd[@]}" >"$OUT/nfs.cmd"
    t=$(now)
    NFS_RC=0
    "${cmd[@]}" 2>&1 | tee "$OUT/nfs.out" || NFS_RC=${PIPESTATUS[0]}
    NFS_WALL=$(secs "$t" "$(now)")
    log "part 2: exit $NFS_RC after $NFS_WALL s (test bed set-up and teardown included)"
    if [ -d "$REPO/target/nfs-testbed/results/latest" ]; then
        ln -sfn "$(readlink -f "$REPO/target/nfs-testbed/results/latest")" "$OUT/nfs-results"
    fi
fi

# ------------------------------------------------------------------ summary
python3 - "$OUT" "$LOCAL_N" "$LOCAL_RC" "$LOCAL_WALL" "$NFS_N" "$NFS_RC" "$NFS_WALL" "$(secs "$T0" "$(now)")" <<'EOF' | tee "$OUT/summary.md"
import json, os, sys
out, local_n, local_rc, local_wall, nfs_n, nfs_rc, nfs_wall, total = sys.argv[1:9]
parts = [('local disk', 'local', int(local_n), local_rc, local_wall),
         ('NFS, mounts A and B', 'nfs', int(nfs_n), nfs_rc, nfs_wall)]
rows, verdicts, bad = [], [], False
reports = {}
for title, key, n, rc, wall in parts:
    if rc == 'skipped':
        verdicts.append(f'{title}: skipped')
        continue
    try:
        r = json.load(open(os.path.join(out, f'{key}.json')))
    except (OSError, ValueError) as e:
        verdicts.append(f'{title}: FAIL (no report: {e}; exit {rc})')
        bad = True
        continue
    reports[title] = (r, n, wall)
    problems = r['violations'][:5] + ([f"... {len(r['violations']) - 5} more violations"] if len(r['violations']) > 5 else [])
    if r['acquisitions'] < n:
        problems.append(f"{r['acquisitions']} acquisitions < {n}")
    for k in ('overlaps', 'lost_updates', 'unrecovered'):
        if r[k]:
            problems.append(f'{k} {r[k]}')
    if r['claim_files_left']:
        problems.append(f"files left: {r['claim_files_left']}")
    if not r['ok']:
        problems.append('the report says not ok')
    if rc != '0':
        problems.append(f'exit {rc}')
    bad |= bool(problems)
    verdicts.append(f'{title}: ' + ('PASS' if not problems else 'FAIL: ' + '; '.join(dict.fromkeys(problems))))
if reports:
    def fig(f):
        return [f(r, n, w) for (r, n, w) in reports.values()]
    def rec(r):
        m = r['recovery_ms']
        return f"{m['min']:.2f} / {m['median']:.2f} / {m['max']:.2f} ms"
    lines = [
        ('workers, lifetime', lambda r, n, w: f"{r['workers']}, {r['lifetime_ms'] / 1000:g} s"),
        ('acquisitions (target)', lambda r, n, w: f"{r['acquisitions']:,} ({n:,})"),
        ('completed critical sections', lambda r, n, w: f"{r['completed_sections']:,}"),
        ('holders SIGKILLed inside their section', lambda r, n, w: f"{r['kills_in_section']:,} ({r['killed_after_counter_write']:,} after writing the counter)"),
        ('waiters SIGSTOPped (longest)', lambda r, n, w: f"{r['stops']:,} ({r['longest_stop_ms']:,} ms)"),
        ('overlaps', lambda r, n, w: f"**{r['overlaps']}**"),
        ('lost updates', lambda r, n, w: f"**{r['lost_updates']}** (counter {r['counter']:,} = {r['completed_sections']:,} + {r['killed_after_counter_write']:,})"),
        ('recovery after a kill: min / median / max', lambda r, n, w: rec(r)),
        ('kills not recovered', lambda r, n, w: f"{r['unrecovered']}"),
        ('longest gap between acquisitions', lambda r, n, w: f"{r['max_gap_between_acquisitions_ms']:.1f} ms"),
        ('files left (claims, markers)', lambda r, n, w: f"{len(r['claim_files_left'])}"),
        ('coordinator wall time', lambda r, n, w: f"{r['elapsed_s']:.1f} s"),
        ('part wall time (build excluded)', lambda r, n, w: f"{float(w):.1f} s" if w else 'n/a'),
        ('seed', lambda r, n, w: f"{r['seed']}"),
    ]
    print('| figure | ' + ' | '.join(reports) + ' |')
    print('|---|' + '---|' * len(reports))
    for name, f in lines:
        print(f'| {name} | ' + ' | '.join(fig(f)) + ' |')
    tb = reports.get('NFS, mounts A and B', ({},))[0].get('testbed')
    if tb:
        print()
        try:
            print(f"NFS part: {tb['clients']}, attribute cache {tb['bridge_attr_timeout_ms']} ms; "
                  f"acquisitions by host {tb['acquisitions_by_host']}, {tb['acquisitions_after_the_other_host']:,} "
                  f"right after the other host's; kills by host {tb['kills_by_host']}, RENAME calls (breaks) by mount "
                  f"{tb['rename_calls_by_mount']}; the acquisition after a kill was on the victim's host "
                  f"{tb['next_acquisition_after_a_kill']['same_host']} times, on the other host "
                  f"{tb['next_acquisition_after_a_kill']['other_host']} times; "
                  f"NFS calls {tb['nfs_calls']} ({tb['nfs_calls_per_acquisition']} per acquisition).")
        except KeyError:
            print(f"NFS part, test bed figures: {tb}")
    print()
for v in verdicts:
    print(f'- {v}')
print(f'\nsoak: {"FAIL" if bad else "PASS"} in {float(total):.0f} s ({out})')
sys.exit(1 if bad else 0)
EOF

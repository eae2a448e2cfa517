#!/usr/bin/env bash
# Soak through both mounts: stress workers on A and B, holders SIGKILLed, waiters SIGSTOPped (run by scripts/soak.sh)
#
# Runs `flufl-lock-stress coordinator` (crates/flufl-lock-stress) with the lock
# and the shared counter on the export: worker i runs as host-a on mount A when
# i is even, as host-b on mount B when it is odd. The coordinator SIGKILLs
# holders inside their critical sections and SIGSTOPs waiters; its log stays on
# local disk (one true order of events), and its checker reads the counter, the
# lock and the leftovers in the export directory itself: zero overlaps, zero
# lost updates, every killed holder's lock recovered within lifetime + margin,
# no claim or marker file left.
#
# Only when SOAK_STRESS_BIN names the flufl-lock-stress binary (scripts/soak.sh
# sets it); otherwise it says so and passes, so that a plain run.sh (CI) does
# not run a soak. Figures: $RESULTS_DIR/f-soak.json (and $SOAK_NFS_JSON when
# set); the log: $RESULTS_DIR/f-soak-log/log.
# Knobs: F_ACQUISITIONS (10000), F_WORKERS (6), F_LIFETIME_MS (3000),
# F_MARGIN_MS (2000), F_KILL_CHANCE (0.03), F_STOP_EVERY_MS (100),
# F_STOP_MAX_MS (2 x lifetime), F_MIN_KILLS (1), F_MIN_STOPS (1),
# F_WAIT_LIMIT_MS (120000), F_ATTR_TIMEOUT_MS (bridge attribute cache, 0),
# F_MAX_SECONDS (default: the scenario time limit less 60 s), F_SEED.
set -euo pipefail
if [ -z "${SOAK_STRESS_BIN:-}" ]; then
    echo "f-soak: not requested (SOAK_STRESS_BIN unset; scripts/soak.sh runs it); nothing run"
    exit 0
fi
[ -x "$SOAK_STRESS_BIN" ] || { echo "f-soak: $SOAK_STRESS_BIN is not executable"; exit 1; }

attr=${F_ATTR_TIMEOUT_MS:-0}
"$BRIDGECTL" ensure A --attr-timeout "$attr"
"$BRIDGECTL" ensure B --attr-timeout "$attr"

lifetime=${F_LIFETIME_MS:-3000}
limit=${NFS_TESTBED_SCENARIO_TIMEOUT:-300}
max_seconds=${F_MAX_SECONDS:-$((limit > 120 ? limit - 60 : limit / 2))}
sub=f-soak
rm -rf "${EXPORT_DIR:?}/$sub"
mkdir -p "$MOUNT_A/$sub"
logdir=$RESULTS_DIR/f-soak-log
rm -rf "$logdir"
json=$RESULTS_DIR/f-soak.json
seed=()
[ -n "${F_SEED:-}" ] && seed=(--seed "$F_SEED")

cmd=("$SOAK_STRESS_BIN" coordinator --dir "$logdir" --json "$json"
    --shared "$MOUNT_A/$sub,$MOUNT_B/$sub" --wrap "$ON_A,$ON_B" --server-dir "$EXPORT_DIR/$sub"
    --workers "${F_WORKERS:-6}" --acquisitions "${F_ACQUISITIONS:-10000}"
    --lifetime-ms "$lifetime" --margin-ms "${F_MARGIN_MS:-2000}"
    --kill-chance "${F_KILL_CHANCE:-0.03}" --stop-every-ms "${F_STOP_EVERY_MS:-100}"
    --stop-max-ms "${F_STOP_MAX_MS:-$((2 * lifetime))}"
    --min-kills "${F_MIN_KILLS:-1}" --min-stops "${F_MIN_STOPS:-1}"
    --wait-limit-ms "${F_WAIT_LIMIT_MS:-120000}" --max-seconds "$max_seconds" "${seed[@]}")
echo "f-soak: $(printf '%q ' "${cmd[@]}")"
# The bridges' NFS call counts before and after (bridgectl stats prints fresh ones).
stats() { "$BRIDGECTL" stats A >"$RESULTS_DIR/f-soak-bridge-$1.A.json" && "$BRIDGECTL" stats B >"$RESULTS_DIR/f-soak-bridge-$1.B.json"; }
stats before
rc=0
"${cmd[@]}" || rc=$?
stats after || true
echo "f-soak: export directory afterwards: $(cd "$EXPORT_DIR/$sub" && ls -A | tr '\n' ' ')"
# What the coordinator does not know: the host of each acquisition (worker i is on A when
# i is even), whether the acquisition after a kill was on the victim's host, and the NFS
# calls each bridge made (a break renames the lock file away: RENAME calls through a mount
# count the breaks made from that host). Added to its JSON as "testbed".
if [ -f "$json" ]; then
    python3 - "$json" "$logdir/log" "$RESULTS_DIR/f-soak-bridge" "$attr" "${NETNS_A:-}" <<'EOF' || rc=1
import json, sys
path, log, stats, attr, netns = sys.argv[1:6]
rep = json.load(open(path))
def host(inst):
    return 'host-' + 'ab'[int(inst.split('.')[0]) % 2]
by_host, kills_by_host = {'host-a': 0, 'host-b': 0}, {'host-a': 0, 'host-b': 0}
changes = same = other = 0
prev, pending = None, []
for line in open(log):
    f = line.split()
    if len(f) < 2 or f[1].startswith('final'):
        continue
    if f[0] == 'A':
        h = host(f[1])
        by_host[h] += 1
        changes += prev is not None and h != prev
        prev = h
        same += sum(1 for k in pending if k == h)
        other += sum(1 for k in pending if k != h)
        pending = []
    elif f[0] == 'K':
        kills_by_host[host(f[1])] += 1
        pending.append(host(f[1]))
calls, by_proc = {}, {}
for h in 'AB':
    try:
        before = json.load(open(f'{stats}-before.{h}.json'))
        after = json.load(open(f'{stats}-after.{h}.json'))
        calls[h] = after['nfs_total'] - before['nfs_total']
        by_proc[h] = {k: v - before['nfs'].get(k, 0) for k, v in after['nfs'].items()
                      if v - before['nfs'].get(k, 0)}
    except (OSError, ValueError, KeyError) as e:
        calls[h] = f'unknown ({e})'
total = sum(v for v in calls.values() if isinstance(v, int))
rep['testbed'] = {
    'clients': 'two FUSE-bridge NFSv3 clients of nfs-ganesha, '
               + ('each in its own network namespace' if netns else 'on loopback'),
    'bridge_attr_timeout_ms': int(attr),
    'acquisitions_by_host': by_host,
    'acquisitions_after_the_other_host': changes,
    'kills_by_host': kills_by_host,
    'next_acquisition_after_a_kill': {'same_host': same, 'other_host': other},
    'rename_calls_by_mount': {h: by_proc.get(h, {}).get('RENAME') for h in 'AB'},
    'nfs_calls': calls,
    'nfs_calls_by_procedure': by_proc,
    'nfs_calls_per_acquisition': round(total / rep['acquisitions'], 1) if rep.get('acquisitions') else None,
}
with open(path, 'w') as out:
    json.dump(rep, out, indent=2)
    out.write('\n')
print('f-soak: testbed figures: ' + json.dumps(rep['testbed']))
EOF
fi
if [ -f "$json" ] && [ -n "${SOAK_NFS_JSON:-}" ]; then cp "$json" "$SOAK_NFS_JSON"; fi
exit $rc

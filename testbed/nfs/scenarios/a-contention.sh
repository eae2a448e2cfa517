#!/usr/bin/env bash
# Mixed contention through both mounts: 2+2 processes, >=500 acquisitions, zero overlaps and lost updates
#
# Knobs: A_TOTAL (acquisitions, default 500), A_WORKERS_A / A_WORKERS_B (2 / 2),
# A_ATTR_TIMEOUT_MS (bridge attribute cache, default 0), A_PY_TOTAL (acquisitions
# by Python's flufl.lock for comparison, default 40; 0 = none).
set -euo pipefail
attr=${A_ATTR_TIMEOUT_MS:-0}
"$BRIDGECTL" ensure A --attr-timeout "$attr"
"$BRIDGECTL" ensure B --attr-timeout "$attr"

rc=0
python3 "$SCENARIOS/lockbench.py" contend --impl cli --label a-contention \
    --total "${A_TOTAL:-500}" --workers-a "${A_WORKERS_A:-2}" --workers-b "${A_WORKERS_B:-2}" \
    --lifetime 30 --timeout 60 --deadline 200 --require-all || rc=$?

if [ -n "${FLUFL_PY:-}" ] && [ "${A_PY_TOTAL:-40}" -gt 0 ]; then
    # The same workload with Python's flufl.lock, for comparison only: its
    # figures are reported, its result does not decide this scenario.
    python3 "$SCENARIOS/lockbench.py" contend --impl py --label a-contention-flufl-lock \
        --total "${A_PY_TOTAL:-40}" --lifetime 30 --timeout 60 --deadline 120 --require-all ||
        echo "(flufl.lock comparison run reported a problem; see above)"
fi
exit $rc

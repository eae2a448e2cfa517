#!/usr/bin/env bash
# Hand-off latency and NFS calls per acquisition over the bridge: ours vs flufl.lock 10.0.0
#
# One process on A and one on B alternate on one lock (critical section: 50 ms,
# no NFS I/O); hand-off = release by one to entry of the other, counted only
# when the other was already waiting. Also one process alone on A (uncontended).
# Knobs: D_PER_WORKER (ours, default 25), D_PY_PER_WORKER (flufl.lock, default 10),
# D_SOLO (uncontended acquisitions, default 20), D_ATTR_TIMEOUT_MS (default 0).
set -euo pipefail
attr=${D_ATTR_TIMEOUT_MS:-0}
"$BRIDGECTL" ensure A --attr-timeout "$attr"
"$BRIDGECTL" ensure B --attr-timeout "$attr"
py=${D_PY_PER_WORKER:-10}
[ -n "${FLUFL_PY:-}" ] || py=0
exec python3 "$SCENARIOS/lockbench.py" handoff --label d-handoff \
    --per-worker "${D_PER_WORKER:-25}" --py-per-worker "$py" --solo "${D_SOLO:-20}"

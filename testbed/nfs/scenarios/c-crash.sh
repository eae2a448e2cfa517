#!/usr/bin/env bash
# A holder on A is SIGKILLed; B breaks its lock after expiry, with attribute caching on (1000 ms)
#
# Also checks that B does not break the lock of a live holder on A whose
# refreshes the attribute cache hides. Knobs: C_ATTR_TIMEOUT_MS (default 1000),
# C_LIFETIME (s, default 4), C_NO_PY=1 to skip the flufl.lock comparison.
set -euo pipefail
attr=${C_ATTR_TIMEOUT_MS:-1000}
"$BRIDGECTL" ensure A --attr-timeout "$attr"
"$BRIDGECTL" ensure B --attr-timeout "$attr"
extra=()
[ "${C_NO_PY:-0}" = 1 ] && extra+=(--no-py)
exec python3 "$SCENARIOS/lockbench.py" crash --label c-crash --lifetime "${C_LIFETIME:-4}" "${extra[@]}"

#!/usr/bin/env bash
# Lost NFS replies on mount A: LINK (and REMOVE, RENAME, CREATE) succeed on the server but report EEXIST/ENOENT
#
# Part 1: every LINK reply on A is lost; each acquisition through A must still
# succeed (the retransmission's EEXIST is resolved by identity), and Python's
# flufl.lock 10.0.0 is run on the same mount to record what it does.
# Part 2: contention through A and B while A loses every 2nd LINK, every 3rd
# REMOVE, every 2nd RENAME and every 3rd exclusive CREATE reply: zero overlaps,
# zero lost updates, every acquisition succeeds.
# Knobs: B_COUNT (part 1 runs, default 10), B_TOTAL (part 2 acquisitions, default 120),
# B_LOSE (part 2 loss rules), B_RESEND_DEMO=0 to skip part 3, B_RESEND_TOTAL (60).
set -euo pipefail
"$BRIDGECTL" ensure B --attr-timeout 0
rc=0

"$BRIDGECTL" restart A --attr-timeout 0 --lose-reply link
python3 "$SCENARIOS/lockbench.py" lost-link --label b-lost-link --count "${B_COUNT:-10}" || rc=$?
[ $rc = 77 ] && exit 77

"$BRIDGECTL" restart A --attr-timeout 0 --lose-reply "${B_LOSE:-link:every=2,remove:every=3,rename:every=2,create:every=3}"
python3 "$SCENARIOS/lockbench.py" contend --impl cli --label b-lost-replies-contention \
    --total "${B_TOTAL:-120}" --lifetime 10 --timeout 20 --deadline 90 --require-all || rc=$?

# Part 3, informational (does not decide the scenario): the same with REMOVE
# really re-sent after a delay, as a retransmission the server's duplicate
# request cache misses. The re-sent REMOVE can delete the lock another client
# has just taken; NFSv3 gives no client a way to prevent that (NFSv4.1
# sessions do), so overlaps here are the protocol's, not the library's.
if [ "${B_RESEND_DEMO:-1}" = 1 ]; then
    "$BRIDGECTL" restart A --attr-timeout 0 --lose-reply remove:every=3:resend --delay-ms 30 --delay-ops remove
    python3 "$SCENARIOS/lockbench.py" contend --impl cli --label b-resend-hazard --report-only \
        --total "${B_RESEND_TOTAL:-60}" --lifetime 10 --timeout 20 --deadline 90 || true
fi

"$BRIDGECTL" restart A --attr-timeout 0
exit $rc

#!/usr/bin/env bash
# The main job: build flufl-lock and run a demo command under a lock from three processes
# at once; they take turns, and `status --json` shows the holder while one runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p flufl-lock-cli
bin=target/release/flufl-lock
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
lock="$dir/demo.lck"
echo "three jobs contend for $lock:"
for job in A B C; do
  "$bin" run --lifetime 5s --timeout 30s "$lock" -- \
    sh -c 'echo "  job '"$job"' holds the lock (flufl-lock pid $PPID) at $(date +%T.%N | cut -c1-12)"; sleep 0.5' &
done
sleep 0.2
echo "status while a job runs:"
"$bin" status --json "$lock" | sed 's/^/  /'
wait
echo "status afterwards:"
"$bin" status "$lock" | sed 's/^/  /'
echo "files left in $dir: $(ls -A "$dir" | wc -l)"

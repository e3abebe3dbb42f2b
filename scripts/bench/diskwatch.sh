#!/usr/bin/env bash
# diskwatch.sh DEV OUT PARENT_PID: every half second, append
# "<epoch ms>\t<sectors written>" of block device DEV (a /proc/diskstats
# name such as vda) to OUT, so that scripts/bench/nbdtable.py can tell how
# many bytes reached the device during each fio job (write amplification).
# Stops by itself when PARENT_PID exits, and after at most 6 hours.
set -euo pipefail
dev=$1 out=$2 parent=$3
for _ in $(seq 43200); do
	kill -0 "$parent" 2>/dev/null || exit 0
	awk -v d="$dev" -v t="$(date +%s%3N)" '$3 == d { print t "\t" $10 }' /proc/diskstats >> "$out"
	sleep 0.5
done

#!/usr/bin/env bash
# `make bench`: object-level benchmark of tsumiki and, in the same run, of
# Ceph (rados bench) through ../shared/anchors/ceph when that folder exists.
#
#   BENCH_DURATION=10s   per small-IO phase (tsumiki)
#   BENCH_CEPH=0         skip Ceph even if the anchor is present
#   BENCH_OUT=DIR        where results go (default /tmp/tsumiki-bench-DATE)
#
# Prints one table per system; tsumiki's table has OSD CPU ms per operation
# and peak RSS per OSD, Ceph's the same figures read from /proc.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
OUT="${BENCH_OUT:-/tmp/tsumiki-bench-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
DUR="${BENCH_DURATION:-10s}"

go build -o bin/tsumiki ./cmd/tsumiki
echo "== tsumiki (3 OSD processes, size 3, loopback) =="
go run ./scripts/bench/objectbench -bin bin/tsumiki -duration "$DUR" | tee "$OUT/tsumiki.md"

ANCHOR="$(cd .. && pwd)/shared/anchors/ceph"
if [[ "${BENCH_CEPH:-1}" != 1 || ! -x "$ANCHOR/setup.sh" ]]; then
	echo "(Ceph peer skipped: BENCH_CEPH=${BENCH_CEPH:-1}, anchor at $ANCHOR $( [[ -d $ANCHOR ]] && echo present || echo absent ))"
	exit 0
fi

echo "== Ceph (rados bench; anchor $ANCHOR) =="
export CEPH_WORK="${CEPH_WORK:-/tmp/ceph-anchor-objbench}"
trap 'bash "$ANCHOR/stop.sh" >/dev/null 2>&1 || true' EXIT
bash "$ANCHOR/setup.sh" > "$OUT/ceph-setup.log" 2>&1 || { echo "Ceph setup failed; see $OUT/ceph-setup.log"; exit 1; }
export CEPH_CONF="$CEPH_WORK/ceph.conf"

osd_pids() { for f in "$CEPH_WORK"/run/osd.*.pid; do cat "$f"; done; }
osd_cpu() { # total user+sys seconds of the ceph-osd processes
	local t=0 p
	for p in $(osd_pids); do
		t=$(awk -v t="$t" '{print t + ($14 + $15) / 100}' "/proc/$p/stat")
	done
	echo "$t"
}

# rados bench prints totals; keep ops, bandwidth and mean latency.
phase() { # name, then rados bench arguments
	local name=$1; shift
	local c0 c1
	c0=$(osd_cpu)
	rados bench -p rbd "$@" > "$OUT/ceph-$name.txt" 2>&1
	c1=$(osd_cpu)
	awk -v name="$name" -v cpu="$(echo "$c1 - $c0" | bc -l)" '
		/^Total (writes|reads) made/ { ops = $NF }
		/^Bandwidth \(MB\/sec\)/ { bw = $NF }
		/^Average IOPS/ { iops = $NF }
		/^Average Latency\(s\)/ { lat = $NF * 1000 }
		END { printf "| %-24s | %9.0f | %9.1f | %8.2f (mean) | %13.3f |\n", name, iops, bw, lat, (ops > 0 ? cpu / ops * 1000 : 0) }
	' "$OUT/ceph-$name.txt"
}
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
secs=${DUR%s}
{
	echo "| phase                    |   ops/s   |   MB/s    | latency ms      | OSD CPU ms/op |"
	echo "|--------------------------|-----------|-----------|-----------------|---------------|"
	phase "4 MiB write (qd 8)" 20 write -b 4194304 -t 8 --no-cleanup --run-name big
	phase "4 MiB read (qd 8)" 10 seq -t 8 --run-name big
	phase "4 KiB write (qd 32)" "$secs" write -b 4096 -t 32 --no-cleanup --run-name small
	phase "4 KiB write (qd 1)" "$secs" write -b 4096 -t 1 --no-cleanup --run-name small1
	phase "4 KiB rand read (qd 32)" "$secs" rand -t 32 --run-name small
	echo
	echo "| ceph-osd | peak RSS (VmHWM) MiB |"
	echo "|----------|----------------------|"
	for f in "$CEPH_WORK"/run/osd.*.pid; do
		printf "| %-8s | %20.1f |\n" "$(basename "$f" .pid)" "$(awk '/^VmHWM/ {print $2/1024}' "/proc/$(cat "$f")/status")"
	done
} | tee "$OUT/ceph.md"
echo "results in $OUT"

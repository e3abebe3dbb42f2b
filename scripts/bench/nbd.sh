#!/usr/bin/env bash
# `make bench` (block part): the fio job set of ../shared/anchors/nbd/jobs.fio
# against tsumiki (tsumiki up, image over NBD), nbdkit (memory and file
# plugins, through the anchor's bench.sh) and, when ../shared/anchors/ceph is
# present, Ceph RBD (the anchor's setup.sh/bench.sh/stop.sh), one after the
# other in one run; then one table with IOPS, MB/s, p50/p99 latency, CPU per
# I/O and the ratios to Ceph against issue 3's targets.
#
#   BENCH_RUNTIME=20 BENCH_RAMP=2   seconds per job (the anchors' defaults)
#   BENCH_SIZE=4G                   working set / image size (as the anchors)
#   BENCH_CEPH=0                    skip Ceph; BENCH_NBDKIT=0 skip nbdkit;
#                                   BENCH_FLOOR=0 skip the sequential-write floor
#   BENCH_CEILING_SECS=10           how long the device's write ceiling is measured
#   BENCH_OUT=DIR                   results (default /tmp/tsumiki-nbdbench-DATE)
#   BENCH_PORT_BASE=11800           tsumiki's etcd, peer and NBD ports: +0 +1 +2;
#                                   the floor's NBD port: +3
#   BENCH_KEEP=1                    keep the systems' data (default: deleted after
#                                   each system, results kept; the three together
#                                   would need about 35 GiB with the default size)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
OUT="${BENCH_OUT:-/tmp/tsumiki-nbdbench-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
export RUNTIME="${BENCH_RUNTIME:-20}" RAMP="${BENCH_RAMP:-2}"
SIZE="${BENCH_SIZE:-4G}"
PB="${BENCH_PORT_BASE:-11800}"
ANCHORS="$(cd .. && pwd)/shared/anchors"
JOBFILE="$ANCHORS/nbd/jobs.fio"
JOBS="randwrite-4k-qd32 randread-4k-qd32 syncwrite-4k-qd1 seqwrite-1M-qd16 seqread-1M-qd16"
log() { echo "[$(date +%T)] $*" >&2; }
if [[ ! -f "$JOBFILE" ]]; then
	log "no $JOBFILE: using scripts/bench/nbd-jobs.fio; nbdkit and Ceph need the anchors and are skipped"
	JOBFILE="$PWD/scripts/bench/nbd-jobs.fio"
	BENCH_NBDKIT=0
fi

go build -o bin/tsumiki ./cmd/tsumiki
go build -o bin/seqfloor ./scripts/bench/seqfloor

# ---- the device under all the systems: bytes written, and its ceiling ----
# Every system here keeps its data on the filesystem of $OUT. diskwatch
# samples the bytes written to that device through the whole run, so the
# table can give each write job's device bytes per client byte; the ceiling
# (three direct 1 MiB writers, one per replica) bounds what any 3-way
# replicated system can write sequentially at that amplification.
DEV="$(basename "$(df --output=source "$OUT" | tail -1)")"
if grep -qw "$DEV" /proc/diskstats; then
	bash scripts/bench/diskwatch.sh "$DEV" "$OUT/diskstats.tsv" $$ &
	CEIL_SECS="${BENCH_CEILING_SECS:-10}"
	log "device: $DEV; measuring its sequential write ceiling (3 direct writers, $CEIL_SECS s)"
	mkdir -p "$OUT/ceiling"
	fio --name=ceiling --directory="$OUT/ceiling" --numjobs=3 --group_reporting --rw=write --bs=1M --iodepth=16 \
		--ioengine=libaio --direct=1 --size=1G --runtime="$CEIL_SECS" --time_based --output-format=json > "$OUT/device-ceiling.json" ||
		log "ceiling measurement failed"
	rm -rf "$OUT/ceiling"
else
	log "device $DEV of $OUT not in /proc/diskstats: no write amplification figures"
fi

# ---- tsumiki: one `tsumiki up` process (mon, 3 OSDs, NBD gateway) ----
log "tsumiki: starting tsumiki up in $OUT/data"
bin/tsumiki up --data "$OUT/data" --listen-client "http://127.0.0.1:$PB" --listen-peer "http://127.0.0.1:$((PB + 1))" \
	--osd-port 0 --cluster-port 0 --nbd-listen "127.0.0.1:$((PB + 2))" --demo-image "" --nfs-image off > "$OUT/up.log" 2>&1 &
UP=$!
stop_up() {
	if kill -0 "$UP" 2>/dev/null; then kill "$UP"; wait "$UP" 2>/dev/null || true; fi
}
trap stop_up EXIT
export TSUMIKI_ETCD_ENDPOINTS="http://127.0.0.1:$PB"
for _ in $(seq 120); do
	bin/tsumiki pool ls 2>/dev/null | grep -q rbd && break
	kill -0 "$UP" || { echo "tsumiki up died; see $OUT/up.log"; exit 1; }
	sleep 0.5
done
bin/tsumiki image create rbd/bench --size "$SIZE" > /dev/null
URI="nbd://127.0.0.1:$((PB + 2))/rbd/bench"
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$UP/stat"; }
log "tsumiki: prefill $SIZE (1 MiB writes, qd 16)"
fio --name=prefill --ioengine=nbd --uri="$URI" --rw=write --bs=1M --iodepth=16 --size="$SIZE" --output=/dev/null
: > "$OUT/tsumiki-cpu.tsv"
for job in $JOBS; do
	log "tsumiki: $job"
	c0=$(cpu); t0=$(date +%s.%N)
	fio --ioengine=nbd --uri="$URI" --section="$job" --output-format=json "$JOBFILE" > "$OUT/tsumiki-$job.json"
	c1=$(cpu); t1=$(date +%s.%N)
	echo -e "$job\t$(echo "$c1 - $c0" | bc -l)\t$(echo "$t1 - $t0" | bc -l)" >> "$OUT/tsumiki-cpu.tsv"
done
awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$UP/status" > "$OUT/tsumiki-hwm-mib"
bin/tsumiki pg verify > "$OUT/tsumiki-pg-verify.txt" 2>&1 || log "pg verify failed; see $OUT/tsumiki-pg-verify.txt"
du -sh "$OUT/data"/osd.*/store/* > "$OUT/tsumiki-disk.txt" 2>&1 || true
stop_up
trap - EXIT
[[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$OUT/data"

# ---- the floor of a replicated sequential write on this machine ----
# scripts/bench/seqfloor: tsumiki's path (NBD gateway -> primary -> two
# replicas over loopback TCP), O_DIRECT writes in place and group-committed
# fdatasync, and nothing else (no checksums, log or metadata), over files
# written once first (prefilled as tsumiki's image is; overwriting is this
# path's fastest case). No system with that path can beat it here; Ceph's
# run below has one hop fewer (librbd inside fio). The table sets the
# sequential-write target and both systems against it.
if [[ "${BENCH_FLOOR:-1}" == 1 ]]; then
	log "floor: seqfloor, prefill $SIZE, then seqwrite-1M-qd16"
	mkdir -p "$OUT/floor"
	bin/seqfloor -dir "$OUT/floor" -size "$(numfmt --from=iec "$SIZE")" -sparse -listen "127.0.0.1:$((PB + 3))" -for 10m \
		> "$OUT/floor.log" 2>&1 &
	FL=$!
	for _ in $(seq 50); do grep -qs serving "$OUT/floor.log" && break; sleep 0.1; done
	fio --name=prefill --ioengine=nbd --uri="nbd://127.0.0.1:$((PB + 3))/floor" --rw=write --bs=1M --iodepth=16 \
		--size="$SIZE" --output=/dev/null || log "floor: prefill failed; see $OUT/floor.log"
	c0=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$FL/stat"); t0=$(date +%s.%N)
	fio --ioengine=nbd --uri="nbd://127.0.0.1:$((PB + 3))/floor" --section=seqwrite-1M-qd16 --output-format=json "$JOBFILE" \
		> "$OUT/floor-seqwrite-1M-qd16.json" || log "floor: fio failed; see $OUT/floor.log"
	c1=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$FL/stat"); t1=$(date +%s.%N)
	echo -e "seqwrite-1M-qd16\t$(echo "$c1 - $c0" | bc -l)\t$(echo "$t1 - $t0" | bc -l)" > "$OUT/floor-cpu.tsv"
	kill "$FL"; wait "$FL" 2>/dev/null || true
	sleep 1 # diskwatch samples every 0.5 s: one past the job's end
	rm -rf "$OUT/floor"
fi

# ---- nbdkit (memory and file plugins), through the anchor's runner ----
if [[ "${BENCH_NBDKIT:-1}" == 1 ]]; then
	log "nbdkit: anchors/nbd/bench.sh nbdkit-memory nbdkit-file"
	ANCHOR_WORK="$OUT/anchors-nbd" SIZE="$SIZE" bash "$ANCHORS/nbd/bench.sh" nbdkit-memory nbdkit-file \
		> "$OUT/nbdkit.txt" 2> "$OUT/nbdkit.log" || log "nbdkit runner failed; see $OUT/nbdkit.log"
	[[ "${BENCH_KEEP:-0}" == 1 ]] || rm -f "$OUT/anchors-nbd/disk.img"
fi

# ---- Ceph RBD anchor ----
CEPH_SUM=""
if [[ "${BENCH_CEPH:-1}" == 1 && -x "$ANCHORS/ceph/setup.sh" ]]; then
	export CEPH_WORK="${CEPH_WORK:-$OUT/ceph-work}"
	log "ceph: setup ($CEPH_WORK)"
	trap 'bash "$ANCHORS/ceph/stop.sh" > /dev/null 2>&1 || true' EXIT
	if bash "$ANCHORS/ceph/setup.sh" > "$OUT/ceph-setup.log" 2>&1; then
		log "ceph: bench"
		BENCH_OUT="$OUT/ceph" FIO_RUNTIME="$RUNTIME" bash "$ANCHORS/ceph/bench.sh" > "$OUT/ceph-bench.log" 2>&1 &&
			CEPH_SUM="$OUT/ceph/summary.tsv" || log "ceph bench failed; see $OUT/ceph-bench.log"
	else
		log "ceph setup failed; see $OUT/ceph-setup.log"
	fi
	bash "$ANCHORS/ceph/stop.sh" > /dev/null 2>&1 || true
	trap - EXIT
	if [[ "${BENCH_KEEP:-0}" != 1 && "$CEPH_WORK" == "$OUT"/* ]]; then rm -rf "$CEPH_WORK"; fi
else
	log "ceph skipped (BENCH_CEPH=${BENCH_CEPH:-1}; anchor $([[ -d $ANCHORS/ceph ]] && echo present || echo absent))"
fi

python3 scripts/bench/nbdtable.py "$OUT" "$CEPH_SUM" | tee "$OUT/table.md"
echo "results in $OUT"

#!/usr/bin/env bash
# `make bench` (NFS part): the same NFSv3 jobs, with the same client tools,
# against
#   local      no NFS: dd and write+fsync on the work folder's filesystem
#              (the machine's ceiling, as ../shared/anchors/nfs's "local")
#   ganesha    nfs-ganesha + FSAL VFS exporting a folder on that filesystem
#              (the peer; ../shared/anchors/nfs)
#   gw-dir     `tsumiki nfs serve --dir` over a folder on that filesystem:
#              what the gateway's NFS layer costs, next to ganesha
#   tsumiki-fs no NFS: the same dd jobs on ext4 over a tsumiki image, reached
#              as `tsumiki up` (NBD) -> nbdfuse -> loop device -> ext4
#   gw-tsumiki `tsumiki nfs serve --dir` over that ext4 mount: what the
#              storage costs (compare with tsumiki-fs and gw-dir)
# This kernel has no nbd module, so `nfs serve --image` (kernel NBD client)
# cannot run here; nbdfuse + loop adds FUSE and loop overhead on top of the
# real path, so the tsumiki rows are a lower bound for it.
#
# Jobs, every one through libnfs or our own NFSv3 client (no kernel NFS):
#   seqwrite      nfs-cp of a tmpfs file of urandom: 1 MiB UNSTABLE WRITEs at
#                 queue depth 1, then, when it closes the file, a COMMIT
#                 (libnfs 4.0 commits a dirty file on close; seen on the
#                 wire), so the figure is data on disk, as after close() on a
#                 Linux client. Rows without NFS: dd + fsync. The gateway
#                 syncs every WRITE by default (unstable_writes: false):
#   seqwrite-sync rows without NFS only: dd oflag=dsync, a synchronous 1 MiB
#                 write each time, what that policy costs without NFS
#   seqread       nfs-cat > /dev/null right after (server page cache; the
#                 anchor's definition)
#   seqread-cold  the same after the file's pages were dropped on the server
#                 (posix_fadvise DONTNEED; for tsumiki also the nbdfuse
#                 file's), so the data comes from the storage
#   creates       files/s of scripts/bench/nfscreate: MKDIR, then per file
#                 CREATE + one 4 KiB WRITE as FILE_SYNC (what a Linux client
#                 sends on close() of a small file), queue depth 1
# The first repetition's data is checked with nfs-cat | cmp, and the created
# files are counted on the server.
#
# Environment (defaults in brackets):
#   BENCH_SHORT=1        64M file, 200 files, 1 repetition; ganesha only if
#                        already installed (make bench-short)
#   BENCH_NFS_SIZE [1G]  BENCH_NFS_FILES [2000]  BENCH_NFS_FILE_SIZE [4096]
#   REPEAT [3]           repetitions, the table shows the median
#   BENCH_NFS_SERVERS    ["local ganesha gw-dir tsumiki-fs gw-tsumiki"]
#   BENCH_GANESHA=0      skip ganesha (default: installed with apt-get if missing)
#   BENCH_CREATE_MAX_TIME [60s]  cap per create run, in seconds with an s
#                        (the rate is of what it did)
#   BENCH_OUT=DIR        results (default /tmp/tsumiki-nfsbench-DATE)
#   BENCH_PORT_BASE [11850]  tsumiki up's etcd, peer, NBD ports +0 +1 +2;
#                        the gateway's NFS port +3
#   BENCH_KEEP=1         keep the servers' data (default: deleted)
#   BENCH_TSUMIKI_BIN=F  use this tsumiki binary (default: build bin/tsumiki)
#   BENCH_NETNS=0        do not make a private network+mount namespace
#                        (then ganesha is skipped: it needs rpcbind on *:111)
# Needs root (namespaces, losetup, mount; the gateway's --dir needs
# CAP_DAC_READ_SEARCH); re-runs itself with sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH:/usr/sbin:/sbin"

log() { echo "[$(date +%T)] nfs.sh: $*" >&2; }

SHORT=${BENCH_SHORT:-0}
if [[ $SHORT == 1 ]]; then
	SIZE=${BENCH_NFS_SIZE:-64M} FILES=${BENCH_NFS_FILES:-200} REPEAT=${REPEAT:-1}
	CMAX=${BENCH_CREATE_MAX_TIME:-15s}
else
	SIZE=${BENCH_NFS_SIZE:-1G} FILES=${BENCH_NFS_FILES:-2000} REPEAT=${REPEAT:-3}
	CMAX=${BENCH_CREATE_MAX_TIME:-60s}
fi
FSIZE=${BENCH_NFS_FILE_SIZE:-4096}
SERVERS=${BENCH_NFS_SERVERS:-local ganesha gw-dir tsumiki-fs gw-tsumiki}
PB=${BENCH_PORT_BASE:-11850}
GW_PORT=$((PB + 3))
ANCHOR="$(cd .. && pwd)/shared/anchors/nfs"

# ------------------------------------------------------------ outer part
if [[ -z ${_NFSBENCH_INNER:-} ]]; then
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || { log "needs root (namespaces, losetup, mount) and there is no sudo"; exit 1; }
		exec sudo --preserve-env env PATH="$PATH" bash "$0" "$@"
	fi
	apt_install() { # packages... ; only the missing ones, bounded
		local missing=() p
		for p in "$@"; do
			dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$p")
		done
		[[ ${#missing[@]} == 0 ]] && return 0
		log "apt-get install ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null 2>&1 || {
			timeout 300 apt-get update -qq >/dev/null 2>&1 || true
			timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
		}
	}
	apt_install libnfs-utils libnbd-bin e2fsprogs
	if [[ " $SERVERS " == *" ganesha "* && ${BENCH_GANESHA:-1} == 1 ]]; then
		if [[ $SHORT == 1 ]]; then
			if ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null; then
				log "ganesha is not installed: skipped in the short mode (the full bench installs it)"
			fi
		else
			apt_install nfs-ganesha nfs-ganesha-vfs rpcbind || log "could not install nfs-ganesha; it will be skipped"
		fi
	fi
	OUT="${BENCH_OUT:-/tmp/tsumiki-nfsbench-$(date +%Y%m%d-%H%M%S)}"
	mkdir -p "$OUT/log"
	OUT=$(cd "$OUT" && pwd)
	if [[ -n ${BENCH_TSUMIKI_BIN:-} ]]; then
		TSUMIKI=$(realpath "$BENCH_TSUMIKI_BIN")
	else
		log "building bin/tsumiki"
		go build -o bin/tsumiki ./cmd/tsumiki
		TSUMIKI=$ROOT/bin/tsumiki
	fi
	go build -o "$OUT/nfscreate" ./scripts/bench/nfscreate
	export OUT TSUMIKI _NFSBENCH_INNER=1 NETNS=1
	if [[ ${BENCH_NETNS:-1} == 1 ]] && unshare --net --mount --propagation private true 2>/dev/null; then
		# only lo exists in the new network namespace, so rpcbind's *:111
		# and every server stay off the host's network; mounts made inside
		# (FUSE, ext4) are private and vanish with the namespace
		exec unshare --net --mount --propagation private -- bash "$0" "$@"
	fi
	log "no private namespace (BENCH_NETNS=${BENCH_NETNS:-1}); servers on the host's 127.0.0.1, ganesha skipped"
	NETNS=0
fi

# ------------------------------------------------------------ inner part
if [[ $NETNS == 1 ]]; then
	ip link set lo up
	# ganesha resolves Bind_Addr with getaddrinfo(AI_ADDRCONFIG), which wants
	# an IPv4 address besides 127.0.0.1 (anchor pitfall 3)
	ip addr add 127.0.0.2/8 dev lo
	mount -t tmpfs -o mode=755 nfsbench-run /run # rpcbind's and ganesha's own /run
	mkdir -p /run/rpcbind /run/ganesha
fi
NFSCREATE=$OUT/nfscreate
RESULTS=$OUT/results.tsv
NOTES=$OUT/notes.txt
: > "$RESULTS"
: > "$NOTES"
note() { echo "$*" >> "$NOTES"; }
now() { date +%s.%N; }
mbps() { awk -v t1="$2" -v t0="$1" -v b="$BYTES" 'BEGIN { printf "%.1f", b / (t1 - t0) / 1e6 }'; }
result() { # server metric rep value
	printf '%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"
	note "$1 $2 rep $3: $4"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- processes and mounts we started; cleanup stops them by PID
RPCBIND_PID="" GANESHA_PID="" GW_PID="" UP_PID="" FUSE_PID="" LOOP="" MNT="" FUSEDIR=""
stop_pid() { # pid [seconds]: TERM, bounded wait, KILL
	local pid=$1 i
	[[ -n $pid ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < ${2:-30} * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && { log "PID $pid did not stop: KILL"; kill -9 "$pid" 2>/dev/null || true; }
	fi
	wait "$pid" 2>/dev/null || true
}
teardown_tsumiki() {
	local i
	stop_pid "$GW_PID"; GW_PID=""
	if [[ -n $MNT ]]; then
		timeout 300 umount "$MNT" || log "umount $MNT failed"
		MNT=""
	fi
	if [[ -n $LOOP ]]; then
		losetup -d "$LOOP" || log "losetup -d $LOOP failed"
		LOOP=""
	fi
	if [[ -n $FUSEDIR ]]; then
		# nbdfuse exits by itself once its mount is gone (its manual: do not kill it)
		mountpoint -q "$FUSEDIR" && { timeout 60 umount "$FUSEDIR" || log "umount $FUSEDIR failed"; }
		FUSEDIR=""
	fi
	if [[ -n $FUSE_PID ]]; then
		for ((i = 0; i < 100; i++)); do kill -0 "$FUSE_PID" 2>/dev/null || break; sleep 0.1; done
		stop_pid "$FUSE_PID" 10; FUSE_PID=""
	fi
	stop_pid "$UP_PID" 60; UP_PID=""
}
cleanup() {
	stop_pid "$GW_PID"; GW_PID=""
	stop_pid "$GANESHA_PID"; GANESHA_PID=""
	teardown_tsumiki
	stop_pid "$RPCBIND_PID"; RPCBIND_PID=""
	rm -f "${SRC:-}"
	[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$OUT/work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the source file and the machine
SRC=/dev/shm/tsumiki-nfsbench-$$.bin
head -c "$(numfmt --from=iec "$SIZE")" /dev/urandom > "$SRC"
BYTES=$(stat -c %s "$SRC")
mkdir -p "$OUT/work"
{
	echo "date=$(date -Is)"
	echo "machine=$(uname -sr), $(nproc) CPU $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
	echo "workfs=$(findmnt -no SOURCE,FSTYPE -T "$OUT/work" | tr -s ' ')"
	echo "size=$SIZE files=$FILES file_size=$FSIZE repeat=$REPEAT short=$SHORT netns=$NETNS create_max=$CMAX"
	echo "versions=libnfs-utils $(dpkg-query -W -f='${Version}' libnfs-utils 2>/dev/null || echo ?), nfs-ganesha $(dpkg-query -W -f='${Version}' nfs-ganesha 2>/dev/null || echo -), libnbd-bin $(dpkg-query -W -f='${Version}' libnbd-bin 2>/dev/null || echo ?), tsumiki $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo ?) ($TSUMIKI)"
	echo "load_start=$(loadavg)"
} > "$OUT/meta.txt"
note "# $(tr '\n' ' ' < "$OUT/meta.txt")"

# ---- jobs
url_of() { # dir_url name -> url of name inside it (query kept)
	local base=${1%%\?*} q=${1#*\?}
	echo "${base%/}/$2?$q"
}
drop_cache() { # files...: drop their clean pages (written back by the COMMIT/fsync)
	local f
	for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none || log "could not drop the cache of $f"; done
}
# trim: on the tsumiki mount, hand deleted blocks back to the image (ext4 ->
# loop -> nbdfuse -> NBD TRIM), untimed, so that the OSDs' disk use stays at
# one file's worth instead of growing with every repetition
TRIM=""
trim() {
	[[ -n $TRIM ]] || return 0
	timeout 300 fstrim "$TRIM" || log "fstrim $TRIM failed"
}
wait_nfs() { # url seconds pid
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		nfs-ls "$1" >/dev/null 2>&1 && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# nfs_jobs NAME URL SERVERDIR [EXTRA_CACHE_FILE]: every job against one server;
# SERVERDIR is the exported folder as the server sees it.
nfs_jobs() {
	local name=$1 url=$2 sdir=$3 extra=${4:-} rep f furl t0 t1 out files
	for ((rep = 1; rep <= REPEAT; rep++)); do
		f=seq-$rep.bin
		furl=$(url_of "$url" "$f")
		sync -f "$sdir" # no dirty pages left from before (untimed)
		t0=$(now)
		if ! timeout 900 nfs-cp "$SRC" "$furl" > "$OUT/log/client.last" 2>&1; then
			note "$name seqwrite rep $rep FAILED: $(tr '\n' ' ' < "$OUT/log/client.last")"
			log "$name: nfs-cp failed (see $NOTES)"
			continue
		fi
		t1=$(now)
		result "$name" seqwrite "$rep" "$(mbps "$t0" "$t1")"
		t0=$(now)
		if timeout 900 nfs-cat "$furl" > /dev/null 2> "$OUT/log/client.last"; then
			t1=$(now); result "$name" seqread "$rep" "$(mbps "$t0" "$t1")"
		else
			note "$name seqread rep $rep FAILED: $(tr '\n' ' ' < "$OUT/log/client.last")"
		fi
		drop_cache "$sdir/$f" ${extra:+"$extra"}
		t0=$(now)
		if timeout 900 nfs-cat "$furl" > /dev/null 2> "$OUT/log/client.last"; then
			t1=$(now); result "$name" seqread-cold "$rep" "$(mbps "$t0" "$t1")"
		else
			note "$name seqread-cold rep $rep FAILED: $(tr '\n' ' ' < "$OUT/log/client.last")"
		fi
		if [[ $rep == 1 ]]; then
			if timeout 900 nfs-cat "$furl" 2>/dev/null | cmp -s - "$SRC"; then
				note "$name verify OK"
			else
				note "$name verify MISMATCH"; log "$name: the data read back differs from what was written"
				result "$name" verify "$rep" MISMATCH
			fi
		fi
		rm -f "$sdir/$f"; trim
		if out=$(timeout $((${CMAX%s} + 300)) "$NFSCREATE" create -n "$FILES" -size "$FSIZE" -max-time "$CMAX" \
			-dir "creates-$rep" "$url" 2> "$OUT/log/client.last"); then
			result "$name" creates "$rep" "$(sed -n 's/.* rate=//p' <<< "$out")"
			note "$name creates rep $rep: $out"
			files=$(find "$sdir/creates-$rep" -type f -size "${FSIZE}c" | wc -l)
			if [[ $files != "$(sed -n 's/^files=\([0-9]*\) .*/\1/p' <<< "$out")" ]]; then
				note "$name creates rep $rep: only $files complete files on the server"
				result "$name" verify "$rep" MISMATCH
			fi
		else
			note "$name creates rep $rep FAILED: $(tr '\n' ' ' < "$OUT/log/client.last")"
			log "$name: nfscreate failed (see $NOTES)"
		fi
		rm -rf "$sdir/creates-$rep"; trim
	done
}

# local_jobs NAME DIR [EXTRA_CACHE_FILE]: the same jobs with dd and
# nfscreate local in DIR, no NFS.
local_jobs() {
	local name=$1 dir=$2 extra=${3:-} rep f t0 t1 t2 out
	for ((rep = 1; rep <= REPEAT; rep++)); do
		f=$dir/seq-$rep.bin
		sync -f "$dir"
		t0=$(now)
		dd if="$SRC" of="$f" bs=1M status=none
		t1=$(now)
		dd if=/dev/null of="$f" conv=notrunc,fsync status=none # fsync only
		t2=$(now)
		note "$name seqwrite rep $rep without the fsync (page cache): $(mbps "$t0" "$t1")"
		result "$name" seqwrite "$rep" "$(mbps "$t0" "$t2")"
		t0=$(now); dd if="$f" of=/dev/null bs=1M status=none; t1=$(now)
		result "$name" seqread "$rep" "$(mbps "$t0" "$t1")"
		drop_cache "$f" ${extra:+"$extra"}
		t0=$(now); dd if="$f" of=/dev/null bs=1M status=none; t1=$(now)
		result "$name" seqread-cold "$rep" "$(mbps "$t0" "$t1")"
		rm -f "$f"; trim
		# The gateway syncs every WRITE by default (unstable_writes: false):
		# without NFS, that is dd with a synchronous 1 MiB write each time.
		t0=$(now); dd if="$SRC" of="$f" bs=1M oflag=dsync status=none; t1=$(now)
		result "$name" seqwrite-sync "$rep" "$(mbps "$t0" "$t1")"
		rm -f "$f"; trim
		if out=$(timeout $((${CMAX%s} + 300)) "$NFSCREATE" local -n "$FILES" -size "$FSIZE" -max-time "$CMAX" \
			-dir "$dir/creates-$rep" 2> "$OUT/log/client.last"); then
			result "$name" creates "$rep" "$(sed -n 's/.* rate=//p' <<< "$out")"
		else
			note "$name creates rep $rep FAILED: $(tr '\n' ' ' < "$OUT/log/client.last")"
		fi
		rm -rf "$dir/creates-$rep"; trim
	done
}

# ---- servers
start_gw() { # dir -> GW_PID, GW_URL
	"$TSUMIKI" nfs serve --dir "$1" --export /data --listen "127.0.0.1:$GW_PORT" --portmap-listen "" \
		> "$OUT/log/gw-$2.log" 2>&1 &
	GW_PID=$!
	GW_URL="nfs://127.0.0.1/data?version=3&nfsport=$GW_PORT&mountport=$GW_PORT&auto-traverse-mounts=0"
	wait_nfs "$GW_URL" 30 "$GW_PID" || { log "gateway did not answer; see $OUT/log/gw-$2.log"; stop_pid "$GW_PID"; GW_PID=""; return 1; }
}

run_ganesha() {
	local conf=$OUT/work/ganesha.conf exp=$OUT/work/ganesha-export plugdir url f i
	if [[ $NETNS != 1 ]]; then log "ganesha skipped: it needs rpcbind on *:111, which only runs in the private namespace"; return 0; fi
	if [[ ${BENCH_GANESHA:-1} != 1 ]] || ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null; then
		log "ganesha skipped (BENCH_GANESHA=${BENCH_GANESHA:-1}; installed: $(command -v ganesha.nfsd >/dev/null && echo yes || echo no))"
		return 0
	fi
	plugdir=""
	for f in /usr/lib/*/ganesha/libfsalvfs.so /usr/lib/ganesha/libfsalvfs.so /usr/lib64/ganesha/libfsalvfs.so; do
		[[ -f $f ]] && { plugdir=$(dirname "$f"); break; }
	done
	[[ -n $plugdir ]] || { log "ganesha skipped: no FSAL VFS (nfs-ganesha-vfs)"; return 0; }
	mkdir -p "$exp" "$OUT/work/ganesha-recov"
	if [[ -f $ANCHOR/ganesha.conf.in ]]; then
		# the anchor's own configuration, so the figures are the anchor's
		sed -e "s|@NFS_PORT@|2049|; s|@MNT_PORT@|20048|; s|@NLM_PORT@|20049|; s|@RQUOTA_PORT@|20050|" \
			-e "s|@PLUGINS_DIR@|$plugdir|; s|@WORK@|$OUT/work|; s|@EXPORT_DIR@|$exp|" \
			"$ANCHOR/ganesha.conf.in" > "$conf"
		note "ganesha config: $ANCHOR/ganesha.conf.in"
	else
		# the same settings: NFSv3 over TCP on 127.0.0.1, MOUNT on 20048, no
		# NLM/RQUOTA, one RW export of a local folder with FSAL VFS
		cat > "$conf" <<-EOF
			NFS_CORE_PARAM {
			    Protocols = 3; Bind_Addr = 127.0.0.1; NFS_Port = 2049; MNT_Port = 20048;
			    Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;
			    mount_path_pseudo = true; Plugins_Dir = $plugdir;
			}
			NFSV4 { Graceless = true; RecoveryRoot = $OUT/work/ganesha-recov; }
			EXPORT {
			    Export_Id = 1; Path = $exp; Pseudo = /export; Protocols = 3; Transports = TCP;
			    Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
			    FSAL { Name = VFS; }
			}
			LOG { Default_Log_Level = EVENT; }
		EOF
		note "ganesha config: our own (no anchor at $ANCHOR)"
	fi
	# ganesha refuses to start unless it can register with a portmapper
	# (Debian 12's rpcbind aborts when given -h: it binds *:111, loopback-only here)
	rpcbind -f > "$OUT/log/rpcbind.log" 2>&1 &
	RPCBIND_PID=$!
	for ((i = 0; i < 50; i++)); do [[ -S /run/rpcbind.sock ]] && break; sleep 0.1; done
	ganesha.nfsd -F -f "$conf" -L "$OUT/log/ganesha.log" -p /run/ganesha/ganesha.pid -N NIV_EVENT \
		> "$OUT/log/ganesha.out" 2>&1 &
	GANESHA_PID=$!
	url="nfs://127.0.0.1/export?version=3&nfsport=2049&mountport=20048&auto-traverse-mounts=0"
	if wait_nfs "$url" 60 "$GANESHA_PID"; then
		log "ganesha: jobs"
		nfs_jobs ganesha "$url" "$exp"
	else
		log "ganesha did not answer; see $OUT/log/ganesha.log"
	fi
	note "ganesha end loadavg $(loadavg)"
	stop_pid "$GANESHA_PID"; GANESHA_PID=""
	stop_pid "$RPCBIND_PID"; RPCBIND_PID=""
	rm -rf "$exp"
}

# tsumiki up + image + nbdfuse + loop + ext4, mounted on $MNT
setup_tsumiki() {
	local w=$OUT/work/tsumiki i t uri
	for t in nbdfuse losetup mkfs.ext4; do
		command -v "$t" >/dev/null || { log "tsumiki rows skipped: no $t"; return 1; }
	done
	[[ -c /dev/fuse && -e /dev/loop-control ]] || { log "tsumiki rows skipped: no /dev/fuse or /dev/loop-control"; return 1; }
	mkdir -p "$w/fuse" "$w/mnt"
	log "tsumiki: tsumiki up in $w/data"
	"$TSUMIKI" up --data "$w/data" --listen-client "http://127.0.0.1:$PB" --listen-peer "http://127.0.0.1:$((PB + 1))" \
		--osd-port 0 --cluster-port 0 --nbd-listen "127.0.0.1:$((PB + 2))" --demo-image "" --nfs-image off > "$OUT/log/up.log" 2>&1 &
	UP_PID=$!
	export TSUMIKI_ETCD_ENDPOINTS="http://127.0.0.1:$PB"
	for ((i = 0; i < 120; i++)); do
		"$TSUMIKI" pool ls 2>/dev/null | grep -q rbd && break
		kill -0 "$UP_PID" 2>/dev/null || { log "tsumiki up died; see $OUT/log/up.log"; return 1; }
		sleep 0.5
	done
	timeout 60 "$TSUMIKI" image create rbd/nfsbench --size 4G > /dev/null || { log "image create failed"; return 1; }
	uri="nbd://127.0.0.1:$((PB + 2))/rbd/nfsbench"
	note "tsumiki nbd: $(nbdinfo --json "$uri" 2>/dev/null | tr -d ' \n' | grep -o '"can_multi_conn":[a-z]*' || echo '?')"
	nbdfuse -P "$w/fuse.pid" "$w/fuse/img" "$uri" > "$OUT/log/nbdfuse.log" 2>&1 &
	FUSE_PID=$!
	FUSEDIR=$w/fuse
	for ((i = 0; i < 100; i++)); do
		[[ -s $w/fuse.pid ]] && break
		kill -0 "$FUSE_PID" 2>/dev/null || { log "nbdfuse died; see $OUT/log/nbdfuse.log"; return 1; }
		sleep 0.1
	done
	[[ -s $w/fuse.pid ]] || { log "nbdfuse not ready"; return 1; }
	LOOP=$(losetup --find --show "$w/fuse/img") || { LOOP=""; log "losetup failed"; return 1; }
	# lazy inode tables, and noinit_itable so that no background zeroing
	# writes into the image during the jobs
	timeout 300 mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 "$LOOP" || { log "mkfs.ext4 failed"; return 1; }
	mount -o noinit_itable "$LOOP" "$w/mnt" || { log "mount failed"; return 1; }
	MNT=$w/mnt
	note "tsumiki: $uri -> nbdfuse $w/fuse/img -> $LOOP -> ext4 on $MNT"
}

run_tsumiki() { # which rows: tsumiki-fs and/or gw-tsumiki
	if ! setup_tsumiki; then teardown_tsumiki; return 0; fi
	local img=$OUT/work/tsumiki/fuse/img
	TRIM=$MNT
	if [[ " $SERVERS " == *" tsumiki-fs "* ]]; then
		log "tsumiki-fs: jobs (ext4 over tsumiki, no NFS)"
		mkdir -p "$MNT/local"
		local_jobs tsumiki-fs "$MNT/local" "$img"
		rm -rf "$MNT/local"
		note "tsumiki-fs end loadavg $(loadavg), OSD data $(du -sh "$OUT/work/tsumiki/data" | cut -f1)"
	fi
	if [[ " $SERVERS " == *" gw-tsumiki "* ]]; then
		mkdir -p "$MNT/export"
		if start_gw "$MNT/export" tsumiki; then
			log "gw-tsumiki: jobs"
			nfs_jobs gw-tsumiki "$GW_URL" "$MNT/export" "$img"
		fi
		note "gw-tsumiki end loadavg $(loadavg)"
		stop_pid "$GW_PID"; GW_PID=""
	fi
	awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$UP_PID/status" > "$OUT/tsumiki-hwm-mib" 2>/dev/null || true
	du -sh "$OUT/work/tsumiki/data" > "$OUT/tsumiki-disk.txt" 2>&1 || true
	note "df / during tsumiki: $(df -h / | awk 'NR == 2 { print $5 }')"
	TRIM=""
	teardown_tsumiki
	[[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "$OUT/work/tsumiki"
}

tsumiki_done=0
for s in $SERVERS; do
	note "# $s start loadavg $(loadavg)"
	case $s in
	local)
		log "local: jobs (dd and write+fsync on $(findmnt -no SOURCE -T "$OUT/work"))"
		mkdir -p "$OUT/work/local"
		local_jobs local "$OUT/work/local"
		rm -rf "$OUT/work/local" ;;
	ganesha) run_ganesha ;;
	gw-dir)
		mkdir -p "$OUT/work/gw-export"
		if start_gw "$OUT/work/gw-export" dir; then
			log "gw-dir: jobs"
			nfs_jobs gw-dir "$GW_URL" "$OUT/work/gw-export"
		fi
		stop_pid "$GW_PID"; GW_PID=""
		rm -rf "$OUT/work/gw-export" ;;
	tsumiki-fs | gw-tsumiki)
		if [[ $tsumiki_done == 0 ]]; then tsumiki_done=1; run_tsumiki; fi ;;
	*) log "unknown server $s" ;;
	esac
done
echo "load_end=$(loadavg)" >> "$OUT/meta.txt"

python3 "$ROOT/scripts/bench/nfstable.py" "$OUT" | tee "$OUT/table.md"
echo "results in $OUT"
if grep -q MISMATCH "$RESULTS"; then
	log "some data read back or created did not match (see $NOTES)"
	exit 1
fi
# the gateway over a local folder needs nothing but root: no figure is a failure
if [[ " $SERVERS " == *" gw-dir "* ]] && ! grep -q '^gw-dir' "$RESULTS"; then
	log "no figures for the gateway (see $OUT/log)"
	exit 1
fi

#!/usr/bin/env bash
# Builds the Linux guest that internal/qemutest boots in QEMU: a stock Debian
# kernel, a small initramfs (busybox, nbd-client, e2fsprogs, xfsprogs,
# mount.nfs, util-linux bits and the kernel modules for virtio, 9p, nbd, ext4,
# xfs and the NFS v3 client) and a read-only ext4 disk image holding fio and
# every library it links.
#
#   scripts/guest/build.sh [OUTDIR]     OUTDIR defaults to
#                                        ${TSUMIKI_GUEST_DIR:-/var/tmp/tsumiki-guest}
#
# Output in OUTDIR: vmlinuz, initramfs.img (an uncompressed newc cpio, which
# boots faster under TCG than a compressed one, zero-padded to a multiple of
# 4 bytes so that a second cpio can be appended),
# fio.ext4, release (the kernel release) and guest.ok (written last).
#
# Nothing is installed into the host's /boot or /lib/modules: the Debian
# packages are fetched with `apt-get download` into OUTDIR/debs and unpacked
# with `dpkg-deb -x` into a scratch root, which is removed at the end. A
# step whose output exists and was made by this very script (its stamp holds
# the script's sha256: a file date would call for a rebuild after every git
# checkout, and miss one after checking out an older script) is skipped, so
# a second run is a no-op. Delete OUTDIR/guest.ok to rebuild from the kept
# .deb files, OUTDIR/debs.ok to resolve and download the packages again
# (apt-get download skips files it already has), OUTDIR to start over.
#
# Host packages it needs (installed with apt-get when missing; as root, or
# with sudo): qemu-system-x86 cpio e2fsprogs util-linux. Concurrent runs
# on one OUTDIR wait for each other (flock).
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
OUT="${1:-${TSUMIKI_GUEST_DIR:-/var/tmp/tsumiki-guest}}"

log() { echo "guest: $*" >&2; }
die() { echo "guest: error: $*" >&2; exit 1; }

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

# --- host packages -----------------------------------------------------------
# command -> Debian package that provides it.
declare -A HOST_TOOLS=(
	[qemu-system-x86_64]=qemu-system-x86
	[cpio]=cpio
	[mke2fs]=e2fsprogs
	[flock]=util-linux
	[apt-get]=apt
	[dpkg-deb]=dpkg
)
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for cmd in "${!HOST_TOOLS[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${HOST_TOOLS[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing host packages: apt-get install ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec 9>"$OUT/.lock"
flock 9

# fresh STAMP: the step STAMP marks was done by this script (STAMP holds its
# checksum; stamps are written with `stamp`).
SUM="$(sha256sum "$SCRIPT" | cut -d' ' -f1)"
fresh() {
	[ -e "$1" ] && [ "$(cat "$1")" = "$SUM" ]
}
stamp() { echo "$SUM" >"$1"; }

if fresh "$OUT/guest.ok" && [ "$OUT/guest.ok" -nt "$OUT/debs.ok" ]; then
	log "up to date in $OUT (kernel $(cat "$OUT/release"))"
	exit 0
fi
rm -f "$OUT/guest.ok"

# --- Debian packages ---------------------------------------------------------
DEBS="$OUT/debs"
mkdir -p "$DEBS"
APT_GET=(apt-get -q -o APT::Sandbox::User=root)

apt_update() {
	log "apt-get update"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
}

# kernel_package prints the linux-image-X.Y.Z-N-amd64 that linux-image-amd64
# points at.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# lib_closure PKG...: the packages plus every lib* package they depend on,
# directly or through other lib* packages. Only shared libraries are wanted
# from the dependencies (not python3, debconf, adduser, ...); a library that
# is still missing shows up later as "not found" in ld.so --list.
lib_closure() {
	local -A seen=()
	local queue=("$@") next p dep
	for p in "$@"; do seen[$p]=1; done
	while [ ${#queue[@]} -gt 0 ]; do
		next=()
		while read -r dep; do
			[ -n "$dep" ] && [ -z "${seen[$dep]:-}" ] || continue
			seen[$dep]=1
			next+=("$dep")
		done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "${queue[@]}" 2>/dev/null |
			awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { sub(/:any$/, "", $2); print $2 }' |
			grep '^lib' | sort -u)
		queue=("${next[@]}")
	done
	printf '%s\n' "${!seen[@]}" | sort
}

# TOOLS are the packages whose programs the guest runs (kmod: depmod at build
# time only; fio: on the fio disk).
TOOLS=(busybox-static nbd-client e2fsprogs xfsprogs nfs-common mount util-linux kmod fio)

if ! fresh "$OUT/debs.ok"; then
	kpkg="$(kernel_package || true)"
	if [ -z "$kpkg" ]; then
		apt_update
		kpkg="$(kernel_package || true)"
		[ -n "$kpkg" ] || die "apt-cache depends linux-image-amd64 names no kernel package"
	fi
	mapfile -t pkgs < <(lib_closure "$kpkg" "${TOOLS[@]}")
	log "downloading ${#pkgs[@]} packages into $DEBS (kernel: $kpkg)"
	if ! (cd "$DEBS" && "${APT_GET[@]}" download "${pkgs[@]}" >/dev/null); then
		apt_update
		(cd "$DEBS" && "${APT_GET[@]}" download "${pkgs[@]}" >/dev/null) ||
			die "apt-get download failed"
	fi
	printf '%s\n' "${pkgs[@]}" >"$OUT/packages"
	echo "$kpkg" >"$OUT/kernel-package"
	stamp "$OUT/debs.ok"
fi
mapfile -t pkgs <"$OUT/packages"

# --- scratch root --------------------------------------------------------------
WORK="$OUT/work"
X="$WORK/x"         # every package unpacked
R="$WORK/initramfs" # what goes into initramfs.img
F="$WORK/fio"       # what goes onto fio.ext4
rm -rf "$WORK"
mkdir -p "$X" "$R" "$F"
trap 'rm -rf "$WORK"' EXIT

log "unpacking ${#pkgs[@]} packages into $X"
for p in "${pkgs[@]}"; do
	deb="$(ls -t "$DEBS/${p}"_*.deb 2>/dev/null | head -n1)"
	[ -n "$deb" ] || die "no .deb for $p in $DEBS (delete $OUT/debs.ok to download again)"
	dpkg-deb -x "$deb" "$X"
done

KVER="$(ls "$X/lib/modules")"
[ "$(wc -w <<<"$KVER")" = 1 ] || die "expected one kernel in $X/lib/modules, found: $KVER"
LDSO="$X/lib64/ld-linux-x86-64.so.2"
[ -e "$LDSO" ] || die "no $LDSO in the unpacked libc6"
# Every library folder of the unpacked packages.
LIBPATH="$X/lib/x86_64-linux-gnu:$X/usr/lib/x86_64-linux-gnu:$(find "$X" -name '*.so*' \( -type f -o -type l \) -printf '%h\n' | sort -u | paste -sd:)"

# run_x PROG ARGV0 ARGS...: run a program of the unpacked root with the
# unpacked ld.so and libraries (the host may have none of them).
run_x() {
	local prog="$1" argv0="$2"
	shift 2
	"$LDSO" --library-path "$LIBPATH" --argv0 "$argv0" "$prog" "$@"
}

# libs_of FILE: the library files FILE needs, resolved in the unpacked root.
libs_of() {
	local out
	out="$("$LDSO" --library-path "$LIBPATH" --list "$1")" || die "ld.so --list $1 failed: $out"
	if grep -q 'not found' <<<"$out"; then
		die "$1 needs libraries no package provided: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$out"
}

# install_libs DEST ELF...: copy the libraries the ELF files need (and ld.so)
# into DEST, flat, under their sonames.
install_libs() {
	local dest="$1" f lib
	shift
	mkdir -p "$dest"
	for f in "$@"; do
		file_is_elf "$f" || continue
		for lib in $(libs_of "$f"); do
			[ -e "$dest/$(basename "$lib")" ] || cp -L "$lib" "$dest/$(basename "$lib")"
		done
	done
	cp -L "$LDSO" "$dest/ld-linux-x86-64.so.2"
}

file_is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# install_prog NAME...: copy the programs of that name from the unpacked root
# into the initramfs at the same path, symlinks with their targets.
PROGS=()
install_prog() {
	local name rel found
	for name in "$@"; do
		found=""
		for d in sbin usr/sbin bin usr/bin; do
			rel="$d/$name"
			[ -e "$X/$rel" ] || [ -L "$X/$rel" ] || continue
			found=1
			install_path "$rel"
			break
		done
		[ -n "$found" ] || die "no program $name in the unpacked packages"
	done
}
install_path() {
	local rel="$1" target
	mkdir -p "$R/$(dirname "$rel")"
	if [ -L "$X/$rel" ]; then
		cp -P "$X/$rel" "$R/$rel"
		target="$(readlink "$X/$rel")"
		case "$target" in
		/*) install_path "${target#/}" ;;
		*) install_path "$(dirname "$rel")/$target" ;;
		esac
	elif [ ! -e "$R/$rel" ]; then
		cp -p "$X/$rel" "$R/$rel"
		PROGS+=("$R/$rel")
	fi
}

# --- kernel modules ------------------------------------------------------------
# In load order; each module's dependencies (modules.dep) are loaded before
# it. crc32c_generic: ext4 and xfs ask the crypto API for crc32c, which only a
# userspace modprobe with softdeps would load on demand.
MODULES=(
	virtio_pci virtio_net virtio_blk virtio_rng
	9pnet_virtio 9p
	nbd loop
	crc32c_generic crc16 mbcache jbd2 ext4 xfs
	sunrpc grace lockd nfs nfsv3
)

log "depmod for $KVER (unpacked kmod)"
run_x "$X/bin/kmod" depmod -b "$X" "$KVER"
MDIR="lib/modules/$KVER"

# module_path NAME: the modules.dep path of module NAME ('-' and '_' match).
declare -A MODPATH=() MODDEPS=()
while IFS= read -r line; do
	path="${line%%:*}"
	base="$(basename "$path")"
	base="${base%%.ko*}"
	MODPATH[${base//-/_}]="$path"
	MODDEPS[${base//-/_}]="${line#*:}"
done <"$X/$MDIR/modules.dep"

ORDER=()
declare -A LOADED=()
# add_module NAME: NAME's dependencies, then NAME, onto ORDER.
add_module() {
	local name="${1//-/_}" path deps d dname i
	[ -z "${LOADED[$name]:-}" ] || return 0
	path="${MODPATH[$name]:-}"
	[ -n "$path" ] || die "kernel $KVER has no module $1"
	read -ra deps <<<"${MODDEPS[$name]}"
	# modules.dep lists a module's dependencies last-needed first.
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
		dname="$(basename "${deps[$i]}")"
		add_module "${dname%%.ko*}"
	done
	LOADED[$name]=1
	ORDER+=("$path")
}
for m in "${MODULES[@]}"; do add_module "$m"; done

mkdir -p "$R/$MDIR"
: >"$R/$MDIR/load-order"
for path in "${ORDER[@]}"; do
	dest="$R/$MDIR/${path%%.ko*}.ko"
	mkdir -p "$(dirname "$dest")"
	case "$path" in
	*.ko) cp "$X/$MDIR/$path" "$dest" ;;
	*.ko.xz) xz -dc "$X/$MDIR/$path" >"$dest" ;;
	*.ko.zst) zstd -qdc "$X/$MDIR/$path" >"$dest" ;;
	*) die "unknown module format: $path" ;;
	esac
	echo "${path%%.ko*}.ko" >>"$R/$MDIR/load-order"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ ! -e "$X/$MDIR/$f" ] || cp "$X/$MDIR/$f" "$R/$MDIR/$f"
done
run_x "$X/bin/kmod" depmod -b "$R" "$KVER"
log "${#ORDER[@]} modules: $(for p in "${ORDER[@]}"; do b="$(basename "$p")"; printf '%s ' "${b%%.ko*}"; done)"

# --- programs and libraries ----------------------------------------------------
install_prog nbd-client
install_prog mke2fs mkfs.ext4 mkfs.ext3 mkfs.ext2 e2fsck fsck.ext4 fsck.ext3 fsck.ext2 \
	tune2fs resize2fs dumpe2fs e2label debugfs
install_prog mkfs.xfs xfs_repair
install_prog mount.nfs mount.nfs4 umount.nfs umount.nfs4 nfsstat showmount
install_prog mount umount losetup
install_prog blkid blockdev blkdiscard fstrim wipefs lsblk findmnt fallocate
mkdir -p "$R/etc"
for f in etc/mke2fs.conf etc/netconfig; do
	[ -e "$X/$f" ] || die "no $f in the unpacked packages"
	cp "$X/$f" "$R/$f"
done
install_libs "$R/lib/x86_64-linux-gnu" "${PROGS[@]}"
mkdir -p "$R/lib64"
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"

# busybox for everything else: a link per applet, unless a real program of
# that name is already there.
mkdir -p "$R/bin"
cp "$X/bin/busybox" "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list-full); do
	name="$(basename "$applet")"
	taken=""
	for d in bin sbin usr/bin usr/sbin; do
		if [ -e "$R/$d/$name" ] || [ -L "$R/$d/$name" ]; then taken=1; fi
	done
	[ -n "$taken" ] && continue
	mkdir -p "$R/$(dirname "$applet")"
	ln -s /bin/busybox "$R/$applet"
done

# fio wrapper: fio and its libraries live on the fio disk, mounted at /opt/fio.
mkdir -p "$R/usr/bin"
cat >"$R/usr/bin/fio" <<'EOF'
#!/bin/sh
d=/opt/fio
if [ ! -x "$d/bin/fio" ]; then
	echo "fio: the fio disk is not mounted at $d" >&2
	exit 127
fi
exec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/bin/fio" "$@"
EOF
chmod 755 "$R/usr/bin/fio"

# --- /etc and /init --------------------------------------------------------------
mkdir -p "$R"/{proc,sys,dev,tmp,run,host,mnt,opt/fio,root,var/lib/nfs,var/run,etc/tsumiki}
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n10.0.2.15 guest\n10.0.2.2 host\n' >"$R/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\nrpc: files\n' >"$R/etc/nsswitch.conf"
printf 'ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\n' >"$R/etc/protocols"
printf 'sunrpc 111/tcp portmapper\nsunrpc 111/udp portmapper\nnfs 2049/tcp\nnfs 2049/udp\nnbd 10809/tcp\n' >"$R/etc/services"
printf 'portmapper 100000 portmap sunrpc\nnfs 100003 nfsprog\nmountd 100005 mount showmount\nnlockmgr 100021\nstatus 100024\n' >"$R/etc/rpc"
: >"$R/etc/fstab"
echo "$KVER" >"$R/etc/tsumiki/release"

cat >"$R/init" <<'EOF'
#!/bin/sh
# PID 1 of the tsumiki test guest (scripts/guest/build.sh writes it).
# Mounts the pseudo filesystems, loads the modules, brings up eth0 as
# 10.0.2.15/24 with no default route (only the host, 10.0.2.2, is reachable),
# mounts the 9p share "host" at /host and the fio disk at /opt/fio, runs
# /tsumiki/job.sh (appended per run by internal/qemutest), prints the exit
# marker and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
msg() { echo "tsumiki-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
exec </dev/null >/dev/console 2>&1

kver="$(uname -r)"
while read -r m; do
	insmod "/lib/modules/$kver/$m" || msg "insmod $m failed"
done <"/lib/modules/$kver/load-order"

ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
else
	msg "no eth0"
fi

# /dev/disk/by-id/virtio-SERIAL, as udev would name them.
mkdir -p /dev/disk/by-id
for b in /sys/block/vd*; do
	[ -e "$b/serial" ] || continue
	s="$(cat "$b/serial")"
	[ -n "$s" ] && ln -sf "../../${b##*/}" "/dev/disk/by-id/virtio-$s"
done
if [ -e /dev/disk/by-id/virtio-tsumiki-fio ]; then
	mount -t ext4 -o ro /dev/disk/by-id/virtio-tsumiki-fio /opt/fio || msg "cannot mount the fio disk"
fi
for t in /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag; do
	[ -e "$t" ] || continue
	if [ "$(cat "$t")" = host ]; then
		mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none host /host ||
			msg "cannot mount the 9p share"
	fi
done

nonce="$(cat /tsumiki/nonce 2>/dev/null)"
rc=127
if [ -f /tsumiki/job.sh ]; then
	cd /tmp
	sh /tsumiki/job.sh
	rc=$?
	cd /
else
	msg "no /tsumiki/job.sh"
fi
sync
echo "TSUMIKI-GUEST-EXIT $nonce $rc"
poweroff -f
EOF
chmod 755 "$R/init"

log "writing initramfs.img"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$OUT/initramfs.tmp"
# Pad to a multiple of 4 bytes: an appended uncompressed cpio must start
# 4-byte aligned or the kernel ignores it.
size="$(stat -c %s "$OUT/initramfs.tmp")"
pad=$(((4 - size % 4) % 4))
[ "$pad" = 0 ] || head -c "$pad" /dev/zero >>"$OUT/initramfs.tmp"
mv "$OUT/initramfs.tmp" "$OUT/initramfs.img"

cp "$X/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$KVER" >"$OUT/release"

# --- the fio disk ----------------------------------------------------------------
log "writing fio.ext4"
mkdir -p "$F/bin" "$F/lib"
cp "$X/usr/bin/fio" "$F/bin/fio"
install_libs "$F/lib" "$F/bin/fio"
kib=$(($(du -sk "$F" | cut -f1) * 5 / 4 + 4096))
rm -f "$OUT/fio.tmp"
mke2fs -q -F -t ext4 -O ^has_journal -L tsumiki-fio -d "$F" "$OUT/fio.tmp" "${kib}k" >/dev/null
mv "$OUT/fio.tmp" "$OUT/fio.ext4"

stamp "$OUT/guest.ok"
log "built in $OUT: kernel $KVER, initramfs $(($(stat -c %s "$OUT/initramfs.img") / 1024)) KiB, fio disk $((kib / 1024)) MiB"

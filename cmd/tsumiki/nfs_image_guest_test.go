package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// The NFS gateway's proofs with a real Linux kernel (issue 4, proofs 1-3).
// TestClusterNFSGuestImage runs the whole stack inside one guest; the
// access rules are proven with gateways on the host in --dir mode
// (TestClusterNFSGuestAccess), which is faster and needs no cluster.

// nfsImageSizes are TestClusterNFSGuestImage's sizes: the short form keeps
// under about three minutes under TCG, where a small file over NFS costs
// about 0.15 s (a CREATE and a WRITE, each synced through ext4's journal,
// NBD FLUSH and the replicas) and the big file moves at a few MB/s.
type nfsImageSizes struct {
	image      string // image size
	smallFiles int
	bigMiB     int
	records    int // fsynced records of the crash phase
	killAt     int // records acknowledged before the gateway is killed
	memMiB     int // guest memory; the OSDs keep their data in it (/tmp)
	timeout    time.Duration
}

func nfsImageGuestSizes() nfsImageSizes {
	if longE2E() {
		return nfsImageSizes{image: "1G", smallFiles: 2000, bigMiB: 256, records: 600, killAt: 200,
			memMiB: 4096, timeout: 25 * time.Minute}
	}
	return nfsImageSizes{image: "256M", smallFiles: 200, bigMiB: 32, records: 120, killAt: 40,
		memMiB: 2048, timeout: 10 * time.Minute}
}

// TestClusterNFSGuestImage: the whole stack in one guest (a mon, three OSD
// processes, pool rbd, image rbd/nfs and `tsumiki nfs serve --image
// rbd/nfs`, from a static binary shared at /host), mounted by the guest's
// own NFS client over loopback with the plain
// `mount -t nfs -o vers=3,nolock 127.0.0.1:/data /mnt` (portmapper on
// 111 in the guest).
//
//   - Proof 1: nfsWorkload, with the gateway restarted (SIGTERM: it syncs,
//     unmounts, detaches and releases the lock; then started again) while
//     the shell's cwd is inside a renamed directory.
//   - Proof 2: a writer appends 64-byte records, each with O_DIRECT (no
//     client cache that could write an acknowledged record again) and
//     fsync, and logs a record's number only after its fsync returned;
//     the gateway is killed with SIGKILL mid-write and started again with
//     no help: it must clear the dead gateway's mount and NBD device and
//     wait out its lock. The writer (hard mount) goes on; every logged
//     record must be there, intact, read through a fresh mount.
//   - Finally the gateway stops, the image is mapped directly (`tsumiki
//     map`) and mounted read-only: what the workload and the writer left
//     is on the image, and e2fsck finds nothing.
func TestClusterNFSGuestImage(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	share := t.TempDir()
	buildStaticTsumiki(t, share)
	sz := nfsImageGuestSizes()
	w := nfsWorkload{Server: "127.0.0.1", SmallFiles: sz.smallFiles, BigMiB: sz.bigMiB,
		Restart: "gw_stop\ngw_start\n"}
	script := fmt.Sprintf(nfsImageGuestPrelude, sz.image) + guestGatewayFuncs + "gw_start\nphase \"workload\"\n" +
		w.script() + "echo NFS-WORKLOAD-OK\n" +
		fmt.Sprintf(nfsImageGuestCrash, sz.records, sz.killAt) +
		fmt.Sprintf(nfsImageGuestFinal, sz.bigMiB, sz.smallFiles)
	start := time.Now()
	res, err := qemutest.Run(t.Context(), t, qemutest.Config{Script: script, Share: share, MemMiB: sz.memMiB,
		Timeout: sz.timeout, Log: qemutest.LineLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Console, "\nNFS-IMAGE-GUEST-OK") {
		t.Fatalf("guest job failed with exit code %d (console above)", res.ExitCode)
	}
	t.Logf("whole stack in the guest: workload, restart, kill -9 and recovery, image check in %s",
		time.Since(start).Round(time.Second))
}

// nfsImageGuestPrelude starts the cluster in the guest, makes pool rbd and
// image rbd/nfs, and checks that the gateway will not format an image
// holding data. %s: the image size.
const nfsImageGuestPrelude = `set -eu
export PATH=/host:$PATH
phase() { echo "--- $(cut -d' ' -f1 /proc/uptime) s: $*"; }
tsumiki mon --data /tmp/mon > /tmp/mon.log 2>&1 &
for n in 0 1 2; do
  until tsumiki status >/dev/null 2>&1; do sleep 0.5; done
  tsumiki osd --data /tmp/osd$n --host h$n --listen 127.0.0.1:680$n --cluster-listen 127.0.0.1:690$n > /tmp/osd$n.log 2>&1 &
  sleep 1
done
i=0
until tsumiki osd ls | grep -c "up,in" | grep -q 3; do
  i=$((i+1)); if [ $i -gt 300 ]; then cat /tmp/osd*.log; exit 3; fi; sleep 1
done
phase "cluster up"
tsumiki pool create rbd --size 3 --pg-num 16
tsumiki image create rbd/nfs --size %s

# An image that holds data but no file system blkid knows: the gateway
# refuses to format it, and leaves it as it was.
head -c 1048576 /dev/urandom > /tmp/raw
tsumiki image import /tmp/raw rbd/raw
if (cd / && exec tsumiki nfs serve --image rbd/raw --export /raw) > /tmp/raw.log 2>&1; then
  echo "the gateway served a raw image"; exit 27
fi
grep -q "refusing to format" /tmp/raw.log || { echo "the gateway failed otherwise:"; tail -n 20 /tmp/raw.log; exit 27; }
tsumiki image export rbd/raw /tmp/raw.back
cmp /tmp/raw /tmp/raw.back || { echo "the refused raw image changed"; exit 27; }
echo "the gateway refused to format an image holding data"

`

// guestRunning defines running PID in a guest script: the process runs
// (exists and is no zombie).
const guestRunning = `running() { [ -e /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status; }
`

// guestGatewayFuncs defines, for a guest job, gw_start (start `tsumiki nfs
// serve --image rbd/nfs --export /data` and wait until it serves) and
// gw_stop (SIGTERM; it must exit 0), and running PID.
const guestGatewayFuncs = guestRunning + `# gw_start starts the gateway (from /, whatever this shell's cwd) and
# returns once its portmapper and MOUNT list /data.
gw_start() {
  (cd / && exec tsumiki nfs serve --image rbd/nfs --export /data) >> /tmp/gw.log 2>&1 &
  gw=$!
  t0=$(date +%s)
  until showmount -e 127.0.0.1 2>/dev/null | grep -q '^/data'; do
    if [ $(($(date +%s) - t0)) -gt 120 ] || ! running $gw; then echo "the gateway did not come up"; tail -n 40 /tmp/gw.log; exit 20; fi
    sleep 0.5
  done
  echo "gateway (pid $gw) serving after $(($(date +%s) - t0)) s"
}
# gw_stop stops the gateway with SIGTERM; it must exit 0.
gw_stop() {
  kill -TERM $gw
  rc=0
  wait $gw || rc=$?
  if [ $rc != 0 ]; then echo "the gateway exited with $rc on SIGTERM"; tail -n 40 /tmp/gw.log; exit 21; fi
}
`

// nfsImageGuestCrash is proof 2. %d: records to write, records
// acknowledged when the gateway is killed.
const nfsImageGuestCrash = `set +x
phase "crash: kill -9 the gateway while a writer appends fsynced records"
mount -t nfs -o vers=3,nolock 127.0.0.1:/data /mnt
records=%d
kill_at=%d
: > /tmp/acked
# Record i is 64 bytes at offset 64*i. O_DIRECT: the client keeps no copy
# that it could write again after the restart, so what is read back is what
# the server kept. The number is logged only after dd's fsync returned.
writer() {
  i=0
  while [ $i -lt $records ]; do
    printf 'record %%056d\n' $i |
      dd of=/mnt/crash.log bs=64 count=1 seek=$i iflag=fullblock oflag=direct conv=notrunc,fsync status=none ||
      { echo "writer: record $i failed"; return 1; }
    echo $i >> /tmp/acked
    i=$((i+1))
  done
}
writer > /tmp/writer.out 2>&1 &
writer=$!
i=0
until [ "$(wc -l < /tmp/acked)" -ge $kill_at ]; do
  i=$((i+1)); if [ $i -gt 1200 ] || ! running $writer; then echo "the writer is stuck"; cat /tmp/writer.out; exit 22; fi
  sleep 0.1
done
kill -9 $gw
wait $gw || true
echo "gateway killed (SIGKILL) after $(wc -l < /tmp/acked) fsynced records"
echo "left behind:"; grep nbd /proc/mounts || true
for p in /sys/block/nbd*/pid; do [ -e "$p" ] && echo "$p: $(cat $p)"; done
sleep 2
gw_start
echo "$(wc -l < /tmp/acked) records acknowledged when the gateway came back"
grep 'stale mount\|gone\|expired' /tmp/gw.log || true
grep -q 'stale mount' /tmp/gw.log || { echo "the restarted gateway did not clear the stale mount"; exit 23; }
wait $writer || { echo "the writer failed"; cat /tmp/writer.out; exit 24; }
[ "$(wc -l < /tmp/acked)" = $records ]
cd /
umount /mnt
i=0
while [ $i -lt $records ]; do printf 'record %%056d\n' $i; i=$((i+1)); done > /tmp/expect
mount -t nfs -o vers=3,nolock 127.0.0.1:/data /mnt
cmp /tmp/expect /mnt/crash.log || { echo "fsynced records lost or damaged:"; cmp -l /tmp/expect /mnt/crash.log | head; exit 25; }
echo "all $records fsynced records are intact after the kill -9"
umount /mnt
`

// nfsImageGuestFinal stops the gateway, maps the image directly and checks
// what the workload and the writer left on it (the host's checks in
// TestClusterNFSGuestPlainMount, seen from the image). %d: the big file's
// MiB, the number of small files.
const nfsImageGuestFinal = `phase "the image itself"
gw_stop
dev=$(tsumiki map rbd/nfs)
mkdir -p /img
mount -o ro "$dev" /img
fail() { echo "on the image: $*"; umount /img; exit 26; }
[ "$(stat -c '%%u:%%g %%a %%h %%Y' /img/c)" = "1000:1000 640 2 981173106" ] || fail "c: $(stat -c '%%u:%%g %%a %%h %%Y' /img/c)"
[ "$(readlink /img/abs)" = /etc/hostname ] || fail "abs -> $(readlink /img/abs)"
[ "$(stat -c %%u:%%g /img/pub/ufile)" = 1000:1000 ] || fail "pub/ufile owner"
[ -c /img/cdev ] || fail "cdev is not a character device"
[ "$(stat -c %%s /img/big)" = $((%d * 1048576)) ] || fail "big: size $(stat -c %%s /img/big)"
[ "$(sha256sum /img/big | cut -d' ' -f1)" = "$(cat /host/big.sum)" ] || fail "big: sha256 differs"
[ "$(ls /img/many | wc -l)" = %d ] || fail "many: $(ls /img/many | wc -l) files"
[ "$(cat /img/work2/dir/h)" = after ] || fail "work2/dir/h"
[ -z "$(ls -A /img | grep '^\.nfs' || true)" ] || fail "left behind: $(ls -A /img | grep '^\.nfs')"
cmp /tmp/expect /img/crash.log || fail "crash.log differs"
umount /img
e2fsck -fn "$dev"
tsumiki unmap "$dev"
phase "done"
echo NFS-IMAGE-GUEST-OK
`

// buildStaticTsumiki builds the binary into dir for the guest, which has
// no Go toolchain and its own libc.
func buildStaticTsumiki(t *testing.T, dir string) { buildStatic(t, dir, "tsumiki", ".") }

// buildStatic builds package pkg (a path from cmd/tsumiki) into dir/name
// for the guest: static, without cgo.
func buildStatic(t *testing.T, dir, name, pkg string) {
	t.Helper()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build of %s: %v\n%s", name, err, out)
	}
}

// TestClusterNFSGuestAccess (proof 3): export rules as a real Linux
// client meets them. Two gateways on the host in --dir mode (the guest's
// connections reach them from 127.0.0.1, through QEMU's NAT):
//
//   - gateway A (portmapper on 111): /denied allows only 192.0.2.0/24, so
//     the guest's mount is refused (access denied); /data allows loopback
//     with root_squash and anonuid/anongid 4321/4322, so what root creates
//     belongs to 4321:4322, root cannot read a 0600 file of the host's
//     root, nor chown;
//   - gateway B (no portmapper, its port given to mount): /ro, read-only:
//     reads work, every change fails (EROFS where the client sends the
//     change; EACCES when it opens an existing file for writing, since
//     ACCESS grants no write bit, as knfsd answers), and nothing changes
//     on the host.
func TestClusterNFSGuestAccess(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	skipUnlessPortmapperFree(t)
	work := t.TempDir()
	dirA, dirB := t.TempDir(), t.TempDir()
	if err := os.Chmod(dirA, 0o1777); err != nil { // squashed root must be able to create here
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "secret"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "existing"), []byte("ro\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dirB, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	// The refusals must come from the export, not from permissions.
	for _, p := range []string{dirB, filepath.Join(dirB, "sub"), filepath.Join(dirB, "existing")} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig := func(name, yaml string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgA := writeConfig("a.yaml", `exports:
  - path: /denied
    networks: [192.0.2.0/24]
  - path: /data
    networks: [127.0.0.0/8]
    root_squash: true
    anonuid: 4321
    anongid: 4322
`)
	cfgB := writeConfig("b.yaml", `exports:
  - path: /ro
    networks: [127.0.0.0/8]
    read_only: true
`)
	portA, portB := freePort(t), freePort(t)
	gwA := &proc{name: "nfs-a", log: filepath.Join(work, "a.log"), args: []string{"nfs", "serve", "--dir", dirA,
		"--config", cfgA, "--listen", fmt.Sprintf("127.0.0.1:%d", portA), "--portmap-listen", "127.0.0.1:111"}}
	gwB := &proc{name: "nfs-b", log: filepath.Join(work, "b.log"), args: []string{"nfs", "serve", "--dir", dirB,
		"--config", cfgB, "--export", "/ro", "--listen", fmt.Sprintf("127.0.0.1:%d", portB), "--portmap-listen", ""}}
	for _, gw := range []*proc{gwA, gwB} {
		gw.start(t)
		t.Cleanup(func() { gw.kill9(t) })
	}
	for _, c := range []struct {
		gw   *proc
		addr string
	}{{gwA, "127.0.0.1:111"}, {gwA, fmt.Sprintf("127.0.0.1:%d", portA)}, {gwB, fmt.Sprintf("127.0.0.1:%d", portB)}} {
		waitListening(t, c.addr, c.gw)
	}

	script := fmt.Sprintf(`set -eux
mkdir -p /mnt /ro
showmount -e 10.0.2.2 | tee /tmp/exports
grep -q '^/denied' /tmp/exports
grep -q '^/data' /tmp/exports

# a client outside the export's networks is refused
if mount -t nfs -o vers=3,nolock 10.0.2.2:/denied /mnt 2>/tmp/err; then echo "mounted /denied"; exit 1; fi
cat /tmp/err
grep -qi 'access denied' /tmp/err

# root squash: root works as 4321:4322
mount -t nfs -o vers=3,nolock 10.0.2.2:/data /mnt
echo squashed > /mnt/rootfile
mkdir /mnt/rootdir
[ "$(stat -c %%u:%%g /mnt/rootfile)" = 4321:4322 ]
[ "$(stat -c %%u:%%g /mnt/rootdir)" = 4321:4322 ]
if cat /mnt/secret 2>/tmp/err; then echo "squashed root read a 0600 file of root"; exit 1; fi
grep -qi 'permission denied' /tmp/err
if chown 0:0 /mnt/rootfile 2>/tmp/err; then echo "squashed root gave a file to root"; exit 1; fi
[ "$(stat -c %%u:%%g /mnt/rootfile)" = 4321:4322 ]
umount /mnt

# a read-only export: reads work, changes fail
mount -t nfs -o vers=3,proto=tcp,port=%d,mountport=%d,nolock 10.0.2.2:/ro /ro
[ "$(cat /ro/existing)" = ro ]
refused() { # refused WANT CMD...: CMD must fail with WANT in its message
  want="$1"; shift
  if "$@" 2>/tmp/err; then echo "on the ro export, $* worked"; exit 1; fi
  cat /tmp/err
  grep -qi "$want" /tmp/err || { echo "on the ro export, $* failed without '$want'"; exit 1; }
}
refused 'read-only file system' sh -c 'echo x > /ro/new'
refused 'read-only file system' mkdir /ro/newdir
refused 'read-only file system' rm /ro/existing
refused 'read-only file system' mv /ro/existing /ro/moved
refused 'read-only file system' ln -s existing /ro/link
refused 'read-only file system' ln /ro/existing /ro/hard
refused 'read-only file system' rmdir /ro/sub
refused 'read-only file system' chmod 600 /ro/existing
refused 'read-only file system' touch -d '2001-02-03 04:05:06' /ro/existing
refused 'permission denied\|read-only file system' dd if=/dev/zero of=/ro/existing bs=1 count=1 conv=notrunc,fsync
[ "$(cat /ro/existing)" = ro ]
umount /ro
echo NFS-ACCESS-OK
`, portB, portB)
	res, err := qemutest.Run(t.Context(), t, qemutest.Config{Script: script, Timeout: 4 * time.Minute,
		Log: qemutest.LineLogger(t)})
	if err != nil {
		t.Fatalf("guest: %v\ngateway A:\n%s\ngateway B:\n%s", err, tail(gwA.log), tail(gwB.log))
	}
	if res.ExitCode != 0 || !strings.Contains(res.Console, "\nNFS-ACCESS-OK") {
		t.Fatalf("guest job failed (exit %d, console above); gateway A:\n%s\ngateway B:\n%s", res.ExitCode, tail(gwA.log), tail(gwB.log))
	}

	// What the host sees.
	var st syscall.Stat_t
	for _, name := range []string{"rootfile", "rootdir"} {
		if err := syscall.Lstat(filepath.Join(dirA, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("%s on the host: %d:%d, want 4321:4322 (root squashed)", name, st.Uid, st.Gid)
		}
	}
	ents, err := os.ReadDir(dirB)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "existing sub" {
		t.Errorf("the read-only export's folder changed: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dirB, "existing")); string(b) != "ro\n" {
		t.Errorf("existing on the read-only export: %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dirB, "existing")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("existing's mode changed: %v %v", fi.Mode(), err)
	}
	gwA.stop(t)
	gwB.stop(t)
}

// waitListening waits until addr accepts TCP connections, at most 20 s.
func waitListening(t *testing.T, addr string, gw *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil || !gw.running() {
			t.Fatalf("%s not listening on %s: %v\n%s", gw.name, addr, err, tail(gw.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestParseMountSource: how `nfs serve --image` finds a dead gateway's
// stale mount in /proc/self/mountinfo.
func TestParseMountSource(t *testing.T) {
	const info = `22 1 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
40 22 43:0 / /run/tsumiki/nfs/rbd_nfs rw,relatime shared:20 - ext4 /dev/nbd0 rw
41 22 43:32 / /run/tsumiki/nfs/rbd_other rw,relatime - ext4 /dev/nbd1 rw
42 40 43:64 / /run/tsumiki/nfs/rbd_nfs rw,relatime - ext4 /dev/nbd2 rw
43 22 0:50 / /mnt rw - nfs 127.0.0.1:/data rw,vers=3
`
	for _, c := range []struct {
		dir, src string
		ok       bool
	}{
		{"/run/tsumiki/nfs/rbd_nfs", "/dev/nbd2", true}, // stacked: the top one
		{"/run/tsumiki/nfs/rbd_other", "/dev/nbd1", true},
		{"/mnt", "127.0.0.1:/data", true},
		{"/run/tsumiki/nfs", "", false},
		{"/run/tsumiki/nfs/rbd_none", "", false},
	} {
		src, ok := parseMountSource(info, c.dir)
		if src != c.src || ok != c.ok {
			t.Errorf("%s: %q %v, want %q %v", c.dir, src, ok, c.src, c.ok)
		}
	}
	if src, ok := parseMountSource("garbage\n1 2 3\n- - -\n", "/x"); ok || src != "" {
		t.Errorf("garbage: %q %v", src, ok)
	}
}

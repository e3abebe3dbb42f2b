package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// TestClusterKernelNBD is issue 3's proof 2 with a real Linux kernel: the
// guest's nbd-client attaches an image served by `tsumiki nbd serve` on the
// host (separate mon and OSD processes), makes an ext4 filesystem, writes
// files, remounts and verifies them, and fsck finds nothing. Then, while
// the guest writes and verifies with fio, one OSD is killed with SIGKILL:
// the guest must see no I/O error. Skipped (saying why) where QEMU cannot
// run. TSUMIKI_E2E=long writes 256 MiB of files; the short form 48 MiB.
func TestClusterKernelNBD(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "rbd", "--size", "3", "--pg-num", "32")
	c.mustCLI("image", "create", "rbd/kern", "--size", "2G")
	port := c.startNBDServe()

	files, fileMiB := 3, 16
	if longE2E() {
		files, fileMiB = 8, 32
	}
	share := t.TempDir()
	script := fmt.Sprintf(`set -eu
nbd-client 10.0.2.2 %d /dev/nbd0 -N rbd/kern -timeout 120
mkfs.ext4 -q /dev/nbd0
mkdir -p /mnt
mount /dev/nbd0 /mnt
i=0
while [ $i -lt %d ]; do dd if=/dev/urandom of=/mnt/f$i bs=1M count=%d status=none; i=$((i+1)); done
(cd /mnt && sha256sum f* > /host/sums)
umount /mnt
mount /dev/nbd0 /mnt
(cd /mnt && sha256sum -c /host/sums >/dev/null)
echo "files verified after remount"
touch /host/writing
fio --name=verify --filename=/mnt/fio.dat --size=96M --rw=randwrite --bs=4k-256k --ioengine=psync --direct=1 \
  --verify=crc32c --verify_fatal=1 --do_verify=1 --output=/host/fio.txt
echo "fio verified while an OSD died"
(cd /mnt && sha256sum -c /host/sums >/dev/null)
umount /mnt
e2fsck -fn /dev/nbd0
nbd-client -d /dev/nbd0
if dmesg | grep -qi "I/O error"; then dmesg | grep -i "I/O error"; exit 9; fi
echo "kernel saw no I/O error"
`, port, files, fileMiB)

	// Kill one OSD once the guest is writing with verification.
	killed := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(share, "writing")); err == nil {
				time.Sleep(2 * time.Second)
				c.osds[1].kill9(t)
				killed <- c.osdName(1)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	res, err := qemutest.Run(ctx, t, qemutest.Config{Script: script, Share: share, MemMiB: 1024,
		Timeout: 10 * time.Minute, Log: qemutest.LineLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := os.ReadFile(filepath.Join(share, "fio.txt")); err == nil {
		t.Logf("fio in the guest:\n%s", out)
	}
	if res.ExitCode != 0 {
		t.Fatalf("guest job failed with exit code %d (console above)", res.ExitCode)
	}
	select {
	case name := <-killed:
		t.Logf("killed %s while the guest wrote; no I/O error reached the kernel", name)
	default:
		t.Fatal("the guest never signalled that it was writing; no OSD was killed")
	}
	c.osds[1].start(t)
	c.waitUp(3)
	c.eventually(2*time.Minute, "pg verify clean after the OSD is back", func() error {
		_, err := c.cli("pg", "verify")
		return err
	})
}

// TestClusterKernelMap: `tsumiki map` inside a guest that runs the whole
// cluster itself (a mon and three OSD processes, hosts h0-h2): map, mkfs,
// mount, write files, then fio writes and verifies while one OSD is killed
// with SIGKILL (no I/O error may reach the kernel), remount, verify, fsck,
// unmap; showmapped lists the device while it is mapped and a second map
// is refused because of the image lock; signals sent to the serving
// process do not drop the device.
func TestClusterKernelMap(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	share := t.TempDir()
	buildStaticTsumiki(t, share)
	// The OSDs keep their data on the guest's RAM-backed /tmp (half the
	// guest's memory): three replicas of the files must stay well under the
	// OSDs' full ratio.
	mib, mem := 24, 2048
	if longE2E() {
		mib, mem = 256, 4096
	}
	script := fmt.Sprintf(`set -eu
export PATH=/host:$PATH
tsumiki mon --data /tmp/mon > /tmp/mon.log 2>&1 &
for n in 0 1 2; do
  until tsumiki status >/dev/null 2>&1; do sleep 0.5; done
  tsumiki osd --data /tmp/osd$n --host h$n --listen 127.0.0.1:680$n --cluster-listen 127.0.0.1:690$n > /tmp/osd$n.log 2>&1 &
  eval osd$n=$!
  sleep 1
done
i=0
until tsumiki osd ls | grep -c "up,in" | grep -q 3; do
  i=$((i+1)); if [ $i -gt 300 ]; then cat /tmp/osd*.log; exit 3; fi; sleep 1
done
tsumiki pool create rbd --size 3 --pg-num 16
tsumiki image create rbd/m --size 512M
dev=$(tsumiki map rbd/m)
echo "mapped at $dev"
tsumiki showmapped > /tmp/mapped
grep -q "$dev.*rbd/m" /tmp/mapped || { echo "showmapped:"; cat /tmp/mapped; exit 6; }
if tsumiki map rbd/m 2>/tmp/err; then echo "second map succeeded"; exit 4; fi
grep -q "locked" /tmp/err || { echo "second map:"; cat /tmp/err; exit 7; }
mkfs.ext4 -q "$dev"
mkdir -p /mnt
mount "$dev" /mnt
dd if=/dev/urandom of=/mnt/data bs=1M count=%d status=none
sum=$(sha256sum /mnt/data | cut -d' ' -f1)
fio --name=verify --filename=/mnt/fio.dat --size=48M --rw=randwrite --bs=4k-128k --ioengine=psync --direct=1 \
  --verify=crc32c --verify_fatal=1 --do_verify=1 --output=/tmp/fio.txt &
fio=$!
sleep 3
kill -9 $osd1
echo "killed osd.1 (pid $osd1) while fio wrote"
wait $fio || { cat /run/tsumiki/mapped/map-rbd-m.log; exit 8; }
echo "fio verified while an OSD died"
# Signals sent to the serving process must not reach the thread in the
# kernel's NBD_DO_IT: interrupted, the kernel drops the device.
pid=$(tsumiki showmapped | awk -v d="$dev" '$1 == d { print $4 }')
[ -n "$pid" ] || { tsumiki showmapped; exit 10; }
# Bursts: real-time signals queue, so while the busy main thread has some
# pending the kernel hands the rest to the other threads.
many=""
i=0
while [ $i -lt 200 ]; do many="$many $pid"; i=$((i+1)); done
for sig in 40 41 42 43 WINCH CHLD URG USR1; do kill -$sig $many; done
sleep 1
[ -e /sys/block/${dev#/dev/}/pid ] || { echo "the device dropped after signals to its server"; dmesg | tail -n 5; exit 10; }
dd if=/dev/urandom of=/mnt/sig bs=1M count=4 conv=fsync status=none || { echo "I/O failed after signals to the server"; dmesg | tail -n 5; exit 10; }
echo "1600 signals to the serving process (pid $pid): the device stays"
umount /mnt
e2fsck -fn "$dev"
mount "$dev" /mnt
[ "$(sha256sum /mnt/data | cut -d' ' -f1)" = "$sum" ]
umount /mnt
tsumiki unmap "$dev"
if tsumiki showmapped | grep -q rbd/m; then echo "still listed after unmap"; exit 5; fi
if dmesg | grep -qi "I/O error"; then dmesg | grep -i "I/O error"; exit 9; fi
echo "map, mkfs, mount, verify, unmap: ok"
`, mib)
	res, err := qemutest.Run(context.Background(), t, qemutest.Config{Script: script, Share: share, MemMiB: mem,
		Timeout: 10 * time.Minute, Log: qemutest.LineLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("guest job failed with exit code %d (console above)", res.ExitCode)
	}
	if !strings.Contains(res.Console, "map, mkfs, mount, verify, unmap: ok") {
		t.Fatal("the guest did not report success")
	}
}

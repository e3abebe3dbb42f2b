package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// TestClusterUpPowerLoss cuts the power of `tsumiki up`, the way most people
// first run tsumiki: one process with the control plane, three OSDs on
// one disk, the NBD server and the NFS gateway. A guest runs it on its
// logged disk /dev/vda; the kernel's nbd-client attaches rbd/demo from
// up's NBD server, and ackcheck writes it with O_DIRECT while another
// ackcheck writes a file over up's NFS export (mounted through its
// portmapper). The host cuts the power once both have upPowerLossAcks
// acknowledgements per writer, and rebuilds the disk as TestClusterPowerLoss
// does (everything through the last flush; all, none, half or torn
// parts of the rest). The next boot starts `tsumiki up` on the same folder: it must
// come up by itself (no lock to break by hand: the gateways' holders died
// with the power), serve both, and every acknowledged write of both must
// be there. Then up is stopped with SIGTERM: it must exit 0, and stop its
// gateways before its OSDs, so that the kernel logs no I/O error and the
// NFS image's journal is left clean. It is started again without
// gateways, the NFS image's file system checked with e2fsck -fn, and the
// replicas compared (`tsumiki pg verify`). Skipped (saying why) where QEMU
// cannot run.
func TestClusterUpPowerLoss(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	disks := newGuestDisks(t, t.TempDir(), map[string]int64{"extra": 3 << 30})
	disks.cutOnceWhileWriting(t, upPowerLossScript, "over NBD and NFS", upPowerLossAcks, "\nUP-POWERLOSS-OK", "log.nbd", "log.nfs")
}

// upPowerLossAcks is how many acknowledged writes each writer, over NBD
// and over NFS, must have before the power may be cut.
const upPowerLossAcks = 20

// upGuestFuncs start and stop `tsumiki up` in a guest on /data/up. up_start
// passes its arguments on and returns once up said it is up and, unless
// told --nfs-image off, its NFS export is listed; up_stop sends SIGTERM and
// requires exit 0.
const upGuestFuncs = guestRunning + `up_start() {
  : > /tmp/up.log
  (cd / && exec tsumiki up --data /data/up --pg-num 16 --demo-size 256M --nfs-size 256M "$@") >> /tmp/up.log 2>&1 &
  up=$!
  t0=$(date +%s)
  until grep -q 'Ctrl-C stops everything' /tmp/up.log; do
    if [ $(($(date +%s) - t0)) -gt 300 ] || ! running $up; then echo "tsumiki up did not come up"; tail -n 40 /tmp/up.log; exit 20; fi
    sleep 0.5
  done
  case "$*" in *"--nfs-image off"*) ;; *)
    until showmount -e 127.0.0.1 2>/dev/null | grep -q '^/data'; do
      if [ $(($(date +%s) - t0)) -gt 300 ] || ! running $up; then echo "up's NFS gateway did not come up"; tsumiki status; tail -n 40 /tmp/up.log; exit 20; fi
      sleep 0.5
    done ;;
  esac
  echo "--- $(cut -d' ' -f1 /proc/uptime) s: tsumiki up (pid $up) serving after $(($(date +%s) - t0)) s"
}
up_stop() {
  t0=$(date +%s)
  kill -TERM $up
  rc=0
  wait $up || rc=$?
  if [ $rc != 0 ]; then echo "tsumiki up exited with $rc on SIGTERM"; tail -n 40 /tmp/up.log; exit 21; fi
  echo "--- $(cut -d' ' -f1 /proc/uptime) s: tsumiki up stopped in $(($(date +%s) - t0)) s"
}
# nbd_attach attaches rbd/demo from up's NBD server to the first free
# /dev/nbdX (the gateway holds one) and sets nbd to it.
nbd_attach() {
  nbd=""
  for d in /sys/block/nbd*; do [ -e $d/pid ] || { nbd=/dev/${d##*/}; break; }; done
  nbd-client 127.0.0.1 10809 $nbd -N rbd/demo -timeout 60
  [ -e /sys/block/${nbd#/dev/}/pid ] || { echo "nbd-client did not attach $nbd"; dmesg | tail -n 20; exit 22; }
}
`

// upPowerLossScript is the guest's job: boot 0 makes the file system, runs
// up, and writes over NBD and NFS until the power is cut; boot 1 starts it
// all again and checks.
func upPowerLossScript(boot int) string {
	var s strings.Builder
	s.WriteString("set -eu\nexport PATH=/host:$PATH\nmkdir -p /data\n")
	if boot == 0 {
		s.WriteString("mkfs.ext4 -q /dev/vda\n")
	}
	s.WriteString("mount /dev/vda /data\n" + upGuestFuncs + `up_start
mount -t nfs -o vers=3,nolock 127.0.0.1:/data /mnt
nbd_attach
`)
	if boot == 0 {
		fmt.Fprintf(&s, `truncate -s 32M /mnt/acked
dd if=/dev/null of=/mnt/acked conv=notrunc,fsync status=none
echo "writing over NBD ($nbd) and NFS until the power is cut"
ackcheck write -dev /mnt/acked -log /host/log.nfs -writers %[1]d -for 5m &
ackcheck write -dev $nbd -log /host/log.nbd -writers %[1]d -for 5m
echo "the writer stopped before the power was cut"
exit 4
`, powerLossWriters)
		return s.String()
	}
	s.WriteString(`ackcheck verify -dev $nbd -log /host/log.nbd -out /host/state.nbd || { tail -n 30 /tmp/up.log; exit 8; }
ackcheck verify -dev /mnt/acked -log /host/log.nfs -out /host/state.nfs || { tail -n 30 /tmp/up.log; exit 8; }
umount /mnt
nbd-client -d $nbd
kernel_lines=$(dmesg | wc -l)
up_stop
# The gateway unmounted its file system before the OSDs stopped: no I/O
# error on the way, and a clean journal (e2fsck -n would skip replaying a
# dirty one, and check a stale state).
if dmesg | tail -n +$((kernel_lines + 1)) | grep -i "I/O error"; then echo "I/O errors while tsumiki up stopped"; exit 23; fi
up_start --nfs-image off --nbd-listen off
dev=$(tsumiki map rbd/share)
rc=0
e2fsck -fn "$dev" > /tmp/fsck.out 2>&1 || rc=$?
cat /tmp/fsck.out
if grep -q "journal recovery" /tmp/fsck.out; then echo "tsumiki up's stop left the NFS image's journal dirty"; exit 24; fi
if [ $rc != 0 ]; then echo "the NFS image's file system is damaged (e2fsck exit $rc)"; exit 9; fi
tsumiki unmap "$dev"
` + guestPGVerify + `up_stop
echo UP-POWERLOSS-OK
`)
	return s.String()
}

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// TestClusterNFSPowerLoss cuts the power of the whole NFS stack. A guest
// runs a mon and three OSDs, each on its own logged disk as in
// TestClusterPowerLoss, and `tsumiki nfs serve --image`; it mounts the
// export over its own loopback and writes a file on it with ackcheck's
// writers (O_DIRECT: a write returns once the gateway answered it, which
// it does only once the write is durable, through ext4, the kernel's NBD
// client and the cluster). The host cuts the power once each writer has
// nfsPowerLossAcks acknowledgements, and rebuilds each disk without what
// it had not flushed (all, none, half of it, or some of it torn). The next boot starts the
// cluster and the gateway again (it waits out the dead gateway's lock and
// mounts the image, replaying ext4's journal), mounts the export and
// checks every unit of the file; then it stops the gateway and checks the
// image's file system with e2fsck -fn. Skipped (saying why) where QEMU
// cannot run. Long form only (make e2e): in make test, TestClusterUpPowerLoss
// cuts the power under the same NFS gateway (on one disk), and
// TestClusterPowerLoss under OSDs on disks of their own.
func TestClusterNFSPowerLoss(t *testing.T) {
	if !longE2E() {
		t.Skip("long e2e only (TSUMIKI_E2E=long, make e2e): make test's TestClusterUpPowerLoss cuts the power under the NFS gateway, TestClusterPowerLoss under OSDs on disks of their own")
	}
	qemutest.SkipIfUnavailable(t)
	clusterDisks(t).cutOnceWhileWriting(t, nfsPowerLossScript, "over NFS", nfsPowerLossAcks, "\nNFS-POWERLOSS-OK", "log.0")
}

// nfsPowerLossAcks is how many acknowledged writes each writer must have
// before the power may be cut (NFS through the emulated guest is slower
// than the block path of TestClusterPowerLoss).
const nfsPowerLossAcks = 25

// nfsPowerLossScript is the guest's job at boot 0 (make the cluster, the
// image and the file system, then write over NFS until the power is cut)
// and boot 1 (start it all again and check).
func nfsPowerLossScript(boot int) string {
	var s strings.Builder
	c := guestCluster{osdDisks: true, boot: boot}
	if boot == 0 {
		c.mkfs = "/dev/vda"
	}
	s.WriteString(c.script())
	if boot == 0 {
		s.WriteString("tsumiki pool create rbd --size 3 --pg-num 16\ntsumiki image create rbd/nfs --size 256M\n")
	}
	s.WriteString(guestGatewayFuncs + `gw_start
mount -t nfs -o vers=3,nolock 127.0.0.1:/data /mnt
`)
	if boot == 0 {
		fmt.Fprintf(&s, `truncate -s 32M /mnt/acked
dd if=/dev/null of=/mnt/acked conv=notrunc,fsync status=none
echo "writing over NFS until the power is cut"
ackcheck write -dev /mnt/acked -log /host/log.0 -writers %d -for 5m
echo "the writer stopped before the power was cut"
exit 4
`, powerLossWriters)
		return s.String()
	}
	s.WriteString(`ackcheck verify -dev /mnt/acked -log /host/log.0 -out /host/state.1 || { tail -n 30 /tmp/gw.log; exit 8; }
umount /mnt
gw_stop
dev=$(tsumiki map rbd/nfs)
e2fsck -fn "$dev" || { echo "the image's file system is damaged"; exit 9; }
tsumiki unmap "$dev"
echo NFS-POWERLOSS-OK
`)
	return s.String()
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// TestClusterPowerLoss cuts the power of a whole cluster while it takes
// writes, then checks every acknowledged write after the restart. A guest
// runs a mon and three OSDs on its own disk (a raw file on the host), maps
// an image and writes it with internal/acklog's writer, which logs each
// write before issuing it and each acknowledgement, to the host through
// the 9p share, which the power cut does not reach. The host kills QEMU
// with SIGKILL at a random moment once the writer is going: everything the
// guest's kernel had not written to its disk is gone; what QEMU had
// written stays in the host's page cache, so this is a power loss of a
// disk without a volatile cache (TestClusterPowerLossFlushPoints drops
// what was not flushed too). The next boot starts the same cluster from that
// disk, every node at once, maps the image (breaking the dead client's
// lock) and checks every unit: it must hold its last acknowledged write, or
// the write in flight at the cut. The last boot also waits for
// `tsumiki pg verify` to find the replicas equal, and checks again. One
// cut in `make test`; three with TSUMIKI_E2E=long. Skipped (saying why)
// where QEMU cannot run.
func TestClusterPowerLoss(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	share := guestTools(t)
	disk := sparseFile(t, t.TempDir(), "disk.raw", 4<<30, nil, 0)
	cuts := 1
	if longE2E() {
		cuts = 3
	}
	for boot := 0; boot <= cuts; boot++ {
		ctx, cancel := context.WithCancel(t.Context())
		cut := make(chan []int, 1)
		if boot < cuts {
			go cutPowerWhenWriting(ctx, cancel, filepath.Join(share, fmt.Sprintf("log.%d", boot)), cut)
		}
		res, err := qemutest.Run(ctx, t, qemutest.Config{Script: powerLossScript(boot, cuts), Share: share,
			ExtraDisk: disk, MemMiB: 2048, CPUs: 2, Timeout: 8 * time.Minute, Log: qemutest.LineLogger(t)})
		cancel()
		if boot < cuts {
			var acked []int
			select {
			case acked = <-cut:
			default:
			}
			if acked == nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("boot %d: the guest ended before the power was cut (exit %d, %v)", boot, res.ExitCode, err)
			}
			t.Logf("boot %d: power cut after %v acknowledged writes (per writer)", boot, acked)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("boot %d: guest job failed with exit code %d (console above)", boot, res.ExitCode)
		}
		if got := strings.Count(res.Console, "ackcheck verify:"); got != 2 {
			t.Fatalf("boot %d: %d verifications in the console, want 2 (before and after recovery)", boot, got)
		}
	}
}

// guestTools returns a folder to share with a guest, holding static builds
// of tsumiki and ackcheck (the guest has its own libc).
func guestTools(t *testing.T) string {
	share := t.TempDir()
	buildStaticTsumiki(t, share)
	buildStatic(t, share, "ackcheck", "../../internal/acklog/ackcheck")
	return share
}

// powerLossAcks is how many acknowledged writes each of ackcheck's four
// writers must have logged before the power may be cut: enough that large
// (placed) and small writes of every writer are among them, and that no
// writer hangs unnoticed.
const powerLossAcks, powerLossWriters = 75, 4

// cutPowerWhenWriting cancels the run (QEMU gets SIGKILL) at a random
// moment 0-3 s after every writer has powerLossAcks acknowledgements in
// the log, and sends the counts it had then on cut.
func cutPowerWhenWriting(ctx context.Context, cancel context.CancelFunc, log string, cut chan<- []int) {
	for ctx.Err() == nil {
		if n := countAcks(log); slices.Min(n) >= powerLossAcks {
			time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
			cut <- countAcks(log)
			cancel()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countAcks counts the acknowledgements of each writer in an ackcheck log.
func countAcks(path string) []int {
	n := make([]int, powerLossWriters)
	b, err := os.ReadFile(path)
	if err != nil {
		return n
	}
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		var w int
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "A %d %d", &w, &seq); err == nil && w >= 0 && w < len(n) {
			n[w]++
		}
	}
	return n
}

// guestVerifyTwice runs verify (an `ackcheck verify` command line without
// -out) before and after the cluster's recovery (guestPGVerify), and
// requires the same state both times: a recovery that copied a stale
// replica over a good one would leave the replicas equal and the data
// lost.
func guestVerifyTwice(verify, out string) string {
	return verify + " -out " + out + " || " + guestDiagnose + "\n" + guestPGVerify +
		verify + " -out " + out + ".after || " + guestDiagnose + "\n" +
		"cmp -s " + out + " " + out + ".after || { echo \"the state read changed after recovery\"; exit 6; }\n"
}

// guestDiagnose shows the cluster's state and the daemons' last words, and
// fails the job.
const guestDiagnose = `{ echo "verify failed; the cluster:"; tsumiki status; tsumiki pg ls; tail -n 40 /tmp/mon.log /tmp/osd*.log; exit 8; }`

// guestMapBreakingLock maps rbd/p after a power cut: the client that held
// its lock died with the power, so the lock is taken over. On failure it
// shows what the kernel and the map process said.
const guestMapBreakingLock = `dev=$(tsumiki map --break-lock rbd/p) || {
  echo "map failed:"; dmesg | tail -n 30; cat /run/tsumiki/mapped/*.log; exit 7
}
`

// guestPGVerify waits (up to 2 minutes) for `tsumiki pg verify` to find
// every PG's replicas equal.
const guestPGVerify = `i=0
until tsumiki pg verify > /tmp/verify.txt 2>&1; do
  i=$((i+1)); if [ $i -gt 60 ]; then cat /tmp/verify.txt; exit 5; fi; sleep 2
done
`

// guestClusterUp is the start of a guest job that runs a mon and three
// OSDs from the guest's disk /dev/vda mounted at /data; mkfs, if not
// empty, is mkfs.ext4's arguments to make the file system first.
func guestClusterUp(mkfs string, boot int) string {
	s := "set -eu\nexport PATH=/host:$PATH\nmkdir -p /data\n"
	if mkfs != "" {
		s += "mkfs.ext4 -q " + mkfs + "\n"
	}
	return s + `mount /dev/vda /data
tsumiki mon --data /data/mon > /tmp/mon.log 2>&1 &
i=0
until tsumiki status >/dev/null 2>&1; do
  i=$((i+1)); if [ $i -gt 240 ]; then cat /tmp/mon.log; exit 3; fi; sleep 0.5
done
osds=""
for n in 0 1 2; do
  tsumiki osd --data /data/osd$n --host h$n --listen 127.0.0.1:680$n --cluster-listen 127.0.0.1:690$n > /tmp/osd$n.log 2>&1 &
  osds="$osds $!"
done
i=0
until tsumiki osd ls | grep -c "up,in" | grep -q 3; do
  i=$((i+1)); if [ $i -gt 300 ]; then tsumiki osd ls; tail -n 20 /tmp/osd*.log; exit 3; fi; sleep 1
done
# After a power cut the map still says up until the old leases expire:
# the daemons themselves must be running.
sleep 2
for p in $osds; do
  kill -0 $p 2>/dev/null || { echo "an OSD exited:"; tail -n 20 /tmp/osd*.log; exit 3; }
done
echo "cluster up (boot ` + fmt.Sprint(boot) + `)"
`
}

// powerLossScript is the guest's job at boot (0: mkfs and create; later:
// restart and verify the previous boot's log); every boot but the last
// then writes until the power is cut.
func powerLossScript(boot, cuts int) string {
	var s strings.Builder
	mkfs := ""
	if boot == 0 {
		mkfs = "/dev/vda"
	}
	s.WriteString(guestClusterUp(mkfs, boot))
	if boot == 0 {
		s.WriteString(`tsumiki pool create rbd --size 3 --pg-num 16
tsumiki image create rbd/p --size 256M
dev=$(tsumiki map rbd/p)
`)
	} else {
		// The client died with the power: its lock is taken over.
		s.WriteString(guestMapBreakingLock)
		base := ""
		if boot >= 2 {
			base = fmt.Sprintf("-base /host/state.%d ", boot-2)
		}
		verify := fmt.Sprintf("ackcheck verify -dev \"$dev\" -log /host/log.%d %s", boot-1, base)
		if boot < cuts {
			fmt.Fprintf(&s, "%s -out /host/state.%d\n", verify, boot-1)
		} else {
			s.WriteString(guestVerifyTwice(verify, fmt.Sprintf("/host/state.%d", boot-1)))
		}
	}
	if boot < cuts {
		fmt.Fprintf(&s, `echo "writing until the power is cut"
ackcheck write -dev "$dev" -log /host/log.%d -writers %d -seq-base %d -for 5m
echo "the writer stopped before the power was cut"
exit 4
`, boot, powerLossWriters, uint64(boot)<<40)
		return s.String()
	}
	s.WriteString(`tsumiki unmap "$dev"
echo "every acknowledged write survived the power cuts; replicas equal"
`)
	return s.String()
}

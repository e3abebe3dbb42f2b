package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// TestClusterPowerLoss cuts the power of a whole cluster, again and again,
// then checks every acknowledged write. A guest runs a mon on its disk
// /dev/vda and three OSDs each on its own disk, maps an image and writes it
// with internal/acklog's writer, which logs each write before issuing it,
// and each acknowledgement, to the host through the 9p share, which the
// power cut does not reach. The host kills QEMU with SIGKILL at a random
// moment: early in a boot (while the daemons start, the pool and image
// are made, the map is set up or the last cut's writes are checked);
// while the writers go (after each has powerLossAcks acknowledgements);
// or while they go and osd2, killed with kill -9 for recoveryDown seconds
// of writes and started again, is being caught up from the other
// replicas' logs (the test log says how many PGs the last `pg ls` before
// the cut showed behind). QEMU logs every write and flush each disk completed
// (blklogwrites); the host rebuilds each disk as a disk with a volatile
// write cache may be left by the cut: everything up to its last flush,
// and of the writes it completed after that, all, none, a random half, or
// each dropped, kept or torn at 4 KiB (chosen per disk;
// TSUMIKI_POWERLOSS_TAIL=all|none|half|torn for all disks).
// Each disk flushes on its own, so no OSD's flush covers another's writes.
// The next boot starts the cluster from those disks, every node at once,
// makes the pool and image if the cut came before they were made, maps
// the image (breaking the dead client's lock) and checks every unit: it
// must hold its last acknowledged write, or a write in flight at the cut.
// The last boot also waits for `tsumiki pg verify` to find the replicas
// equal, and checks again. One cut in `make test` (recovering);
// five with TSUMIKI_E2E=long, N with TSUMIKI_POWERLOSS_CUTS=N (early,
// recovering, writing, again and again). Skipped (saying why) where QEMU
// cannot run. TestClusterPowerLossFlushPoints cuts at past flushes.
func TestClusterPowerLoss(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	share := guestTools(t)
	disks := clusterDisks(t)
	// make test's short form: one cut, while recovering (it writes too;
	// the e2e stage's time budget); the early and writing cuts run in the
	// long form and make chaos.
	n, from := 1, 1
	if longE2E() {
		n, from = 5, 0
	}
	if v, err := strconv.Atoi(os.Getenv("TSUMIKI_POWERLOSS_CUTS")); err == nil && v > 0 {
		n, from = v, 0
	}
	var cuts []cutWhen // early, recovering, writing, early, ...
	for i := range n {
		cuts = append(cuts, []cutWhen{cutEarly, cutRecovering, cutWriting}[(from+i)%3])
	}
	check := checkFrom{log: "/host/log.0"} // what the next boot checks: boot 0's writes, over zeros
	const done = "every acknowledged write survived the power cuts; replicas equal"
	for boot := 0; boot <= len(cuts); boot++ {
		last := boot == len(cuts)
		var when cutWhen
		if !last {
			when = cuts[boot]
		}
		cfg := clusterGuest(t, powerLossScript(boot, when, check, last), share, 8*time.Minute)
		if last {
			console := disks.bootLast(t, boot, cfg, done)
			if got := strings.Count(console, "ackcheck verify:"); got != 2 {
				t.Fatalf("boot %d: %d verifications in the console, want 2 (before and after recovery)", boot, got)
			}
			return
		}
		logFile := filepath.Join(share, fmt.Sprintf("log.%d", boot))
		if err := os.WriteFile(logFile, nil, 0o644); err != nil { // checked even if nothing was written
			t.Fatal(err)
		}
		disks.bootCut(t, boot, cfg, cuts[boot].String(), func(ctx context.Context, cancel context.CancelFunc, cut chan<- []int) {
			cuts[boot].cut(ctx, cancel, share, boot, cut)
		})
		if cuts[boot] == cutRecovering {
			t.Logf("boot %d: %s", boot, recoveringAtCut(filepath.Join(share, fmt.Sprintf("pgs.%d", boot))))
		}
		// The next boot checks this boot's writes if this boot got as far
		// as writing: its own check of the last ones finished (and wrote
		// the state they start from). If not, it wrote nothing, and the
		// next boot checks what this one was to check.
		state := fmt.Sprintf("state.%d", boot)
		if _, err := os.Stat(filepath.Join(share, state)); err == nil {
			check = checkFrom{log: "/host/" + filepath.Base(logFile), base: "/host/" + state}
		} else if boot > 0 && countIssued(logFile) > 0 {
			t.Fatalf("boot %d wrote without checking the last cut's writes first", boot)
		}
	}
}

// checkFrom is what a boot checks: the log of the last boot that wrote,
// over the state the units had before it (none: zeros).
type checkFrom struct{ log, base string }

// cutWhen is when a boot's power is cut.
type cutWhen int

const (
	cutEarly      cutWhen = iota // 0-20 s after the disks are mounted: daemons starting, pool, image, map, checks
	cutWriting                   // 0-3 s after every writer has powerLossAcks acknowledgements
	cutRecovering                // writing, 0-10 s after osd2, killed for recoveryDown while the others took writes, restarted
)

func (c cutWhen) String() string {
	switch c {
	case cutEarly:
		return "early in the boot"
	case cutRecovering:
		return "while writing, with osd2 catching up after its restart"
	}
	return "while writing"
}

// recoveryDown is how long osd2 stays down in a cutRecovering boot while
// the writers go on (the other two replicas are a majority), and
// recoveryAcks how many acknowledgements (of all writers) the log has
// before it is killed.
const recoveryDown, recoveryAcks = 20, 160

// cut cancels the run (QEMU gets SIGKILL) when c says, and sends the
// acknowledgement counts of boot's log it had then on cut.
func (c cutWhen) cut(ctx context.Context, cancel context.CancelFunc, share string, boot int, cut chan<- []int) {
	log := filepath.Join(share, fmt.Sprintf("log.%d", boot))
	if c == cutWriting {
		cutPowerWhenWriting(ctx, cancel, powerLossAcks, cut, log)
		return
	}
	mark, within := filepath.Join(share, fmt.Sprintf("mounted.%d", boot)), 20*time.Second
	if c == cutRecovering {
		mark, within = filepath.Join(share, fmt.Sprintf("recovering.%d", boot)), 10*time.Second
	}
	for ctx.Err() == nil {
		if _, err := os.Stat(mark); err == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cutDelay(c, within)):
			}
			cut <- countAcks(log)
			cancel()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cutDelay is how long after its mark a cut c comes: random below within,
// or TSUMIKI_POWERLOSS_EARLY_AT (a duration) for early cuts, to repeat one.
func cutDelay(c cutWhen, within time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("TSUMIKI_POWERLOSS_EARLY_AT")); err == nil && c == cutEarly {
		return d
	}
	return time.Duration(rand.Int64N(int64(within)))
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
// moment 0-3 s after every writer has acks acknowledgements in each log,
// and sends the counts it had then on cut (the logs' in turn).
func cutPowerWhenWriting(ctx context.Context, cancel context.CancelFunc, acks int, cut chan<- []int, logs ...string) {
	counts := func() []int {
		var n []int
		for _, l := range logs {
			n = append(n, countAcks(l)...)
		}
		return n
	}
	for ctx.Err() == nil {
		if slices.Min(counts()) >= acks {
			time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
			cut <- counts()
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

// failedCheck returns the console's first ackcheck verify line that found
// bad units, or "".
func failedCheck(console string) string {
	for line := range strings.Lines(console) {
		i := strings.Index(line, "ackcheck verify:")
		if i < 0 {
			continue
		}
		if m := badUnits.FindStringSubmatch(line[i:]); m != nil && m[1] != "0" {
			return strings.TrimSpace(line[i:])
		}
	}
	return ""
}

var badUnits = regexp.MustCompile(`\b(\d+) bad units`)

// recoveringAtCut says how many PGs the last `tsumiki pg ls` a
// cutRecovering boot showed the host (in path) before the cut had still
// to catch osd2 up.
func recoveringAtCut(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no pg ls output before the cut (it came before the first one ended)"
	}
	rows, behind := 0, 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[2], "active") && f[2] != "inactive" {
			continue
		}
		rows++
		if f[2] != "active+clean" {
			behind++
		}
	}
	return fmt.Sprintf("at the last pg ls before the cut, %d of %d PGs were not yet active+clean (osd2 catching up)", behind, rows)
}

// countIssued counts the writes issued in an ackcheck log.
func countIssued(path string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for line := range bytes.Lines(b) {
		if bytes.HasPrefix(line, []byte("I ")) {
			n++
		}
	}
	return n
}

// guestVerifyTwice runs verify (an `ackcheck verify` command line without
// -out) before and after the cluster's recovery (guestPGVerify), and
// requires the same state both times: a recovery that copied a stale
// replica over a good one would leave the replicas equal and the data
// lost.
// Each check is bounded (a run under TCG takes 10-60 s; the map's I/O
// timeout is 60 s), so that a stuck one shows the cluster's state instead
// of running into the guest's timeout.
func guestVerifyTwice(verify, out string) string {
	verify = "timeout 300 " + verify
	at := func(what string) string { return `echo "--- $(cut -d' ' -f1 /proc/uptime) s: ` + what + `"` + "\n" }
	return at("check") + verify + " -out " + out + " || " + guestDiagnose + "\n" + at("pg verify") + guestPGVerify +
		at("check again") + verify + " -out " + out + ".after || " + guestDiagnose + "\n" + at("checked") +
		"cmp -s " + out + " " + out + ".after || { echo \"the state read changed after recovery\"; exit 6; }\n"
}

// guestDiagnose shows the cluster's state and the daemons' last words, and
// fails the job.
const guestDiagnose = `{ echo "verify failed; the cluster:"; tsumiki status; tsumiki pg ls; tail -n 40 /tmp/mon.log /tmp/osd*.log; ` +
	`cat /run/tsumiki/mapped/*.log 2>/dev/null | tail -n 20; dmesg | tail -n 20; exit 8; }`

// guestMapBreakingLock maps rbd/p after a power cut: the client that held
// its lock died with the power, so the lock is taken over. On failure it
// shows what the kernel and the map process said.
const guestMapBreakingLock = `dev=$(tsumiki map --break-lock rbd/p) || {
  echo "map failed:"; dmesg | tail -n 30; cat /run/tsumiki/mapped/*.log; exit 7
}
`

// guestPGVerify waits (up to 5 minutes) for `tsumiki pg verify` to find
// every PG's replicas equal.
const guestPGVerify = `i=0
t0=$(date +%s)
until tsumiki pg verify > /tmp/verify.txt 2>&1; do
  i=$((i+1)); if [ $(($(date +%s) - t0)) -gt 300 ]; then cat /tmp/verify.txt; exit 5; fi; sleep 2
done
echo "pg verify: replicas equal after $i unequal passes"
`

// guestCluster is the start of a guest job that runs a mon and three
// OSDs from the guest's disks: the mon's data on /dev/vda mounted at
// /data, the OSDs' in /data/osdN, on that same disk or each on its own.
type guestCluster struct {
	mkfs     string // mkfs.ext4's arguments for /dev/vda, to make its file system first; empty: it has one
	osdDisks bool   // each OSD on its own disk (serial osdN) at /data/osdN, made with a file system with mkfs
	mark     string // a file created once the disks are mounted and synced, before any daemon starts
	boot     int
}

func (c guestCluster) script() string {
	s := "set -eu\nexport PATH=/host:$PATH\nmkdir -p /data\n"
	if c.mkfs != "" {
		s += "mkfs.ext4 -q " + c.mkfs + "\n"
	}
	s += "mount /dev/vda /data\n"
	if c.osdDisks {
		s += "for n in 0 1 2; do\n  d=/dev/disk/by-id/virtio-osd$n\n"
		if c.mkfs != "" {
			s += "  mkfs.ext4 -q $d\n"
		}
		s += "  mkdir -p /data/osd$n; mount $d /data/osd$n\ndone\n"
	}
	if c.mark != "" {
		s += "sync\ntouch " + c.mark + "\n"
	}
	// The waits are bounded in time, not in tries: under TCG one try of a
	// command takes a second or more, and a wait by tries outlasted the
	// guest's timeout, which then showed nothing.
	return s + `tsumiki mon --data /data/mon > /tmp/mon.log 2>&1 &
t0=$(date +%s)
until tsumiki status >/dev/null 2>&1; do
  if [ $(($(date +%s) - t0)) -gt 150 ]; then echo "the mon did not come up:"; tail -n 60 /tmp/mon.log; ls -lR /data/mon | head -n 40; exit 3; fi; sleep 0.5
done
# osd_start N starts osd N (again) and records its PID in /tmp/osdN.pid.
osd_start() {
  tsumiki osd --data /data/osd$1 --host h$1 --listen 127.0.0.1:680$1 --cluster-listen 127.0.0.1:690$1 >> /tmp/osd$1.log 2>&1 &
  echo $! > /tmp/osd$1.pid
}
osds=""
for n in 0 1 2; do
  osd_start $n
  osds="$osds $!"
done
t0=$(date +%s)
until tsumiki osd ls | grep -c "up,in" | grep -q 3; do
  if [ $(($(date +%s) - t0)) -gt 180 ]; then echo "the OSDs did not come up:"; tsumiki osd ls; tail -n 30 /tmp/osd*.log /tmp/mon.log; exit 3; fi; sleep 1
done
# After a power cut the map still says up until the old leases expire:
# the daemons themselves must be running.
sleep 2
for p in $osds; do
  kill -0 $p 2>/dev/null || { echo "an OSD exited:"; tail -n 20 /tmp/osd*.log; exit 3; }
done
echo "cluster up (boot ` + fmt.Sprint(c.boot) + `) at $(cut -d' ' -f1 /proc/uptime) s"
if grep -q "first start here was cut short" /tmp/mon.log; then echo "(the mon started afresh: its first start had been cut before it saved anything)"; fi
`
}

// powerLossScript is the guest's job at boot (0: mkfs, then make the pool
// and image; later: restart, make them if the cut came first, and check
// what check names); every boot but the last then writes until the power
// is cut, and a boot to be cut while recovering (when) kills osd2 with
// kill -9 meanwhile, restarts it, and shows `tsumiki pg ls` to the host
// every second (in /host/pgs.BOOT).
func powerLossScript(boot int, when cutWhen, check checkFrom, last bool) string {
	var s strings.Builder
	c := guestCluster{osdDisks: true, mark: fmt.Sprintf("/host/mounted.%d", boot), boot: boot}
	if boot == 0 {
		c.mkfs = "/dev/vda"
	}
	s.WriteString(c.script())
	s.WriteString(`tsumiki pool get rbd size >/dev/null 2>&1 || tsumiki pool create rbd --size 3 --pg-num 16
tsumiki image info rbd/p >/dev/null 2>&1 || tsumiki image create rbd/p --size 256M
`)
	if boot == 0 {
		s.WriteString("dev=$(tsumiki map rbd/p)\n")
	} else {
		// The client died with the power: its lock is taken over.
		s.WriteString(guestMapBreakingLock)
		verify := "ackcheck verify -dev \"$dev\" -log " + check.log
		if check.base != "" {
			verify += " -base " + check.base
		}
		if last {
			s.WriteString(guestVerifyTwice(verify, fmt.Sprintf("/host/state.%d", boot)))
		} else {
			fmt.Fprintf(&s, "%s -out /host/state.%d\n", verify, boot)
		}
	}
	if !last {
		write := fmt.Sprintf(`ackcheck write -dev "$dev" -log /host/log.%d -writers %d -seq-base %d -for 5m`,
			boot, powerLossWriters, uint64(boot)<<40)
		if when != cutRecovering {
			s.WriteString("echo \"writing until the power is cut\"\n" + write + "\n")
		} else {
			fmt.Fprintf(&s, `echo "writing until the power is cut; osd2 is killed and restarted meanwhile"
%s &
w=$!
until [ "$(grep -c '^A ' /host/log.%[2]d || true)" -ge %[3]d ]; do
  kill -0 $w 2>/dev/null || { echo "the writer stopped"; exit 4; }
  sleep 0.5
done
kill -9 "$(cat /tmp/osd2.pid)"
echo "--- $(cut -d' ' -f1 /proc/uptime) s: osd2 killed (kill -9); writing on two replicas for %[4]d s"
sleep %[4]d
osd_start 2
touch /host/recovering.%[2]d
echo "--- $(cut -d' ' -f1 /proc/uptime) s: osd2 restarted: it catches up from the other replicas' logs"
while kill -0 $w 2>/dev/null; do
  tsumiki pg ls > /host/pgs.tmp 2>&1 && mv /host/pgs.tmp /host/pgs.%[2]d
  sleep 1
done
`, write, boot, recoveryAcks, recoveryDown)
		}
		s.WriteString("echo \"the writer stopped before the power was cut\"\nexit 4\n")
		return s.String()
	}
	s.WriteString(`tsumiki unmap "$dev"
echo "every acknowledged write survived the power cuts; replicas equal"
`) // the test's done
	return s.String()
}

func TestFailedCheck(t *testing.T) {
	good := "ackcheck verify: 65536 units (15604 written), 322 writes issued, 319 acknowledged, 3 in flight at the crash (0 of their units landed), 0 after it, 0 bad units\n"
	bad := "\r[  12.3] x ackcheck verify: 65536 units (1 written), 2 writes issued, 2 acknowledged, 0 in flight at the crash (0 of their units landed), 0 after it, 32 bad units\n"
	for _, tc := range []struct {
		console string
		failed  bool
	}{
		{"", false},
		{"boot\n" + good + "writing\n", false},
		{good + bad, true},
		{"ackcheck verify: 3 bad units", true},
	} {
		if got := failedCheck(tc.console); (got != "") != tc.failed {
			t.Errorf("failedCheck(%q) = %q, want failed=%v", tc.console, got, tc.failed)
		}
	}
}

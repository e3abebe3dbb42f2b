package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/acklog"
	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
	"github.com/tsumiki-storage/tsumiki/internal/writelog"
)

// TestClusterPowerLossFlushPoints is the strict form of TestClusterPowerLoss:
// the guest's disk also loses what it had not flushed. QEMU logs every
// write and flush the guest's disk completes (blklogwrites, the format of
// dm-log-writes) while a cluster in the guest takes writes; each writer
// also records its last acknowledged write on that same disk after the
// acknowledgement, with a direct write and no flush. Then the host
// rebuilds the disk as it was just before the flush after a flush chosen
// at random: everything up to that flush, and of what completed after it
// only the ack records (a disk with a volatile cache may keep any subset).
// It boots the cluster from that and checks every unit against the
// acknowledgements the state holds: each writer's writes up to its
// recorded one must be there, so an acknowledgement given before the
// write was flushed fails. The writers write 4-32 KiB, which the OSDs
// keep in their raft log alone: large writes make each OSD also sync
// object files, whose flushes cover everything written before them on
// this one disk and hid such a bug (a raft log written without O_DSYNC
// passed three points with large writes, and lost 172 acknowledged units
// at the first point with small ones); TestClusterPowerLoss writes both. Such a state never saw the cluster stop: it
// also tests recovery from a log and files cut at a flush. One flush point
// after 12 s of writes in `make test`; three after 60 s with
// TSUMIKI_E2E=long, TSUMIKI_POWERLOSS_POINTS=N
// for N. TSUMIKI_POWERLOSS_POINT=first takes the first flushes after the
// first acknowledgement, one per point; =last the last flush.
func TestClusterPowerLossFlushPoints(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	share := guestTools(t)
	dir := t.TempDir()
	const (
		diskSize = 4 << 30
		ackOff   = 3 << 30 // the file system takes the first 3 GiB; the ack records follow
	)
	disk := sparseFile(t, dir, "disk.raw", diskSize, nil, 0)
	wlog := sparseFile(t, dir, "writes.log", 0, nil, 0)
	// A state's boot takes 70-90 s after 25 s of writes; after 60 s,
	// `pg verify` alone took up to 275 s of it. make test writes for 12 s:
	// its e2e stage's time budget.
	points, writeFor, verifyTimeout := 1, "12s", 8*time.Minute
	if longE2E() {
		points, writeFor, verifyTimeout = 3, "60s", 15*time.Minute
	}
	if n, err := strconv.Atoi(os.Getenv("TSUMIKI_POWERLOSS_POINTS")); err == nil && n > 0 {
		points = n
	}

	script := guestCluster{mkfs: "/dev/vda 3G"}.script() + fmt.Sprintf(`tsumiki pool create rbd --size 3 --pg-num 16
tsumiki image create rbd/p --size 256M
dev=$(tsumiki map rbd/p)
ackcheck write -dev "$dev" -log /host/log -small-writers 4 -for %s -ack-dev /dev/vda -ack-off %d
sync
echo "written; every write and flush of /dev/vda logged"
`, writeFor, ackOff)
	cfg := clusterGuest(t, script, share, 8*time.Minute)
	cfg.ExtraDisk, cfg.ExtraDiskLog = disk, wlog
	res, err := qemutest.Run(t.Context(), t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("logged boot: guest job failed with exit code %d (console above)", res.ExitCode)
	}
	l, err := writelog.Open(wlog)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	flushes := l.Flushes()
	// The replayer against QEMU's own log: replaying all of it must give
	// the disk as the guest left it.
	checkFullReplay(t, l, disk, diskSize)

	first := l.FirstWriteAt(ackOff, 4*4096) // the first ack record: writes were acknowledged from here
	var after []int
	for _, f := range flushes {
		if f > first {
			after = append(after, f)
		}
	}
	if first < 0 || len(after) < points {
		t.Fatalf("the log has %d flushes after the first ack record (entry %d); need %d", len(after), first, points)
	}
	t.Logf("write log: %d entries, %d flushes, %d after the first acknowledgement", len(l.Entries), len(flushes), len(after))
	// Prefer flushes followed by ack records before the next flush: there
	// an acknowledgement given before its write was flushed can show.
	var withRecs []int
	for j := range after {
		next := len(l.Entries)
		if j+1 < len(after) {
			next = after[j+1]
		}
		if n, _ := l.ApplyWithin(nil, after[j]+1, next, ackOff, 4*acklog.AckRecordSize); n > 0 {
			withRecs = append(withRecs, j)
		}
	}
	t.Logf("%d of those flushes are followed by ack records", len(withRecs))
	for k := range points {
		j := rand.IntN(len(after))
		if len(withRecs) > 0 {
			j = withRecs[rand.IntN(len(withRecs))]
		}
		switch os.Getenv("TSUMIKI_POWERLOSS_POINT") { // to look at one end of the run again
		case "first": // the first flushes, one per point
			j = min(k, len(after)-1)
		case "last":
			j = len(after) - 1
		}
		at, next := after[j], len(l.Entries)
		if j+1 < len(after) {
			next = after[j+1]
		}
		crash := sparseFile(t, dir, fmt.Sprintf("crash%d.raw", k), diskSize, nil, 0)
		replay(t, l, at, crash)
		// Of what the disk completed after the flush, only the ack records
		// reach it: acknowledgements the state knows of, without the
		// cluster's writes that no flush covered yet.
		f, err := os.OpenFile(crash, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := l.ApplyWithin(f, at+1, next, ackOff, 4*acklog.AckRecordSize)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		check := fmt.Sprintf(`ackcheck verify -dev "$dev" -log /host/log -ack-dev /dev/vda -ack-off %d`, ackOff)
		verify := guestCluster{boot: 1}.script() + guestMapBreakingLock +
			guestVerifyTwice(check, fmt.Sprintf("/host/state.%d", k)) + `tsumiki unmap "$dev"
echo "the state after flush point verified"
`
		t.Logf("crash state %d: the disk as of flush entry %d of %d, with %d ack records written after it", k, at, len(l.Entries), recs)
		cfg := clusterGuest(t, verify, share, verifyTimeout)
		cfg.ExtraDisk = crash
		res, err := qemutest.Run(t.Context(), t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || !strings.Contains(res.Console, "the state after flush point verified") {
			t.Fatalf("crash state at entry %d: guest job failed with exit code %d (console above)", at, res.ExitCode)
		}
		os.Remove(crash)
	}
}

func replay(t *testing.T, l *writelog.Log, through int, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := l.Replay(f, through); err != nil {
		t.Fatal(err)
	}
}

// checkFullReplay replays the whole of l onto a new image and compares it
// with disk.
func checkFullReplay(t *testing.T, l *writelog.Log, disk string, size int64) {
	t.Helper()
	img := sparseFile(t, filepath.Dir(disk), "full.raw", size, nil, 0)
	defer os.Remove(img)
	replay(t, l, len(l.Entries)-1, img)
	a, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pa, pb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(pa)) {
		if _, err := io.ReadFull(io.NewSectionReader(a, off, int64(len(pa))), pa); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(io.NewSectionReader(b, off, int64(len(pb))), pb); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pa, pb) {
			t.Fatalf("replaying the whole write log does not give the disk: first difference in MiB %d", off>>20)
		}
	}
}

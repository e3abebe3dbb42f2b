package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
	"github.com/tsumiki-storage/tsumiki/internal/writelog"
)

// guestDisk is one disk of a guest that loses its power: the state it had
// when the boot began, the image QEMU writes (a copy of that state), and
// the log of every write and flush the guest completed on it.
type guestDisk struct {
	serial, state, run, log string
}

// guestDisks are a guest's logged disks: "extra" (/dev/vda) and others by
// serial.
type guestDisks []guestDisk

// newGuestDisks makes empty (sparse) disks of the sizes given by serial.
func newGuestDisks(t *testing.T, dir string, sizes map[string]int64) guestDisks {
	var ds guestDisks
	for _, serial := range slices.Sorted(maps.Keys(sizes)) {
		ds = append(ds, guestDisk{serial: serial,
			state: sparseFile(t, dir, serial+".state", sizes[serial], nil, 0),
			run:   filepath.Join(dir, serial+".run"),
			log:   filepath.Join(dir, serial+".log")})
	}
	return ds
}

// clusterDisks makes the disks of guestCluster{osdDisks: true}: the mon's
// (/dev/vda) and one per OSD, each logged.
func clusterDisks(t *testing.T) guestDisks {
	return newGuestDisks(t, t.TempDir(), map[string]int64{"extra": 1 << 30, "osd0": 2 << 30, "osd1": 2 << 30, "osd2": 2 << 30})
}

// clusterGuest is the guest a power-loss test boots: 2 GiB and 2 CPUs for
// a mon and three OSDs, the console in the test log.
func clusterGuest(t *testing.T, script, share string, timeout time.Duration) qemutest.Config {
	return qemutest.Config{Script: script, Share: share, MemMiB: 2048, CPUs: 2, Timeout: timeout, Log: qemutest.LineLogger(t)}
}

// prepare copies each disk's state to the image QEMU will write, and
// attaches them to cfg with their logs.
func (ds guestDisks) prepare(t *testing.T, cfg *qemutest.Config) {
	t.Helper()
	cfg.Disks = nil
	for _, d := range ds {
		if out, err := exec.Command("cp", "--sparse=always", d.state, d.run).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", d.state, err, out)
		}
		if d.serial == "extra" {
			cfg.ExtraDisk, cfg.ExtraDiskLog = d.run, d.log
			continue
		}
		cfg.Disks = append(cfg.Disks, qemutest.Disk{Path: d.run, Log: d.log, Serial: d.serial})
	}
}

// bootCut boots a guest with cfg on the disks and cuts its power with
// cutter, which sends the acknowledgement counts it saw on its channel
// and cancels the run. It fails the test if the guest ended first, or if
// a check the job ran found bad units (no later check would see them),
// then makes each disk's state what the cut left (cut).
func (ds guestDisks) bootCut(t *testing.T, boot int, cfg qemutest.Config, what string,
	cutter func(ctx context.Context, cancel context.CancelFunc, cut chan<- []int)) {
	t.Helper()
	ds.prepare(t, &cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cut := make(chan []int, 1)
	go cutter(ctx, cancel, cut)
	res, err := qemutest.Run(ctx, t, cfg)
	var acked []int
	select {
	case acked = <-cut:
	default:
	}
	if acked == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("boot %d: the guest ended before the power was cut (exit %d, %v)", boot, res.ExitCode, err)
	}
	if line := failedCheck(res.Console); line != "" {
		t.Fatalf("boot %d: a check failed before the cut: %s", boot, line)
	}
	t.Logf("boot %d: power cut %s, after %v acknowledged writes (per writer)", boot, what, acked)
	for _, line := range ds.cut(t) {
		t.Logf("boot %d: %s", boot, line)
	}
}

// cutOnceWhileWriting boots a guest (the tools shared at /host) with job
// script(0) on the disks, cuts its power once every writer has acks
// acknowledgements in each of logs (names in the share, made empty
// first), then boots script(1) and requires it to succeed and print done.
func (ds guestDisks) cutOnceWhileWriting(t *testing.T, script func(boot int) string, over string, acks int, done string, logs ...string) {
	t.Helper()
	share := guestTools(t)
	var paths []string
	for _, l := range logs {
		paths = append(paths, filepath.Join(share, l))
		if err := os.WriteFile(paths[len(paths)-1], nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds.bootCut(t, 0, clusterGuest(t, script(0), share, 8*time.Minute), "while writing "+over,
		func(ctx context.Context, cancel context.CancelFunc, cut chan<- []int) {
			cutPowerWhenWriting(ctx, cancel, acks, cut, paths...)
		})
	ds.bootLast(t, 1, clusterGuest(t, script(1), share, 10*time.Minute), done)
}

// bootLast boots a guest with cfg on the disks, lets its job end, and
// fails the test unless it succeeded and printed done. It returns the
// console.
func (ds guestDisks) bootLast(t *testing.T, boot int, cfg qemutest.Config, done string) string {
	t.Helper()
	ds.prepare(t, &cfg)
	res, err := qemutest.Run(t.Context(), t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Console, done) {
		t.Fatalf("boot %d: guest job failed with exit code %d (console above)", boot, res.ExitCode)
	}
	return res.Console
}

// cut makes each disk's state what the power cut of the boot just run
// may have left on it (cutState), and says what it kept.
func (ds guestDisks) cut(t *testing.T) []string {
	t.Helper()
	var out []string
	tails := []string{"all", "none", "half", "torn"}
	forced := os.Getenv("TSUMIKI_POWERLOSS_TAIL")
	if forced != "" && !slices.Contains(tails, forced) {
		t.Fatalf("TSUMIKI_POWERLOSS_TAIL=%q: want all, none, half or torn", forced)
	}
	for _, d := range ds {
		tail := forced
		if tail == "" {
			tail = tails[rand.IntN(len(tails))]
		}
		out = append(out, d.serial+": "+cutState(t, d, tail))
	}
	return out
}

// cutState applies the boot's log to d.state as a disk with a volatile
// write cache may be left by a power cut: everything up to its last flush,
// and of the writes and discards it completed after that flush, those
// tail keeps ("all", "none", "half": each with a chance of one half, or
// "torn": each dropped, kept whole or torn, a third of the time each; a
// torn one keeps each of its 4 KiB pages with a chance of one half, as a
// disk that writes no more than a sector atomically may).
// A kill of QEMU can leave the log's last entries torn: writelog drops one
// that ends past the file, and stops at a counted one whose header is all
// zeros (Log.TornAt); one whose data a later entry's lies beyond would
// read as zeros. Such an entry was in flight, so never acknowledged, but
// its zeros could break a file system's metadata: a false failure, never
// a false pass.
//
// QEMU logs each write once the host completed it, and a flush once the
// host's flush returned, so the states are ones a real disk can reach. They
// are not all of them: a write that completed while a flush ran always
// survives, and no write is torn within a 4 KiB page.
func cutState(t *testing.T, d guestDisk, tail string) string {
	t.Helper()
	l, err := writelog.Open(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := os.OpenFile(d.state, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := -1
	if fl := l.Flushes(); len(fl) > 0 {
		last = fl[len(fl)-1]
		if err := l.Replay(f, last); err != nil {
			t.Fatal(err)
		}
	}
	kept, torn := 0, 0
	half := func() bool { return rand.IntN(2) == 0 }
	for i := last + 1; i < len(l.Entries); i++ {
		how := tail
		if tail == "torn" {
			how = []string{"none", "all", "torn"}[rand.IntN(3)]
		}
		switch {
		case how == "all" || how == "half" && half():
			if err := l.Apply(f, i); err != nil {
				t.Fatal(err)
			}
			kept++
		case how == "torn":
			k, n, err := l.ApplyTorn(f, i, 4096, half)
			if err != nil {
				t.Fatal(err)
			}
			if n > 1 && k > 0 && k < n {
				torn++
			} else if k > 0 {
				kept++
			}
		}
	}
	killed := ""
	if l.TornAt >= 0 {
		killed = fmt.Sprintf(" (entry %d of the log was torn by the kill; those after it dropped)", l.TornAt)
	}
	return fmt.Sprintf("%d entries, the last flush is entry %d; of the %d after it %d kept whole and %d torn (%s)%s",
		len(l.Entries), last, len(l.Entries)-last-1, kept, torn, tail, killed)
}

package osd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// damageObjectBytes flips a byte inside the first occurrence of pattern in
// the object files under dir (not the raft log) and reports how many files
// it changed. The store must be closed.
func damageObjectBytes(t *testing.T, dir string, pattern []byte) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.Contains(path, string(filepath.Separator)+"objects"+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := bytes.Index(b, pattern)
		if i < 0 {
			return nil
		}
		b[i+len(pattern)/2] ^= 0xff
		n++
		return os.WriteFile(path, b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLoopRestartsOverDamagedPlacedEntry: a large write is placed (its
// data kept once, in the object's slots, the log pointing there); one
// replica's slot is damaged while it is down, with the entry still in its
// log (a third replica is cut off, so no log is compacted past it). The
// damaged replica starts again (it once refused to, reading the entry back
// whole at start-up) and its copy of the block reads as corrupt, never as
// wrong bytes. Made leader, it cannot send the entry to the replica that
// lacks it: it hands leadership back, and that replica catches up.
func TestLoopRestartsOverDamagedPlacedEntry(t *testing.T) {
	lc := newLoopCluster(t, 1)
	pg := PG{Pool: 1, Seq: 0}
	lc.waitAllApplied(pg, lc.write(pg, "first", []byte("before anything")))
	leader := lc.agreedLeader(pg)
	lagging, victim := (leader+1)%3, (leader+2)%3
	lc.cut(lagging, true)

	var probe []byte
	for i := 0; len(probe) < placeMinBytes; i++ {
		probe = append(probe, fmt.Sprintf("damaged-entry-probe-%06d|", i)...)
	}
	probe = probe[:placeMinBytes]
	idx := lc.write(pg, "probe", probe)
	lc.waitAllApplied(pg, idx)

	lc.stop(victim)
	if err := lc.stores[victim].Close(); err != nil {
		t.Fatal(err)
	}
	if n := damageObjectBytes(t, lc.dirs[victim], []byte("damaged-entry-probe-000999|")); n != 1 {
		t.Fatalf("damaged %d object files, want 1", n)
	}
	st, err := chunkstore.Open(chunkstore.Config{Dir: lc.dirs[victim], Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	lc.stores[victim] = st
	if heads, err := st.EntryHeads(pg, idx, idx+1); err != nil || heads[0].Data == 0 {
		t.Fatalf("entry %d is not a placed entry in the victim's log (%v): the test would not test anything", idx, err)
	}
	if _, err := st.Entries(pg, idx, idx+1, 1<<30); !errors.Is(err, chunkstore.ErrDamagedEntry) {
		t.Fatalf("the victim's entry %d reads back with %v, want ErrDamagedEntry", idx, err)
	}
	startLoopNode(lc, victim)
	lc.waitAllApplied(pg, lc.write(pg, "after", []byte("written after the damage")))
	if err := st.Read(pg, "probe", 0, make([]byte, len(probe))); !errors.Is(err, chunkstore.ErrCorrupt) {
		t.Fatalf("reading the damaged probe on the victim: %v, want ErrCorrupt", err)
	}

	// The victim leads; the cut-off replica comes back and needs the entry.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for lc.leaderOf(pg) != victim {
		if l := lc.leaderOf(pg); l >= 0 {
			_ = lc.nodes[l].transferLeader(ctx, pg, int32(victim))
		}
		if ctx.Err() != nil {
			t.Fatal("the damaged replica did not take the lead")
		}
		time.Sleep(20 * time.Millisecond)
	}
	lc.cut(lagging, false)
	last := lc.write(pg, "last", []byte("with everyone back"))
	lc.waitAllApplied(pg, last)
	got := make([]byte, len(probe))
	if err := lc.stores[lagging].Read(pg, "probe", 0, got); err != nil || !bytes.Equal(got, probe) {
		t.Fatalf("the replica that was cut off reads the probe back: %v, equal %v", err, bytes.Equal(got, probe))
	}
	if l := lc.leaderOf(pg); l == victim {
		t.Fatal("the damaged replica still leads after the entry it could not send was needed")
	}
	for i := range lc.nodes {
		select {
		case err := <-lc.done[i]:
			t.Fatalf("node %d stopped: %v", i, err)
		default:
		}
	}
}

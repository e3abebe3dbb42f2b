package clustermap_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// liveOSDs registers one OSD per host given (ids 0, 1, ... in order) and
// keeps them up until the test ends.
func liveOSDs(t *testing.T, s *clustermap.Store, hosts ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, host := range hosts {
		o := mustRegister(t, s, osd("u"+string(rune('0'+i)), host))
		go func() { _ = s.KeepAlive(ctx, o.ID, 5*time.Second) }()
	}
	waitFor(t, "osds up", func() bool {
		for id := range int32(len(hosts)) {
			if !isUp(t, s, id) {
				return false
			}
		}
		return true
	})
}

// TestDrainOSD: draining an OSD gives every PG that lists it one other OSD
// (in, up, on a host the PG does not use, placed last) and keeps the rest
// of its replicas in order; it marks the OSD out; a PG with nowhere to go
// stays and says why; the dry run changes nothing.
func TestDrainOSD(t *testing.T) {
	s, _ := newStore(t)
	hosts := []string{"h0", "h1", "h2", "h3", "h3"}
	liveOSDs(t, s, hosts...)
	three, err := s.CreatePool(testCtx(t), pool("rbd", 3))
	if err != nil {
		t.Fatal(err)
	}
	four, err := s.CreatePool(testCtx(t), pool("wide", 4))
	if err != nil {
		t.Fatal(err)
	}
	down := mustRegister(t, s, osd("u5", "h5")) // never up: never chosen
	before := mustLoad(t, s)

	plan, err := before.PlanDrain(0)
	if err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, before.Epoch)
	lists := 0
	for _, p := range []clustermap.Pool{three, four} {
		for pg := range p.PGNum {
			if slices.Contains(before.Replicas(p, pg), 0) {
				lists++
			}
		}
	}
	if len(plan.Moves)+len(plan.Stuck) != lists || len(plan.Moves) == 0 {
		t.Fatalf("plan: %d moves and %d stuck for %d pgs listing osd.0", len(plan.Moves), len(plan.Stuck), lists)
	}
	for _, mv := range plan.Moves {
		if mv.Pool != three.ID {
			t.Fatalf("pg %d.%x of pool wide (4 replicas on 4 hosts) moved: %v -> %v", mv.Pool, mv.PG, mv.From, mv.To)
		}
		rest := slices.DeleteFunc(slices.Clone(mv.From), func(o int32) bool { return o == 0 })
		joined := mv.To[len(mv.To)-1]
		if !slices.Equal(mv.To[:len(mv.To)-1], rest) || joined == 0 || joined == down.ID || slices.Contains(rest, joined) {
			t.Fatalf("pg %d.%x: %v -> %v: want the others in order, then one new osd", mv.Pool, mv.PG, mv.From, mv.To)
		}
		seen := map[string]bool{}
		for _, o := range mv.To {
			if seen[hosts[o]] {
				t.Fatalf("pg %d.%x: %v has two replicas on host %s", mv.Pool, mv.PG, mv.To, hosts[o])
			}
			seen[hosts[o]] = true
		}
	}
	if len(plan.Targets()) < 2 {
		t.Errorf("all %d copies go to %v: want them spread", len(plan.Moves), plan.Targets())
	}
	for _, st := range plan.Stuck {
		if st.Pool != four.ID || !strings.Contains(st.Why, "on a host other than h1, h2, h3") {
			t.Fatalf("stuck pg %d.%x: %q", st.Pool, st.PG, st.Why)
		}
	}

	m, stored, err := s.DrainOSD(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Moves) != len(plan.Moves) {
		t.Fatalf("stored %d moves, planned %d", len(stored.Moves), len(plan.Moves))
	}
	if o, _ := m.OSD(0); o.In {
		t.Fatal("osd.0 still in after the drain")
	}
	moved := map[uint32][]int32{}
	for _, mv := range plan.Moves {
		moved[mv.PG] = mv.To
	}
	for pg := range three.PGNum {
		want, ok := moved[pg]
		if !ok {
			want = before.Replicas(three, pg)
		}
		if got := m.Replicas(three, pg); !slices.Equal(got, want) {
			t.Fatalf("pg %d.%x on %v after the drain, want %v", three.ID, pg, got, want)
		}
	}
	epoch := m.Epoch
	if again, err := m.PlanDrain(0); err != nil || len(again.Moves) != 0 {
		t.Fatalf("drained again: %d moves (%v)", len(again.Moves), err)
	}
	if _, _, err := s.DrainOSD(testCtx(t), 0); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, epoch) // out, and nothing left to move: no change
	if _, _, err := s.DrainOSD(testCtx(t), 17); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("drain of an unknown osd: %v, want ErrNotFound", err)
	}
}

// TestRemoveOSD: an OSD leaves the map only once it is down, out and
// listed by no PG; drained, it goes, and no PG's replicas change.
func TestRemoveOSD(t *testing.T) {
	s, _ := newStore(t)
	liveOSDs(t, s, "h0", "h1", "h2", "h3")
	gone := mustRegister(t, s, osd("u9", "h9")) // in, never up
	p, err := s.CreatePool(testCtx(t), pool("rbd", 3))
	if err != nil {
		t.Fatal(err)
	}
	refused := func(id int32, says string) {
		t.Helper()
		epoch := mustLoad(t, s).Epoch
		if err := s.RemoveOSD(testCtx(t), id); !errors.Is(err, clustermap.ErrInvalid) || !strings.Contains(err.Error(), says) {
			t.Fatalf("remove osd.%d: %v, want a refusal saying %q", id, err, says)
		}
		wantEpoch(t, s, epoch)
	}
	refused(0, "is up: stop its daemon first")
	refused(gone.ID, "is in: drain it first")
	if err := s.SetOSDIn(testCtx(t), gone.ID, false); err != nil {
		t.Fatal(err)
	}
	refused(gone.ID, "pgs still list osd.")
	if err := s.RemoveOSD(testCtx(t), 17); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("remove of an unknown osd: %v, want ErrNotFound", err)
	}

	if _, _, err := s.DrainOSD(testCtx(t), gone.ID); err != nil {
		t.Fatal(err)
	}
	before := mustLoad(t, s)
	if err := s.RemoveOSD(testCtx(t), gone.ID); err != nil {
		t.Fatal(err)
	}
	after := mustLoad(t, s)
	if _, ok := after.OSD(gone.ID); ok || after.NextOSDID != before.NextOSDID {
		t.Fatalf("after the removal: osd.%d still there %v, next id %d (was %d)", gone.ID, ok, after.NextOSDID, before.NextOSDID)
	}
	for pg := range p.PGNum {
		if a, b := before.Replicas(p, pg), after.Replicas(p, pg); !slices.Equal(a, b) {
			t.Fatalf("pg %x: replicas %v before the removal, %v after", pg, a, b)
		}
	}
}

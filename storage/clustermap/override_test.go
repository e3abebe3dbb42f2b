package clustermap_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// TestMovePG: an override replaces a PG's placement in Replicas, for that
// PG only, survives the JSON round trip and later map changes, and bad
// replica lists are refused with the map unchanged.
func TestMovePG(t *testing.T) {
	s, _ := newStore(t)
	hostOf := []string{"h0", "h1", "h2", "h3", "h3"}
	liveOSDs(t, s, hostOf...)
	p, err := s.CreatePool(testCtx(t), pool("rbd", 3))
	if err != nil {
		t.Fatal(err)
	}
	down := mustRegister(t, s, osd("u5", "h5")) // never kept alive
	before := mustLoad(t, s)
	placed := before.Replicas(p, 5)
	fresh := int32(-1) // an osd on the one host the pg does not use
	for id := range int32(5) {
		if !slices.ContainsFunc(placed, func(o int32) bool { return hostOf[o] == hostOf[id] }) {
			fresh = id
			break
		}
	}
	to := []int32{fresh, placed[0], placed[1]} // a new primary; placed[2] leaves

	bad := []struct {
		name    string
		pool    uint32
		pg      uint32
		members []int32
		want    error
		says    string
	}{
		{"no such pool", 9, 0, to, clustermap.ErrNotFound, "no pool with id 9"},
		{"no such pg", p.ID, p.PGNum, to, clustermap.ErrNotFound, "has pgs 0 to 1f only"},
		{"too few", p.ID, 5, to[:2], clustermap.ErrInvalid, "give 3 OSDs, not 2"},
		{"twice", p.ID, 5, []int32{to[0], to[0], to[1]}, clustermap.ErrInvalid, "is given twice"},
		{"no such osd", p.ID, 5, []int32{to[0], to[1], 17}, clustermap.ErrNotFound, "no osd.17"},
		{"one host twice", p.ID, 5, []int32{3, 4, 0}, clustermap.ErrInvalid, "are both on host h3"},
		{"down", p.ID, 5, []int32{down.ID, placed[0], placed[1]}, clustermap.ErrInvalid, "is down"},
	}
	for _, b := range bad {
		if _, _, err := s.MovePG(testCtx(t), b.pool, b.pg, b.members); !errors.Is(err, b.want) || !strings.Contains(fmt.Sprint(err), b.says) {
			t.Errorf("%s: %v, want %v saying %q", b.name, err, b.want, b.says)
		}
	}
	wantEpoch(t, s, before.Epoch)

	m, old, err := s.MovePG(testCtx(t), p.ID, 5, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(old, placed) || !slices.Equal(m.Replicas(p, 5), to) {
		t.Fatalf("move: was %v (want %v), now %v (want %v)", old, placed, m.Replicas(p, 5), to)
	}
	if err := s.SetOSDWeight(testCtx(t), 0, 3); err != nil { // a later change keeps it
		t.Fatal(err)
	}
	after := mustLoad(t, s)
	if got := after.Replicas(p, 5); !slices.Equal(got, to) {
		t.Fatalf("after another change pg 5 is on %v, want %v", got, to)
	}
	for pg := range p.PGNum {
		if _, ok := after.Override(p.ID, pg); ok != (pg == 5) {
			t.Fatalf("pg %d: override %v", pg, ok)
		}
	}
	raw, _ := json.Marshal(after)
	var back clustermap.Map
	if err := json.Unmarshal(raw, &back); err != nil || !slices.Equal(back.Replicas(p, 5), to) {
		t.Fatalf("after a JSON round trip pg 5 is on %v (%v)", back.Replicas(p, 5), err)
	}
	epoch := after.Epoch
	if _, _, err := s.MovePG(testCtx(t), p.ID, 5, to); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, epoch) // the same replicas again: no change

	if err := s.SetOSDIn(testCtx(t), 4, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MovePG(testCtx(t), p.ID, 6, []int32{4, 0, 1}); !errors.Is(err, clustermap.ErrInvalid) || !strings.Contains(err.Error(), "is out") {
		t.Fatalf("onto an out osd: %v, want ErrInvalid", err)
	}
}

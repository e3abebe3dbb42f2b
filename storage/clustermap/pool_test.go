package clustermap_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

// withOSDs returns a store holding one OSD per host given (hdd class).
func withOSDs(t *testing.T, hosts ...string) *clustermap.Store {
	t.Helper()
	s, _ := newStore(t)
	for i, h := range hosts {
		mustRegister(t, s, osd(h+"-"+string(rune('a'+i)), h))
	}
	return s
}

func pool(name string, size int) clustermap.Pool {
	return clustermap.Pool{Name: name, Size: size, PGNum: 32}
}

func TestCreatePool(t *testing.T) {
	s := withOSDs(t, "h0", "h1", "h2")
	ctx := testCtx(t)
	p, err := s.CreatePool(ctx, pool("rbd", 3))
	if err != nil {
		t.Fatal(err)
	}
	want := clustermap.Pool{ID: 0, Name: "rbd", Size: 3, MinSize: 2, PGNum: 32, FailureDomain: "host"}
	if p != want {
		t.Fatalf("CreatePool = %+v, want %+v", p, want)
	}
	p2, err := s.CreatePool(ctx, clustermap.Pool{Name: "fast.pool_1-x", Size: 2, MinSize: 1, PGNum: 8, Class: "hdd", FailureDomain: "osd"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.ID != 1 {
		t.Fatalf("second pool id = %d, want 1", p2.ID)
	}
	m := mustLoad(t, s)
	if m.Epoch != 5 || m.NextPoolID != 2 {
		t.Fatalf("epoch %d next pool %d, want 5 and 2", m.Epoch, m.NextPoolID)
	}
	if got, ok := m.PoolByName("rbd"); !ok || got != p {
		t.Fatalf("PoolByName = %+v %v", got, ok)
	}
	if got, ok := m.PoolByID(1); !ok || got != p2 {
		t.Fatalf("PoolByID = %+v %v", got, ok)
	}
	// Every PG of a placeable pool gets size distinct hosts.
	for pg := range p.PGNum {
		reps := m.Replicas(p, pg)
		hosts := map[string]bool{}
		for _, id := range reps {
			o, _ := m.OSD(id)
			hosts[o.Host] = true
		}
		if len(reps) != 3 || len(hosts) != 3 {
			t.Fatalf("pg %d replicas %v on hosts %v", pg, reps, hosts)
		}
	}
	if pg := m.PGOf(p, "obj"); pg >= p.PGNum {
		t.Fatalf("PGOf = %d", pg)
	}
}

func TestCreatePoolRefused(t *testing.T) {
	s := withOSDs(t, "h0", "h0", "h1") // 3 OSDs on 2 hosts
	ctx := testCtx(t)

	_, err := s.CreatePool(ctx, pool("rbd", 3))
	if !errors.Is(err, clustermap.ErrInvalid) || !errors.Is(err, placement.ErrUnplaceable) || !strings.Contains(err.Error(), "hosts") {
		t.Fatalf("size 3 on 2 hosts = %v, want ErrInvalid+ErrUnplaceable mentioning hosts", err)
	}
	t.Log(err)
	wantEpoch(t, s, 3)

	// The same pool fits with the osd failure domain.
	p := pool("rbd", 3)
	p.FailureDomain = "osd"
	if _, err := s.CreatePool(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreatePool(ctx, pool("rbd", 1)); !errors.Is(err, clustermap.ErrExists) {
		t.Fatalf("duplicate = %v, want ErrExists", err)
	}
	if _, err := s.CreatePool(ctx, clustermap.Pool{Name: "ssd", Size: 1, PGNum: 8, Class: "ssd"}); !errors.Is(err, placement.ErrUnplaceable) {
		t.Fatalf("missing class = %v, want ErrUnplaceable", err)
	}

	for _, tc := range []struct {
		name string
		p    clustermap.Pool
	}{
		{"empty name", clustermap.Pool{Size: 1, PGNum: 8}},
		{"slash in name", clustermap.Pool{Name: "a/b", Size: 1, PGNum: 8}},
		{"space in name", clustermap.Pool{Name: "a b", Size: 1, PGNum: 8}},
		{"size 0", clustermap.Pool{Name: "x", Size: 0, PGNum: 8}},
		{"negative size", clustermap.Pool{Name: "x", Size: -1, PGNum: 8}},
		{"min_size above size", clustermap.Pool{Name: "x", Size: 2, MinSize: 3, PGNum: 8}},
		{"negative min_size", clustermap.Pool{Name: "x", Size: 2, MinSize: -1, PGNum: 8}},
		{"pg_num 0", clustermap.Pool{Name: "x", Size: 1}},
		{"pg_num too big", clustermap.Pool{Name: "x", Size: 1, PGNum: 65537}},
		{"bad domain", clustermap.Pool{Name: "x", Size: 1, PGNum: 8, FailureDomain: "rack"}},
		{"bad class", clustermap.Pool{Name: "x", Size: 1, PGNum: 8, Class: "h d d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.CreatePool(testCtx(t), tc.p); !errors.Is(err, clustermap.ErrInvalid) {
				t.Fatalf("CreatePool(%+v) = %v, want ErrInvalid", tc.p, err)
			}
		})
	}
	wantEpoch(t, s, 4)
}

func TestSetPool(t *testing.T) {
	s := withOSDs(t, "h0", "h1", "h2", "h2")
	ctx := testCtx(t)
	if _, err := s.CreatePool(ctx, pool("rbd", 2)); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, 5)

	p, err := s.SetPool(ctx, "rbd", "size", "2") // no change
	if err != nil || p.Size != 2 || p.MinSize != 1 {
		t.Fatalf("set size 2 = %+v, %v", p, err)
	}
	if p, err = s.SetPool(ctx, "rbd", "min_size", "2"); err != nil || p.MinSize != 2 {
		t.Fatalf("set min_size 2 = %+v, %v", p, err)
	}
	wantEpoch(t, s, 6)
	if _, err = s.SetPool(ctx, "rbd", "min_size", "2"); err != nil { // no change
		t.Fatal(err)
	}
	wantEpoch(t, s, 6)

	for _, tc := range []struct {
		key, value string
		want       error
	}{
		{"size", "3", clustermap.ErrUnsupported}, // fixed until replica moves exist
		{"size", "1", clustermap.ErrUnsupported},
		{"size", "x", clustermap.ErrInvalid},
		{"min_size", "0", clustermap.ErrInvalid},
		{"min_size", "4", clustermap.ErrInvalid},
		{"pg_num", "64", clustermap.ErrUnsupported},
		{"colour", "blue", clustermap.ErrInvalid},
	} {
		if _, err := s.SetPool(ctx, "rbd", tc.key, tc.value); !errors.Is(err, tc.want) {
			t.Fatalf("SetPool %s=%s = %v, want %v", tc.key, tc.value, err, tc.want)
		}
	}
	if _, err := s.SetPool(ctx, "nope", "size", "2"); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("SetPool on a missing pool = %v, want ErrNotFound", err)
	}
	wantEpoch(t, s, 6)
	if p, _ := mustLoad(t, s).PoolByName("rbd"); p.Size != 2 || p.MinSize != 2 {
		t.Fatalf("stored pool = %+v", p)
	}
}

func TestSetFlag(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	for _, f := range []string{"noout", "norebalance", "noout"} {
		if err := s.SetFlag(ctx, f, true); err != nil {
			t.Fatal(err)
		}
	}
	m := mustLoad(t, s)
	if m.Epoch != 2 || strings.Join(m.Flags, ",") != "noout,norebalance" || !m.HasFlag("noout") || m.HasFlag("noscrub") {
		t.Fatalf("flags %v at epoch %d", m.Flags, m.Epoch)
	}
	if err := s.SetFlag(ctx, "noout", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFlag(ctx, "noscrub", false); err != nil { // not set, not acted on: clearing is allowed
		t.Fatal(err)
	}
	m = mustLoad(t, s)
	if m.Epoch != 3 || strings.Join(m.Flags, ",") != "norebalance" {
		t.Fatalf("flags %v at epoch %d", m.Flags, m.Epoch)
	}
	err := s.SetFlag(ctx, "nodown", true)
	if !errors.Is(err, clustermap.ErrInvalid) || !strings.Contains(err.Error(), "norebalance") {
		t.Fatalf("unknown flag = %v, want ErrInvalid listing the known flags", err)
	}
	err = s.SetFlag(ctx, "pause", true)
	if !errors.Is(err, clustermap.ErrInvalid) || !strings.Contains(err.Error(), "does not act on") {
		t.Fatalf("a flag tsumiki does not act on = %v, want ErrInvalid saying so", err)
	}
	if m := mustLoad(t, s); m.Epoch != 3 {
		t.Fatalf("a refused flag changed the map: epoch %d", m.Epoch)
	}
}

// TestRaiseEpoch: the epoch goes up to what is asked in one change, never
// down, and later changes count on from there.
func TestRaiseEpoch(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	for _, tc := range []struct{ to, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {9, 9}} {
		m, err := s.RaiseEpoch(ctx, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, s).Epoch; m.Epoch != tc.want || got != tc.want {
			t.Fatalf("raise to %d: epoch %d (stored %d), want %d", tc.to, m.Epoch, got, tc.want)
		}
	}
	if err := s.SetFlag(ctx, "noout", true); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s).Epoch; got != 10 {
		t.Fatalf("a change after raising to 9: epoch %d, want 10", got)
	}
}

// allReplicas returns every PG's replicas of pool p under m.
func allReplicas(m *clustermap.Map, p clustermap.Pool) [][]int32 {
	out := make([][]int32, p.PGNum)
	for pg := range p.PGNum {
		out[pg] = m.Replicas(p, pg)
	}
	return out
}

// movedByNow reports whether placing p on the OSDs in now would move
// some PG, which is what makes a check of kept replicas mean something.
func movedByNow(m *clustermap.Map, p clustermap.Pool, kept [][]int32) bool {
	for pg := range p.PGNum {
		if !slices.Equal(placement.Map(m.Devices(), m.Rule(p), pg), kept[pg]) {
			return true
		}
	}
	return false
}

// TestReplicasKeepTheirOSDs: a PG's replicas are its raft group's members,
// so OSDs added, marked out or reweighted after a pool was created must
// not change them (the newly chosen OSDs started empty raft groups of
// their own for PGs that held data). New pools use the OSDs in now.
func TestReplicasKeepTheirOSDs(t *testing.T) {
	s := withOSDs(t, "h0", "h1", "h2")
	ctx := testCtx(t)
	p, err := s.CreatePool(ctx, clustermap.Pool{Name: "rbd", Size: 3, PGNum: 64, FailureDomain: "osd"})
	if err != nil {
		t.Fatal(err)
	}
	before := allReplicas(mustLoad(t, s), p)
	mustRegister(t, s, osd("h3-d", "h3"))
	mustRegister(t, s, osd("h4-e", "h4"))
	if err := s.SetOSDIn(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOSDWeight(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	m := mustLoad(t, s)
	if !movedByNow(m, p, before) {
		t.Fatal("the changes moved no PG: the test checks nothing")
	}
	if got := allReplicas(m, p); !slices.EqualFunc(got, before, slices.Equal) {
		t.Fatalf("replicas changed with the OSDs:\nbefore %v\nafter  %v", before, got)
	}
	q, err := s.CreatePool(ctx, clustermap.Pool{Name: "new", Size: 3, PGNum: 64, FailureDomain: "osd"})
	if err != nil {
		t.Fatal(err)
	}
	m = mustLoad(t, s)
	newOSDs := false
	for _, reps := range allReplicas(m, q) {
		if slices.Contains(reps, 0) {
			t.Fatalf("a new pool placed a PG on osd.0, which is out: %v", reps)
		}
		newOSDs = newOSDs || slices.Contains(reps, 3) || slices.Contains(reps, 4)
	}
	if !newOSDs {
		t.Fatal("a new pool uses none of the OSDs added")
	}
}

// TestPlacementsRecordedForOldMaps: a map stored before placements were
// recorded has them recorded, as its OSDs were, by the next change, so
// that change (here a new OSD) moves no PG.
func TestPlacementsRecordedForOldMaps(t *testing.T) {
	s, cli := newStore(t)
	ctx := testCtx(t)
	for i, h := range []string{"h0", "h1", "h2"} {
		mustRegister(t, s, osd(h+"-"+string(rune('a'+i)), h))
	}
	p, err := s.CreatePool(ctx, clustermap.Pool{Name: "rbd", Size: 3, PGNum: 64, FailureDomain: "osd"})
	if err != nil {
		t.Fatal(err)
	}
	m := mustLoad(t, s)
	m.Placements = nil // as an older version stored it
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	key := "/test/" + t.Name() + "/map"
	if _, err := cli.Put(ctx, key, string(data)); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s); got.Placements != nil {
		t.Fatalf("the map was not replaced: %v", got.Placements)
	}
	before := allReplicas(m, p)
	mustRegister(t, s, osd("h3-d", "h3"))
	mustRegister(t, s, osd("h4-e", "h4"))
	m = mustLoad(t, s)
	if !movedByNow(m, p, before) {
		t.Fatal("the new OSDs moved no PG: the test checks nothing")
	}
	if got := allReplicas(m, p); !slices.EqualFunc(got, before, slices.Equal) {
		t.Fatalf("replicas changed with the OSDs:\nbefore %v\nafter  %v", before, got)
	}
}

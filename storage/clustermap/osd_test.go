package clustermap_test

import (
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func TestLoadEmpty(t *testing.T) {
	s, _ := newStore(t)
	m := mustLoad(t, s)
	if m.Epoch != 0 || len(m.OSDs) != 0 || len(m.Pools) != 0 {
		t.Fatalf("empty cluster map = %+v", m)
	}
}

func TestRegisterOSD(t *testing.T) {
	s, _ := newStore(t)
	for i, host := range []string{"h0", "h1", "h2"} {
		o := mustRegister(t, s, osd("uuid-"+host, host))
		if o.ID != int32(i) || !o.In {
			t.Fatalf("register %s = %+v, want id %d, in", host, o, i)
		}
		wantEpoch(t, s, uint64(i+1))
	}

	// Same UUID, same values: same id, no epoch bump.
	o := mustRegister(t, s, osd("uuid-h1", "h1"))
	if o.ID != 1 {
		t.Fatalf("re-register kept id %d, want 1", o.ID)
	}
	wantEpoch(t, s, 3)

	// Same UUID, new address and weight: same id, one bump, address
	// updated, in/out state and the operator's weight kept.
	if err := s.SetOSDIn(testCtx(t), 1, false); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, 4)
	changed := osd("uuid-h1", "h1")
	changed.PublicAddr, changed.Weight = "10.0.0.9:6800", 2
	o = mustRegister(t, s, changed)
	if o.ID != 1 || o.PublicAddr != "10.0.0.9:6800" || o.Weight != 1 || o.In {
		t.Fatalf("re-register with changes = %+v", o)
	}
	wantEpoch(t, s, 5)
	m := mustLoad(t, s)
	if got, _ := m.OSD(1); got != o {
		t.Fatalf("stored osd.1 = %+v, want %+v", got, o)
	}
	if m.NextOSDID != 3 || len(m.OSDs) != 3 {
		t.Fatalf("map = %+v", m)
	}
}

func TestRegisterOSDInvalid(t *testing.T) {
	s, _ := newStore(t)
	for name, edit := range map[string]func(*clustermap.OSD){
		"no uuid":         func(o *clustermap.OSD) { o.UUID = "" },
		"no host":         func(o *clustermap.OSD) { o.Host = "" },
		"no class":        func(o *clustermap.OSD) { o.Class = "" },
		"zero weight":     func(o *clustermap.OSD) { o.Weight = 0 },
		"nan weight":      func(o *clustermap.OSD) { o.Weight = math.NaN() },
		"no public addr":  func(o *clustermap.OSD) { o.PublicAddr = "" },
		"no cluster addr": func(o *clustermap.OSD) { o.ClusterAddr = "" },
	} {
		t.Run(name, func(t *testing.T) {
			o := osd("u", "h")
			edit(&o)
			if _, err := s.RegisterOSD(testCtx(t), o); !errors.Is(err, clustermap.ErrInvalid) {
				t.Fatalf("RegisterOSD = %v, want ErrInvalid", err)
			}
		})
	}
	wantEpoch(t, s, 0)
}

func TestRegisterOSDConcurrent(t *testing.T) {
	s, _ := newStore(t)
	const n = 8
	ids := make([]int32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := s.RegisterOSD(testCtx(t), osd(string(rune('a'+i)), "h"))
			ids[i], errs[i] = o.ID, err
		})
	}
	wg.Wait()
	seen := map[int32]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[ids[i]] || ids[i] < 0 || ids[i] >= n {
			t.Fatalf("ids = %v: not distinct in 0..%d", ids, n-1)
		}
		seen[ids[i]] = true
	}
	m := mustLoad(t, s)
	if m.Epoch != n || m.NextOSDID != n || len(m.OSDs) != n {
		t.Fatalf("after %d registrations: epoch %d, next id %d, %d OSDs", n, m.Epoch, m.NextOSDID, len(m.OSDs))
	}
	for i, o := range m.OSDs {
		if o.ID != int32(i) {
			t.Fatalf("OSDs not sorted by id: %+v", m.OSDs)
		}
	}
}

func TestSetOSDInAndWeight(t *testing.T) {
	s, _ := newStore(t)
	mustRegister(t, s, osd("u0", "h0"))
	ctx := testCtx(t)
	if err := s.SetOSDIn(ctx, 0, true); err != nil { // already in
		t.Fatal(err)
	}
	wantEpoch(t, s, 1)
	if err := s.SetOSDIn(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOSDWeight(ctx, 0, 3.5); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, s, 3)
	if o, _ := mustLoad(t, s).OSD(0); o.In || o.Weight != 3.5 {
		t.Fatalf("osd.0 = %+v", o)
	}
	if err := s.SetOSDIn(ctx, 7, true); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("SetOSDIn(7) = %v, want ErrNotFound", err)
	}
	if err := s.SetOSDWeight(ctx, 7, 1); !errors.Is(err, clustermap.ErrNotFound) {
		t.Fatalf("SetOSDWeight(7) = %v, want ErrNotFound", err)
	}
	if err := s.SetOSDWeight(ctx, 0, 0); !errors.Is(err, clustermap.ErrInvalid) {
		t.Fatalf("SetOSDWeight(0) = %v, want ErrInvalid", err)
	}
	wantEpoch(t, s, 3)
}

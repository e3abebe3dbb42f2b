package chunkstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestSweepAfterCrash: a crash forgets the stale reserve and the slots of
// a write placed ahead but never logged; after reopening, Sweep finds the
// stale copies on disk and punches them (no reserve now) or keeps them in
// the reserve, which Close then punches. Current data is never touched.
func TestSweepAfterCrash(t *testing.T) {
	for _, reserve := range []int64{-1, 8 << 20} {
		t.Run(fmt.Sprint("reserve=", reserve), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.StaleReserve = 8 << 20
			s := openStore(t, cfg)
			const chunk, span = 64 << 10, 1 << 20
			index := uint64(0)
			placePass(t, s, "o", pattern(1, span), chunk, true, &index)
			checkpoint(t, s)
			want := pattern(2, span)
			placePass(t, s, "o", want, chunk, true, &index)
			checkpoint(t, s) // the first pass's copies go into the reserve
			// And data placed ahead, past the object's end, for an entry
			// that never comes.
			const ahead = 16 << 12
			placeAhead(t, s, index+1, "o", span, 9)
			killStore(s)
			cfg.StaleReserve = reserve
			s = openStore(t, cfg)
			if alloc := allocatedData(t, s, pg1, "o"); alloc[0]+alloc[1] != 2*span+ahead {
				t.Fatalf("after the crash: slot 0 %d, slot 1 %d bytes allocated; want %d (a stale copy of each block, and the data placed ahead)", alloc[0], alloc[1], 2*span+ahead)
			}
			res, err := s.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Objects != 1 {
				t.Fatalf("swept %d objects, want 1", res.Objects)
			}
			alloc := allocatedData(t, s, pg1, "o")
			if reserve < 0 {
				if alloc[0]+alloc[1] != span || res.Punched != (span+ahead)/int64(cfg.BlockSize) || res.Reserved != 0 {
					t.Fatalf("swept: %+v; slot 0 %d, slot 1 %d bytes allocated; want %d blocks punched, %d bytes left", res, alloc[0], alloc[1], (span+ahead)/cfg.BlockSize, span)
				}
			} else if alloc[0]+alloc[1] != 2*span+ahead || res.Reserved != span+ahead || res.Punched != 0 {
				t.Fatalf("swept: %+v; slot 0 %d, slot 1 %d bytes allocated; want the %d stale bytes kept in the reserve", res, alloc[0], alloc[1], span+ahead)
			}
			checkObject(t, s, pg1, "o", want, index)
			// A second sweep finds the same reserve, not more.
			if again, err := s.Sweep(context.Background()); err != nil || again.Reserved != res.Reserved || again.Punched != 0 {
				t.Fatalf("second sweep: %+v, %v; want nothing new", again, err)
			}
			s = reopen(t, s)
			if alloc := allocatedData(t, s, pg1, "o"); alloc[0]+alloc[1] != span {
				t.Fatalf("after Close: slot 0 %d, slot 1 %d bytes allocated; want %d", alloc[0], alloc[1], span)
			}
			checkObject(t, s, pg1, "o", want, index)
		})
	}
}

func TestSubtractRuns(t *testing.T) {
	r := slotRun{lo: 10, hi: 20, slot: 1}
	for _, tc := range []struct {
		minus []slotRun
		want  []slotRun
	}{
		{nil, []slotRun{r}},
		{[]slotRun{{lo: 10, hi: 20, slot: 0}}, []slotRun{r}}, // other slot
		{[]slotRun{{lo: 0, hi: 10, slot: 1}, {lo: 20, hi: 30, slot: 1}}, []slotRun{r}},
		{[]slotRun{{lo: 0, hi: 30, slot: 1}}, nil},
		{[]slotRun{{lo: 12, hi: 14, slot: 1}}, []slotRun{{lo: 10, hi: 12, slot: 1}, {lo: 14, hi: 20, slot: 1}}},
		{[]slotRun{{lo: 5, hi: 12, slot: 1}, {lo: 18, hi: 25, slot: 1}}, []slotRun{{lo: 12, hi: 18, slot: 1}}},
	} {
		if got := subtractRuns(r, tc.minus); !slices.Equal(got, tc.want) {
			t.Errorf("subtractRuns(%v, %v) = %v, want %v", r, tc.minus, got, tc.want)
		}
	}
}

func checkpoint(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
}

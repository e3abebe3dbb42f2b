package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// TestVerifyPGs: every PG is verified, in order, a PG's replicas at once;
// a replica that differs makes its PG, and only it, inconsistent.
func TestVerifyPGs(t *testing.T) {
	const pgs, odd = 6, 4
	c, fakes := setupPGs(t, pgs)
	var mu sync.Mutex
	inFlight, most := 0, 0
	all3 := make(chan struct{})
	var sts []wire.PGState
	for pg := range uint32(pgs) {
		sts = append(sts, wire.PGState{Pool: c.Map().Pools[0].ID, PG: pg, Leader: -1, Applied: 7})
	}
	for id, f := range fakes {
		f.handle(func(r wire.Request) wire.Response {
			switch r.Op {
			case wire.OpPGStatus:
				return wire.Response{Status: wire.StatusOK, Data: wire.AppendPGStates(nil, sts)}
			case wire.OpDigest:
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				if inFlight == 3 {
					close(all3)
				}
				mu.Unlock()
				select { // the first PG's digests wait for each other
				case <-all3:
				case <-time.After(5 * time.Second):
				}
				mu.Lock()
				inFlight--
				mu.Unlock()
				dg := wire.Digest{Applied: 7, Objects: uint64(r.PG)}
				if r.PG == odd && id == 1 {
					dg.Sum[0] = 1
				}
				return wire.Response{Status: wire.StatusOK, Data: wire.AppendDigest(nil, dg)}
			}
			return wire.Response{Status: wire.StatusInvalid}
		})
	}
	for _, parallel := range []int{1, 4} {
		var progress []int64
		var pmu sync.Mutex
		vs := c.VerifyPGs(context.Background(), 300*time.Millisecond, parallel, func(done, total int64) {
			pmu.Lock()
			defer pmu.Unlock()
			if total != pgs {
				t.Errorf("progress total %d, want %d", total, pgs)
			}
			progress = append(progress, done)
		})
		if len(vs) != pgs || len(progress) != pgs || progress[pgs-1] != pgs {
			t.Fatalf("parallel %d: %d results, progress %v; want %d of each", parallel, len(vs), progress, pgs)
		}
		for i, v := range vs {
			if v.PG != uint32(i) {
				t.Fatalf("parallel %d: result %d is pg %d: not in order", parallel, i, v.PG)
			}
			if v.Consistent != (i != odd) || len(v.Replicas) != 3 {
				t.Fatalf("parallel %d: pg %d consistent=%v with %d replicas, want %v with 3: %+v", parallel, i, v.Consistent, len(v.Replicas), i != odd, v.Replicas)
			}
		}
	}
	if most < 3 {
		t.Fatalf("at most %d digests were asked at once: a PG's replicas are asked one after another", most)
	}
}

package osd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"
)

// TestSim runs random schedules of the simulated cluster (sim_world_test.go)
// and checks, after each: every object reads back through its leader, each
// object's history is linearizable, and all replicas of every PG have equal
// applied indexes and equal digests (with each replica's own compaction
// point cleared from the apply state first, see replicaDigest).
//
//	TSUMIKI_SIM_SEED=N         replay schedule N alone, with its trace (-v)
//	TSUMIKI_SIM_TRACE_RAFT=1   with SEED: add every raft message to the trace
//	TSUMIKI_SIM_SCHEDULES=N    run N schedules from a random first seed (chaos)
func TestSim(t *testing.T) {
	first, n := uint64(1), 2000
	switch {
	case testing.Short() && raceEnabled:
		n = 50 // one goroutine, nothing for the detector; chaos-short runs 2000
	case testing.Short():
		n = 300
	}
	if s := os.Getenv("TSUMIKI_SIM_SCHEDULES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("TSUMIKI_SIM_SCHEDULES=%q: %v", s, err)
		}
		first = rand.Uint64() >> 1
		t.Logf("running %d schedules from seed %d", n, first)
	}
	replay := os.Getenv("TSUMIKI_SIM_SEED")
	if replay != "" {
		seed, err := strconv.ParseUint(replay, 10, 64)
		if err != nil {
			t.Fatalf("TSUMIKI_SIM_SEED=%q: %v", replay, err)
		}
		first, n = seed, 1
	}
	start := time.Now()
	var stats simStats
	for seed := first; seed < first+uint64(n); seed++ {
		w, err := runSim(t, seed, simOptsFor(seed, replay != ""))
		stats.add(w.stats)
		if replay != "" {
			t.Log("trace:\n" + strings.Join(w.trace, "\n"))
		}
		if err != nil {
			if replay == "" {
				w, _ = runSim(t, seed, simOptsFor(seed, true))
				t.Log("last actions:\n" + strings.Join(w.trace[max(0, len(w.trace)-150):], "\n"))
			}
			t.Fatalf("seed %d: %v\n(replay: TSUMIKI_SIM_SEED=%d go test -run 'TestSim$' -v ./storage/osd/)", seed, err, seed)
		}
	}
	t.Logf("%d schedules in %v: %+v", n, time.Since(start).Round(time.Millisecond), stats)
}

// simOptsFor derives a schedule's shape from its seed.
func simOptsFor(seed uint64, trace bool) simOpts {
	rng := rand.New(rand.NewPCG(seed, 42))
	o := simOpts{
		steps:   3000 + rng.IntN(3001),
		pgs:     2 + rng.IntN(2),
		minSize: []int{0, 2}[rng.IntN(2)],
		compact: []uint64{4, 16, 1024}[rng.IntN(3)],
		damage:  rng.IntN(3) == 0,
		trace:   trace,
		// TSUMIKI_SIM_TRACE_RAFT=1 adds every raft message to a replay's trace
		traceRaft: trace && os.Getenv("TSUMIKI_SIM_TRACE_RAFT") != "",
		snapshots: rng.IntN(2) == 0 && os.Getenv("NOSNAP") == "", // drawn late: the other draws stay what they were
	}
	o.moves = o.snapshots && rng.IntN(2) == 0 // drawn last, likewise
	return o
}

// runSim plays one schedule with crypto/rand (raft's election jitter, the
// node nonce) seeded from seed, so the same seed replays the same schedule.
func runSim(t *testing.T, seed uint64, opts simOpts) (*simWorld, error) {
	cryptotest.SetGlobalRandom(t, seed)
	w := newSimWorld(seed, opts)
	return w, w.run()
}

// TestSimDeterministic: a seed replays the same schedule, action for action
// (6 and 170 once did not, when replicas ticked in map order).
func TestSimDeterministic(t *testing.T) {
	for _, seed := range []uint64{3, 6, 17, 170} {
		w1, err1 := runSim(t, seed, simOptsFor(seed, true))
		w2, err2 := runSim(t, seed, simOptsFor(seed, true))
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("seed %d: errors differ: %v / %v", seed, err1, err2)
		}
		if len(w1.trace) < 100 {
			t.Fatalf("seed %d: only %d actions traced", seed, len(w1.trace))
		}
		for i := range max(len(w1.trace), len(w2.trace)) {
			if i >= len(w1.trace) || i >= len(w2.trace) || w1.trace[i] != w2.trace[i] {
				t.Fatalf("seed %d: traces diverge at line %d", seed, i)
			}
		}
	}
}

// TestSimCheckerRejects feeds the history checker hand-made histories: it
// must reject the wrong ones, so the simulation cannot pass vacuously.
func TestSimCheckerRejects(t *testing.T) {
	w := func(v uint64, call, ret int64) simEvent { return simEvent{write: true, val: v, call: call, ret: ret} }
	lost := func(v uint64, call int64) simEvent {
		return simEvent{write: true, val: v, call: call, ret: simNever, unknown: true}
	}
	r := func(v uint64, call, ret int64) simEvent { return simEvent{val: v, call: call, ret: ret} }
	tests := []struct {
		name string
		evs  []simEvent
		ok   bool
	}{
		{"read own write", []simEvent{w(1, 1, 2), r(1, 3, 4)}, true},
		{"stale read after ack", []simEvent{w(1, 1, 2), w(2, 3, 4), r(1, 5, 6)}, false},
		{"acknowledged write lost", []simEvent{w(1, 1, 2), r(0, 3, 4)}, false},
		{"concurrent read may see either", []simEvent{w(1, 1, 2), w(2, 3, 6), r(1, 4, 5), r(2, 7, 8)}, true},
		{"value flips back", []simEvent{w(1, 1, 2), w(2, 3, 10), r(2, 4, 5), r(1, 6, 7)}, false},
		{"unknown write observed late", []simEvent{w(1, 1, 2), lost(2, 3), r(1, 4, 5), r(2, 6, 7)}, true},
		{"unknown write seen then undone", []simEvent{w(1, 1, 2), lost(2, 3), r(2, 4, 5), r(1, 6, 7)}, false},
		{"value never written", []simEvent{w(1, 1, 2), r(7, 3, 4)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLinearizable("k", tt.evs)
			if (err == nil) != tt.ok {
				t.Fatalf("checkLinearizable = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, errNotLinearizable) {
				t.Fatalf("error %v is not errNotLinearizable", err)
			}
		})
	}
}

// TestSimDetectsLostWrites runs schedules on disks that silently drop the
// data of acknowledged writes: the end-of-run checks must notice, whether
// one replica diverges or all of them lose the same write.
func TestSimDetectsLostWrites(t *testing.T) {
	tests := []struct {
		name  string
		osds  []int32
		wants string
	}{
		{"one replica", []int32{1}, "digests"},
		{"every replica", []int32{0, 1, 2}, "not linearizable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				opts := simOptsFor(seed, false)
				opts.faults = func(w *simWorld) {
					for _, id := range tt.osds {
						w.nodes[id].lose = func(pg PG, object string) bool { return object == "obj1" }
						w.nodes[id].store.SetLoseWrites(w.nodes[id].lose)
					}
				}
				_, err := runSim(t, seed, opts)
				if err == nil || !strings.Contains(err.Error(), tt.wants) {
					t.Fatalf("seed %d: run = %v, want an error about %s", seed, err, tt.wants)
				}
			}
		})
	}
}

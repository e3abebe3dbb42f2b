package osd

import (
	"context"
	"testing"
	"time"
)

// moveLeader hands pg's leadership to node to and waits until the
// replicas agree on it.
func (lc *loopCluster) moveLeader(pg PG, to int) {
	lc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for lc.leaderOf(pg) != to {
		if time.Now().After(deadline) {
			lc.t.Fatalf("pg %v: leadership did not move to node %d (led by %d)", pg, to, lc.leaderOf(pg))
		}
		if lead := lc.leaderOf(pg); lead >= 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = lc.nodes[lead].transferLeader(ctx, pg, int32(to))
			cancel()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onLoop returns once node i's loop has run everything posted to it
// before the call.
func (lc *loopCluster) onLoop(i int) {
	lc.t.Helper()
	ran := make(chan struct{})
	if !lc.nodes[i].post(context.Background(), func() { close(ran) }) {
		lc.t.Fatalf("node %d has stopped", i)
	}
	<-ran
}

// waitPrimaries waits until every one of pgs PGs is led by its primary
// (node pg%3).
func (lc *loopCluster) waitPrimaries(pgs int, within time.Duration) {
	lc.t.Helper()
	deadline := time.Now().Add(within)
	for pg := range pgs {
		for lc.leaderOf(PG{Pool: 1, Seq: uint32(pg)}) != pg%3 {
			if time.Now().After(deadline) {
				lc.t.Fatalf("pg %d is led by %d, not by its primary %d", pg, lc.leaderOf(PG{Pool: 1, Seq: uint32(pg)}), pg%3)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestLoopLeadershipReturnsToPrimary: a PG led by a replica other than its
// primary is handed back once the primary has been heard from for
// BalanceAfter: after a move (`pg lead`), and after the primary's restart;
// not while the nodes are held (noout), nor to a primary marked out.
func TestLoopLeadershipReturnsToPrimary(t *testing.T) {
	const pgs = 6
	lc := newLoopCluster(t, pgs, func(c *NodeConfig) { c.BalanceAfter = 200 * time.Millisecond })
	for pg := range pgs {
		lc.write(PG{Pool: 1, Seq: uint32(pg)}, "o", []byte("before"))
	}

	// The first elections may pick other replicas: the balancer hands
	// those back before the hold, and the hand-overs counted from the
	// point the hold is in force must stay zero.
	lc.waitPrimaries(pgs, 10*time.Second)
	heldAt := make([]uint64, len(lc.nodes))
	for i, n := range lc.nodes {
		n.HoldLeaders(true, nil)
		lc.onLoop(i) // the hold is in force once the loop has run it
		heldAt[i] = n.balanced.Load()
	}
	for pg := range pgs {
		lc.moveLeader(PG{Pool: 1, Seq: uint32(pg)}, (pg+1)%3)
	}
	time.Sleep(5 * 200 * time.Millisecond)
	for pg := range pgs {
		if lead := lc.leaderOf(PG{Pool: 1, Seq: uint32(pg)}); lead != (pg+1)%3 {
			t.Fatalf("held: pg %d moved from node %d to %d", pg, (pg+1)%3, lead)
		}
	}
	for i, n := range lc.nodes {
		if c := n.balanced.Load() - heldAt[i]; c != 0 {
			t.Fatalf("held: node %d started %d hand-overs", i, c)
		}
		n.HoldLeaders(false, nil)
	}
	lc.waitPrimaries(pgs, 10*time.Second)

	// Node 0 restarts: its PGs elect others, then come back to it.
	before := lc.nodes[1].balanced.Load() + lc.nodes[2].balanced.Load()
	lc.stop(0)
	for pg := 0; pg < pgs; pg += 3 {
		lc.write(PG{Pool: 1, Seq: uint32(pg)}, "o", []byte("while0down"))
	}
	startLoopNode(lc, 0)
	lc.waitPrimaries(pgs, 20*time.Second)
	// Node 0's own campaigns lose to the leaders its peers hear from
	// (pre-vote): the hand-overs brought its PGs back.
	if after := lc.nodes[1].balanced.Load() + lc.nodes[2].balanced.Load(); after <= before {
		t.Fatalf("node 0 leads its PGs again without a hand-over (%d before, %d after)", before, after)
	}

	// Marked out, node 0 is not handed leadership back.
	for i, n := range lc.nodes {
		n.HoldLeaders(false, []int32{0})
		lc.onLoop(i)
	}
	lc.moveLeader(PG{Pool: 1, Seq: 0}, 1)
	time.Sleep(5 * 200 * time.Millisecond)
	if lead := lc.leaderOf(PG{Pool: 1, Seq: 0}); lead != 1 {
		t.Fatalf("pg 0 went to node %d, though its primary is out", lead)
	}

	for pg := range pgs {
		lc.write(PG{Pool: 1, Seq: uint32(pg)}, "o", []byte("after"))
	}
	lc.converge(pgs)
	for pg := range pgs {
		if got := string(lc.read(PG{Pool: 1, Seq: uint32(pg)}, "o", 5)); got != "after" {
			t.Fatalf("pg %d reads %q", pg, got)
		}
	}
}

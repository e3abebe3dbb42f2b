package osd

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// confOf returns node i's applied configuration of pg as OSD ids (nil
// voters when it holds no replica).
func confOf(t *testing.T, n *Node, pg PG) (voters, learners []int32, ok bool) {
	t.Helper()
	loopDo(t, n, func(n *Node) {
		r := n.replicas[pg]
		if r == nil {
			return
		}
		ok = true
		voters = ids(r.log.cs.GetVoters())
		learners = ids(append(r.log.cs.GetLearners(), r.log.cs.GetVotersOutgoing()...))
	})
	return voters, learners, ok
}

func ids(raftIDs []uint64) []int32 {
	var out []int32
	for _, id := range raftIDs {
		out = append(out, osdID(id))
	}
	slices.Sort(out)
	return out
}

// waitFor polls fn until it returns nil, and fails t with its last error
// once d has passed.
func waitFor(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMoved waits until every member's replica of pg has applied the
// configuration members (voters only) and the others hold no replica.
func waitMoved(t *testing.T, lc *loopCluster, pg PG, members ...int32) {
	t.Helper()
	want := slices.Sorted(slices.Values(members))
	waitFor(t, 60*time.Second, func() error {
		done := true
		var seen []string
		for i, n := range lc.nodes {
			v, l, ok := confOf(t, n, pg)
			seen = append(seen, fmt.Sprintf("osd.%d %v/%v/%v", i, ok, v, l))
			if ok != slices.Contains(members, int32(i)) || (ok && (!slices.Equal(v, want) || len(l) > 0)) {
				done = false
			}
		}
		if !done {
			return fmt.Errorf("pg %s did not move to %v: %v", pg, members, seen)
		}
		return nil
	})
}

// TestLoopMovePG moves a PG off its leader onto a new, empty node while
// writes go on: the new node joins as a learner and catches up from a
// snapshot (the log is compacted), the leader hands over and is demoted,
// drops its copy once it learns it, and is removed. Every write reads
// back, the three members hold the same copy, and the node that left,
// restarted, holds nothing of the PG.
func TestLoopMovePG(t *testing.T) {
	lc, _ := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 40)
	// The leader leaves: it must hand over before it is demoted.
	leaving := lc.agreedLeader(pg)
	var stay []int32
	for i := range int32(3) {
		if int(i) != leaving {
			stay = append(stay, i)
		}
	}
	added := lc.addNode()
	members := append(stay, int32(added))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	acked := map[string][]byte{}
	wg.Add(1)
	go func() { // writes through the whole move
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("during%d", i%13)
			data := bytes.Repeat([]byte(fmt.Sprint(i)), 100+i%50)
			lc.propose(pg, op{Kind: opWrite, Object: name, Data: data})
			mu.Lock()
			acked[name] = data
			mu.Unlock()
		}
	}()
	lc.move(pg, members...)
	waitMoved(t, lc, pg, members...)
	close(stop)
	wg.Wait()
	if lc.nodes[added].installsDone.Load() == 0 {
		t.Fatal("the new member caught up without a snapshot: the test meant it to need one")
	}
	sameMembers(t, lc, pg, members)
	for name, data := range acked {
		if got := lc.read(pg, name, len(data)); !bytes.Equal(got, data) {
			t.Fatalf("%s: an acknowledged write reads back differently", name)
		}
	}
	if lead := lc.agreedLeaderAmong(pg, members...); lead != int(members[0]) {
		t.Logf("pg led by node %d after the move (its primary is %d)", lead, members[0])
	}
	lc.stop(leaving)
	startLoopNode(lc, leaving)
	pgs, err := lc.stores[leaving].ListPGs()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(pgs, pg) {
		t.Fatal("the node that left still holds the pg after a restart")
	}
	if _, _, ok := confOf(t, lc.nodes[leaving], pg); ok {
		t.Fatal("the node that left made a replica of the pg again")
	}
}

// agreedLeaderAmong is agreedLeader over the given nodes only.
func (lc *loopCluster) agreedLeaderAmong(pg PG, nodes ...int32) int {
	lc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lead := int32(-2)
		for _, i := range nodes {
			r := lc.nodes[i].lookup(pg)
			if r == nil {
				lead = -1
				break
			}
			if l := r.leader.Load(); lead == -2 || l == lead {
				lead = l
			} else {
				lead = -1
			}
		}
		if lead >= 0 {
			return int(lead)
		}
		time.Sleep(5 * time.Millisecond)
	}
	lc.t.Fatalf("pg %s: no agreed leader among %v", pg, nodes)
	return -1
}

// TestLoopMovePGOffAnAbsentNode moves a PG off a node that is away for
// the whole move, stopped or cut off the network (running, campaigning in
// vain): the move completes on the others; the node, back, takes itself
// for a voter of the old configuration, asks (probe), is told it left
// (tellLeft) and drops its copy, without copying anything.
func TestLoopMovePGOffAnAbsentNode(t *testing.T) {
	tests := []struct {
		name    string
		running bool // the node runs while away
		away    func(lc *loopCluster, i int)
		back    func(lc *loopCluster, i int)
	}{
		{"stopped", false, func(lc *loopCluster, i int) { lc.stop(i) }, func(lc *loopCluster, i int) { startLoopNode(lc, i) }},
		{"cut off", true, func(lc *loopCluster, i int) { lc.cut(i, true) }, func(lc *loopCluster, i int) { lc.cut(i, false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, _ := newSnapshotCluster(t)
			pg := PG{Pool: 1, Seq: 0}
			writeMix(lc, pg, "before", 20)
			leaving := (lc.agreedLeader(pg) + 1) % 3
			tt.away(lc, leaving)
			added := lc.addNode()
			var members []int32
			for i := range int32(4) {
				if int(i) != leaving {
					members = append(members, i)
				}
			}
			lc.move(pg, members...)
			writeMix(lc, pg, "during", 30)
			waitConf(t, lc, pg, members, members) // without node leaving
			if tt.running {
				if v, _, _ := confOf(t, lc.nodes[leaving], pg); !slices.Contains(v, int32(leaving)) {
					t.Fatalf("the node away has configuration %v, which leaves it out: the test meant it to miss the move", v)
				}
			}
			tt.back(lc, leaving)
			waitMoved(t, lc, pg, members...)
			if lc.nodes[leaving].installsDone.Load() != 0 || lc.nodes[added].installsDone.Load() == 0 {
				t.Fatalf("installs: the node that left %d (want 0), the new one %d (want some)",
					lc.nodes[leaving].installsDone.Load(), lc.nodes[added].installsDone.Load())
			}
			sameMembers(t, lc, pg, members)
		})
	}
}

// sameMembers writes a few more ops to pg and checks that every member
// applies them and holds the same copy.
func sameMembers(t *testing.T, lc *loopCluster, pg PG, members []int32) {
	t.Helper()
	idx := writeMix(lc, pg, "after", 5)
	var want [32]byte
	for k, i := range members {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := lc.nodes[i].waitApplied(ctx, pg, idx)
		cancel()
		if err != nil {
			t.Fatalf("node %d did not apply %d: %v", i, idx, err)
		}
		_, sum, _, err := lc.stores[i].Digest(pg)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			want = sum
		} else if sum != want {
			t.Fatalf("node %d's copy of pg %s differs from node %d's", i, pg, members[0])
		}
	}
}

// waitConf waits until the leader that the nodes among agree on has
// applied members as its voters, with no learner, and nodes gone hold no
// replica of pg.
func waitConf(t *testing.T, lc *loopCluster, pg PG, among, members []int32, gone ...int) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		v, l, _ := confOf(t, lc.nodes[lc.agreedLeaderAmong(pg, among...)], pg)
		done := slices.Equal(v, slices.Sorted(slices.Values(members))) && len(l) == 0
		for _, i := range gone {
			_, _, held := confOf(t, lc.nodes[i], pg)
			done = done && !held
		}
		if !done {
			return fmt.Errorf("pg %s did not move to %v (nodes %v dropping it): voters %v, learners %v", pg, members, gone, v, l)
		}
		return nil
	})
}

// TestLoopMovePGBack is the story the simulation found (seed 1061, before
// seats): node c is cut off while the PG moves off node b and back onto
// it. b's new copy takes a new seat (seat.go), so a message to b's old
// seat, which c's configuration still lists as a voter (a vote request
// of a high term here), is dropped, not answered by a copy that forgot
// its vote; c, back, catches up as a member, and every copy is the same.
func TestLoopMovePGBack(t *testing.T) {
	lc, _ := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 20)
	a := lc.agreedLeader(pg)
	b, c := (a+1)%3, (a+2)%3
	lc.cut(c, true)
	added := lc.addNode()
	away := []int32{int32(a), int32(c), int32(added)}
	lc.move(pg, away...)
	writeMix(lc, pg, "off", 20)
	waitConf(t, lc, pg, []int32{int32(a), int32(added)}, away, b) // c is cut off
	back := []int32{int32(a), int32(b), int32(c)}
	lc.move(pg, back...)
	writeMix(lc, pg, "back", 20)
	waitConf(t, lc, pg, []int32{int32(a), int32(b)}, back, added)
	var seat uint64
	var term uint64
	loopDo(t, lc.nodes[b], func(n *Node) {
		r := n.replicas[pg]
		seat, term = r.id, r.rn.BasicStatus().GetTerm()
	})
	if osdID(seat) != int32(b) || seatGen(seat) == 0 {
		t.Fatalf("node %d's new copy runs as seat %#x: want a new generation of osd.%d", b, seat, b)
	}
	vote, err := encodeRaftMsg(&pb.Message{Type: pb.MsgVote.Enum(), From: proto.Uint64(raftID(int32(c))), To: proto.Uint64(raftID(int32(b))),
		Term: proto.Uint64(term + 10), LogTerm: proto.Uint64(term + 10), Index: proto.Uint64(1 << 40),
		Context: []byte("CampaignTransfer")}) // raft's forced campaign: no lease check, which would ignore it

	if err != nil {
		t.Fatal(err)
	}
	vote.Pool, vote.PG = pg.Pool, pg.Seq
	lc.nodes[b].Deliver(int32(c), []wire.RaftMsg{vote})
	loopDo(t, lc.nodes[b], func(n *Node) {
		if got := n.replicas[pg].rn.BasicStatus(); got.GetTerm() > term+5 || got.GetVote() == raftID(int32(c)) {
			t.Errorf("node %d took a vote request to the seat its dropped copy held (term %d, vote %#x)", b, got.GetTerm(), got.GetVote())
		}
	})
	lc.cut(c, false)
	waitMoved(t, lc, pg, back...)
	sameMembers(t, lc, pg, back)
}

// TestLoopMovePGOntoAFloor moves a PG onto a node whose store keeps a
// seat floor far above the PG's log (as a dropped copy with a long log
// leaves): the node refuses the seat the leader first gives, tells the
// leader its floor (tellFloor), and joins at the new seat it is given.
func TestLoopMovePGOntoAFloor(t *testing.T) {
	lc, _ := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 20)
	leaving := lc.agreedLeader(pg)
	added := lc.addNode()
	const floor = 1 << 30
	if err := lc.stores[added].DropPG(pg, floor); err != nil { // holds nothing of pg: sets the floor only
		t.Fatal(err)
	}
	var members []int32
	for i := range int32(4) {
		if int(i) != leaving {
			members = append(members, i)
		}
	}
	lc.move(pg, members...)
	waitMoved(t, lc, pg, members...)
	var seat uint64
	loopDo(t, lc.nodes[added], func(n *Node) { seat = n.replicas[pg].id })
	if seatGen(seat) < floor {
		t.Errorf("node %d joined at seat generation %d, below its floor %d", added, seatGen(seat), uint64(floor))
	}
	sameMembers(t, lc, pg, members)
	// The seat is stored with the hard state, and a restart runs as it.
	lc.stop(added)
	st, err := lc.stores[added].LoadRaft(pg)
	hs := &pb.HardState{}
	if err == nil {
		err = proto.Unmarshal(st.HardState, hs)
	}
	if stored, _ := takeSeatField(hs); err != nil || stored != seat {
		t.Fatalf("node %d stored seat %#x (%v), runs as %#x", added, stored, err, seat)
	}
	startLoopNode(lc, added)
	waitMoved(t, lc, pg, members...)
	loopDo(t, lc.nodes[added], func(n *Node) {
		if got := n.replicas[pg].id; got != seat {
			t.Errorf("node %d restarted as seat %#x, was %#x", added, got, seat)
		}
	})
	sameMembers(t, lc, pg, members)
}

// TestLoopMovePGOfOne moves a PG of one replica (size 1) to another node:
// with no voter that stays, its leader promotes the learner and removes
// itself in one change, and steps down once it applies it (raft's
// StepDownOnRemoval; handOver has no one to hand over to).
func TestLoopMovePGOfOne(t *testing.T) {
	lc, _ := newSnapshotCluster(t)
	pg := PG{Pool: 2, Seq: 0} // not the cluster's pool: ensure leaves it alone
	lc.nodes[0].EnsurePG(pg, []int32{0}, 1)
	want := map[string][]byte{}
	for i := range 30 {
		name := fmt.Sprintf("one%d", i%9)
		want[name] = bytes.Repeat([]byte(fmt.Sprint(i)), 300+i)
		lc.write(pg, name, want[name])
	}
	for i, n := range lc.nodes {
		if err := n.MovePG(pg, []int32{1}, 1); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	waitMoved(t, lc, pg, 1)
	for name, data := range want {
		if got := lc.read(pg, name, len(data)); !bytes.Equal(got, data) {
			t.Fatalf("%s: an acknowledged write reads back differently after the move", name)
		}
	}
	lc.write(pg, "after", []byte("the new replica leads"))
}

// busyDrop is a store whose DropPG answers ErrBusy while busy is set, as
// chunkstore does while data placed ahead for the PG is in flight.
type busyDrop struct {
	Store
	busy *atomic.Bool
}

func (s busyDrop) DropPG(pg PG, tomb uint64) error {
	if s.busy.Load() {
		return chunkstore.ErrBusy
	}
	return s.Store.DropPG(pg, tomb)
}

// onNode is a waitFor condition: cond, run on node i's loop, holds; else
// an error that node i what.
func onNode(t *testing.T, lc *loopCluster, i int, what string, cond func(n *Node) bool) func() error {
	return func() error {
		ok := false
		loopDo(t, lc.nodes[i], func(n *Node) { ok = cond(n) })
		if !ok {
			return fmt.Errorf("node %d %s", i, what)
		}
		return nil
	}
}

// TestLoopMovePGBackWhileDropping moves a PG off a node and back while
// the node's drop of its copy waits on the store (ErrBusy): the node joins
// again once the drop is done, with no further map to tell it.
func TestLoopMovePGBackWhileDropping(t *testing.T) {
	var busy atomic.Bool
	lc, _ := newSnapshotCluster(t, func(s Store) Store { return busyDrop{s, &busy} })
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 20)
	added := lc.addNode()
	busy.Store(true)
	away := []int32{0, 1, int32(added)}
	lc.move(pg, away...)
	onNode2 := func(what string, cond func(n *Node) bool) func() error { return onNode(t, lc, 2, what, cond) }
	waitFor(t, 30*time.Second, onNode2("never began to drop the pg", func(n *Node) bool { _, ok := n.dropping[pg]; return ok }))
	back := []int32{0, 1, 2}
	lc.move(pg, back...)
	// node 2 takes the members while its drop waits
	waitFor(t, 30*time.Second, onNode2("did not wait for its drop to join again", func(n *Node) bool { return n.rejoin[pg] != nil }))
	busy.Store(false)
	writeMix(lc, pg, "after", 10)
	waitMoved(t, lc, pg, back...)
	sameMembers(t, lc, pg, back)
}

// TestLoopEnsurePGWhileDropping: a map from before a PG moved off a node
// (a restored control plane) lists the node again while its drop of the
// copy waits on the store. The node does not load the copy being dropped
// (the drop would empty the store under it); once the drop is done, the
// floor it left refuses to start a group of its own there.
func TestLoopEnsurePGWhileDropping(t *testing.T) {
	var busy atomic.Bool
	lc, _ := newSnapshotCluster(t, func(s Store) Store { return busyDrop{s, &busy} })
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 20)
	added := lc.addNode()
	busy.Store(true)
	lc.move(pg, 0, 1, int32(added))
	onNode2 := func(what string, cond func(n *Node) bool) func() error { return onNode(t, lc, 2, what, cond) }
	waitFor(t, 30*time.Second, onNode2("never began to drop the pg", func(n *Node) bool { _, ok := n.dropping[pg]; return ok }))
	lc.nodes[2].EnsurePG(pg, []int32{0, 1, 2}, 2) // the old map
	waitFor(t, 30*time.Second, onNode2("did not wait for its drop", func(n *Node) bool { return n.rejoin[pg] != nil }))
	waitFor(t, time.Second, onNode2("loaded the copy it is dropping", func(n *Node) bool { return n.replicas[pg] == nil }))
	busy.Store(false)
	waitFor(t, 30*time.Second, onNode2("did not finish the drop", func(n *Node) bool { return len(n.dropping) == 0 && n.rejoin[pg] == nil }))
	waitFor(t, time.Second, onNode2("started a group of its own over its floor", func(n *Node) bool { return n.replicas[pg] == nil }))
	writeMix(lc, pg, "after", 10)
	waitMoved(t, lc, pg, 0, 1, int32(added))
}

// TestLoopMovePGHeld: with moves held (the norebalance flag), a move the
// map asks for starts no copy: the new node gets no seat and the voters
// stay for many election timeouts, while the PG takes writes. Released,
// the move completes.
func TestLoopMovePGHeld(t *testing.T) {
	lc, _ := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	writeMix(lc, pg, "before", 20)
	added := lc.addNode()
	for _, n := range lc.nodes {
		n.HoldMoves(true)
	}
	lead := lc.agreedLeaderAmong(pg, 0, 1, 2)
	leaving := (lead + 1) % 3
	var members []int32
	for i := range int32(3) {
		if int(i) != leaving {
			members = append(members, i)
		}
	}
	members = append(members, int32(added))
	lc.move(pg, members...)
	deadline := time.Now().Add(2 * time.Second) // 20 election timeouts
	for i := 0; time.Now().Before(deadline); i++ {
		idx := lc.write(pg, fmt.Sprintf("held%d", i%7), []byte(fmt.Sprint(i)))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, n := range lc.nodes[:3] {
			if err := n.waitApplied(ctx, pg, idx); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		v, l, _ := confOf(t, lc.nodes[lc.agreedLeaderAmong(pg, 0, 1, 2)], pg)
		if !slices.Equal(v, []int32{0, 1, 2}) || len(l) > 0 {
			t.Fatalf("with moves held the pg's configuration changed: voters %v, learners %v", v, l)
		}
		if v, l, _ := confOf(t, lc.nodes[added], pg); len(v)+len(l) > 0 { // an empty replica waits for its leader
			t.Fatalf("with moves held the new node got a copy: voters %v, learners %v", v, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range lc.nodes {
		n.HoldMoves(false)
	}
	waitMoved(t, lc, pg, members...)
	sameMembers(t, lc, pg, members)
}

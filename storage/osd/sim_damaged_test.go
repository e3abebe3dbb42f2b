package osd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestSimDamagedUncommittedLeader: a leader takes a large (placed) write
// that no other replica receives, restarts with that entry damaged on its
// disk, and is made leader again (as `pg lead` does). It cannot send the
// entry, and no other voter holds it: it must step down rather than lead
// a group that can never commit again. The others then elect a leader
// whose log replaces the entry, which was never acknowledged, and every
// replica converges. (TestSim's damage fault puts each damaged entry on a
// replica whose peers hold it, so it does not reach this case.)
func TestSimDamagedUncommittedLeader(t *testing.T) {
	const seed = 11
	cryptotest.SetGlobalRandom(t, seed)
	w := newSimWorld(seed, simOpts{pgs: 1, compact: 1024, trace: true})
	fail := func(err error) {
		t.Helper()
		t.Fatalf("%v\ntrace:\n%s", err, strings.Join(w.trace, "\n"))
	}
	p := w.pgs[0]
	for _, sn := range w.nodes {
		if err := w.start(sn); err != nil {
			fail(err)
		}
	}
	if err := w.settle(100, w.converged); err != nil {
		fail(err)
	}
	a := w.leaderOf(p.pg)

	// Cut off, a takes a large write and logs it alone.
	a.cut = true
	big := bytes.Repeat([]byte("lost-write"), placeMinBytes/10+1)
	wt := newWaiter(w.now.Add(time.Second))
	a.n.startPropose(p.pg, 1<<40, encodeOp(&op{Kind: opWrite, ReqID: 1 << 40, Object: p.objs[0], Data: big}), wt)
	if err := w.cycle(a); err != nil {
		fail(err)
	}
	lost := a.n.replicas[p.pg].log.last
	w.logf("osd.%d logged the write alone at index %d", a.id, lost)

	// It restarts with that entry damaged, and is asked to lead.
	w.crash(a)
	a.store.SetDamaged(func(_ PG, i uint64) bool { return i == lost })
	if err := w.start(a); err != nil {
		fail(err)
	}
	a.cut = false
	r := a.n.replicas[p.pg]
	other := w.nodes[(a.id+1)%simOSDs]
	if err := r.rn.Step(&pb.Message{Type: pb.MsgTimeoutNow.Enum(), From: proto.Uint64(raftID(other.id)),
		To: proto.Uint64(raftID(a.id)), Term: proto.Uint64(r.rn.BasicStatus().GetTerm())}); err != nil {
		fail(err)
	}
	a.n.touch(r)

	led, down := false, false
	for range 300 {
		if err := w.round(); err != nil {
			fail(err)
		}
		isLeader := a.n.replicas[p.pg].isLeader()
		led = led || isLeader
		down = down || (led && !isLeader)
		if down && w.converged() == nil {
			break
		}
	}
	if !led || !down {
		fail(fmt.Errorf("osd.%d led %v, stepped down %v: want both", a.id, led, down))
	}
	if len(r.log.damaged) != 0 {
		fail(fmt.Errorf("osd.%d still marks entries damaged: %v", a.id, r.log.damaged))
	}
	if err := w.settleAndCheck(); err != nil {
		fail(err)
	}
}

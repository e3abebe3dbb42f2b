package osd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// loopCopier copies a PG straight from another node of a loop cluster
// (a daemon's goes over the cluster network). fail, when set, fails the
// copies it returns true for.
type loopCopier struct {
	lc     *loopCluster
	copies atomic.Int64
	fail   func(n int64) error
}

func (c *loopCopier) CopyPG(ctx context.Context, from int32, pg PG, min uint64, put func(CopiedObject) error) (uint64, error) {
	k := c.copies.Add(1)
	if c.fail != nil {
		if err := c.fail(k); err != nil {
			return 0, err
		}
	}
	c.lc.net.mu.Lock()
	src := c.lc.net.nodes[from]
	c.lc.net.mu.Unlock()
	if src == nil {
		return 0, fmt.Errorf("osd.%d is down", from)
	}
	return src.CopyOut(ctx, pg, min, put)
}

// newSnapshotCluster is a loop cluster with one PG whose leader compacts
// past a replica more than 20 entries behind, every 10 entries; wrap2, if
// given, wraps node 2's store.
func newSnapshotCluster(t *testing.T, wrap2 ...func(Store) Store) (*loopCluster, *loopCopier) {
	cp := &loopCopier{}
	lc := newLoopCluster(t, 1, func(c *NodeConfig) {
		c.SnapshotBehind, c.CompactEvery, c.Copier = 20, 10, cp
		if c.ID == 2 && len(wrap2) > 0 {
			c.Store = wrap2[0](c.Store) // a disk of node 2 that fails, or is busy
		}
	})
	cp.lc = lc
	return lc, cp
}

// writeMix writes n ops to pg: writes small and large (placed), and now
// and then a truncate or a delete, over a few objects; it returns the
// last index.
func writeMix(lc *loopCluster, pg PG, tag string, n int) uint64 {
	var idx uint64
	for i := range n {
		name := fmt.Sprintf("o%d", i%7)
		o := op{Kind: opWrite, Object: name, Offset: int64(i%5) * 3000, Data: bytes.Repeat([]byte(fmt.Sprint(tag, i)), 200)}
		switch {
		case i%11 == 3:
			o = op{Kind: opWrite, Object: name, Offset: 1 << 16, Data: bytes.Repeat([]byte{byte(i)}, 80<<10)}
		case i%13 == 5:
			o = op{Kind: opTruncate, Object: name, Offset: 5000}
		case i%17 == 9:
			o = op{Kind: opDelete, Object: name}
		}
		idx = lc.propose(pg, o)
	}
	return idx
}

// propose is write for any op, safe while nodes start and stop.
func (lc *loopCluster) propose(pg PG, o op) uint64 {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		lc.net.mu.Lock()
		running := maps.Clone(lc.net.nodes)
		lc.net.mu.Unlock()
		for _, n := range running {
			idx, err := n.propose(ctx, pg, o, time.Time{})
			if err == nil {
				return idx
			}
			if ctx.Err() != nil {
				lc.t.Fatalf("propose %s %s: %v", o.Kind, o.Object, err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameCopies fails t unless every node's copy of pg has the same digest.
func sameCopies(t *testing.T, lc *loopCluster, pg PG) {
	t.Helper()
	var want [32]byte
	for i, st := range lc.stores {
		_, sum, n, err := st.Digest(pg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = sum
			t.Logf("pg %s: %d objects", pg, n)
		} else if sum != want {
			t.Fatalf("node %d's copy of pg %s differs from node 0's", i, pg)
		}
	}
}

// caughtUp writes a few more ops to pg, waits until every node applied
// them, and checks that node victim installed a snapshot and that every
// copy of pg is the same.
func caughtUp(t *testing.T, lc *loopCluster, pg PG, victim int) {
	t.Helper()
	lc.waitAllApplied(pg, writeMix(lc, pg, "after", 5))
	if lc.nodes[victim].installsDone.Load() == 0 {
		t.Fatalf("node %d caught up without a snapshot", victim)
	}
	sameCopies(t, lc, pg)
}

// loopDo runs fn on n's loop and waits for it.
func loopDo(t *testing.T, n *Node, fn func(n *Node)) {
	t.Helper()
	ran := make(chan struct{})
	if !n.post(context.Background(), func() { fn(n); close(ran) }) {
		t.Fatal("the node has stopped")
	}
	select {
	case <-ran:
	case <-n.done: // stopped with fn still queued
		t.Fatal("the node has stopped")
	}
}

// behindCompaction stops node victim, writes until the leader's log no
// longer holds what victim has, and returns victim's last index.
func behindCompaction(t *testing.T, lc *loopCluster, pg PG, victim int) {
	t.Helper()
	writeMix(lc, pg, "before", 30)
	lc.stop(victim)
	st, err := lc.stores[victim].LoadRaft(pg)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; ; round++ {
		writeMix(lc, pg, fmt.Sprint("down", round), 40)
		lead := lc.agreedLeader(pg)
		var first uint64
		loopDo(t, lc.nodes[lead], func(n *Node) { first = n.replicas[pg].log.first })
		if first > st.LastIndex+1 {
			t.Logf("the leader's log starts at %d, past the down replica's last entry %d", first, st.LastIndex)
			return
		}
		if round > 20 {
			t.Fatalf("the leader's log still starts at %d, the down replica's ends at %d: no compaction past it", first, st.LastIndex)
		}
	}
}

// TestLoopSnapshotCatchesUpADownReplica: a replica down while the leader
// compacts past it comes back, installs a snapshot copied from the
// leader while writes go on, and ends with the same objects as the
// others. Without snapshots the log would be kept for it.
func TestLoopSnapshotCatchesUpADownReplica(t *testing.T) {
	lc, cp := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	behindCompaction(t, lc, pg, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writes while the replica copies and replays
		defer wg.Done()
		writeMix(lc, pg, "during", 60)
	}()
	startLoopNode(lc, 2)
	wg.Wait()
	caughtUp(t, lc, pg, 2)
	t.Logf("%d copies", cp.copies.Load())
}

// TestLoopSnapshotRetriedAfterAFailedCopy: a copy that fails leaves the
// replica empty but for its hard state; the leader gives up on that
// snapshot after snapshotIdleTicks and sends another, which installs.
func TestLoopSnapshotRetriedAfterAFailedCopy(t *testing.T) {
	lc, cp := newSnapshotCluster(t)
	cp.fail = func(n int64) error {
		if n == 1 {
			return errors.New("injected: the source went away")
		}
		return nil
	}
	pg := PG{Pool: 1, Seq: 0}
	behindCompaction(t, lc, pg, 1)
	startLoopNode(lc, 1)
	caughtUp(t, lc, pg, 1)
	if cp.copies.Load() < 2 {
		t.Fatalf("%d copies, want the failed one and another", cp.copies.Load())
	}
}

// deadDisk is a store whose installs fail to end and to be given up,
// once dead is set: a disk that died in the middle of an install.
type deadDisk struct {
	Store
	dead *atomic.Bool
}

func (d deadDisk) EndInstall(pg PG, applyState []byte, first uint64) error {
	if d.dead.Load() {
		return errors.New("injected: the disk died")
	}
	return d.Store.EndInstall(pg, applyState, first)
}

func (d deadDisk) AbortInstall(pg PG) error {
	if d.dead.Load() {
		return errors.New("injected: the disk died")
	}
	return d.Store.AbortInstall(pg)
}

// TestLoopSnapshotInstallCutByACrash: an install that can neither end nor
// be given up stops the OSD (the next Open would empty the PG under what
// it appended meanwhile); the store, reopened, holds the PG's hard state
// alone, and the replica installs the next snapshot.
func TestLoopSnapshotInstallCutByACrash(t *testing.T) {
	var dead atomic.Bool
	lc, _ := newSnapshotCluster(t, func(s Store) Store { return deadDisk{s, &dead} })
	pg := PG{Pool: 1, Seq: 0}
	behindCompaction(t, lc, pg, 2)
	dead.Store(true)
	startLoopNode(lc, 2)
	select {
	case err := <-lc.done[2]:
		if !errors.Is(err, errAbort) {
			t.Fatalf("the OSD stopped with %v, want %v", err, errAbort)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the OSD did not stop when its install could not be given up")
	}
	lc.net.mu.Lock()
	delete(lc.net.nodes, 2)
	lc.net.mu.Unlock()
	dead.Store(false)
	lc.stores[2].Close()
	st, err := chunkstore.Open(chunkstore.Config{Dir: lc.dirs[2], Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	lc.stores[2] = st
	if rs, err := st.LoadRaft(pg); err != nil || rs.HardState == nil || rs.ApplyState != nil || rs.LastIndex != 0 {
		t.Fatalf("after the cut install: %+v (%v), want the hard state alone", rs, err)
	}
	startLoopNode(lc, 2)
	caughtUp(t, lc, pg, 2)
}

// TestLoopSnapshotOverTCP: the copy of a snapshot goes over the cluster
// port as a daemon's does (TCPTransport.CopyPG, served by ServeCluster),
// a damaged block as damage (wire.FrameCopyDamaged).
func TestLoopSnapshotOverTCP(t *testing.T) {
	copier := NewTCPTransport(99, zap.NewNop())
	lc := newLoopCluster(t, 1, func(c *NodeConfig) {
		c.SnapshotBehind, c.CompactEvery, c.Copier = 20, 10, copier
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	addrs := map[int32]string{}
	for i := range 2 { // the victim is node 2: the others keep their Node
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[int32(i)] = l.Addr().String()
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			_ = ServeCluster(ctx, l, n, zap.NewNop())
		}(lc.nodes[i])
	}
	copier.SetAddrs(addrs)
	pg := PG{Pool: 1, Seq: 0}
	behindCompaction(t, lc, pg, 2)
	data := damageOnLeader(t, lc, pg) // and damage crosses the wire as damage
	startLoopNode(lc, 2)
	copiedDamage(t, lc, pg, 2, data)
}

// TestCopyOutIsPaced: what CopyOut reads for other OSDs is taken from the
// node's copy budget (NodeConfig.CopyRate), all copies together.
func TestCopyOutIsPaced(t *testing.T) {
	lc := newLoopCluster(t, 1, func(c *NodeConfig) { c.CopyRate = 1 << 10 }) // refills 1 KiB a second
	pg := PG{Pool: 1, Seq: 0}
	for i := range 4 {
		lc.write(pg, fmt.Sprintf("o%d", i), bytes.Repeat([]byte{byte(i)}, 256<<10))
	}
	n := lc.nodes[lc.agreedLeader(pg)]
	full := n.copyRate.Tokens()
	copied := 0
	if _, err := n.CopyOut(context.Background(), pg, 0, func(o CopiedObject) error { copied += len(o.Data); return nil }); err != nil {
		t.Fatal(err)
	}
	if copied != 1<<20 {
		t.Fatalf("copied %d bytes, want %d", copied, 1<<20)
	}
	if left := n.copyRate.Tokens(); left > full-float64(copied)+64<<10 {
		t.Fatalf("the copy budget went from %.0f to %.0f bytes after copying %d", full, left, copied)
	}
	if nd, _ := NewNode(NodeConfig{ID: 9, Store: ChunkStore{lc.stores[0]}, Transport: chanTransport{lc.net, 9}, CopyRate: -1}); nd.copyRate != nil {
		t.Fatal("a negative CopyRate still bounds copies")
	}
}

// TestLoopSnapshotCopiesDamageAsDamage: a block damaged on the source
// does not fail the copy (which would be retried for ever) and is not
// copied as data: the installed replica holds it damaged too, the rest of
// the object as the source has it, and a whole-block write repairs it on
// every replica.
func TestLoopSnapshotCopiesDamageAsDamage(t *testing.T) {
	lc, cp := newSnapshotCluster(t)
	pg := PG{Pool: 1, Seq: 0}
	behindCompaction(t, lc, pg, 2)
	data := damageOnLeader(t, lc, pg)
	startLoopNode(lc, 2)
	copiedDamage(t, lc, pg, 2, data)
	if n := cp.copies.Load(); n != 1 {
		t.Fatalf("%d copies, want one: the damaged block failed a copy", n)
	}
}

// damageOnLeader writes object "dmg" of three blocks to pg, waits until
// every running node applied it, and marks its block 1 damaged in the
// leader's store, as a failing disk would, behind the loop's back. It
// returns what was written.
func damageOnLeader(t *testing.T, lc *loopCluster, pg PG) []byte {
	t.Helper()
	bs := int64(chunkstore.DefaultBlockSize)
	data := bytes.Repeat([]byte("0123456789abcdef"), int(3*bs/16))
	lc.waitAllApplied(pg, lc.propose(pg, op{Kind: opWrite, Object: "dmg", Data: data}))
	st := lc.stores[lc.agreedLeader(pg)]
	info, err := st.Stat(pg, "dmg")
	if err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	if err := b.MarkDamaged(pg, "dmg", bs, bs, info.Version); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return data
}

// copiedDamage waits until node victim caught up with pg from a snapshot
// and checks that its "dmg" (damageOnLeader's data) has block 1 damaged
// and the others as written; then a whole-block write repairs every copy.
func copiedDamage(t *testing.T, lc *loopCluster, pg PG, victim int, data []byte) {
	t.Helper()
	lc.waitAllApplied(pg, writeMix(lc, pg, "after", 5))
	if lc.nodes[victim].installsDone.Load() == 0 {
		t.Fatalf("node %d caught up without a snapshot", victim)
	}
	bs := int64(chunkstore.DefaultBlockSize)
	if err := lc.stores[victim].Read(pg, "dmg", bs, make([]byte, bs)); !errors.Is(err, chunkstore.ErrCorrupt) {
		t.Fatalf("the copy's block 1 reads with %v, want it damaged as on the source", err)
	}
	got := make([]byte, len(data))
	ranges, err := lc.stores[victim].ReadSkippingDamage(pg, "dmg", got)
	if err != nil || len(ranges) != 1 || ranges[0] != (chunkstore.Range{Off: bs, Len: bs}) {
		t.Fatalf("the copy's damage: %v, %v; want block 1 alone", ranges, err)
	}
	if !bytes.Equal(got[:bs], data[:bs]) || !bytes.Equal(got[2*bs:], data[2*bs:]) {
		t.Fatal("the copy's undamaged blocks differ from the source's")
	}
	lc.waitAllApplied(pg, lc.propose(pg, op{Kind: opWrite, Object: "dmg", Offset: bs, Data: data[bs : 2*bs]}))
	sameCopies(t, lc, pg)
}

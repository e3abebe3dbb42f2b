package osd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// chanNet delivers raft batches between nodes in this process, with the
// option to cut a node off.
type chanNet struct {
	mu    sync.Mutex
	nodes map[int32]*Node
	down  map[int32]bool
}

type chanTransport struct {
	net  *chanNet
	self int32
}

func (t chanTransport) Send(to int32, msgs []wire.RaftMsg) {
	t.net.mu.Lock()
	n := t.net.nodes[to]
	cut := t.net.down[to] || t.net.down[t.self]
	t.net.mu.Unlock()
	if n != nil && !cut {
		cp := append([]wire.RaftMsg(nil), msgs...)
		go n.Deliver(t.self, cp)
	}
}

type loopCluster struct {
	t      *testing.T
	net    *chanNet
	stores []*chunkstore.Store
	dirs   []string // of the stores
	nodes  []*Node
	cancel []context.CancelFunc
	done   []chan error
	tune   func(*NodeConfig) // adjusts each node's config (nil: none)
	pgs    int               // PGs [0, pgs) of pool 1, the primary of PG i on node i%3
	moves  map[PG][]int32    // PGs moved (MovePG) to these members
}

func startLoopNode(lc *loopCluster, i int) {
	st := lc.stores[i]
	cfg := NodeConfig{ID: int32(i), Store: ChunkStore{st}, Transport: chanTransport{lc.net, int32(i)},
		Logger: zap.NewNop(), TickInterval: 10 * time.Millisecond}
	if os.Getenv("TSUMIKI_LOOP_LOG") != "" { // the nodes' logs, to debug a test
		l, _ := zap.NewDevelopment()
		cfg.Logger = l.With(zap.Int("node", i))
	}
	if lc.tune != nil {
		lc.tune(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		lc.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	lc.net.mu.Lock()
	lc.net.nodes[int32(i)] = n
	lc.net.mu.Unlock()
	go func() { done <- n.Run(ctx) }()
	lc.nodes[i], lc.cancel[i], lc.done[i] = n, cancel, done
	lc.ensure(i)
}

// ensure gives node i the cluster's PGs, as a daemon does from the map it
// watches (applyMap): without it, a replica loaded from disk takes no
// proposal.
func (lc *loopCluster) ensure(i int) {
	for pg := 0; pg < lc.pgs; pg++ {
		p := PG{Pool: 1, Seq: uint32(pg)}
		if members, ok := lc.moves[p]; ok {
			if err := lc.nodes[i].MovePG(p, members, 2); err != nil {
				lc.t.Fatal(err)
			}
			continue
		}
		voters := []int32{int32(pg % 3), int32((pg + 1) % 3), int32((pg + 2) % 3)}
		if slices.Contains(voters, int32(i)) {
			lc.nodes[i].EnsurePG(p, voters, 2)
		}
	}
}

// addNode starts one more node, with an empty store, and returns it.
func (lc *loopCluster) addNode() int {
	dir := lc.t.TempDir()
	st, err := chunkstore.Open(chunkstore.Config{Dir: dir, Logger: zap.NewNop()})
	if err != nil {
		lc.t.Fatal(err)
	}
	i := len(lc.nodes)
	lc.stores, lc.dirs = append(lc.stores, st), append(lc.dirs, dir)
	lc.nodes, lc.cancel, lc.done = append(lc.nodes, nil), append(lc.cancel, nil), append(lc.done, nil)
	startLoopNode(lc, i)
	return i
}

// move gives pg the members given, on every node, as a map would.
func (lc *loopCluster) move(pg PG, members ...int32) {
	if lc.moves == nil {
		lc.moves = map[PG][]int32{}
	}
	lc.moves[pg] = members
	for i := range lc.nodes {
		if lc.net.nodes[int32(i)] != nil {
			lc.ensure(i)
		}
	}
}

func (lc *loopCluster) stop(i int) {
	lc.cancel[i]()
	if err := <-lc.done[i]; err != nil {
		lc.t.Fatalf("node %d: %v", i, err)
	}
	lc.net.mu.Lock()
	delete(lc.net.nodes, int32(i))
	lc.net.mu.Unlock()
}

// newLoopCluster starts three nodes (tune, if given, adjusts their
// configs) and creates pgs PGs over them, the primary of PG i on node i%3.
func newLoopCluster(t *testing.T, pgs int, tune ...func(*NodeConfig)) *loopCluster {
	lc := &loopCluster{t: t, net: &chanNet{nodes: map[int32]*Node{}, down: map[int32]bool{}}, pgs: pgs,
		stores: make([]*chunkstore.Store, 3), nodes: make([]*Node, 3), cancel: make([]context.CancelFunc, 3), done: make([]chan error, 3)}
	if len(tune) > 0 {
		lc.tune = tune[0]
	}
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		st, err := chunkstore.Open(chunkstore.Config{Dir: dir, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		lc.stores[i], lc.dirs = st, append(lc.dirs, dir)
		startLoopNode(lc, i)
	}
	t.Cleanup(func() {
		for i := range lc.nodes {
			if lc.net.nodes[int32(i)] != nil {
				lc.stop(i)
			}
			lc.stores[i].Close()
		}
	})
	return lc
}

// write proposes through whichever node leads pg, retrying like a client.
func (lc *loopCluster) write(pg PG, object string, data []byte) uint64 {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		for i, n := range lc.nodes {
			if lc.net.nodes[int32(i)] == nil {
				continue
			}
			idx, err := n.propose(ctx, pg, op{Kind: opWrite, Object: object, Data: data}, time.Time{})
			if err == nil {
				return idx
			}
			if ctx.Err() != nil {
				lc.t.Fatalf("write %s: %v", object, err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (lc *loopCluster) read(pg PG, object string, n int) []byte {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		for i, nd := range lc.nodes {
			if lc.net.nodes[int32(i)] == nil {
				continue
			}
			if _, err := nd.readIndex(ctx, pg); err == nil {
				p := make([]byte, n)
				if err := lc.stores[i].Read(pg, object, 0, p); err != nil {
					lc.t.Fatalf("read %s: %v", object, err)
				}
				return p
			}
		}
		if ctx.Err() != nil {
			lc.t.Fatalf("read %s: no leader", object)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLoopReplicatesAndSurvivesRestart runs real node loops (goroutines,
// ticks, badger stores): concurrent writes on several PGs, a node stopped
// and restarted while writes continue, then every write reads back and all
// replicas' digests agree.
func TestLoopReplicatesAndSurvivesRestart(t *testing.T) {
	lc := newLoopCluster(t, 4)
	want := map[string][]byte{}
	var mu sync.Mutex
	writeAll := func(prefix string, n int) {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					name := fmt.Sprintf("%s-%d-%d", prefix, w, i)
					data := bytes.Repeat([]byte(name), 50)
					lc.write(PG{Pool: 1, Seq: uint32(i % 4)}, name, data)
					mu.Lock()
					want[name] = data
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	writeAll("a", 25)
	lc.stop(1)
	writeAll("b", 25)
	startLoopNode(lc, 1)
	writeAll("c", 25)
	for name, data := range want {
		var pg uint32
		var w, i int
		var prefix string
		fmt.Sscanf(name, "%1s-%d-%d", &prefix, &w, &i)
		pg = uint32(i % 4)
		if got := lc.read(PG{Pool: 1, Seq: pg}, name, len(data)); !bytes.Equal(got, data) {
			t.Fatalf("%s: read back differs", name)
		}
	}
	lc.converge(4)
}

// converge waits until every replica of PGs [0, pgs) has applied as far
// as the others and has the same digest.
func (lc *loopCluster) converge(pgs uint32) {
	t := lc.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for pg := uint32(0); pg < pgs; pg++ {
		for {
			var sums [][32]byte
			var applied []uint64
			for _, st := range lc.stores {
				ap, sum, _, err := st.Digest(PG{Pool: 1, Seq: pg})
				if err != nil {
					t.Fatal(err)
				}
				as, _ := decodeApplyState(ap)
				sums, applied = append(sums, sum), append(applied, as.Applied)
			}
			if sums[0] == sums[1] && sums[1] == sums[2] && applied[0] == applied[1] && applied[1] == applied[2] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pg %d replicas differ: applied %v", pg, applied)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLoopPlacesAhead: followers place the data of large writes ahead of
// their loop (placeahead.go) under concurrent writes and overwrites of the
// same blocks; every write reads back, the replicas agree, and a follower
// restarted replays its log (placed-ahead records included) to the same
// state.
func TestLoopPlacesAhead(t *testing.T) {
	lc := newLoopCluster(t, 2)
	var mu sync.Mutex
	want := map[string][]byte{}
	pgOf := func(name string) PG { return PG{Pool: 1, Seq: uint32(name[len(name)-1]-'0') % 2} }
	round := func(r int) {
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				for i := range 6 {
					name := fmt.Sprintf("o-%d", (w+i)%4) // writers overwrite each other
					data := bytes.Repeat([]byte{byte(r), byte(w), byte(i), 7}, 64<<10)
					mu.Lock() // one write per object at a time: the last one is known
					lc.write(pgOf(name), name, data)
					want[name] = data
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for name, data := range want {
			if got := lc.read(pgOf(name), name, len(data)); !bytes.Equal(got, data) {
				t.Fatalf("round %d: %s reads back differently", r, name)
			}
		}
		lc.converge(2)
	}
	round(0)
	round(1)
	var ahead int64
	for _, st := range lc.stores {
		ahead += st.PlaceCounts().Ahead
	}
	if ahead == 0 {
		t.Fatal("no follower placed a large write ahead")
	}
	for i := range lc.nodes {
		lc.stop(i)
	}
	for i := range lc.nodes {
		lc.stores[i].Close()
		st, err := chunkstore.Open(chunkstore.Config{Dir: lc.dirs[i], Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		lc.stores[i] = st
		startLoopNode(lc, i)
	}
	round(2)
	t.Logf("%d large writes placed ahead before the restart", ahead)
}

// TestLoopDegradedRefusesWrites: with min_size 2 and two of three nodes
// cut off, the remaining leader refuses writes (or loses leadership) rather
// than acknowledging them.
func TestLoopDegradedRefusesWrites(t *testing.T) {
	lc := newLoopCluster(t, 1)
	pg := PG{Pool: 1, Seq: 0}
	lc.write(pg, "x", []byte("before"))
	lc.net.mu.Lock()
	lc.net.down[1], lc.net.down[2] = true, true
	lc.net.mu.Unlock()
	time.Sleep(300 * time.Millisecond) // more than an election timeout
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := lc.nodes[0].propose(ctx, pg, op{Kind: opWrite, Object: "x", Data: []byte("after")}, time.Time{})
	if !errors.Is(err, ErrDegraded) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) {
		t.Fatalf("write on an isolated node: %v, want degraded/not leader/timeout", err)
	}
	lc.net.mu.Lock()
	lc.net.down = map[int32]bool{}
	lc.net.mu.Unlock()
	if got := lc.read(pg, "x", 6); string(got) != "before" && string(got) != "after" {
		t.Fatalf("read %q", got)
	}
}

// agreedLeader waits up to 10 s for pg's replicas to agree on a leader
// and returns it: right after a write commits on two replicas, the third
// may not know the leader yet (seen under load).
func (lc *loopCluster) agreedLeader(pg PG) int {
	lc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	lead := lc.leaderOf(pg)
	for ; lead < 0; lead = lc.leaderOf(pg) {
		if time.Now().After(deadline) {
			lc.t.Fatalf("pg %v: no agreed leader", pg)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return lead
}

// leaderOf returns the node that pg's replicas (running, not cut off)
// agree leads it, or -1.
func (lc *loopCluster) leaderOf(pg PG) int {
	lc.net.mu.Lock()
	defer lc.net.mu.Unlock()
	lead := -1
	for i, n := range lc.nodes {
		if lc.net.nodes[int32(i)] == nil || lc.net.down[int32(i)] {
			continue
		}
		r := n.lookup(pg)
		if r == nil {
			return -1
		}
		if l := int(r.leader.Load()); lead == -1 || l == lead {
			lead = l
		} else {
			return -1
		}
	}
	return lead
}

// cut cuts node i off the network, or heals it.
func (lc *loopCluster) cut(i int, down bool) {
	lc.net.mu.Lock()
	defer lc.net.mu.Unlock()
	lc.net.down[int32(i)] = down
}

// waitAllApplied waits until every running node not cut off has applied
// idx of pg.
func (lc *loopCluster) waitAllApplied(pg PG, idx uint64) {
	lc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range lc.nodes {
		lc.net.mu.Lock()
		skip := lc.net.nodes[int32(i)] == nil || lc.net.down[int32(i)]
		lc.net.mu.Unlock()
		if skip {
			continue
		}
		if err := n.waitApplied(ctx, pg, idx); err != nil {
			lc.t.Fatalf("node %d did not apply %d: %v", i, idx, err)
		}
	}
}

// TestLoopRestartElectsPrimaries: after every node restarts, the map's
// primary of each PG campaigns (EnsurePG), not the lowest id, which led
// every PG it held after a restart of the whole cluster. An election
// timeout may beat a primary's campaign now and then, so the test counts.
func TestLoopRestartElectsPrimaries(t *testing.T) {
	const pgs = 12
	lc := newLoopCluster(t, pgs)
	for pg := range pgs {
		lc.write(PG{Pool: 1, Seq: uint32(pg)}, "o", []byte("data"))
	}
	for i := range lc.nodes {
		lc.stop(i)
	}
	for i := range lc.nodes {
		startLoopNode(lc, i)
	}
	onPrimary := 0
	for pg := range pgs {
		deadline := time.Now().Add(10 * time.Second)
		lead := -1
		for ; lead < 0; lead = lc.leaderOf(PG{Pool: 1, Seq: uint32(pg)}) {
			if time.Now().After(deadline) {
				t.Fatalf("pg %d elected no leader", pg)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if lead == pg%3 {
			onPrimary++
		}
	}
	// Without the primaries' campaigns: 2 to 4 of 12.
	if onPrimary < pgs/2 {
		t.Fatalf("after a restart %d of %d PGs are led by their primary", onPrimary, pgs)
	}
}

// TestLoopLoadedReplicaWaitsForMinSize: a replica loaded from disk does
// not know its pool's min_size until the map names its PG (EnsurePG), so
// as a leader it refuses writes until then, rather than acknowledge one
// that min_size would refuse. It once took them with no check at all.
func TestLoopLoadedReplicaWaitsForMinSize(t *testing.T) {
	lc := newLoopCluster(t, 1)
	pg := PG{Pool: 1, Seq: 0}
	lc.write(pg, "x", []byte("before"))
	for i := range lc.nodes {
		lc.stop(i)
	}
	pgs := lc.pgs
	lc.pgs = 0 // start the nodes as a daemon does before its map arrives
	for i := range lc.nodes {
		startLoopNode(lc, i)
	}
	lc.pgs = pgs
	lead := lc.agreedLeader(pg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := lc.nodes[lead].propose(ctx, pg, op{Kind: opWrite, Object: "x", Data: []byte("early")}, time.Time{})
	if !errors.Is(err, ErrDegraded) {
		t.Fatalf("a write before the map on the loaded leader, node %d: %v, want %v", lead, err, ErrDegraded)
	}
	for i := range lc.nodes {
		lc.ensure(i)
	}
	lc.write(pg, "x", []byte("after"))
	if got := lc.read(pg, "x", 5); string(got) != "after" {
		t.Fatalf("read %q after the map, want %q", got, "after")
	}
}

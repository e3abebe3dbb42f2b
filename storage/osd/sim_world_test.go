package osd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// The simulated cluster: three OSDs driven step by step from one goroutine.
// Each step the scheduler picks one action at random: deliver, drop or
// duplicate an in-flight message batch, tick or cycle a node, start or
// finish a client operation, move the clock, cut or heal a node's links,
// crash a node (sometimes inside a commit, leaving a prefix of its batch on
// its store) or restart it from its store. Nothing else runs: no goroutines,
// no sleeps, no wall clock; crypto/rand (raft's election jitter, the node's
// nonce) is seeded by the test, so a seed replays one schedule exactly.

const (
	simOSDs    = 3
	simTick    = 10 * time.Millisecond
	simObjects = 4 // objects per PG
	// simMoveOSDs: the OSDs added for moves (simOpts.moves)
	simMoveOSDs = 3
)

// simOpts shapes one schedule.
type simOpts struct {
	steps   int
	pgs     int
	minSize int
	compact uint64 // NodeConfig.CompactEvery
	// faults, if set, runs once the stores exist (tests of the checker).
	faults func(w *simWorld)
	// damage: every fourth write is large enough to be placed, and some
	// placed entries read back damaged on one replica each (damagedOn).
	damage bool
	trace  bool // keep a readable log of every action
	// traceRaft adds every raft message delivered to the trace
	traceRaft bool
	// snapshots: leaders compact past a replica 8 entries behind, which
	// then installs a snapshot (NodeConfig.SnapshotBehind).
	snapshots bool
	// moves (with snapshots): simMoveOSDs more OSDs, and PGs moved at
	// random (MovePG), back to OSDs that held them too (seat.go).
	moves bool
}

type simWorld struct {
	seed uint64
	opts simOpts
	rng  *rand.Rand
	now  time.Time
	time int64 // history time: one unit per client call or return

	nodes  []*simNode
	pgs    []simPG
	net    []simPacket // in flight, in send order
	staged []simPacket // sent by the cycle that is running

	ops     []*simOp // client operations started and not finished
	hist    []simEvent
	nextReq uint64
	nextVal uint64
	final   bool // settling phase: reads finish as soon as granted
	// finalRead: objects read back through the leader after settling
	finalRead map[string]bool

	trace []string
	stats simStats
	// onCommit, if set, sees the operation kinds of every batch a node
	// commits (see simStore).
	onCommit func(sn *simNode, kinds []string)
}

// simStats counts what a schedule exercised, to keep the test honest.
type simStats struct {
	acked, unknown, refused, reads, crashes, torn, compactions, maxIndex int
	leased                                                               int // reads granted at once under a lease
	damaged                                                              int // reads of a placed entry that found it damaged
	copies, copied                                                       int // snapshot copies started, and finished
	moves                                                                int // PGs moved (MovePG)
	movesBack                                                            int // moves onto an OSD the PG left before
	lostDropped                                                          int // log ends dropped from a lost entry on (lost.go)
}

func (s *simStats) add(o simStats) {
	s.acked += o.acked
	s.unknown += o.unknown
	s.refused += o.refused
	s.reads += o.reads
	s.crashes += o.crashes
	s.torn += o.torn
	s.compactions += o.compactions
	s.leased += o.leased
	s.damaged += o.damaged
	s.copies += o.copies
	s.copied += o.copied
	s.moves += o.moves
	s.movesBack += o.movesBack
	s.lostDropped += o.lostDropped
	s.maxIndex = max(s.maxIndex, o.maxIndex)
}

type simNode struct {
	id    int32
	store *storagetest.MemStore
	n     *Node // nil while down
	life  int   // incarnation, bumped at every start
	cut   bool  // partitioned: messages to and from it are lost
	ticks int
	// The node's time.Ticker: a tick is made at every simTick boundary of
	// the clock and held in a buffer of one until the node takes it, so a
	// node never ticks faster than the clock (leader leases rely on it).
	tickSlot    int64 // the clock's last simTick boundary seen
	tickPending bool
	// lose, if set, is the node's disk dropping acknowledged object writes
	// (storagetest.MemStore.SetLoseWrites); it survives crashes.
	lose func(pg PG, object string) bool
}

type simPG struct {
	pg      PG
	voters  []int32 // the first placement
	members []int32 // where it was last moved (nil: voters)
	objs    []string
	left    []int32 // OSDs it was moved off (stats only)
}

// membersOf returns the OSDs that are to hold p.
func (p *simPG) membersOf() []int32 {
	if p.members != nil {
		return p.members
	}
	return p.voters
}

// member reports whether osd is to hold p.
func (p *simPG) member(osd int32) bool { return slices.Contains(p.membersOf(), osd) }

type simPacket struct {
	from, to int32
	msgs     []wire.RaftMsg
}

// simOp is a client operation in flight.
type simOp struct {
	node    *simNode
	pg      PG
	obj     string
	write   bool
	val     uint64 // written value
	w       *waiter
	call    int64
	granted bool     // read: index reached, store not read yet
	fin     bool     // a final read of the settling phase
	rep     *replica // the replica the read started at (readStore)
}

// simEvent is one finished client operation for the linearizability check.
type simEvent struct {
	key     string // pg/object
	write   bool
	val     uint64 // written or read value (0: object missing)
	call    int64
	ret     int64 // simNever when the outcome is unknown
	unknown bool
}

const simNever = int64(1) << 62

type simClock struct{ w *simWorld }

func (c simClock) Now() time.Time { return c.w.now }

type simLink struct {
	w    *simWorld
	from int32
}

// Send implements Transport: the batch is in flight once the cycle ends.
func (l simLink) Send(to int32, msgs []wire.RaftMsg) {
	l.w.staged = append(l.w.staged, simPacket{from: l.from, to: to, msgs: msgs})
}

func newSimWorld(seed uint64, opts simOpts) *simWorld {
	w := &simWorld{seed: seed, opts: opts, rng: rand.New(rand.NewPCG(seed, 0x7375_6d69_6b69)),
		now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), finalRead: map[string]bool{}}
	osds := simOSDs
	if opts.moves {
		osds += simMoveOSDs
	}
	for i := range osds {
		st := storagetest.NewMemStore()
		// Object changes and apply states become durable only at a
		// checkpoint (as in chunkstore); a crash loses the rest.
		st.SetCheckpointEvery(1 + w.rng.IntN(6))
		w.nodes = append(w.nodes, &simNode{id: int32(i), store: st})
		if opts.damage {
			st.SetDamaged(w.damagedOn(int32(i)))
		}
	}
	for i := range opts.pgs {
		p := simPG{pg: PG{Pool: 1, Seq: uint32(i)}}
		for k := range simOSDs {
			p.voters = append(p.voters, int32((i+k)%simOSDs)) // primary rotates
		}
		for k := range simObjects {
			p.objs = append(p.objs, fmt.Sprintf("obj%d", k))
		}
		w.pgs = append(w.pgs, p)
	}
	return w
}

// damagedOn is the damage fault of osd id: a quarter of the placed
// entries read back damaged, each on one replica only (two damaged copies
// of an entry the third replica lacks would be data lost, not a fault
// the cluster must survive).
func (w *simWorld) damagedOn(id int32) func(pg PG, index uint64) bool {
	return func(pg PG, index uint64) bool {
		x := w.seed ^ uint64(pg.Seq)<<48 ^ index*0x9e3779b97f4a7c15
		x ^= x >> 31
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 29
		if x%uint64(4*len(w.nodes)) != uint64(id) { // a quarter of them, whatever the OSD count
			return false
		}
		w.stats.damaged++
		return true
	}
}

func (w *simWorld) logf(format string, args ...any) {
	if w.opts.trace {
		w.trace = append(w.trace, fmt.Sprintf("%s ", w.now.Format("05.000"))+fmt.Sprintf(format, args...))
	}
}

func (w *simWorld) tick() int64 { w.time++; return w.time }

func drain(n *Node) {
	for len(n.events) > 0 {
		(<-n.events)()
	}
}

// start (re)starts sn's node from its store, as a restarted daemon would:
// load what is persisted, then ensure every PG of the map.
func (w *simWorld) start(sn *simNode) error {
	st := simStore{memStore: memStore{sn.store}}
	if w.onCommit != nil {
		st.onCommit = func(kinds []string) { w.onCommit(sn, kinds) }
	}
	cfg := NodeConfig{ID: sn.id, Store: st, Transport: simLink{w, sn.id},
		Clock: simClock{w}, TickInterval: simTick, CompactEvery: w.opts.compact,
		BalanceAfter: 20 * simTick} // short: schedules hand leaderships back often
	// Warnings are counted (lostDropped); the nodes' logs are shown with a replay.
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(io.Discard), zap.WarnLevel)
	if os.Getenv("TSUMIKI_SIM_LOG") != "" {
		core = zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.Lock(os.Stderr), zap.DebugLevel)
	}
	cfg.Logger = zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		if e.Message == droppedLost {
			w.stats.lostDropped++
		}
		return nil
	})).With(zap.Int32("osd", sn.id))
	if w.opts.snapshots {
		cfg.SnapshotBehind, cfg.Copier, cfg.syncInstall = 8, simCopier{w, sn.id}, true
	}
	n, err := NewNode(cfg)
	if err != nil {
		return err
	}
	if err := n.loadAll(); err != nil {
		return fmt.Errorf("osd.%d: restart: %w", sn.id, err)
	}
	for _, p := range w.pgs {
		switch {
		case p.members != nil:
			if err := n.MovePG(p.pg, p.members, w.opts.minSize); err != nil {
				return err
			}
		case p.member(sn.id):
			n.EnsurePG(p.pg, p.voters, w.opts.minSize)
		}
	}
	drain(n)
	sn.n, sn.ticks = n, 0
	sn.life++
	w.logf("osd.%d starts (life %d)", sn.id, sn.life)
	return nil
}

// move gives a random PG simOSDs members, in a random order (the first
// is the primary), on every running node: any OSDs, at random, those it
// left before included. Going back to one of those is what seats are for
// (seat.go): without them, seed 1061 of an early version elected a stale
// leader on the forgotten vote of a dropped copy.
func (w *simWorld) move() error {
	i := w.rng.IntN(len(w.pgs))
	p := &w.pgs[i]
	old := p.membersOf()
	p.members = nil
	for _, k := range w.rng.Perm(len(w.nodes))[:simOSDs] {
		p.members = append(p.members, w.nodes[k].id)
	}
	for _, id := range p.members {
		if slices.Contains(p.left, id) && !slices.Contains(old, id) {
			w.stats.movesBack++
		}
	}
	for _, id := range old {
		if !slices.Contains(p.members, id) && !slices.Contains(p.left, id) {
			p.left = append(p.left, id)
		}
	}
	w.logf("pg %s moves to %v", p.pg, p.members)
	w.stats.moves++
	for _, sn := range w.live() {
		if err := sn.n.MovePG(p.pg, p.members, w.opts.minSize); err != nil {
			return err
		}
	}
	return nil
}

// simCopier copies a PG for osd self straight from the source node, when
// both run and neither is cut off.
type simCopier struct {
	w    *simWorld
	self int32
}

func (c simCopier) CopyPG(ctx context.Context, from int32, pg PG, min uint64, put func(CopiedObject) error) (uint64, error) {
	c.w.stats.copies++
	src, dst := c.w.nodes[from], c.w.nodes[c.self]
	if src.n == nil || src.cut || dst.cut {
		c.w.logf("osd.%d cannot copy pg %s from osd.%d", c.self, pg, from)
		return 0, fmt.Errorf("osd.%d is unreachable", from)
	}
	through, err := src.n.CopyOut(ctx, pg, min, put)
	c.w.logf("osd.%d copies pg %s from osd.%d at %d..%d: %v", c.self, pg, from, min, through, err)
	if err == nil {
		c.w.stats.copied++
	}
	return through, err
}

// crash drops sn's node; its store keeps what a power cut leaves (see
// storagetest.MemStore.Clone). Its callers
// learn nothing: their writes have unknown outcomes, their reads fail.
func (w *simWorld) crash(sn *simNode) {
	w.logf("osd.%d crashes", sn.id)
	w.stats.crashes++
	sn.n = nil
	// A power cut: the log survives; each object keeps its checkpointed or
	// its current content, as the kernel happened to write it back.
	sn.store.SetCrashMix(func(PG, string) bool { return w.rng.IntN(2) == 0 })
	sn.store = sn.store.Clone()
	if sn.lose != nil {
		sn.store.SetLoseWrites(sn.lose)
	}
	if w.opts.damage {
		sn.store.SetDamaged(w.damagedOn(sn.id))
	}
	w.ops = slices.DeleteFunc(w.ops, func(op *simOp) bool {
		if op.node != sn {
			return false
		}
		w.unknown(op)
		return true
	})
}

// unknown records op as finished with an unknown outcome.
func (w *simWorld) unknown(op *simOp) {
	if op.write {
		w.stats.unknown++
		w.hist = append(w.hist, simEvent{key: simKey(op.pg, op.obj), write: true, val: op.val, call: op.call, ret: simNever, unknown: true})
	}
}

func simKey(pg PG, obj string) string { return fmt.Sprintf("%d.%d/%s", pg.Pool, pg.Seq, obj) }

// flush puts what the last cycle sent in flight, in an order that does not
// depend on map iteration: by destination, and inside a batch by PG (each
// PG's own messages keep their order; PGs are independent raft groups).
func (w *simWorld) flush() {
	slices.SortStableFunc(w.staged, func(a, b simPacket) int { return cmp.Compare(a.to, b.to) })
	for _, p := range w.staged {
		slices.SortStableFunc(p.msgs, func(a, b wire.RaftMsg) int {
			return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.PG, b.PG))
		})
		if w.nodes[p.from].cut || w.nodes[p.to].cut {
			continue
		}
		w.net = append(w.net, p)
	}
	w.staged = w.staged[:0]
}

// deliver hands p to its destination, unless a cut or a crash lost it.
func (w *simWorld) deliver(p simPacket) {
	to := w.nodes[p.to]
	if w.nodes[p.from].cut || to.cut || to.n == nil || len(to.n.events) > cap(to.n.events)-8 {
		return
	}
	if w.opts.traceRaft {
		for _, wm := range p.msgs {
			m := &pb.Message{}
			_ = proto.Unmarshal(wm.Msg, m)
			w.logf("deliver pg %d.%d osd.%d→osd.%d %s term %d index %d logterm %d commit %d ents %d reject %v hint %d compact %d",
				wm.Pool, wm.PG, p.from, p.to, m.GetType(), m.GetTerm(), m.GetIndex(), m.GetLogTerm(), m.GetCommit(),
				len(wm.Ents), m.GetReject(), m.GetRejectHint(), wm.Compact)
		}
	}
	// Through the cluster network's encoding, as TCPTransport does: the
	// entries arrive as slices of a fresh frame, not as the sender's.
	from, msgs, err := wire.DecodeRaftBatch(wire.AppendRaftBatch(nil, p.from, p.msgs))
	if err != nil || from != p.from {
		panic(fmt.Sprintf("raft batch does not round-trip: %v", err))
	}
	to.n.Deliver(p.from, msgs)
}

// cycle runs one loop iteration of sn: queued events, then the Ready cycle.
func (w *simWorld) cycle(sn *simNode) error {
	drain(sn.n)
	firsts := map[PG]uint64{}
	for pg, r := range sn.n.replicas {
		firsts[pg] = r.log.first
	}
	err := sn.n.cycle()
	if err == nil {
		for _, p := range w.pgs {
			if r := sn.n.replicas[p.pg]; r != nil && r.log.first > firsts[p.pg] {
				w.stats.compactions++
				w.logf("osd.%d: pg %s log compacted to %d..%d", sn.id, p.pg, r.log.first, r.log.last)
			}
		}
	}
	w.flush()
	if errors.Is(err, storagetest.ErrCrash) {
		w.crash(sn)
		return nil
	}
	if err != nil {
		return fmt.Errorf("osd.%d: cycle: %w", sn.id, err)
	}
	w.poll(sn)
	return nil
}

// tickNode is Node.tick (expiring waiters every tenth tick, as Run does)
// with the replicas taken in PG order rather than map order: raft draws its
// election jitter from one process-wide stream (crypto/rand, seeded per
// schedule), so which replica gets which draw must not depend on map
// iteration, or a seed would not replay.
func (w *simWorld) tickNode(sn *simNode) {
	w.takeTick(sn) // the fair rounds tick after moving the clock one tick
	sn.ticks++
	for _, p := range w.pgs {
		if r := sn.n.replicas[p.pg]; r != nil {
			sn.n.tickReplica(r, w.now, sn.ticks%10 == 0)
		}
	}
	if len(sn.n.dropping) > 0 {
		sn.n.retryDrops()
	}
	w.poll(sn)
}

// takeTick says whether sn's ticker holds a tick now, and takes it.
func (w *simWorld) takeTick(sn *simNode) bool {
	if slot := w.now.UnixNano() / int64(simTick); slot > sn.tickSlot {
		sn.tickSlot, sn.tickPending = slot, true
	}
	ok := sn.tickPending
	sn.tickPending = false
	return ok
}

// crashInCommit crashes sn in the middle of its next commit, keeping a
// random prefix of the batch; with nothing to commit it just crashes.
func (w *simWorld) crashInCommit(sn *simNode) error {
	sn.store.SetCommitFault(func(ops int) (int, bool) {
		keep := w.rng.IntN(ops + 1)
		w.logf("osd.%d: commit of %d changes torn after %d", sn.id, ops, keep)
		w.stats.torn++
		return keep, true
	})
	err := w.cycle(sn)
	sn.store.SetCommitFault(nil)
	if sn.n != nil {
		w.crash(sn)
	}
	return err
}

// poll collects the answers sn's node gave its callers.
func (w *simWorld) poll(sn *simNode) {
	w.ops = slices.DeleteFunc(w.ops, func(op *simOp) bool {
		if op.node != sn || op.granted {
			return false
		}
		var res result
		select {
		case res = <-op.w.done:
		default:
			return false
		}
		switch {
		case op.write && res.err == nil:
			w.logf("osd.%d: write %s=%d acknowledged at index %d", sn.id, simKey(op.pg, op.obj), op.val, res.index)
			w.stats.acked++
			w.stats.maxIndex = max(w.stats.maxIndex, int(res.index))
			w.hist = append(w.hist, simEvent{key: simKey(op.pg, op.obj), write: true, val: op.val, call: op.call, ret: w.tick()})
		case op.write:
			w.logf("osd.%d: write %s=%d: %v", sn.id, simKey(op.pg, op.obj), op.val, res.err)
			w.unknown(op)
		case res.err != nil:
			w.logf("osd.%d: read %s: %v", sn.id, simKey(op.pg, op.obj), res.err)
		case w.final || w.rng.IntN(2) == 0:
			w.readStore(op)
		default:
			op.granted = true // the server reads the store a little later
			return false
		}
		return true
	})
}

// readStore finishes a granted read the way the server does: read the store.
func (w *simWorld) readStore(op *simOp) {
	if n := op.node.n; n == nil || op.rep == nil || n.replicas[op.pg] != op.rep || op.rep.frozen.Load() {
		// The server fails such a read (Server.read, readOwn): the
		// replica was replaced (an install) or dropped (moved away) since.
		w.logf("osd.%d: read %s: the replica changed under it", op.node.id, simKey(op.pg, op.obj))
		return
	}
	var b [8]byte
	err := op.node.store.Read(op.pg, op.obj, 0, b[:])
	val := binary.BigEndian.Uint64(b[:])
	if err != nil {
		val = 0 // ErrNotFound: never written
	}
	w.logf("osd.%d: read %s = %d", op.node.id, simKey(op.pg, op.obj), val)
	w.stats.reads++
	w.hist = append(w.hist, simEvent{key: simKey(op.pg, op.obj), val: val, call: op.call, ret: w.tick()})
	if op.fin {
		w.finalRead[simKey(op.pg, op.obj)] = true
	}
}

// leaderOf returns the live node that believes it leads pg (the first if
// several do), or nil.
func (w *simWorld) leaderOf(pg PG) *simNode {
	for _, sn := range w.nodes {
		if sn.n != nil {
			if r := sn.n.replicas[pg]; r != nil && r.isLeader() {
				return sn
			}
		}
	}
	return nil
}

// startOp starts a client write or read of obj at sn.
func (w *simWorld) startOp(sn *simNode, p simPG, obj string, write bool) {
	w.nextReq++
	o := &simOp{node: sn, pg: p.pg, obj: obj, write: write, fin: w.final, rep: sn.n.replicas[p.pg],
		w: newWaiter(w.now.Add(time.Duration(2+w.rng.IntN(30)) * simTick)), call: w.tick()}
	kind := "read"
	loopLeased := sn.n.leaseReads
	if write {
		kind = "write"
		w.nextVal++
		o.val = w.nextVal
		data := binary.BigEndian.AppendUint64(nil, o.val)
		if w.opts.damage && o.val%4 == 0 {
			data = bytes.Repeat(data, placeMinBytes/8) // placed: see damagedOn
		}
		sn.n.startPropose(p.pg, w.nextReq, encodeOp(&op{Kind: opWrite, ReqID: w.nextReq, Object: obj, Data: data}), o.w)
	} else if idx, ok := sn.n.leaseIndex(p.pg); ok && w.rng.IntN(2) == 0 {
		o.w.finish(idx, nil) // as readIndex: under the published lease, without the loop
		w.stats.leased++
	} else {
		sn.n.startRead(p.pg, o.w)
	}
	select {
	case res := <-o.w.done:
		if !write && res.err == nil {
			o.w.done <- res // a read granted at once under the leader's lease: poll takes it
			if sn.n.leaseReads > loopLeased {
				w.stats.leased++
			}
			break
		}
		// refused before proposing: certainly not applied
		w.logf("osd.%d: %s %s refused: %v", sn.id, kind, simKey(p.pg, obj), res.err)
		w.stats.refused++
		return
	default:
	}
	w.logf("osd.%d: start %s %s (%d)", sn.id, kind, simKey(p.pg, obj), o.val)
	w.ops = append(w.ops, o)
}

func (w *simWorld) filter(keep func(*simNode) bool) []*simNode {
	var out []*simNode
	for _, sn := range w.nodes {
		if keep(sn) {
			out = append(out, sn)
		}
	}
	return out
}

func (w *simWorld) live() []*simNode { return w.filter(func(sn *simNode) bool { return sn.n != nil }) }
func (w *simWorld) down() []*simNode { return w.filter(func(sn *simNode) bool { return sn.n == nil }) }

func pick[T any](rng *rand.Rand, s []T) (T, bool) {
	var zero T
	if len(s) == 0 {
		return zero, false
	}
	return s[rng.IntN(len(s))], true
}

// step runs one random action.
func (w *simWorld) step() error {
	type action struct {
		weight int
		do     func() error
	}
	actions := []action{
		{300, func() error { // deliver a random batch: any order
			if len(w.net) == 0 {
				return nil
			}
			i := w.rng.IntN(len(w.net))
			p := w.net[i]
			w.net = slices.Delete(w.net, i, i+1)
			w.deliver(p)
			return nil
		}},
		{6, func() error { // lose a batch
			if len(w.net) > 0 {
				i := w.rng.IntN(len(w.net))
				w.net = slices.Delete(w.net, i, i+1)
			}
			return nil
		}},
		{6, func() error { // duplicate a batch
			if p, ok := pick(w.rng, w.net); ok {
				w.net = append(w.net, p)
			}
			return nil
		}},
		{150, func() error {
			if sn, ok := pick(w.rng, w.live()); ok && w.takeTick(sn) {
				w.tickNode(sn)
			}
			return nil
		}},
		{250, func() error {
			if sn, ok := pick(w.rng, w.live()); ok {
				return w.cycle(sn)
			}
			return nil
		}},
		{60, func() error { // a client op, usually at the node that believes it leads
			p, _ := pick(w.rng, w.pgs)
			obj, _ := pick(w.rng, p.objs)
			// Clients follow leadership hints, which may be stale: any
			// node that believes it leads (a cut-off old leader too).
			sn, ok := pick(w.rng, w.filter(func(sn *simNode) bool {
				return sn.n != nil && sn.n.replicas[p.pg] != nil && sn.n.replicas[p.pg].isLeader()
			}))
			if !ok || w.rng.IntN(5) == 0 {
				if sn, ok = pick(w.rng, w.live()); !ok {
					return nil
				}
			}
			w.startOp(sn, p, obj, w.rng.IntN(5) < 3)
			return nil
		}},
		{12, func() error { // a server reads the store for a granted read
			var granted []*simOp
			for _, op := range w.ops {
				if op.granted {
					granted = append(granted, op)
				}
			}
			if op, ok := pick(w.rng, granted); ok {
				w.readStore(op)
				w.ops = slices.DeleteFunc(w.ops, func(o *simOp) bool { return o == op })
			}
			return nil
		}},
		{80, func() error {
			w.now = w.now.Add(time.Duration(1+w.rng.IntN(10)) * time.Millisecond)
			return nil
		}},
		{1, func() error { // cut a node off
			if sn, ok := pick(w.rng, w.filter(func(sn *simNode) bool { return !sn.cut })); ok {
				sn.cut = true
				w.logf("osd.%d cut off", sn.id)
			}
			return nil
		}},
		{3, func() error {
			if sn, ok := pick(w.rng, w.filter(func(sn *simNode) bool { return sn.cut })); ok {
				sn.cut = false
				w.logf("osd.%d reconnected", sn.id)
			}
			return nil
		}},
		{1, func() error {
			sn, ok := pick(w.rng, w.live())
			if !ok {
				return nil
			}
			if w.rng.IntN(2) == 0 {
				return w.crashInCommit(sn)
			}
			w.crash(sn)
			return nil
		}},
		{20, func() error {
			if sn, ok := pick(w.rng, w.down()); ok {
				return w.start(sn)
			}
			return nil
		}},
	}
	if w.opts.moves {
		actions = append(actions, action{2, w.move})
	}
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	x := w.rng.IntN(total)
	for _, a := range actions {
		if x < a.weight {
			return a.do()
		}
		x -= a.weight
	}
	return nil
}

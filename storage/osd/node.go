package osd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// Transport carries raft messages to other OSDs. Send must not block for
// long; it may drop messages (raft retransmits).
type Transport interface {
	Send(to int32, msgs []wire.RaftMsg)
}

// Clock is the time source of the node (tests substitute their own).
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// NodeConfig configures a Node.
type NodeConfig struct {
	ID        int32     // this OSD's id
	Store     Store     // required
	Transport Transport // required
	Logger    *zap.Logger
	Clock     Clock // default wall clock

	// TickInterval is the raft tick; elections take 10 ticks, heartbeats 1.
	// Default 100ms.
	TickInterval time.Duration
	// CompactEvery: a PG's log is compacted once this many applied entries
	// are held by every replica. Default 1024.
	CompactEvery uint64
	// CompactBytes: ... or once the entries since start-up or the last
	// compaction hold this many payload bytes. Default 8 MiB. A settled PG
	// (all applied, every replica has it all) compacts its whole log.
	CompactBytes uint64
	// NoLeaseReads makes every read pay a heartbeat round (ReadIndex)
	// instead of using the leader lease (lease.go). For comparison and
	// debugging.
	NoLeaseReads bool
	// SnapshotBehind: a leader compacts its log past a replica more than
	// this many entries behind its applied index, which then catches up
	// from a snapshot (snapshot.go): a down OSD does not keep the logs of
	// its PGs growing until it returns. 0 (the default) keeps the log for
	// every replica, however far behind. Every OSD then needs a Copier.
	SnapshotBehind uint64
	// Copier copies a PG from another OSD when a snapshot is to be
	// installed here; nil refuses snapshots (they are dropped).
	Copier PGCopier
	// CopyRate bounds the bytes per second this OSD reads out for other
	// OSDs' snapshot installs (CopyOut), all copies together, so that a
	// replica catching up does not starve the clients. Default 100 MiB/s;
	// negative: no bound.
	CopyRate int64
	// syncInstall installs snapshots on the loop, not beside it: the
	// simulation runs one goroutine.
	syncInstall bool
	// BalanceAfter: a PG led by a replica other than its primary is
	// handed back to the primary once the primary has been heard from
	// without a gap for this long (balance.go). Default 30 s; negative
	// turns leadership balancing off.
	BalanceAfter time.Duration
}

func (c NodeConfig) withDefaults() NodeConfig {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.CompactEvery == 0 {
		c.CompactEvery = 1024
	}
	if c.CompactBytes == 0 {
		c.CompactBytes = 8 << 20
	}
	if c.BalanceAfter == 0 {
		c.BalanceAfter = balanceAfter
	}
	if c.CopyRate == 0 {
		c.CopyRate = 100 << 20
	}
	return c
}

// Validate reports the first broken rule of c.
func (c NodeConfig) Validate() error {
	switch {
	case c.ID < 0 || c.ID > MaxOSDID:
		return fmt.Errorf("%w: osd id %d is not in [0, %d]", ErrConfig, c.ID, MaxOSDID)
	case c.Store == nil:
		return fmt.Errorf("%w: node needs a store", ErrConfig)
	case c.Transport == nil:
		return fmt.Errorf("%w: node needs a transport", ErrConfig)
	}
	return nil
}

// Node hosts every PG replica of one OSD and drives all their raft groups
// from one goroutine (Run): each cycle it collects every group's Ready,
// persists all their log entries, hard states and applied mutations in one
// store batch (one fsync: group commit across PGs), then sends the messages,
// one batch per peer OSD. Other goroutines talk to it through methods that
// post closures to the loop.
type Node struct {
	cfg    NodeConfig
	log    *zap.Logger
	rlog   raft.Logger
	events chan func()
	done   chan struct{} // closed when Run returns

	nonce   uint64
	nextReq atomic.Uint64

	mu    sync.Mutex          // guards the following
	index map[PG]*replica     // lookups from other goroutines
	heard map[int32]time.Time // last message from each peer OSD
	// heardFrom: when the current unbroken run of messages from each peer
	// began (balance.go)
	heardFrom map[int32]time.Time

	// owned by the loop goroutine
	replicas map[PG]*replica
	// touched: the replicas cycle asks for a Ready (see touch). Asking
	// all of an OSD's PGs each cycle cost 10-20 µs per cycle, on the path
	// of every write.
	touched []*replica
	outbox  map[int32][]wire.RaftMsg
	arena   []byte     // one cycle's marshalled log entries (raftLog.stageAppend)
	preHeld []*replica // replicas holding data placed ahead (placeahead.go)
	// votesAfter: until an election timeout after start, vote requests are
	// dropped and no replica campaigns early (lease.go).
	votesAfter time.Time
	leaseReads uint64 // reads granted under the lease (tests look)
	// leadership balancing (balance.go)
	balanceHold  bool          // the map holds leaderships where they are (noout)
	movesHeld    bool          // the map starts no new copy for a move (norebalance; move.go)
	balanceOut   []int32       // OSDs marked out: not handed leadership
	balanceTick  time.Time     // the tick balanceLeft counts for
	balanceLeft  int           // transfers that may still start in that tick
	balanced     atomic.Uint64 // hand-overs started (tests look)
	installsDone atomic.Uint64 // snapshots installed (tests look)
	// fatal, once set on the loop, stops Run with it (a store failure
	// outside a cycle).
	fatal error
	// installers: the goroutines of snapshot installs running beside the
	// loop (snapshot.go), which Run waits for before it returns (they use
	// the store).
	installers     sync.WaitGroup
	installsActive int           // on the loop: installs started and not yet taken back (maxInstalls)
	dropping       map[PG]uint64 // on the loop: PGs that moved away, still to drop (move.go)
	rejoin         map[PG]func() // on the loop: PGs to join again once dropped (setMembers, ensurePG)
	copyRate       *rate.Limiter // CopyOut's bytes (NodeConfig.CopyRate); nil: no bound
}

// NewNode returns a node; Run starts it.
func NewNode(cfg NodeConfig) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	lg := cfg.Logger
	var copyRate *rate.Limiter
	if cfg.CopyRate > 0 {
		// The burst takes the largest object (CopyOut waits for a whole
		// object's bytes at once).
		copyRate = rate.NewLimiter(rate.Limit(cfg.CopyRate), chunkstore.MaxObjectSize)
	}
	return &Node{
		copyRate: copyRate,
		cfg:      cfg, log: lg, rlog: raftLogger{lg.Named("raft").Sugar()},
		events: make(chan func(), 4096), done: make(chan struct{}),
		nonce: binary.BigEndian.Uint64(nb[:]),
		index: map[PG]*replica{}, heard: map[int32]time.Time{}, heardFrom: map[int32]time.Time{},
		replicas: map[PG]*replica{}, outbox: map[int32][]wire.RaftMsg{},
	}, nil
}

// Run loads the PGs persisted in the store and drives them until ctx is
// done. It returns a non-nil error only when the store fails, after which
// the OSD must stop: continuing could acknowledge what is not durable.
func (n *Node) Run(ctx context.Context) error {
	defer n.installers.Wait() // after done is closed: that stops their copies
	defer close(n.done)
	if err := n.loadAll(); err != nil {
		return err
	}
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	ticks := 0
	defer func() {
		for _, r := range n.replicas {
			r.failAll(ErrClosing)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-n.events:
			ev()
		case <-ticker.C:
			ticks++
			n.tick(ticks%10 == 0)
		}
		for i := 0; i < 1024; i++ {
			select {
			case ev := <-n.events:
				ev()
				continue
			default:
			}
			break
		}
		// Advance, or a campaign or read started while finishing, may
		// leave a replica with more to do: run it now, not at the next
		// event or tick (a few rounds at most, so events keep their turn).
		if n.fatal != nil {
			n.log.Error("store failed; stopping this osd", zap.Error(n.fatal))
			return n.fatal
		}
		for range 4 {
			if err := n.cycle(); err != nil {
				n.log.Error("store failed; stopping this osd", zap.Error(err))
				return err
			}
			if len(n.touched) == 0 || len(n.events) > 0 {
				break
			}
		}
	}
}

// tick advances every PG's raft clock by one tick; expire also drops
// waiters whose callers gave up.
func (n *Node) tick(expire bool) {
	now := n.cfg.Clock.Now()
	for _, r := range n.replicas {
		n.tickReplica(r, now, expire)
	}
	if len(n.dropping) > 0 {
		n.retryDrops()
	}
}

// tickReplica is one replica's part of tick (the simulation ticks replicas
// in its own order).
func (n *Node) tickReplica(r *replica, now time.Time, expire bool) {
	if r.frozen.Load() {
		return // frozen (snapshot.go)
	}
	n.expireSnapshots(r, now)
	r.tick(now, expire, n.newID)
	n.touch(r)
	n.maybeCampaign(r)
	n.maybeHandOff(r)
	n.resolveLost(r, now)
	n.maybeBalance(r, now)
	n.reconcile(r, now)
	n.probe(r, now)
	n.dropRemoved(r)
}

// touch lists r for the next cycle: something may have changed its raft
// state (a step, a proposal, a tick, a read or leadership request). Every
// call into r.rn that can make a Ready must be paired with it; tick
// touches every replica, so one forgotten would wait a tick, not hang.
func (n *Node) touch(r *replica) {
	if !r.touched {
		r.touched = true
		n.touched = append(n.touched, r)
	}
}

func (n *Node) loadAll() error {
	n.votesAfter = n.cfg.Clock.Now().Add(electionTick * n.cfg.TickInterval)
	pgs, err := n.cfg.Store.ListPGs()
	if err != nil {
		return fmt.Errorf("list pgs: %w", err)
	}
	for _, pg := range pgs {
		l, err := loadRaftLog(n.cfg.Store, pg)
		if err != nil {
			return err
		}
		if len(l.cs.GetVoters()) == 0 && raft.IsEmptyHardState(l.hs) {
			// objects without raft state, or a replica whose first commit
			// was torn (see newReplica): EnsurePG creates it with its voters
			continue
		}
		// min_size is the pool's, which only the map knows: until EnsurePG
		// brings it, the replica refuses proposals (startPropose), so a
		// restarted OSD never acknowledges a write its pool's min_size
		// would refuse.
		if _, err := n.addReplica(l, nil, minSizeUnknown); err != nil {
			return err
		}
	}
	n.log.Info("loaded placement groups", zap.Int("pgs", len(n.replicas)))
	return nil
}

func (n *Node) addReplica(l *raftLog, voters []int32, minSize int) (*replica, error) {
	l.snapshots = n.cfg.SnapshotBehind > 0
	r, err := newReplica(n.cfg.ID, l, voters, minSize, n.rlog)
	if err != nil {
		return nil, err
	}
	if !n.cfg.NoLeaseReads {
		r.leaseDur = leaseFor(n.cfg.TickInterval)
	}
	n.replicas[l.pg] = r
	n.touch(r)
	n.mu.Lock()
	n.index[l.pg] = r
	n.mu.Unlock()
	// The primary campaigns as soon as its configuration is applied, so
	// a fresh PG does not wait an election timeout; pre-vote keeps this
	// harmless when a leader already exists. A PG loaded at start (no
	// voters given) knows no primary: the log keeps its voters sorted, and
	// the lowest id campaigned for every PG it held, so that after a
	// restart of every OSD one led them all. The map's primary campaigns
	// instead, once the map names it (EnsurePG).
	r.campaign = len(voters) > 0 && voters[0] == n.cfg.ID
	r.primary = -1
	if len(voters) > 0 {
		r.primary = voters[0]
	}
	return r, nil
}

// post runs fn on the loop; false if the node has stopped.
func (n *Node) post(ctx context.Context, fn func()) bool {
	select {
	case n.events <- fn:
		return true
	case <-n.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// EnsurePG creates this OSD's replica of pg with the given voters (primary
// first) unless it exists. min_size and the primary are updated either
// way, and the primary of an existing replica that knows no leader yet
// (just loaded) campaigns; one that does is handed leadership back by the
// leader (balance.go).
// Membership of an existing PG is changed only by raft, towards the
// members MovePG gives (move.go), never here.
func (n *Node) EnsurePG(pg PG, voters []int32, minSize int) {
	n.post(context.Background(), func() { n.ensurePG(pg, voters, minSize) })
}

// ensurePG is EnsurePG on the loop.
func (n *Node) ensurePG(pg PG, voters []int32, minSize int) {
	if r := n.replicas[pg]; r != nil {
		r.minSize = minSize
		if len(voters) > 0 {
			r.primary = voters[0]
		}
		if len(voters) > 0 && voters[0] == n.cfg.ID && r.leader.Load() < 0 {
			r.campaign = true
			n.touch(r)
		}
		return
	}
	if n.afterDrop(pg, func() { n.ensurePG(pg, voters, minSize) }) {
		// The store still holds the copy this OSD is dropping (the PG
		// moved away; only a map from before that move, a restored control
		// plane, lists it here). Loaded now, the pending drop would empty
		// the store under it; once the drop is done, the floor it leaves
		// refuses a new group (newReplica), saying why.
		n.log.Warn("the cluster map lists this osd for a pg whose copy it is dropping; trying again once it is dropped", zap.Stringer("pg", pg))
		return
	}
	l, err := loadRaftLog(n.cfg.Store, pg)
	if err == nil {
		_, err = n.addReplica(l, voters, minSize)
	}
	if err != nil {
		n.log.Error("cannot create pg replica", zap.Uint32("pool", pg.Pool), zap.Uint32("pg", pg.Seq), zap.Error(err))
	}
}

// Deliver steps raft messages received from peer OSD from. It decodes
// them and places their large writes ahead (placeahead.go) on the
// caller's goroutine, then hands them to the loop.
func (n *Node) Deliver(from int32, msgs []wire.RaftMsg) {
	now := n.cfg.Clock.Now()
	n.mu.Lock()
	n.noteHeardLocked(from, now)
	n.mu.Unlock()
	ws := make([]wireMsg, len(msgs))
	for i := range msgs {
		wm := &msgs[i]
		ws[i].pg, ws[i].compact = PG{Pool: wm.Pool, Seq: wm.PG}, wm.Compact
		ws[i].m, ws[i].err = decodeRaftMsg(wm)
	}
	pres := n.placeAhead(ws)
	posted := n.post(context.Background(), func() {
		n.holdPre(pres)
		for _, w := range ws {
			r := n.replicas[w.pg]
			if r == nil {
				continue // not created here yet; raft retransmits
			}
			if w.err != nil {
				n.log.Warn("dropping undecodable raft message", zap.Int32("from", from), zap.Error(w.err))
				continue
			}
			if r.frozen.Load() {
				continue // frozen (snapshot.go); raft retransmits
			}
			m := w.m
			n.touch(r)
			if n.moving(r, from, m, now) {
				continue
			}
			if w.compact > r.compactHint && !r.isLeader() {
				r.compactHint = w.compact
			}
			if m.GetType() == pb.MsgAppResp && !m.GetReject() && m.GetIndex() == 0 && m.GetTerm() <= r.rn.BasicStatus().GetTerm() {
				// raft answers a message from an older term with this empty
				// MsgAppResp, so that a stale leader learns the newer term. A
				// leader already at that term takes it for an ack of index 0
				// and moves a probing follower to replicate from index 1, below
				// the compacted log: without snapshots it never catches up.
				continue
			}
			if t := m.GetType(); (t == pb.MsgVote || t == pb.MsgPreVote) && n.cfg.Clock.Now().Before(n.votesAfter) {
				continue // just started: see votesAfter
			}
			if m.GetType() == pb.MsgSnap {
				n.receiveSnapshot(r, from, m)
				continue
			}
			if m.GetType() == pb.MsgHeartbeat && m.GetCommit() > r.log.last {
				// A replica whose snapshot install failed or was cut short
				// kept its hard state alone (snapshot.go); its leader still
				// counts what it held before, and raft panics on a commit
				// index past the log. The heartbeat's answer makes the
				// leader find out what it holds.
				m.Commit = proto.Uint64(r.log.last)
			}
			_ = r.rn.Step(m)
		}
	})
	if !posted {
		for _, x := range pres {
			n.unplace(x.pp)
		}
	}
}

// wireMsg is a received raft message, decoded.
type wireMsg struct {
	pg      PG
	compact uint64
	m       *pb.Message
	err     error
}

// lookup returns the replica of pg, or nil.
func (n *Node) lookup(pg PG) *replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.index[pg]
}

// active counts voters of r heard from within an election timeout (self
// included).
func (n *Node) active(r *replica) int {
	cut := n.cfg.Clock.Now().Add(-10 * n.cfg.TickInterval)
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, v := range r.voters {
		if v == n.cfg.ID || n.heard[v].After(cut) {
			c++
		}
	}
	return c
}

// Leader returns the OSD id the replica of pg believes leads it (-1 unknown).
func (n *Node) Leader(pg PG) (int32, error) {
	r := n.lookup(pg)
	if r == nil {
		return -1, ErrNoPG
	}
	return r.leader.Load(), nil
}

func (n *Node) wait(ctx context.Context, w *waiter) (uint64, error) {
	select {
	case res := <-w.done:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ErrTimeout
	case <-n.done:
		return 0, ErrClosing
	}
}

func (n *Node) deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return n.cfg.Clock.Now().Add(30 * time.Second)
}

// propose replicates o through pg's raft log and returns once it is applied
// on this (leader) replica, with the entry's index. It is proposed only
// if the loop gets to it by time by (zero: no limit), or fails with
// ErrTooLate (see Server's proposeBy); and only while ctx is live.
func (n *Node) propose(ctx context.Context, pg PG, o op, by time.Time) (uint64, error) {
	o.ReqID = n.nonce + n.nextReq.Add(1)
	data := encodeOp(&o)
	w := newWaiter(n.deadline(ctx))
	if !n.post(ctx, func() {
		switch {
		case !by.IsZero() && n.cfg.Clock.Now().After(by):
			w.finish(0, ErrTooLate)
		case ctx.Err() != nil:
			w.finish(0, ErrTimeout) // its caller is gone: nobody waits for it
		default:
			n.startPropose(pg, o.ReqID, data, w)
		}
	}) {
		return 0, ErrClosing
	}
	return n.wait(ctx, w)
}

// readIndex returns an index such that a read of the store after this
// replica applied it is linearizable (leader only): under the leader's
// lease without asking the loop where it can (lease.go), else from the
// loop (lease or read-index round).
func (n *Node) readIndex(ctx context.Context, pg PG) (uint64, error) {
	if idx, ok := n.leaseIndex(pg); ok {
		return idx, nil
	}
	w := newWaiter(n.deadline(ctx))
	if !n.post(ctx, func() { n.startRead(pg, w) }) {
		return 0, ErrClosing
	}
	return n.wait(ctx, w)
}

// leaseIndex is readIndex's way around the loop: the index to read pg at
// under the lease the loop published, or false. Any goroutine.
func (n *Node) leaseIndex(pg PG) (uint64, bool) {
	r := n.lookup(pg)
	if r == nil {
		return 0, false
	}
	return r.viewRead(n.cfg.Clock.Now())
}

// startPropose runs on the loop: propose data (an encoded op with reqID) to
// pg's raft group; w completes when it is applied here, or fails.
func (n *Node) startPropose(pg PG, reqID uint64, data []byte, w *waiter) {
	r := n.replicas[pg]
	switch {
	case r == nil:
		w.finish(0, ErrNoPG)
	case !r.isLeader() || r.frozen.Load():
		w.finish(0, ErrNotLeader)
	case r.minSize == minSizeUnknown:
		w.finish(0, fmt.Errorf("%w: min_size not known until the cluster map names this pg", ErrDegraded))
	case r.minSize > 0 && n.active(r) < r.minSize:
		w.finish(0, ErrDegraded)
	default:
		n.touch(r)
		if err := r.rn.Propose(data); err != nil {
			w.finish(0, fmt.Errorf("%w: %v", ErrNotLeader, err))
			return
		}
		r.waiters[reqID] = w
	}
}

// startRead runs on the loop: w completes with a read index once this
// leader may serve a linearizable read of pg at it.
func (n *Node) startRead(pg PG, w *waiter) {
	r := n.replicas[pg]
	switch {
	case r == nil:
		w.finish(0, ErrNoPG)
	case !r.isLeader() || r.frozen.Load():
		w.finish(0, ErrNotLeader)
	default:
		n.touch(r)
		now := n.cfg.Clock.Now()
		if idx, ok := r.leaseRead(now); ok {
			n.leaseReads++
			if idx <= r.log.applied {
				w.finish(idx, nil)
			} else {
				r.readQ = append(r.readQ, pendingRead{idx, w})
			}
			if r.renewDue(now) {
				r.issueRead(now, n.newID, true)
			}
			return
		}
		r.queueRead(now, w, n.newID)
	}
}

// maybeCampaign makes r campaign once its configuration is applied, if it
// is to (addReplica), but not within an election timeout of this node's
// start: it may have acknowledged a leader's heartbeat just before a crash,
// and that leader's lease counts on it not electing anyone else (lease.go).
func (n *Node) maybeCampaign(r *replica) {
	if r.campaign && r.log.applied >= r.rn.BasicStatus().GetCommit() && !n.cfg.Clock.Now().Before(n.votesAfter) && n.mayLead(r) {
		r.campaign = false
		n.touch(r)
		_ = r.rn.Campaign()
	}
}

// newID returns a fresh id for a read-index request.
func (n *Node) newID() uint64 { return n.nextReq.Add(1) }

// transferLeader asks pg's leader (this replica) to hand leadership to
// target; it returns once the request is made, not when it completes.
func (n *Node) transferLeader(ctx context.Context, pg PG, target int32) error {
	w := newWaiter(n.deadline(ctx))
	if !n.post(ctx, func() { n.startTransfer(pg, target, w) }) {
		return ErrClosing
	}
	_, err := n.wait(ctx, w)
	return err
}

// startTransfer runs on the loop: ask pg's raft group to hand leadership to
// target; w completes once asked.
func (n *Node) startTransfer(pg PG, target int32, w *waiter) {
	r := n.replicas[pg]
	switch {
	case r == nil:
		w.finish(0, ErrNoPG)
	case !r.isLeader():
		w.finish(0, ErrNotLeader)
	case !slices.Contains(r.voters, target):
		w.finish(0, errInvalid(fmt.Sprintf("osd.%d is not a member of pg %d.%x", target, pg.Pool, pg.Seq)))
	default:
		r.endLease() // the target campaigns past the followers' leases
		n.touch(r)
		r.rn.TransferLeader(r.seat(target))
		w.finish(0, nil)
	}
}

// waitApplied waits until this replica of pg has applied index idx and
// may serve reads of its own copy there (replica.readable). The replica
// is looked up again each time: an install replaces it.
func (n *Node) waitApplied(ctx context.Context, pg PG, idx uint64) error {
	for {
		r := n.lookup(pg)
		if r == nil {
			return ErrNoPG
		}
		if r.readable(idx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ErrTimeout
		case <-n.done:
			return ErrClosing
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// States returns the raft state of every PG on this OSD.
func (n *Node) States(ctx context.Context) ([]wire.PGState, error) {
	out := make(chan []wire.PGState, 1)
	if !n.post(ctx, func() {
		sts := make([]wire.PGState, 0, len(n.replicas))
		for pg, r := range n.replicas {
			bs := r.rn.BasicStatus()
			st := wire.PGState{Pool: pg.Pool, PG: pg.Seq, Leader: osdID(bs.Lead), Term: bs.GetTerm(), Commit: bs.GetCommit(),
				Applied: r.log.applied, Voters: append([]int32(nil), r.voters...), Lagging: []int32{}, Learners: []int32{}}
			for _, id := range r.log.cs.GetLearners() {
				st.Learners = append(st.Learners, osdID(id))
			}
			if r.isLeader() {
				r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
					if pr.Match < r.log.last {
						st.Lagging = append(st.Lagging, osdID(id))
					}
				})
			}
			sts = append(sts, st)
		}
		out <- sts
	}) {
		return nil, ErrClosing
	}
	select {
	case s := <-out:
		return s, nil
	case <-ctx.Done():
		return nil, ErrTimeout
	case <-n.done:
		return nil, ErrClosing
	}
}

package osd

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// result completes a proposal or a read-index request.
type result struct {
	index uint64
	err   error
}

// waiter is a caller waiting on the node loop. done is buffered so the loop
// never blocks on a caller that gave up.
type waiter struct {
	done     chan result
	deadline time.Time
}

func newWaiter(deadline time.Time) *waiter {
	return &waiter{done: make(chan result, 1), deadline: deadline}
}

func (w *waiter) finish(idx uint64, err error) {
	select {
	case w.done <- result{idx, err}:
	default:
	}
}

type pendingRead struct {
	index uint64
	w     *waiter
}

// minSizeUnknown is the min_size of a replica loaded from disk before the
// cluster map gave its pool's: it takes no proposal.
const minSizeUnknown = -1

// replica is this OSD's member of one PG's raft group. All fields but the
// atomics are owned by the node loop goroutine.
type replica struct {
	pg      PG
	self    int32
	id      uint64 // raft id: this replica's seat (seat.go)
	rn      *raft.RawNode
	log     *raftLog
	minSize int     // the pool's min_size; 0: no check; minSizeUnknown: refuse
	voters  []int32 // from the conf state

	conf        []byte                           // marshalled current pb.ConfState
	waiters     map[uint64]*waiter               // proposal ReqID → waiter
	readCtx     map[uint64][]*waiter             // outstanding read-index request → its batch of reads
	readNext    []*waiter                        // reads that arrived while a request was outstanding
	readOut     uint64                           // the outstanding request's ctx id (0: none)
	readAge     int                              // ticks since readOut was issued
	readOutAt   time.Time                        // when readOut was issued
	leaseDur    time.Duration                    // leader lease per acknowledged round (lease.go); 0: none
	leaseUntil  time.Time                        // lease reads are served until then
	noLeaseTerm uint64                           // a transfer was asked in this term: no lease reads
	readQ       []pendingRead                    // read index known, waiting for apply
	compactHint uint64                           // leader: what it compacted to; follower: leader's hint
	campaign    bool                             // campaign once the configuration is applied
	primary     int32                            // the map's primary (-1 unknown: loaded, no map yet)
	balanceAt   time.Time                        // no hand-over to the primary before then (balance.go)
	balanceWait time.Duration                    // the wait after the last hand-over tried
	touched     bool                             // listed in Node.touched
	warnedHeld  uint64                           // retained log length last warned about (leader)
	handOff     bool                             // an append was cut at a damaged entry (damaged.go)
	warnedLost  time.Time                        // when that was last logged
	lost        *lostProof                       // what it learnt of its lost entry (lost.go)
	owed        []lostQuery                      // lost-entry queries it owes an answer (lost.go)
	pre         map[uint64]*chunkstore.Preplaced // data placed ahead, by entry index (placeahead.go)

	snapSent    map[int32]time.Time // leader: when a snapshot went to each replica (snapshot.go)
	leaderSince time.Time           // when this replica last became leader

	// replica moves (move.go)
	want        []int32             // the members it was told (MovePG); nil: none, no change
	confUntil   time.Time           // leader: no other change proposed before then
	toldLeft    map[int32]time.Time // when each replica that left was last told so (tellLeft)
	lostCopy    map[int32]bool      // leader: OSDs whose seat's copy is lost, to be seated anew (noteReject, noteFloor)
	floors      map[int32]uint64    // leader: the seat floor each OSD reported (noteFloor)
	heardLeader time.Time           // when a leader last wrote to this replica (probe)
	probedAt    time.Time           // when it last probed
	warnedMove  time.Time           // when a move it cannot make was last logged

	applied atomic.Uint64             // for readers outside the loop
	leader  atomic.Int32              // -1 unknown
	view    atomic.Pointer[leaseView] // the lease for readers outside the loop (lease.go)
	// snapshot installs (snapshot.go)
	frozen   atomic.Bool   // while this replica installs a snapshot: no step, tick, Ready, read or proposal
	staged   atomic.Uint64 // the last index staged to apply: the store may show it before applied does
	readHold atomic.Uint64 // no reads of the own copy before applying this far
	copyAt   atomic.Int64  // when a replica last copied an object from this one (unix ns)
}

func newReplica(self int32, log *raftLog, voters []int32, minSize int, lg raft.Logger) (*replica, error) {
	r := &replica{
		pg: log.pg, self: self, log: log, minSize: minSize,
		waiters: map[uint64]*waiter{}, readCtx: map[uint64][]*waiter{},
	}
	// A replica's first commit holds the bootstrap entries and then the
	// hard state. Entries without a hard state are what a crash inside that
	// commit left; none was acknowledged, so the replica starts afresh and
	// its first append overwrites them (else, all replicas torn alike, no
	// one would have a configuration to campaign with).
	bootstrap := raft.IsEmptyHardState(log.hs) && len(log.cs.GetVoters()) == 0
	if bootstrap {
		log.last, log.termBase, log.terms, log.sizes, log.heldBytes = log.first-1, log.first, nil, nil, 0
	}
	if bootstrap && len(voters) > 0 && log.floor > 0 {
		// Its first members were given again to an OSD that dropped its
		// copy since: a map from before the PG moved (a control plane
		// restored from a backup). A new group here would be a second one.
		return nil, fmt.Errorf("%w: pg %s: this osd dropped its copy when the pg moved away, and a cluster map older than that move lists it among the pg's first members; not starting a second group here (was the control plane restored from a backup? give the pg its members again with `tsumiki pg move`)",
			ErrConfig, log.pg)
	}
	r.id = loadedSeat(log, self, bootstrap && len(voters) > 0)
	if err := r.startRaft(r.id, lg); err != nil {
		return nil, err
	}
	r.leader.Store(-1)
	r.applied.Store(log.applied)
	r.staged.Store(log.applied)
	if bootstrap && len(voters) > 0 { // none: a replica joining a moved PG (MovePG)
		peers := make([]raft.Peer, len(voters))
		for i, v := range voters {
			peers[i] = raft.Peer{ID: raftID(v)}
		}
		if err := r.rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("bootstrap pg %d.%d: %w", log.pg.Pool, log.pg.Seq, err)
		}
	}
	r.setConf(log.cs, log.prev, log.prevKnown)
	return r, nil
}

// startRaft (re)starts r's raft node as member id over r's log: at load,
// and when r takes a new seat (move.go). On the loop, between cycles.
func (r *replica) startRaft(id uint64, lg raft.Logger) error {
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        id,
		ElectionTick:              electionTick,
		HeartbeatTick:             heartbeatTick,
		Storage:                   r.log,
		Applied:                   r.log.applied,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  8 << 20,
		MaxUncommittedEntriesSize: 128 << 20,
		MaxInflightMsgs:           256,
		MaxInflightBytes:          8 << 20, // per follower: bounds memory under big writes
		CheckQuorum:               true,
		PreVote:                   true,
		// ReadOnlySafe: a read index is confirmed by a heartbeat round with
		// a quorum. The lease-based option trusts CheckQuorum, under which a
		// cut-off leader may lead for almost two election timeouts while the
		// others elect a new one after one, so it served stale reads even
		// with no clock drift (TestSimReadAfterLeaderCut; etcd-io/raft#166).
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		// A leader that a configuration change removes (one proposed before
		// leadership came to it) steps down rather than lead a group it
		// is not in (move.go).
		StepDownOnRemoval: true,
		Logger:            lg,
	})
	if err != nil {
		return fmt.Errorf("start raft for pg %s: %w", r.pg, err)
	}
	r.rn = rn
	return nil
}

// setConf makes cs r's configuration; prev are the seats that voted in the
// one before, if known (prevconf.go).
func (r *replica) setConf(cs *pb.ConfState, prev []uint64, known bool) {
	// A lease rests on a quorum of the configuration it was granted
	// under (lease.go); the rounds answered from now on count the new one.
	r.leaseUntil, r.confUntil = time.Time{}, time.Time{}
	r.view.Store(nil)
	r.log.cs = proto.CloneOf(cs) // the configuration at the applied index (Snapshot)
	r.log.prev, r.log.prevKnown = prev, known
	r.conf = encodeConf(cs, prev, known)
	r.voters = r.voters[:0]
	for _, id := range cs.GetVoters() {
		r.voters = append(r.voters, osdID(id))
	}
	slices.Sort(r.voters)
}

func (r *replica) isLeader() bool { return r.leader.Load() == r.self }

// failAll answers every waiter with err (leadership lost, shutdown).
func (r *replica) failAll(err error) {
	for id, w := range r.waiters {
		w.finish(0, err)
		delete(r.waiters, id)
	}
	for id, batch := range r.readCtx {
		for _, w := range batch {
			w.finish(0, err)
		}
		delete(r.readCtx, id)
	}
	for _, w := range r.readNext {
		w.finish(0, err)
	}
	r.readNext, r.readOut = nil, 0
	for _, pr := range r.readQ {
		pr.w.finish(0, err)
	}
	r.readQ = nil
}

// expire drops waiters whose callers have given up.
func (r *replica) expire(now time.Time) {
	for id, w := range r.waiters {
		if now.After(w.deadline) {
			w.finish(0, ErrTimeout)
			delete(r.waiters, id)
		}
	}
	// Reads in a batch stay until the batch is answered (or given up in
	// tick); finishing a waiter twice is harmless.
	for _, batch := range r.readCtx {
		for _, w := range batch {
			if now.After(w.deadline) {
				w.finish(0, ErrTimeout)
			}
		}
	}
}

// tick advances r's raft clock; expire also drops waiters whose callers
// gave up. A read-index request unanswered for two election timeouts is
// given up (its reads time out and are retried by their clients) so that
// the reads queued behind it are not stuck.
func (r *replica) tick(now time.Time, expire bool, newID func() uint64) {
	r.rn.Tick()
	if r.readOut != 0 {
		r.readAge++
		if r.readAge > 20 {
			for _, w := range r.readCtx[r.readOut] {
				w.finish(0, ErrTimeout)
			}
			delete(r.readCtx, r.readOut)
			r.readOut = 0
			r.issueRead(now, newID, false)
		}
	}
	if expire {
		r.expire(now)
	}
}

// queueRead adds w to the next read-index request, issuing it at once when
// none is outstanding. With ReadOnlySafe each request costs a heartbeat
// round, so all reads that arrive while one is outstanding share the next:
// their index is still taken after they arrived, so they stay
// linearizable.
func (r *replica) queueRead(now time.Time, w *waiter, newID func() uint64) {
	r.readNext = append(r.readNext, w)
	if r.readOut == 0 {
		r.issueRead(now, newID, false)
	}
}

// issueRead sends the queued reads' read-index request; renew sends one
// even with no reads queued (a lease renewal, lease.go).
func (r *replica) issueRead(now time.Time, newID func() uint64, renew bool) {
	if len(r.readNext) == 0 && !renew {
		return
	}
	id := newID()
	r.readCtx[id], r.readNext = r.readNext, nil
	r.readOut, r.readAge, r.readOutAt = id, 0, now
	var rc [8]byte
	binary.BigEndian.PutUint64(rc[:], id)
	r.rn.ReadIndex(rc[:])
}

// readState takes raft's answer to read-index request id: its reads may
// run once index is applied. The next batch, if any, is issued.
func (r *replica) readState(now time.Time, id, index uint64, newID func() uint64) {
	for _, w := range r.readCtx[id] {
		r.readQ = append(r.readQ, pendingRead{index, w})
	}
	delete(r.readCtx, id)
	if id == r.readOut {
		r.extendLease(r.readOutAt)
		r.readOut = 0
		r.issueRead(now, newID, false)
	}
}

// grantReads completes read-index waiters whose index has been applied.
func (r *replica) grantReads() {
	keep := r.readQ[:0]
	for _, pr := range r.readQ {
		if pr.index <= r.log.applied {
			pr.w.finish(pr.index, nil)
		} else {
			keep = append(keep, pr)
		}
	}
	r.readQ = keep
}

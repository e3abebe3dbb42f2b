package osd

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// ready is one replica's Ready plus what the cycle decided for it.
type ready struct {
	r         *replica
	rd        raft.Ready
	done      []doneProposal
	compactTo uint64
	compactT  uint64 // term of entry compactTo-1
	early     int    // rd.Messages[:early] were sent before the commit
}

// sendEarly queues a leader's appends and heartbeats before its own write
// is durable. Only a replica that was leader before this Ready and still
// is may do so; everything else (votes, responses) waits for the commit.
func (n *Node) sendEarly(x *ready) {
	if !x.r.isLeader() || (x.rd.SoftState != nil && osdID(x.rd.SoftState.Lead) != x.r.self) {
		return
	}
	// Early sends overlap the replication with this node's own log write.
	// A Ready without entries writes nothing of its own: its messages (a
	// commit index for the followers) would only delay the apply and the
	// callers' answers, so they go after those, in finish.
	if len(x.rd.Entries) == 0 {
		return
	}
	// Keep the early messages a prefix: stop at the first that must wait.
	for _, m := range x.rd.Messages {
		if t := m.GetType(); t != pb.MsgApp && t != pb.MsgHeartbeat {
			break
		}
		n.queue(x.r, m)
		x.early++
	}
}

// queue adds one raft message to the outbox of its destination OSD. The
// message's entries are sent from their own memory (wire.RaftMsg): raft
// never changes an entry once made, and the transport writes them
// before they could be collected.
func (n *Node) queue(r *replica, m *pb.Message) {
	if len(r.log.damaged) > 0 && !n.sendDamaged(r, m) {
		return
	}
	wm, err := encodeRaftMsg(m)
	if err != nil {
		n.log.Error("cannot marshal raft message", zap.Error(err))
		return
	}
	wm.Pool, wm.PG = r.pg.Pool, r.pg.Seq
	if r.isLeader() {
		wm.Compact = r.compactHint
	}
	to := osdID(m.GetTo())
	if m.GetType() == pb.MsgSnap {
		r.noteSnapshotSent(to, n.cfg.Clock.Now())
	}
	n.outbox[to] = append(n.outbox[to], wm)
}

type doneProposal struct {
	w   *waiter
	idx uint64
}

// cycle handles every pending Ready: persist and apply in one batch (one
// fsync for all PGs), then send messages, advance, and answer callers.
func (n *Node) cycle() error {
	// The flags are cleared and the list emptied together, with no return
	// in between: a replica flagged but not listed would never be asked
	// again (touch skips a flagged replica), not even by tick.
	var rds []*ready
	for _, r := range n.touched {
		r.touched = false
		if r.frozen.Load() {
			continue // frozen (snapshot.go)
		}
		if r.rn.HasReady() {
			rds = append(rds, &ready{r: r, rd: r.rn.Ready()})
		}
	}
	// Touches made from here on (finish campaigns, issues reads) are for
	// the next cycle; the list read above is not read again.
	n.touched = n.touched[:0]
	// Data placed ahead that the stages below do not log is released.
	defer n.dropPre()
	if len(rds) == 0 {
		n.flushOutbox() // what was queued outside a Ready (move.go's probes and answers)
		return nil
	}
	t0 := time.Now()
	// The previous cycle's batch is committed: its entries' bytes are free.
	if cap(n.arena) > maxArena {
		n.arena = nil
	}
	n.arena = n.arena[:0]
	b := n.cfg.Store.NewBatch()
	for _, x := range rds {
		if err := n.stage(b, x); err != nil {
			b.Discard()
			return err
		}
	}
	// A leader may replicate before its own write is durable (Raft thesis
	// 10.2.1; etcd does the same): it does not count itself towards the
	// commit quorum until Advance. Followers answer only after persisting.
	for _, x := range rds {
		n.sendEarly(x)
	}
	n.flushOutbox()
	t1 := time.Now()
	if err := b.Commit(); err != nil {
		return fmt.Errorf("commit raft batch: %w", err)
	}
	if d := time.Since(t1); d > slowCommit {
		n.log.Warn("slow store commit: the device is overloaded or failing", zap.Duration("commit", d),
			zap.Duration("stage", t1.Sub(t0)), zap.Int("pgs", len(rds)))
	}
	for _, x := range rds {
		n.finish(x)
	}
	n.flushOutbox()
	return nil
}

// stage adds x's log entries, hard state and applied mutations to b.
func (n *Node) stage(b Batch, x *ready) error {
	r, rd := x.r, x.rd
	if !raft.IsEmptySnap(rd.Snapshot) {
		// receiveSnapshot installs a snapshot before raft sees it, and
		// raft then ignores it: one here is a bug.
		return fmt.Errorf("pg %d.%d: raft restored a snapshot that was not installed", r.pg.Pool, r.pg.Seq)
	}
	// Only the leader serves reads, so only it keeps large writes in its
	// page cache; followers write them past it (chunkstore.Place.Direct).
	if err := r.log.stageAppend(b, rd.Entries, &n.arena, !r.isLeader(), r.pre); err != nil {
		return err
	}
	// A hard state whose term and vote are unchanged only moves the commit
	// index, which raft does not need durable (raft.MustSync): writing it
	// would cost a synchronous log write per commit, on the path between
	// the quorum's ack and the reply. After a restart the commit index is
	// at least the applied index (loadRaftLog), and the leader re-sends it.
	// It is also written when the replica took a new seat (seat.go),
	// which is stored with it, before anything is answered as that seat.
	if sync := !raft.IsEmptyHardState(rd.HardState) && raft.MustSync(rd.HardState, r.log.hs, len(rd.Entries)); sync || r.seatUnsaved() {
		hs := r.log.hs
		if sync {
			hs = rd.HardState
		}
		rec, err := encodeHardState(hs, r.id)
		if err != nil {
			return err
		}
		if err := b.SetHardState(r.pg, rec); err != nil {
			return err
		}
		r.log.seat = r.id
	}
	// Entries appended in this same Ready may be committed already (raft
	// allows it when storage writes are synchronous); they are applied in
	// the same batch, after the append, so the order on disk is right.
	if len(rd.Entries) > 0 {
		r.log.commitAppend(rd.Entries)
	}
	dirty := false
	for _, e := range rd.CommittedEntries {
		if err := n.applyEntry(b, x, e); err != nil {
			return err
		}
		dirty = true
	}
	if dirty {
		r.log.trimTail(0) // applied entries may leave the cache now
	}
	x.compactTo = n.compactTarget(r)
	if x.compactTo > 0 {
		// Read before CompactLog deletes the entry.
		t, err := r.log.Term(x.compactTo - 1)
		if err != nil {
			return err
		}
		x.compactT = t
	}
	if dirty || x.compactTo > 0 {
		if err := b.SetApplyState(r.pg, r.log.applyStateBytes(r.conf, x.compactTo, x.compactT)); err != nil {
			return err
		}
		// Compact only after the apply state that records the new first
		// index and the term before it: a crash in a split batch may keep a
		// prefix, and entries deleted under an old apply state would leave
		// the log's first index without its term (loadRaftLog).
		if x.compactTo > 0 {
			if err := b.CompactLog(r.pg, x.compactTo); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Node) applyEntry(b Batch, x *ready, e *pb.Entry) error {
	r := x.r
	idx := e.GetIndex()
	switch e.GetType() {
	case pb.EntryNormal:
		if len(e.GetData()) == 0 {
			break // a new leader's empty entry
		}
		o, err := decodeOp(e.GetData())
		if err != nil {
			return fmt.Errorf("pg %d.%d entry %d: %w", r.pg.Pool, r.pg.Seq, idx, err)
		}
		if n, ok := r.log.damaged[idx]; ok && isStandIn(e, n) {
			err = b.ApplyPlaced(r.pg, o.Object, o.Offset, int64(n), idx)
		} else {
			err = applyOp(b, r.pg, &o, idx)
		}
		if err != nil {
			return fmt.Errorf("apply %s of %q at pg %d.%d index %d: %w", o.Kind, o.Object, r.pg.Pool, r.pg.Seq, idx, err)
		}
		if w := r.waiters[o.ReqID]; w != nil {
			delete(r.waiters, o.ReqID)
			x.done = append(x.done, doneProposal{w, idx})
		}
	case pb.EntryConfChange:
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return fmt.Errorf("%w: conf change at pg %d.%d index %d", ErrBadEntry, r.pg.Pool, r.pg.Seq, idx)
		}
		r.setConf(r.rn.ApplyConfChange(&cc), confVoters(r.log.cs), true)
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return fmt.Errorf("%w: conf change at pg %d.%d index %d", ErrBadEntry, r.pg.Pool, r.pg.Seq, idx)
		}
		r.setConf(r.rn.ApplyConfChange(&cc), confVoters(r.log.cs), true)
	}
	r.log.applied, r.log.appliedTerm = idx, e.GetTerm()
	r.staged.Store(idx)
	return nil
}

func (k opKind) String() string {
	switch k {
	case opWrite:
		return "write"
	case opTruncate:
		return "truncate"
	case opZero:
		return "zero"
	case opDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// applyOp executes one mutation; version is the entry index, so replicas
// agree on versions.
func applyOp(b Batch, pg PG, o *op, version uint64) error {
	switch o.Kind {
	case opWrite:
		return b.Write(pg, o.Object, o.Offset, o.Data, version)
	case opTruncate:
		return b.Truncate(pg, o.Object, o.Offset, version)
	case opZero:
		return b.Zero(pg, o.Object, o.Offset, o.Length, version)
	case opDelete:
		return b.Delete(pg, o.Object)
	}
	return fmt.Errorf("%w: op kind %d", ErrBadEntry, o.Kind)
}

// compactTarget decides how far r's log may be compacted now (0: not now).
// The leader compacts only below what every voter holds (but a replica it
// leaves behind, compactFloor: snapshot.go) and tells the followers (hint
// on its messages); followers never compact past the hint. So only a
// replica left behind needs a snapshot to catch up.
func (n *Node) compactTarget(r *replica) uint64 {
	big := r.log.heldBytes >= n.cfg.CompactBytes
	// settled: everything in the log is applied, so once every replica has
	// it too the whole log can go. Without this a quiet PG would keep its
	// few entries for ever, and with them every raft log segment written
	// since (the log is shared by all PGs of the OSD).
	settled := r.log.applied == r.log.last && r.log.applied >= r.log.first
	if r.log.applied < r.log.first+n.cfg.CompactEvery && !big && !settled {
		return 0
	}
	target := r.log.applied
	if r.isLeader() {
		target = min(target, r.compactFloor(n.leftBehind()))
		if target > r.compactHint {
			r.compactHint = target
		}
		n.warnRetained(r, target)
	} else {
		target = min(target, r.compactHint)
	}
	whole := settled && target == r.log.applied
	if (target < r.log.first+n.cfg.CompactEvery/2 && !big && !whole) || target < r.log.first || target > r.log.last {
		return 0
	}
	if _, err := r.log.Term(target); err != nil {
		return 0 // the new first-1 needs its term recorded
	}
	return target + 1 // CompactLog keeps entries >= its argument
}

// warnRetained tells the operator when a PG's log is kept long because a
// replica is behind (down, or slow): without snapshots (SnapshotBehind 0)
// the log is the only way to catch it up, so it is never cut below what
// that replica has. It warns each time the retained length doubles past
// 64k entries.
func (n *Node) warnRetained(r *replica, target uint64) {
	held := r.log.applied - min(target, r.log.applied)
	if held < 1<<16 || held < 2*r.warnedHeld {
		if held < r.warnedHeld/2 {
			r.warnedHeld = 0 // caught up: warn again next time
		}
		return
	}
	r.warnedHeld = held
	var behind []int32
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pr.Match <= target {
			behind = append(behind, osdID(id))
		}
	})
	n.log.Warn("raft log kept for a replica that is behind; it grows until that OSD returns, unless the OSDs run with --snapshot-behind (the replica then catches up from a snapshot)",
		zap.Stringer("pg", r.pg), zap.Uint64("entries", held), zap.Int32s("behind", behind))
}

// finish runs after the batch is durable.
func (n *Node) finish(x *ready) {
	r, rd := x.r, x.rd
	if !raft.IsEmptyHardState(rd.HardState) {
		r.log.hs = proto.CloneOf(rd.HardState)
	}
	if rd.SoftState != nil {
		was := r.isLeader()
		r.leader.Store(osdID(rd.SoftState.Lead))
		if was && !r.isLeader() {
			r.view.Store(nil)
			r.failAll(ErrNotLeader)
		}
		if !was && r.isLeader() {
			r.leaderSince = n.cfg.Clock.Now()
			// Marks an earlier leadership made may be stale: another
			// leader may have replaced or promoted those seats since.
			r.lostCopy, r.floors = nil, nil
		}
	}
	for _, m := range rd.Messages[x.early:] { // the prefix went out before the commit
		n.queue(r, m)
	}
	// Compacted only now: an append of this Ready may carry entries below
	// the new first index (a leader compacts past a replica left to a
	// snapshot), and queue must still know which of them are stand-ins
	// for damaged ones, which compact forgets.
	if x.compactTo > 0 {
		r.log.compact(x.compactTo, x.compactT)
	}
	r.rn.Advance(rd)
	n.touch(r) // Advance may leave more to do: entries past a Ready's size cap
	r.applied.Store(r.log.applied)
	n.maybeCampaign(r)
	for _, d := range x.done {
		d.w.finish(d.idx, nil)
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		r.readState(n.cfg.Clock.Now(), binary.BigEndian.Uint64(rs.RequestCtx), rs.Index, n.newID)
	}
	r.grantReads()
}

func (n *Node) flushOutbox() {
	for to, msgs := range n.outbox {
		if len(msgs) == 0 {
			continue
		}
		n.cfg.Transport.Send(to, msgs)
		n.outbox[to] = nil
	}
}

// maxArena bounds the entry arena a node keeps between cycles (the
// chunk store keeps a WAL batch buffer of the same bound).
const maxArena = 32 << 20

// slowCommit is the commit time above which the node warns.
const slowCommit = time.Second

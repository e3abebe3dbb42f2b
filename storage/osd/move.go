package osd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Replica moves (docs/design-replica-moves.md): a PG's members change
// only when told (MovePG), one raft configuration change at a time, and
// the group never counts on a replica that does not hold the log yet.
//
// The leader (reconcile) compares the members it was given with the
// applied configuration and proposes the next step:
//  1. a learner whose copy is lost (lostCopy) is removed, to be added
//     again with a new seat (seat.go);
//  2. a member with no seat joins as a learner (its OSD creates an empty
//     replica, with no bootstrap; raft catches it up from the log, or
//     from a snapshot once the log is compacted past it);
//  3. a learner holding everything committed is promoted, and in the same
//     change (joint consensus, left automatically) one voter that is no
//     longer a member is removed;
//  4. a learner no longer a member is removed;
//  5. a voter no longer a member with no learner to replace it is removed
//     on its own.
//
// A leader that is to leave hands leadership to a caught-up voter that
// stays first. A replica that left drops its copy once it knows that a
// committed configuration at or past its last log entry has no seat for
// it, and that its own members leave it out (leftAt): from its own
// applies, or from a member it reaches (tellLeft), since the leader stops
// writing to it once the change is applied and it seldom learns the
// change is committed. One left behind asks (probe) now and then.
//
// "At or past its last entry" is what keeps a seat from outliving its
// copy: raft never lowers a follower's Match, so a replica that dropped
// its copy while still seated could be promoted on acknowledgements of
// the copy it no longer has. A replica that acknowledged anything for a
// newer seat holds entries past the configuration that removed the old
// one, and keeps its copy. One exception is harmless: a learner still
// catching up from the log applies configurations from before its seat,
// and drops if its members leave it out; its Match is below the commit
// index, so it is never promoted on it, and the leader removes the seat.
// A seat found acknowledging a log shorter than its Match anyway
// (lostCopy; a reordered network can make that) is never promoted, and
// is replaced.
//
// A PG may move back to an OSD that held it and dropped its copy: the
// new copy sits at a new seat (seat.go), which no configuration from
// before the drop lists.

// confWait is how long a leader waits for a configuration change it
// proposed to be applied before it proposes again (raft turns one made
// while another is pending into an empty entry, and drops one made
// during a leadership transfer).
const confWait = 2 * electionTick

// MovePG tells this OSD the members pg is to have, primary first: where
// the operator moved it. A replica that leads changes the group towards
// them (reconcile); an OSD listed with no replica of pg creates an empty
// one for the leader to fill (a learner). minSize is the pool's, as for
// EnsurePG. It returns an error for an empty or repeating list; the
// change itself happens on the loop, later.
func (n *Node) MovePG(pg PG, members []int32, minSize int) error {
	if len(members) == 0 {
		return fmt.Errorf("%w: pg %s: no members", ErrConfig, pg)
	}
	s := slices.Clone(members)
	slices.Sort(s)
	if len(slices.Compact(s)) != len(members) {
		return fmt.Errorf("%w: pg %s: members %v repeat an osd", ErrConfig, pg, members)
	}
	members = slices.Clone(members)
	n.post(context.Background(), func() { n.setMembers(pg, members, minSize) })
	return nil
}

func (n *Node) setMembers(pg PG, members []int32, minSize int) {
	delete(n.rejoin, pg) // a later call supersedes one waiting for a drop
	r := n.replicas[pg]
	if r == nil {
		if !slices.Contains(members, n.cfg.ID) {
			return // nothing of pg here, nor to be
		}
		if n.afterDrop(pg, func() { n.setMembers(pg, members, minSize) }) {
			// Joined once the drop is done (retryDrops): no map may come.
			n.log.Info("joining a pg again once this osd's earlier copy of it is dropped", zap.Stringer("pg", pg))
			return
		}
		l, err := loadRaftLog(n.cfg.Store, pg)
		if err == nil {
			// No voters: an empty replica (newReplica bootstraps none),
			// which campaigns never and waits for the leader's messages.
			r, err = n.addReplica(l, nil, minSize)
		}
		if err != nil {
			n.log.Error("cannot create pg replica", zap.Stringer("pg", pg), zap.Error(err))
			return
		}
		n.log.Info("joining a pg moved here; its leader fills this replica", zap.Stringer("pg", pg))
	}
	r.want, r.minSize, r.primary = members, minSize, members[0]
	if members[0] == n.cfg.ID && r.leader.Load() < 0 && slices.Contains(r.voters, n.cfg.ID) {
		r.campaign = true
	}
	n.touch(r)
}

// reconcile is a leader's step towards the members it was given (see
// above). On the loop, at each tick.
func (n *Node) reconcile(r *replica, now time.Time) {
	if !r.isLeader() || r.frozen.Load() {
		return
	}
	cs := r.log.cs
	if now.Before(r.confUntil) || (r.want == nil && len(cs.GetVotersOutgoing()) == 0) {
		return // a change pending, or nothing to do
	}
	if len(cs.GetVotersOutgoing()) > 0 {
		// Raft leaves a joint configuration by itself when its leader
		// applies it, but drops that proposal while a leadership transfer
		// is under way, and never tries again: an idle PG stayed joint.
		// (Whether or not this leader was given members: it may have
		// restarted since.) Proposed while the first is pending, raft
		// turns it into an empty entry.
		if err := r.rn.ProposeConfChange(&pb.ConfChangeV2{}); err == nil {
			r.confUntil = now.Add(confWait * n.cfg.TickInterval)
			n.touch(r)
		}
		return
	}
	voter := func(id int32) bool { _, ok := seatInSet(cs.GetVoters(), id); return ok }
	learner := func(id int32) bool { _, ok := seatInSet(cs.GetLearners(), id); return ok }
	member := func(id int32) bool { return slices.Contains(r.want, id) }
	for id := range r.lostCopy {
		if !learner(id) && !voter(id) {
			delete(r.lostCopy, id) // removed: a new seat starts clean
		}
	}
	var leaving, joining, promote, remove int32 = -1, -1, -1, -1
	// The voter to remove: one whose copy is lost first (a member whose
	// OSD dropped the copy its seat stands for: noteFloor; it joins again
	// at a new seat once removed), then one not heard from (removing a
	// live one while a down one stays could leave no quorum), the leader
	// itself last (it hands over first: handOver).
	rank := func(id int32) int {
		switch _, heard := n.heardSince(id); {
		case r.lostCopy[id]:
			return -1
		case id == r.self:
			return 2
		case !heard:
			return 0
		}
		return 1
	}
	for _, id := range r.voters {
		if (!member(id) || r.lostCopy[id]) && (leaving < 0 || rank(id) < rank(leaving)) {
			leaving = id
		}
	}
	for _, id := range r.want {
		if !voter(id) && !learner(id) && joining < 0 {
			joining = id
		}
	}
	if leaving < 0 && joining < 0 && len(cs.GetLearners()) == 0 {
		return // there
	}
	if !r.log.snapshots {
		// A new member starts empty, and the log is compacted: without
		// snapshots it could never catch up.
		if now.Sub(r.warnedMove) >= time.Minute {
			r.warnedMove = now
			n.log.Warn("not moving a pg: this osd runs without snapshots (--snapshot-behind 0), with which a new member cannot catch up",
				zap.Stringer("pg", r.pg), zap.Int32s("members", r.want))
		}
		return
	}
	st := r.rn.Status()
	has := func(id int32) bool {
		pr, ok := st.Progress[r.seat(id)]
		return ok && pr.State == tracker.StateReplicate && pr.Match >= st.GetCommit() && !r.lostCopy[id]
	}
	for _, l := range cs.GetLearners() {
		switch id := osdID(l); {
		case r.lostCopy[id] || !member(id):
			if remove < 0 {
				remove = id
			}
		case has(id) && promote < 0:
			promote = id
		}
	}
	if joining >= 0 && n.movesHeld && len(r.voters) >= len(r.want) {
		// norebalance: no move starts a new copy. A learner already
		// copying is still promoted, with its leaving voter; nothing else
		// leaves (a voter removed without its replacement would leave the
		// PG short). A PG short of voters (one whose copy was lost was
		// removed) still takes one in: that is no move.
		if now.Sub(r.warnedMove) >= time.Minute {
			r.warnedMove = now
			n.log.Info("not starting a pg's move: the norebalance flag is set (tsumiki flags unset norebalance)",
				zap.Stringer("pg", r.pg), zap.Int32("joining", joining), zap.Int32s("members", r.want))
		}
		if remove < 0 && promote < 0 {
			return
		}
		joining = -1
	}
	var cc pb.ConfChangeV2
	change := func(t pb.ConfChangeType, seat uint64) {
		cc.Changes = append(cc.Changes, &pb.ConfChangeSingle{Type: t.Enum(), NodeId: proto.Uint64(seat)})
	}
	switch {
	case remove >= 0:
		change(pb.ConfChangeType_ConfChangeRemoveNode, r.seat(remove))
	case joining >= 0:
		change(pb.ConfChangeType_ConfChangeAddLearnerNode, r.newSeat(joining)) // seat.go
	case promote >= 0:
		change(pb.ConfChangeType_ConfChangeAddNode, r.seat(promote))
		if leaving >= 0 {
			change(pb.ConfChangeType_ConfChangeRemoveNode, r.seat(leaving))
		}
	case leaving >= 0 && len(r.voters) > 1 && len(cs.GetLearners()) == 0:
		change(pb.ConfChangeType_ConfChangeRemoveNode, r.seat(leaving))
	default:
		return // a learner still catching up
	}
	if leaving == r.self && cc.Changes[len(cc.Changes)-1].GetNodeId() == r.id && n.handOver(r, has, now) {
		return
	}
	if err := r.rn.ProposeConfChange(&cc); err != nil {
		if !errors.Is(err, raft.ErrProposalDropped) { // dropped: a transfer is under way; the next tick tries again
			n.log.Warn("cannot propose a pg configuration change", zap.Stringer("pg", r.pg), zap.Error(err))
		}
		return
	}
	r.confUntil = now.Add(confWait * n.cfg.TickInterval)
	n.touch(r)
	n.log.Info("changing a pg's members", zap.Stringer("pg", r.pg), zap.Stringer("change", confChangeText{&cc}),
		zap.Int32s("members", r.want))
}

// HoldMoves stops (hold) or resumes the start of new copies for moves on
// this node (the map's norebalance flag; reconcile).
func (n *Node) HoldMoves(hold bool) {
	n.post(context.Background(), func() { n.movesHeld = hold })
}

// handOver makes leader r, which is to leave the group, hand leadership to
// a voter that stays and holds everything committed (the first member
// that does), so that the new leader makes the change. It reports false
// when no voter stays at all (a group of one moving): the leader then
// makes the change itself and steps down once it applies it
// (StepDownOnRemoval). A voter that stays but lags is waited for.
func (n *Node) handOver(r *replica, has func(int32) bool, now time.Time) bool {
	stays := false
	for _, id := range r.want {
		if id == r.self || !slices.Contains(r.voters, id) {
			continue
		}
		stays = true
		if has(id) {
			n.log.Info("handing leadership over before leaving a pg", zap.Stringer("pg", r.pg), zap.Int32("to", id))
			r.endLease()
			r.rn.TransferLeader(r.seat(id))
			r.confUntil = now.Add(confWait * n.cfg.TickInterval)
			n.touch(r)
			return true
		}
	}
	return stays
}

// confChangeText shows a change for the log.
type confChangeText struct{ cc *pb.ConfChangeV2 }

func (c confChangeText) String() string {
	s := ""
	for _, ch := range c.cc.GetChanges() {
		if s != "" {
			s += ", "
		}
		switch ch.GetType() {
		case pb.ConfChangeType_ConfChangeAddNode:
			s += "voter"
		case pb.ConfChangeType_ConfChangeAddLearnerNode:
			s += "learner"
		case pb.ConfChangeType_ConfChangeRemoveNode:
			s += "remove"
		default:
			s += ch.GetType().String()
		}
		s += fmt.Sprintf(" osd.%d", osdID(ch.GetNodeId()))
		if g := seatGen(ch.GetNodeId()); g > 0 {
			s += fmt.Sprintf(" (seat %d)", g)
		}
	}
	return s
}

// removed reports whether r's own applied configuration shows it left
// (leftAt), or whether it joined and was left out again before it held
// anything.
func (r *replica) removed() bool {
	if len(r.log.cs.GetVoters()) == 0 {
		return r.want != nil && !slices.Contains(r.want, r.self) && r.log.last == 0
	}
	return r.leftAt(r.log.cs, r.log.applied, 0)
}

// leftAt reports whether r may drop its copy, knowing that cs is a
// committed configuration, at index idx of term term (0: unknown): it
// lists r in no role, r's members leave it out, and r holds no entry the
// group may have written after idx (see above): idx is at or past r's
// last entry, or r's last entry has a term below term (entries after a
// term-t entry have terms of t or more, so r's tail, left by an old
// leader, is none of the group's). A replica with no configuration yet
// (joining) never left.
func (r *replica) leftAt(cs *pb.ConfState, idx, term uint64) bool {
	if r.want == nil || slices.Contains(r.want, r.self) || len(cs.GetVoters()) == 0 || inConf(cs, r.self) {
		return false
	}
	if idx >= r.log.last {
		return true
	}
	last, err := r.log.Term(r.log.last)
	return err == nil && term > 0 && last < term
}

// tellLeft answers a message (a probe, or a vote request) that osd's
// replica of r's PG sent although neither r's applied configuration nor
// its members list osd: a replica that left and does not know it. It is
// sent a snapshot with no data of r's state (index, term, configuration),
// at most once per election timeout, addressed to seat to (the one it
// wrote from); its receiveSnapshot drops the copy when leftAt allows it,
// and ignores it otherwise. On the loop.
func (n *Node) tellLeft(r *replica, osd int32, to uint64, now time.Time) {
	if r.want == nil || inConf(r.log.cs, osd) || slices.Contains(r.want, osd) || r.log.applied == 0 ||
		now.Sub(r.toldLeft[osd]) < electionTick*n.cfg.TickInterval {
		return
	}
	if r.toldLeft == nil {
		r.toldLeft = map[int32]time.Time{}
	}
	r.toldLeft[osd] = now
	term := r.rn.BasicStatus().GetTerm()
	n.queue(r, &pb.Message{Type: pb.MsgSnap.Enum(), To: proto.Uint64(to), From: proto.Uint64(r.id),
		Term: proto.Uint64(term), Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(r.log.applied), Term: proto.Uint64(r.log.appliedTerm), ConfState: proto.CloneOf(r.log.cs)}}})
	delete(r.snapSent, osd) // not a snapshot raft sent (expireSnapshots)
}

// moving is Deliver's part in moves, for message m from osd to r: it
// answers probes and replicas that left (tellLeft), takes the floors
// probes report (noteFloor) and the lost-copy rejections (noteReject),
// and drops messages for another seat (seated); once m is for r's seat, it
// notes a leader's writes (probe). It reports whether m is taken: raft
// must not see it.
func (n *Node) moving(r *replica, osd int32, m *pb.Message, now time.Time) bool {
	t := m.GetType()
	if t == msgProbe {
		n.tellLeft(r, osd, m.GetFrom(), now)
		n.noteFloor(r, osd, m.GetIndex())
		return true
	}
	if t == msgLost {
		n.takeLost(r, osd, m, now)
		return true
	}
	if r.want != nil {
		if t == pb.MsgAppResp && m.GetReject() {
			n.noteReject(r, osd, m)
		}
		n.tellLeft(r, osd, m.GetFrom(), now)
	}
	if !n.seated(r, m, now) {
		return true
	}
	if t == pb.MsgApp || t == pb.MsgHeartbeat {
		r.heardLeader = now
	}
	return false
}

// msgProbe is the probe's message type: one raft keeps to itself (it is
// never sent between nodes), which Deliver takes before raft would see
// it. An OSD from before moves steps it, and raft ignores it.
const msgProbe = pb.MsgSnapStatus

// probe asks, once per election timeout, whether r left its group: when
// its members leave it out and no leader has written to it for an
// election timeout, it sends a probe to every OSD its members or its
// configuration list, and those that no longer count it answer
// (tellLeft). A probe carries r's seat floor (seat.go: tellFloor).
func (n *Node) probe(r *replica, now time.Time) {
	timeout := electionTick * n.cfg.TickInterval
	if r.want == nil || slices.Contains(r.want, r.self) || len(r.log.cs.GetVoters()) == 0 ||
		now.Sub(r.heardLeader) < timeout || now.Sub(r.probedAt) < timeout {
		return
	}
	r.probedAt = now
	var to []int32
	for _, set := range [][]uint64{r.log.cs.GetVoters(), r.log.cs.GetVotersOutgoing(), r.log.cs.GetLearners()} {
		for _, id := range set {
			to = append(to, osdID(id))
		}
	}
	to = append(to, r.want...)
	slices.Sort(to)
	for _, id := range slices.Compact(to) {
		if id != r.self {
			n.sendProbe(r, r.seat(id))
		}
	}
}

// sendProbe queues a probe from r to seat to, with r's seat floor.
func (n *Node) sendProbe(r *replica, to uint64) {
	n.queue(r, &pb.Message{Type: msgProbe.Enum(), To: proto.Uint64(to), From: proto.Uint64(r.id),
		Term: proto.Uint64(r.rn.BasicStatus().GetTerm()), Index: proto.Uint64(r.log.floor)})
}

// noteReject takes a rejection that leader r got from osd: one naming a
// last entry below the Match raft holds for it comes from a replica that
// lost the copy its seat stands for (see above). Raft ignores it (it never
// lowers a Match); a learner seat so marked is replaced (reconcile).
func (n *Node) noteReject(r *replica, osd int32, m *pb.Message) {
	if !r.isLeader() || !slices.Contains(r.log.cs.GetLearners(), m.GetFrom()) {
		return
	}
	if m.GetTerm() != r.rn.BasicStatus().GetTerm() {
		return // from another term: stale
	}
	lost := false
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		// A rejection of an index below Match is an old one, reordered
		// or duplicated (raft's own test); a copy that is gone rejects
		// the append right after Match, naming a shorter log.
		lost = lost || (id == m.GetFrom() && m.GetIndex() >= pr.Match && m.GetRejectHint() < pr.Match)
	})
	if lost && !r.lostCopy[osd] {
		if r.lostCopy == nil {
			r.lostCopy = map[int32]bool{}
		}
		r.lostCopy[osd] = true
		n.log.Warn("a learner answers with less than it acknowledged; giving it a new seat",
			zap.Stringer("pg", r.pg), zap.Int32("osd", osd), zap.Uint64("its last entry", m.GetRejectHint()))
	}
}

// dropRemoved drops r's copy of its PG once r is removed (see above).
func (n *Node) dropRemoved(r *replica) {
	if r.removed() {
		n.drop(r)
	}
}

// drop stops r and drops its copy of its PG. On the loop; the drop itself
// is retried at each tick until the store takes it (data placed ahead for
// the PG keeps it busy for a cycle).
func (n *Node) drop(r *replica) {
	r.frozen.Store(true)
	r.view.Store(nil)
	r.failAll(ErrNoPG)
	for i, pp := range r.pre {
		n.unplace(pp)
		delete(r.pre, i)
	}
	delete(n.replicas, r.pg)
	n.mu.Lock()
	delete(n.index, r.pg)
	n.mu.Unlock()
	if n.dropping == nil {
		n.dropping = map[PG]uint64{}
	}
	n.dropping[r.pg] = r.dropFloor()
	n.log.Info("dropping this osd's copy of a pg that moved away", zap.Stringer("pg", r.pg), zap.Int32s("members", r.want))
	n.retryDrops()
}

// afterDrop reports whether this OSD is dropping its copy of pg, and if so
// has retryDrops call fn once it is dropped (replacing an earlier fn).
func (n *Node) afterDrop(pg PG, fn func()) bool {
	if _, ok := n.dropping[pg]; !ok {
		return false
	}
	if n.rejoin == nil {
		n.rejoin = map[PG]func(){}
	}
	n.rejoin[pg] = fn
	return true
}

// retryDrops drops the PGs dropRemoved gave up, as far as the store lets
// it now. A failure other than a busy PG stops the OSD: the store would
// finish the drop at its next open, over anything written to the PG since.
func (n *Node) retryDrops() {
	for pg, floor := range n.dropping {
		err := n.cfg.Store.DropPG(pg, floor)
		switch {
		case err == nil:
			delete(n.dropping, pg)
			n.log.Info("dropped this osd's copy of a pg that moved away", zap.Stringer("pg", pg))
			if join := n.rejoin[pg]; join != nil {
				delete(n.rejoin, pg)
				join()
			}
		case errors.Is(err, chunkstore.ErrBusy):
		default:
			n.fatal = fmt.Errorf("drop pg %s: %w", pg, err)
			return
		}
	}
}

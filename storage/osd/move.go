package osd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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
//  1. a member with no seat joins as a learner (its OSD creates an empty
//     replica, with no bootstrap; raft catches it up from the log, or
//     from a snapshot once the log is compacted past it);
//  2. a learner holding everything committed is promoted, and in the same
//     change (joint consensus, left automatically) one voter that is no
//     longer a member is demoted to a learner;
//  3. a voter no longer a member and with no learner to replace it is
//     demoted on its own;
//  4. a learner no longer a member is removed once its replica has been
//     quiet for an election timeout while its OSD answers: it learnt of
//     its demotion and dropped its copy (gone).
//
// Demoting before removing lets the leaving replica find out, from its
// own applied configuration, that it is a learner the members no longer
// list: it then drops its copy (dropRemoved). A learner never counts
// towards a commit, so nothing acknowledged rests on it. (A removed voter
// would seldom learn of its removal: the leader stops sending to it once
// it applies the change.) A leader that is to leave hands leadership to a
// caught-up voter that stays first.

// confWait is how long a leader waits for a configuration change it
// proposed to be applied before it proposes again (raft drops one made
// while another is pending, and a new leader may not have it).
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
	r := n.replicas[pg]
	if r == nil {
		if !slices.Contains(members, n.cfg.ID) {
			return // nothing of pg here, nor to be
		}
		if n.dropping[pg] {
			n.log.Warn("not joining a pg whose earlier copy is still being dropped here; the next map retries",
				zap.Stringer("pg", pg))
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
	if !slices.Equal(r.want, members) {
		r.wantAt = n.cfg.Clock.Now()
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
	if r.want == nil || !r.isLeader() || r.frozen.Load() {
		return
	}
	cs := r.log.cs
	if len(cs.GetVotersOutgoing()) > 0 || now.Before(r.confUntil) {
		return // joint (raft leaves it by itself), or a change pending
	}
	voter := func(id int32) bool { return slices.Contains(cs.GetVoters(), raftID(id)) }
	learner := func(id int32) bool { return slices.Contains(cs.GetLearners(), raftID(id)) }
	member := func(id int32) bool { return slices.Contains(r.want, id) }
	var leaving, joining, promote, remove int32 = -1, -1, -1, -1
	for _, id := range r.voters {
		// The leader itself leaves last: it hands over first (handOver),
		// which needs a voter that stays.
		if !member(id) && (leaving < 0 || leaving == r.self) {
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
		pr, ok := st.Progress[raftID(id)]
		return ok && pr.State == tracker.StateReplicate && pr.Match >= st.GetCommit()
	}
	for _, l := range cs.GetLearners() {
		switch id := osdID(l); {
		case member(id) && has(id) && promote < 0:
			promote = id
		case !member(id) && remove < 0 && n.gone(r, id, now):
			remove = id
		}
	}
	var cc pb.ConfChangeV2
	change := func(t pb.ConfChangeType, id int32) {
		cc.Changes = append(cc.Changes, &pb.ConfChangeSingle{Type: t.Enum(), NodeId: proto.Uint64(raftID(id))})
	}
	demote := false
	switch {
	case joining >= 0:
		change(pb.ConfChangeType_ConfChangeAddLearnerNode, joining)
	case promote >= 0:
		change(pb.ConfChangeType_ConfChangeAddNode, promote)
		if leaving >= 0 {
			change(pb.ConfChangeType_ConfChangeAddLearnerNode, leaving)
			demote = true
		}
	case remove >= 0:
		change(pb.ConfChangeType_ConfChangeRemoveNode, remove)
	case leaving >= 0 && len(r.voters) > 1 && len(cs.GetLearners()) == 0:
		change(pb.ConfChangeType_ConfChangeAddLearnerNode, leaving)
		demote = true
	default:
		return // a learner still catching up, or a leaving one not quiet yet
	}
	if demote && leaving == r.self {
		n.handOver(r, has, now)
		return
	}
	if err := r.rn.ProposeConfChange(&cc); err != nil {
		n.log.Warn("cannot propose a pg configuration change", zap.Stringer("pg", r.pg), zap.Error(err))
		return
	}
	r.confUntil = now.Add(confWait * n.cfg.TickInterval)
	n.touch(r)
	n.log.Info("changing a pg's members", zap.Stringer("pg", r.pg), zap.Stringer("change", confChangeText{&cc}),
		zap.Int32s("members", r.want))
}

// handOver makes leader r, which is to leave the group, hand leadership to
// a voter that stays and holds everything committed (the first member
// that does), so that the new leader makes the change.
func (n *Node) handOver(r *replica, has func(int32) bool, now time.Time) {
	for _, id := range r.want {
		if id != r.self && slices.Contains(r.voters, id) && has(id) {
			n.log.Info("handing leadership over before leaving a pg", zap.Stringer("pg", r.pg), zap.Int32("to", id))
			r.endLease()
			r.rn.TransferLeader(raftID(id))
			r.confUntil = now.Add(confWait * n.cfg.TickInterval)
			n.touch(r)
			return
		}
	}
}

// gone reports whether the learner on osd, no longer a member of r's
// PG, may be removed: its replica of the PG has sent nothing for an
// election timeout since r was given its members (it learnt of its
// demotion and dropped its copy) and since its OSD came back up, and the
// map does not show its OSD down (MarkDown); one that does must have been
// quiet for deadLearner
// election timeouts. A learner whose OSD is down keeps its seat a while
// so that, back, it learns of its demotion from the leader and drops its
// copy: removed at once, an OSD that went down before it applied the
// demotion would keep its copy as a voter of the old configuration, which
// no leader writes to.
func (n *Node) gone(r *replica, osd int32, now time.Time) bool {
	timeout := electionTick * n.cfg.TickInterval
	last := r.heardAt[osd]
	for _, t := range []time.Time{r.wantAt, n.upAt[osd]} {
		if last.Before(t) {
			last = t
		}
	}
	if slices.Contains(n.down, osd) {
		return now.Sub(last) > deadLearner*timeout
	}
	return now.Sub(last) > timeout
}

// MarkDown tells the node which OSDs the cluster map shows down (gone).
func (n *Node) MarkDown(down []int32) {
	down = slices.Clone(down)
	n.post(context.Background(), func() {
		for _, id := range n.down {
			if !slices.Contains(down, id) {
				if n.upAt == nil {
					n.upAt = map[int32]time.Time{}
				}
				n.upAt[id] = n.cfg.Clock.Now() // back: quiet counts from now
			}
		}
		n.down = down
	})
}

// deadLearner: see gone.
const deadLearner = 100

// noteHeard records a message from osd's replica of r's PG, while r moves.
func (r *replica) noteHeard(osd int32, now time.Time) {
	if r.heardAt == nil {
		r.heardAt = map[int32]time.Time{}
	}
	r.heardAt[osd] = now
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
			s += "promote"
		case pb.ConfChangeType_ConfChangeAddLearnerNode:
			s += "learner"
		case pb.ConfChangeType_ConfChangeRemoveNode:
			s += "remove"
		default:
			s += ch.GetType().String()
		}
		s += fmt.Sprintf(" osd.%d", osdID(ch.GetNodeId()))
	}
	return s
}

// removed reports whether r is a replica its group no longer needs: the
// members it was told leave it out, and its applied configuration has it
// as no voter (a learner, or gone).
func (r *replica) removed() bool { return r.leftIn(r.log.cs) }

// leftIn reports whether configuration cs no longer counts on r: r's
// members leave it out, and cs has it as no voter.
func (r *replica) leftIn(cs *pb.ConfState) bool {
	self := raftID(r.self)
	return r.want != nil && !slices.Contains(r.want, r.self) && len(cs.GetVoters()) > 0 &&
		!slices.Contains(cs.GetVoters(), self) && !slices.Contains(cs.GetVotersOutgoing(), self)
}

// inConf reports whether cs lists osd in any role.
func inConf(cs *pb.ConfState, osd int32) bool {
	id := raftID(osd)
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		if slices.Contains(set, id) {
			return true
		}
	}
	return false
}

// tellLeft answers a message that osd's replica of r's PG sent although
// neither r's applied configuration nor its members list osd: a replica
// left behind by a move, which missed its demotion or removal (down or
// cut off meanwhile) and still takes itself for a voter, so that no leader
// writes to it and it never learns. It is sent a snapshot with no data of
// r's state (index, term, configuration), at most once per election
// timeout: its receiveSnapshot drops the copy when that configuration,
// newer than anything it committed, no longer has it as a voter and its
// own map moved the PG away (leftIn); otherwise it ignores it. On the
// loop.
func (n *Node) tellLeft(r *replica, osd int32, now time.Time) {
	if inConf(r.log.cs, osd) || slices.Contains(r.want, osd) || r.log.applied == 0 ||
		now.Sub(r.toldLeft[osd]) < electionTick*n.cfg.TickInterval {
		return
	}
	if r.toldLeft == nil {
		r.toldLeft = map[int32]time.Time{}
	}
	r.toldLeft[osd] = now
	term := r.rn.BasicStatus().GetTerm()
	n.queue(r, &pb.Message{Type: pb.MsgSnap.Enum(), To: proto.Uint64(raftID(osd)), From: proto.Uint64(raftID(r.self)),
		Term: proto.Uint64(term), Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(r.log.applied), Term: proto.Uint64(r.log.appliedTerm), ConfState: proto.CloneOf(r.log.cs)}}})
	delete(r.snapSent, osd) // not a snapshot raft sent (expireSnapshots)
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
		n.dropping = map[PG]bool{}
	}
	n.dropping[r.pg] = true
	n.log.Info("dropping this osd's copy of a pg that moved away", zap.Stringer("pg", r.pg), zap.Int32s("members", r.want))
	n.retryDrops()
}

// retryDrops drops the PGs dropRemoved gave up, as far as the store lets
// it now. A failure other than a busy PG stops the OSD: the store would
// finish the drop at its next open, over anything written to the PG since.
func (n *Node) retryDrops() {
	for pg := range n.dropping {
		err := n.cfg.Store.DropPG(pg)
		switch {
		case err == nil:
			delete(n.dropping, pg)
			n.log.Info("dropped this osd's copy of a pg that moved away", zap.Stringer("pg", pg))
		case errors.Is(err, chunkstore.ErrBusy):
		default:
			n.fatal = fmt.Errorf("drop pg %s: %w", pg, err)
			return
		}
	}
}

package osd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Lost entries: a replica that holds a damaged entry above its commit
// index must not lead (damaged.go: holdsLostEntry), and with its longer
// log it does not vote for a replica that lacks the entry either. When
// two replicas of three each hold a different such entry and the third is
// behind both, nobody can lead: the PG stops for good. Yet such an entry
// can be shown never to have been committed, nor ever to be:
//
//   - a voter that answers, in a term U later than the entry's term t,
//     that its log does not hold the entry (no entry at its index, or one
//     of another term) can only get it from a leader of U or later that
//     holds it; a leader never loses its own entries while it leads, and
//     a voter answering as follower in U cannot lead U;
//   - so once every other voter of the configuration has answered so,
//     all in the same term U, only this replica holds it, and it will
//     never send it: no majority holds it, and none ever will. Neither
//     does any majority hold a later entry of its log (they all follow
//     it, and raft's logs that share an entry share what comes before).
//     The voters of the configuration before are asked too: a leader that
//     had not applied the last change yet counted its quorum with them
//     (prevconf.go); a replica that does not know them (since a snapshot
//     install) proves nothing.
//
// The replica then hides its log from that entry on (hideFrom): raft
// restarts over the log before it, so the replica votes and may lead as
// if it never had the rest; its first append from there replaces them in
// the store. After a restart before that append the store gives the whole
// log back, and the replica proves it again. A configuration change in
// the log between the applied index and the entry could change who must
// answer; the replica then drops nothing (it still asks: see below).
//
// Not every damaged entry above the commit index is lost: other voters
// may hold it, only this replica's commit index being behind. When one
// answers that it holds it (undamaged), the replica may ask for votes and lead again
// for two election timeouts (mayLead): what it cannot send, it hands over
// to a voter that holds it (damaged.go: maybeHandOff), instead of
// stepping down. Two replicas each with such an entry that the other
// holds, and a third behind both, stopped a PG for good before (a random
// simulation schedule found it).
//
// A query carries the querier's term, raised above the entry's: a
// replica without a leader that is behind takes that term, as after any
// message of a later term, so that its answer counts; one with a leader
// does not answer (the leader replaces the entry). Answers go out only
// when nothing of the replica is waiting to be persisted (its term and
// log as answered are on disk).

// msgLost is the type of the lost-entry query and of its answer (Reject
// set): another message raft keeps to itself, taken before raft sees it
// (moving). Index and LogTerm name the entry; an answer's RejectHint says
// what the answerer's log has there.
const msgLost = pb.MsgUnreachable

// What an answer says of the entry (its RejectHint).
const (
	lostHolds        = 0 // the answerer holds it (or its log is compacted past it)
	lostLacks        = 1 // the answerer's log does not hold it
	lostHoldsDamaged = 2 // the answerer holds it, damaged too: it can send it to nobody
)

// lostProof is what a replica that holds a lost entry has learnt of it.
type lostProof struct {
	index, term uint64
	lacks       map[int32]uint64 // the voters that answered they lack it, and the term of each answer
	seen        uint64           // the highest term an answer carried
	askedAt     time.Time
	heldAt      time.Time // when a voter last answered that it holds the entry
}

// lostQuery is a query r owes an answer to.
type lostQuery struct{ to, index, term uint64 }

// resolveLost is the tick's part: a voter that holds a lost entry and has
// had no leader for an election timeout asks the other voters whether
// they hold it, and hides its log from it once they all answered no, in
// one term after the entry's. It also answers the queries it owes.
func (n *Node) resolveLost(r *replica, now time.Time) {
	if len(r.owed) > 0 && !r.rn.HasReady() {
		n.answerLost(r)
	}
	if !r.holdsLostEntry() {
		r.lost = nil
		return
	}
	i := r.firstLostEntry()
	t, err := r.log.Term(i)
	if err != nil {
		return
	}
	if r.lost == nil || r.lost.index != i || r.lost.term != t {
		r.lost = &lostProof{index: i, term: t, lacks: map[int32]uint64{}}
	}
	timeout := electionTick * n.cfg.TickInterval
	if r.isLeader() || !slices.Contains(r.log.cs.GetVoters(), r.id) ||
		(r.rn.BasicStatus().Lead != raft.None && now.Sub(r.heardLeader) < timeout) {
		return
	}
	if u, ok := r.lost.proven(r); ok && !n.confChangeBefore(r, i) {
		if r.rn.HasReady() {
			return // the next tick: raft restarts between cycles only
		}
		n.hideFrom(r, i, u)
		return
	}
	if now.Sub(r.lost.askedAt) < timeout {
		return // (asked even with a change pending: an answer that holds it lets r lead)
	}
	r.lost.askedAt = now
	q := max(r.rn.BasicStatus().GetTerm(), r.lost.seen, t+1)
	for _, id := range r.askSet() {
		n.queue(r, &pb.Message{Type: msgLost.Enum(), To: proto.Uint64(id), From: proto.Uint64(r.id),
			Term: proto.Uint64(q), Index: proto.Uint64(i), LogTerm: proto.Uint64(t)})
	}
}

// mayLead reports whether r may ask for votes and lead: it holds no
// damaged entry above its commit index, or another voter answered, within
// the last two election timeouts, that it holds the first (see above).
func (n *Node) mayLead(r *replica) bool {
	if !r.holdsLostEntry() {
		return true
	}
	p := r.lost
	return p != nil && !p.heldAt.IsZero() && n.cfg.Clock.Now().Sub(p.heldAt) < 2*electionTick*n.cfg.TickInterval &&
		p.index == r.firstLostEntry()
}

// firstLostEntry is the lowest damaged entry above r's commit index.
func (r *replica) firstLostEntry() uint64 {
	commit, first := r.rn.BasicStatus().GetCommit(), uint64(math.MaxUint64)
	for i := range r.log.damaged {
		if i > commit {
			first = min(first, i)
		}
	}
	return first
}

// askSet is the seats of the other voters of r's configuration, joint or
// not, and of the one before it (prevconf.go).
func (r *replica) askSet() []uint64 {
	var out []uint64
	for _, id := range append(confVoters(r.log.cs), r.log.prev...) {
		if id != r.id && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// proven reports whether every other voter of r's configuration and of
// the one before answered that it lacks the entry, all in one term after
// the entry's, and that term. Not knowing the configuration before (since
// a snapshot install), nothing is proven.
func (p *lostProof) proven(r *replica) (uint64, bool) {
	if !r.log.prevKnown {
		return 0, false
	}
	u := uint64(0)
	for _, id := range r.askSet() {
		got, ok := p.lacks[osdID(id)]
		if !ok || got <= p.term || (u != 0 && got != u) {
			return 0, false
		}
		u = got
	}
	return u, u != 0
}

// confChangeBefore reports whether r's log holds a configuration change
// between its applied index and entry i (see above), logging it at most
// once per lostWarnEvery.
func (n *Node) confChangeBefore(r *replica, i uint64) bool {
	if r.log.applied+1 >= i {
		return false
	}
	hs, err := r.log.heads(r.log.applied+1, i)
	if err != nil {
		return true
	}
	for _, h := range hs {
		if h.typ == pb.EntryConfChange || h.typ == pb.EntryConfChangeV2 {
			if now := n.cfg.Clock.Now(); now.Sub(r.warnedLost) >= lostWarnEvery {
				r.warnedLost = now
				n.log.Warn("a raft entry this replica holds above its commit index is damaged, and a configuration change before it is not applied; waiting for a leader",
					zap.Stringer("pg", r.pg), zap.Uint64("index", i))
			}
			return true
		}
	}
	return false
}

// takeLost handles a lost-entry message m from osd for r (on the loop): a
// query is owed an answer, after r takes its term if r has no leader and
// is behind; an answer is noted.
func (n *Node) takeLost(r *replica, osd int32, m *pb.Message, now time.Time) {
	if m.GetTo() != r.id {
		return // another seat of this OSD: gone
	}
	if m.GetReject() {
		p := r.lost
		if p == nil || m.GetIndex() != p.index || m.GetLogTerm() != p.term || !slices.Contains(r.askSet(), m.GetFrom()) {
			return
		}
		p.seen = max(p.seen, m.GetTerm())
		switch m.GetRejectHint() {
		case lostLacks:
			p.lacks[osd] = m.GetTerm()
		case lostHolds:
			delete(p.lacks, osd)
			p.heldAt = now
		default: // holds it damaged too: it can give it to nobody
			delete(p.lacks, osd)
		}
		return
	}
	st := r.rn.BasicStatus()
	if st.Lead != raft.None {
		return // its leader replaces the querier's entry
	}
	if m.GetTerm() > st.GetTerm() {
		// As a message of that term from the querier would: a follower of
		// the term with no leader (stepDown does the same).
		_ = r.rn.Step(&pb.Message{Type: pb.MsgAppResp.Enum(), From: proto.Uint64(m.GetFrom()), To: proto.Uint64(r.id),
			Term: proto.Uint64(m.GetTerm()), Reject: proto.Bool(true)})
		n.touch(r)
	}
	q := lostQuery{to: m.GetFrom(), index: m.GetIndex(), term: m.GetLogTerm()}
	if !slices.Contains(r.owed, q) {
		r.owed = append(r.owed, q)
	}
}

// answerLost answers the queries r owes, with its term and log as they
// are on disk (nothing is waiting to be persisted).
func (n *Node) answerLost(r *replica) {
	term := r.rn.BasicStatus().GetTerm()
	for _, q := range r.owed {
		got, err := r.log.Term(q.index)
		hint := uint64(lostHolds)
		switch _, damaged := r.log.damaged[q.index]; {
		case (err == nil && got != q.term) || errors.Is(err, raft.ErrUnavailable):
			hint = lostLacks
		case err == nil && damaged:
			hint = lostHoldsDamaged
		}
		n.queue(r, &pb.Message{Type: msgLost.Enum(), To: proto.Uint64(q.to), From: proto.Uint64(r.id), Term: proto.Uint64(term),
			Index: proto.Uint64(q.index), LogTerm: proto.Uint64(q.term), Reject: proto.Bool(true), RejectHint: proto.Uint64(hint)})
	}
	r.owed = r.owed[:0]
}

// hideFrom restarts r's raft over its log before entry i, which every
// other voter showed it lacks in term u (see above).
func (n *Node) hideFrom(r *replica, i, u uint64) {
	last := r.log.last
	if i < r.log.first || i > last {
		return
	}
	r.log.hideFrom(i)
	r.endLease()
	if err := r.startRaft(r.id, n.rlog); err != nil {
		// The old raft node's log no longer matches the store's view.
		n.fatal = fmt.Errorf("pg %s: restart raft over the log before a lost entry: %w", r.pg, err)
		return
	}
	r.leader.Store(-1)
	r.failAll(ErrNotLeader)
	r.lost = nil
	n.touch(r)
	n.log.Warn(droppedLost, zap.Stringer("pg", r.pg), zap.Uint64("from", i), zap.Uint64("to", last), zap.Uint64("term", u))
}

// droppedLost is hideFrom's log message (the simulation counts them).
const droppedLost = "dropped raft entries that were never committed: the first is damaged here, and every other voter showed it does not hold it"

// hideFrom drops entries from i on from l's memory; the store keeps them
// until an append at i or before replaces them (see above).
func (l *raftLog) hideFrom(i uint64) {
	if i < l.first || i > l.last {
		return
	}
	l.truncateFrom(i)
}

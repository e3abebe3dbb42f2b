package osd

import (
	"errors"
	"fmt"
	"math"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Damaged entries. The store keeps a large write's data once, in its
// object's slots (chunkstore.Place); a device that damages those slots
// later damages the log entry with them, and the store says so
// (chunkstore.ErrDamagedEntry) instead of rebuilding it. One bad bit must
// not keep the OSD from starting, nor reach another replica:
//
//   - start-up and terms read entry heads only (no data);
//   - raft gets a stand-in for a damaged entry: its type, term, index and
//     op without the data. Applying the stand-in flips the write's slots
//     (Batch.ApplyPlaced), which needs no data and leaves the damaged
//     block where reads and pg verify find it;
//   - a stand-in is never sent: an append that would carry one is cut
//     before it (sendDamaged) and the replica hands leadership to a voter
//     that holds the entry (maybeHandOff); the other replicas hold the
//     data;
//   - a replica with a damaged entry above its commit index does not
//     ask for votes, and steps down if it leads and no voter holds the
//     entry (holdsLostEntry); once every other voter has shown it lacks
//     the entry, it drops it and what follows (lost.go).

// entryHead is what the log itself says about an entry, without its data.
type entryHead struct {
	typ     pb.EntryType
	term    uint64
	size    int    // length of the entry's data (raft's payload size)
	prefix  []byte // the entry's data as the log holds it: all of it, or its start
	missing int    // data bytes after prefix kept in the object's slots (0: none)
}

// parseHead reads an entry head given by the store: the protobuf fields up
// to the data, whose length covers the bytes left out.
func parseHead(h chunkstore.EntryHead) (entryHead, error) {
	var eh entryHead
	if h.Data == 0 {
		e := &pb.Entry{}
		if err := proto.Unmarshal(h.Rest, e); err != nil {
			return eh, fmt.Errorf("%w: %v", ErrBadEntry, err)
		}
		return entryHead{typ: e.GetType(), term: e.GetTerm(), size: len(e.GetData()), prefix: e.GetData()}, nil
	}
	if h.Cut != len(h.Rest) {
		// The data of our entries is their last field (appendEntryCut).
		return eh, fmt.Errorf("%w: placed entry with %d bytes after its data", ErrBadEntry, len(h.Rest)-h.Cut)
	}
	b := h.Rest
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return eh, fmt.Errorf("%w: entry head tag", ErrBadEntry)
		}
		b = b[n:]
		switch {
		case wt == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return eh, fmt.Errorf("%w: entry head field %d", ErrBadEntry, num)
			}
			b = b[n:]
			switch num {
			case 1:
				eh.typ = pb.EntryType(v)
			case 2:
				eh.term = v
			}
		case num == 4 && wt == protowire.BytesType:
			l, n := protowire.ConsumeVarint(b)
			if n < 0 || l != uint64(len(b)-n+h.Data) {
				return eh, fmt.Errorf("%w: entry head data length", ErrBadEntry)
			}
			eh.size, eh.prefix, eh.missing = int(l), b[n:], h.Data
			return eh, nil
		default:
			return eh, fmt.Errorf("%w: entry head field %d type %d", ErrBadEntry, num, wt)
		}
	}
	return eh, fmt.Errorf("%w: placed entry head without its data field", ErrBadEntry)
}

// heads reads the heads of entries [lo, hi) from the store.
func (l *raftLog) heads(lo, hi uint64) ([]entryHead, error) {
	hs, err := l.store.EntryHeads(l.pg, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read raft log heads [%d,%d) of pg %d.%d: %w", lo, hi, l.pg.Pool, l.pg.Seq, err)
	}
	out := make([]entryHead, len(hs))
	for i, h := range hs {
		if out[i], err = parseHead(h); err != nil {
			return nil, fmt.Errorf("entry %d of pg %d.%d: %w", lo+uint64(i), l.pg.Pool, l.pg.Seq, err)
		}
	}
	return out, nil
}

// readDamaged is read for a range that holds a damaged entry: entry by
// entry, a stand-in for each damaged one (standIn), with raft's size bound.
func (l *raftLog) readDamaged(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	var out []*pb.Entry
	size := uint64(0)
	for i := lo; i < hi; i++ {
		e, err := l.readOne(i)
		if err != nil {
			return nil, err
		}
		if size += uint64(proto.Size(e)); len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// readOne reads entry i, or its stand-in when its data is damaged.
func (l *raftLog) readOne(i uint64) (*pb.Entry, error) {
	err := error(chunkstore.ErrDamagedEntry)
	if _, known := l.damaged[i]; !known { // known: do not read its data again
		var ents []*pb.Entry
		if ents, err = l.readStrict(i, i+1, math.MaxUint64); err == nil {
			return ents[0], nil
		}
		if !errors.Is(err, chunkstore.ErrDamagedEntry) {
			return nil, err
		}
	}
	hs, herr := l.heads(i, i+1)
	if herr != nil {
		return nil, herr
	}
	e, serr := l.standIn(i, hs[0])
	if serr != nil {
		return nil, fmt.Errorf("%w (and no stand-in: %w)", err, serr)
	}
	return e, nil
}

// standIn makes the stand-in of damaged entry i from its head: the same
// type, term and index, the op without its data. It records i in damaged.
func (l *raftLog) standIn(i uint64, h entryHead) (*pb.Entry, error) {
	o, err := decodeOp(h.prefix)
	if err != nil || h.missing == 0 || o.Kind != opWrite || len(o.Data) != 0 || h.typ != pb.EntryNormal {
		return nil, fmt.Errorf("%w: entry %d of pg %d.%d is not a placed write", ErrBadEntry, i, l.pg.Pool, l.pg.Seq)
	}
	if l.damaged == nil {
		l.damaged = map[uint64]int{}
	}
	l.damaged[i] = h.missing
	return &pb.Entry{Type: h.typ.Enum(), Term: &h.term, Index: &i, Data: h.prefix}, nil
}

// firstStandIn returns the position of the first stand-in in ents, or -1.
func (l *raftLog) firstStandIn(ents []*pb.Entry) int {
	for k, e := range ents {
		if n, ok := l.damaged[e.GetIndex()]; ok && isStandIn(e, n) {
			return k
		}
	}
	return -1
}

// isStandIn reports whether e, an entry recorded damaged with n bytes
// missing, is its stand-in (and not the entry itself, which raft may
// still hold in memory).
func isStandIn(e *pb.Entry, n int) bool {
	o, err := decodeOp(e.GetData())
	return n > 0 && err == nil && o.Kind == opWrite && len(o.Data) == 0
}

// damagedIn reports whether an entry of [lo, hi) is known to be damaged.
func (l *raftLog) damagedIn(lo, hi uint64) bool {
	for i := range l.damaged {
		if i >= lo && i < hi {
			return true
		}
	}
	return false
}

// forgetDamaged drops the damaged marks of entries that left the log:
// below first, or at and after from (replaced by an append).
func (l *raftLog) forgetDamaged(first, from uint64) {
	for i := range l.damaged {
		if i < first || i >= from {
			delete(l.damaged, i)
		}
	}
}

// sendDamaged filters what r, which holds damaged entries, sends: it
// reports whether m may go. A vote request of a replica that holds a
// damaged uncommitted entry does not, unless another voter holds it
// (holdsLostEntry, mayLead).
// An append is shortened to the entries before its first stand-in, and
// goes if anything is left. The follower then holds what this replica
// could give it (raft takes a shorter append as it takes a lost one); the
// rest must come from a replica that holds it, so r hands its leadership
// over at the next tick (maybeHandOff). Each leader so brings a lagging
// follower up to its own first damaged entry, so the follower catches up
// as long as every entry has a good copy on some voter.
func (n *Node) sendDamaged(r *replica, m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgPreVote, pb.MsgVote:
		return n.mayLead(r)
	case pb.MsgApp:
	default:
		return true
	}
	k := r.log.firstStandIn(m.GetEntries())
	if k < 0 {
		return true
	}
	need := m.GetEntries()[k].GetIndex()
	r.handOff = true
	m.Entries = m.Entries[:k]
	if now := n.cfg.Clock.Now(); now.Sub(r.warnedLost) >= lostWarnEvery {
		r.warnedLost = now
		n.log.Error("a raft entry this OSD must send is damaged on its disk; not sent, leadership goes to a replica that holds it",
			zap.Stringer("pg", r.pg), zap.Int32("to", osdID(m.GetTo())), zap.Uint64("index", need))
	}
	return k > 0
}

// lostWarnEvery spaces the logs of a replica that keeps meeting a damaged
// entry (once per tick otherwise).
const lostWarnEvery = 10 * time.Second

// maybeHandOff moves r's leadership, once r could not send a damaged
// entry (sendDamaged), to the most up-to-date voter that holds every
// entry r has damaged: raft catches a transferee up before handing over,
// and nothing r must send it then is damaged. The entries reach the
// followers that lack them from there. Without such a voter, r steps
// down if it holds a damaged uncommitted entry (holdsLostEntry); else the
// group waits for a replica that holds them (raft keeps probing).
func (n *Node) maybeHandOff(r *replica) {
	if !r.handOff {
		return
	}
	r.handOff = false
	if !r.isLeader() || len(r.log.damaged) == 0 {
		return
	}
	need := uint64(0)
	for i := range r.log.damaged {
		need = max(need, i)
	}
	st := r.rn.Status()
	best := int32(-1)
	for _, v := range r.voters {
		if pr, ok := st.Progress[r.seat(v)]; v != r.self && ok && pr.Match >= need && (best < 0 || pr.Match > st.Progress[r.seat(best)].Match) {
			best = v
		}
	}
	if best >= 0 {
		n.log.Warn("handing leadership over: this replica's copy of a raft entry is damaged",
			zap.Stringer("pg", r.pg), zap.Int32("to", best), zap.Uint64("index", need))
		r.endLease()
		n.touch(r)
		r.rn.TransferLeader(r.seat(best))
		return
	}
	if !n.mayLead(r) {
		// Not committed, and no other voter holds it: it was never
		// acknowledged, and only this replica could make it so, which
		// it cannot. It steps down and sends no vote requests
		// (sendDamaged); the others elect a leader whose log replaces
		// the entry.
		n.log.Warn("stepping down: this replica's copy of an uncommitted raft entry is damaged and no other voter holds it",
			zap.Stringer("pg", r.pg), zap.Uint64("index", need))
		r.stepDown()
		n.touch(r)
		return
	}
	if now := n.cfg.Clock.Now(); now.Sub(r.warnedLost) >= lostWarnEvery {
		r.warnedLost = now
		what := "a committed raft entry is damaged on this OSD and no live voter has shown it holds it; the pg waits for one that does"
		if r.holdsLostEntry() { // held elsewhere (mayLead)
			what = "a raft entry is damaged on this OSD and another voter answered that it holds it; the pg waits for that voter's log to show it, to hand leadership over"
		}
		n.log.Error(what, zap.Stringer("pg", r.pg), zap.Uint64("index", need))
	}
}

// holdsLostEntry reports whether r has a damaged entry above its commit
// index. Such a replica must not lead unless another voter holds the entry
// (lost.go: mayLead): it could not replicate the entry, nor may it drop
// it (until lost.go shows no other voter can ever hold it). Its vote
// requests are not sent (sendDamaged) and it does not start a campaign
// (maybeCampaign); it keeps ticking, since with
// CheckQuorum a replica that never ticks ignores others' votes for ever.
// A transfer (MsgTimeoutNow) makes it a candidate whose requests go
// nowhere; it then returns to following whoever wins.
func (r *replica) holdsLostEntry() bool {
	if len(r.log.damaged) == 0 {
		return false
	}
	commit := r.rn.BasicStatus().GetCommit()
	for i := range r.log.damaged {
		if i > commit {
			return true
		}
	}
	return false
}

// stepDown makes leader r a follower of the next term with no leader, as
// if a peer had shown it that term: raft has no call for it, and a term
// may always grow. Its followers elect a new leader once their election
// timeout passes without its heartbeats.
func (r *replica) stepDown() {
	for _, v := range r.voters {
		if v == r.self {
			continue
		}
		term := r.rn.BasicStatus().GetTerm() + 1
		_ = r.rn.Step(&pb.Message{Type: pb.MsgAppResp.Enum(), From: proto.Uint64(r.seat(v)), To: proto.Uint64(r.id),
			Term: &term, Reject: proto.Bool(true)})
		return
	}
}

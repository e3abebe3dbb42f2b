package osd

import (
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Seats (docs/design-replica-moves.md). A PG's raft members are seats,
// not OSDs: a seat's id holds its OSD and a generation (seatID). A PG's
// first members sit at generation 0; a member a move adds gets the
// leader's last index + 1 (reconcile), so that every seat of an OSD in a
// PG is new. A replica runs raft as its seat and drops every message
// addressed to another seat of its OSD, except a leader's message to a
// newer one, which it takes (seated).
//
// Why: a replica that dropped its copy forgot its log and its vote. Were
// its OSD given the PG back under the same raft id, a replica cut off
// since before the move, whose configuration still counts that id as a
// voter, could get the empty copy's vote (an empty log is never more up
// to date than a candidate's) and lead a second group beside the real one
// (the simulation found it: seed 1061, with moves back). Under seats the
// new copy answers for a new seat only, which no stale configuration
// lists.
//
// A dropped copy leaves a floor in the store (DropPG's tomb, dropFloor):
// a later copy on that OSD never takes a seat below it, so never one the
// dropped copy answered for. A leader that writes to a seat below the
// floor is told the floor (tellFloor), and replaces the seat (noteFloor).

// seatIn returns osd's seat in cs, in any role. A configuration holds at
// most one seat per OSD: reconcile adds one only for an OSD without.
func seatIn(cs *pb.ConfState, osd int32) (uint64, bool) {
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		if id, ok := seatInSet(set, osd); ok {
			return id, true
		}
	}
	return 0, false
}

// seatInSet returns osd's seat among the raft ids of set.
func seatInSet(set []uint64, osd int32) (uint64, bool) {
	for _, id := range set {
		if osdID(id) == osd {
			return id, true
		}
	}
	return 0, false
}

// inConf reports whether cs lists osd in any role, at any seat.
func inConf(cs *pb.ConfState, osd int32) bool {
	_, ok := seatIn(cs, osd)
	return ok
}

// hasSeat reports whether cs lists seat id in any role.
func hasSeat(cs *pb.ConfState, id uint64) bool {
	s, ok := seatIn(cs, osdID(id))
	return ok && s == id
}

// loadedSeat is the raft id a replica of self starts under: generation 0
// when it bootstraps (boot); else the newer of its stored seat (seatField)
// and its seat in its applied configuration (a copy that left and has not
// dropped yet keeps answering as the seat it held: it still holds its
// state); else generation 0 when it applied no configuration yet while
// its OSD never dropped a copy of the PG (its first members' bootstrap,
// torn by a crash, or a first copy joining, which takes its seat from the
// leader). Otherwise none (a copy that left, from before seats were
// stored, or one joining where a copy was dropped).
func loadedSeat(l *raftLog, self int32, boot bool) uint64 {
	if boot {
		return raftID(self)
	}
	id, ok := seatIn(l.cs, self)
	if l.seat != 0 && osdID(l.seat) == self && (!ok || seatGen(l.seat) > seatGen(id)) {
		return l.seat // taken before its configuration was applied, or checkpointed
	}
	if ok {
		return id
	}
	if len(l.cs.GetVoters()) == 0 && l.floor == 0 {
		return raftID(self)
	}
	return seatID(unseatedGen, self)
}

// seat returns the raft id of osd's seat in r's applied configuration
// (r's own for r.self), or generation 0 when it has none.
func (r *replica) seat(osd int32) uint64 {
	if osd == r.self {
		return r.id
	}
	if id, ok := seatIn(r.log.cs, osd); ok {
		return id
	}
	return raftID(osd)
}

// seated reports whether m is for r's seat. A leader's message (an
// append, a heartbeat, a snapshot) to a newer seat of this OSD, at or
// above its floor, gives r that seat: a leader writes only to the seats
// of a configuration it applied, so committed, and a newer seat of an OSD
// was added after its older one was removed. r then runs raft as that
// seat, over the same log. A leader writing to a seat below the floor is
// told the floor (tellFloor). Anything else addressed to another seat is
// dropped: that seat is gone. On the loop, between cycles.
func (n *Node) seated(r *replica, m *pb.Message, now time.Time) bool {
	to := m.GetTo()
	if to == r.id {
		return true
	}
	if t := m.GetType(); t != pb.MsgApp && t != pb.MsgHeartbeat && t != pb.MsgSnap {
		return false
	}
	gen, own := seatGen(to), seatGen(r.id)
	if osdID(to) != r.self || gen == unseatedGen || (own != unseatedGen && gen <= own) {
		return false
	}
	if gen < r.log.floor {
		n.tellFloor(r, m.GetFrom(), now)
		return false
	}
	r.endLease() // (a leader of an old term, which led an older seat)
	if err := r.startRaft(to, n.rlog); err != nil {
		n.log.Error("cannot take a seat in a pg", zap.Stringer("pg", r.pg), zap.Uint64("generation", gen), zap.Error(err))
		return false
	}
	r.id = to
	r.leader.Store(-1)
	r.failAll(ErrNotLeader)
	n.log.Info("took a seat in a pg", zap.Stringer("pg", r.pg), zap.Uint64("generation", gen), zap.Int32("leader", osdID(m.GetFrom())))
	return true
}

// tellFloor tells the leader whose message seat leader addressed to a
// seat of this OSD below r's floor what the floor is, in a probe, at most
// once per election timeout: the leader replaces the seat (noteFloor).
func (n *Node) tellFloor(r *replica, leader uint64, now time.Time) {
	if now.Sub(r.probedAt) < electionTick*n.cfg.TickInterval {
		return
	}
	r.probedAt = now
	n.sendProbe(r, leader)
	n.log.Info("a leader writes to a seat this osd's dropped copy of a pg held; telling it to give a new one",
		zap.Stringer("pg", r.pg), zap.Int32("leader", osdID(leader)), zap.Uint64("floor", r.log.floor))
}

// dropFloor is the floor a dropped copy r leaves (DropPG's tomb): above
// its own seat and above its last entry. The last entry bounds every seat
// r ever answered for that counts: a seat's acknowledgements and votes
// count only once it is a voter, and a learner is promoted only holding
// everything committed, the entry that added it (at an index at or above
// its generation) included, which is never taken back.
func (r *replica) dropFloor() uint64 {
	f := max(r.log.floor, r.log.last+1)
	if g := seatGen(r.id); g != unseatedGen {
		f = max(f, g+1)
	}
	return f
}

// newSeat is the seat leader r gives osd, joining: a generation above
// every seat of osd the group used (its last index + 1) and at or above
// the floor osd reported (noteFloor).
func (r *replica) newSeat(osd int32) uint64 {
	return seatID(max(r.log.last+1, r.floors[osd]), osd)
}

// noteFloor takes the floor osd's copy reported in a probe (tellFloor,
// probe): leader r gives a later seat at or above it (newSeat), and
// replaces a seat below it, which that copy will never take (lostCopy):
// a learner's, or a voter's whose copy the OSD dropped (one emptied by an
// install cut short, then moved away and back before the group removed
// its seat: the simulation, seed 117).
func (n *Node) noteFloor(r *replica, osd int32, floor uint64) {
	if !r.isLeader() || osd == r.self || floor <= r.floors[osd] {
		return
	}
	if r.floors == nil {
		r.floors = map[int32]uint64{}
	}
	r.floors[osd] = floor
	if id, ok := seatIn(r.log.cs, osd); ok && seatGen(id) < floor && !r.lostCopy[osd] {
		if r.lostCopy == nil {
			r.lostCopy = map[int32]bool{}
		}
		r.lostCopy[osd] = true
		n.log.Warn("an osd dropped the copy its seat in a pg stands for; giving it a new seat",
			zap.Stringer("pg", r.pg), zap.Int32("osd", osd), zap.Uint64("floor", floor))
	}
}

// The seat a replica runs as is stored with its hard state, in a field
// of the hard state's record that raft does not know (seatField): a
// replica that took a seat and restarts before a checkpoint holds the
// configuration that lists it, or whose log an install cut short emptied
// (the hard state is all it keeps), still knows its seat (loadedSeat),
// and its drop leaves a floor above it (dropFloor).
const seatField = 1000

// encodeHardState marshals hs with seat (none for a replica with no seat).
func encodeHardState(hs *pb.HardState, seat uint64) ([]byte, error) {
	b, err := proto.Marshal(hs)
	if err != nil || seatGen(seat) == unseatedGen {
		return b, err
	}
	b = protowire.AppendTag(b, seatField, protowire.VarintType)
	return protowire.AppendVarint(b, seat), nil
}

// takeSeatField returns the seat stored in hs's unknown fields (0: none)
// and removes them.
func takeSeatField(hs *pb.HardState) (uint64, error) {
	rest := hs.ProtoReflect().GetUnknown()
	hs.ProtoReflect().SetUnknown(nil)
	var seat uint64
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		rest = rest[n:]
		if num == seatField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(rest)
			if m < 0 {
				return 0, protowire.ParseError(m)
			}
			seat, rest = v, rest[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, rest)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		rest = rest[m:]
	}
	return seat, nil
}

// seatUnsaved reports whether r runs as a seat its store does not hold.
func (r *replica) seatUnsaved() bool {
	return r.log.seat != r.id && seatGen(r.id) != unseatedGen
}

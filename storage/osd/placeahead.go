package osd

import (
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Placing ahead (chunkstore/preplace.go): a follower writes the data of the
// large writes in an append into their slots on the connection's
// goroutine, as the append arrives, so the loop only logs where they went.
// Under a sequential write each loop spent about half its time waiting for
// those direct writes; now one cycle's WAL commit overlaps the next
// append's data writes, and the checksums are computed off the loop too.

// preplacer is what a Store offers for placing ahead (*chunkstore.Store
// does, through ChunkStore).
type preplacer interface {
	Preplace(pg PG, index uint64, entry []byte, p chunkstore.Place) *chunkstore.Preplaced
	Unplace(*chunkstore.Preplaced)
}

// preplaced is data placed ahead for one entry of a PG.
type preplaced struct {
	pg    PG
	index uint64
	pp    *chunkstore.Preplaced
}

// placeAhead writes ahead the large writes of the appends in msgs to PGs
// this OSD hosts. It runs on the caller's goroutine,
// outside the loop.
func (n *Node) placeAhead(msgs []wireMsg) []preplaced {
	st, ok := n.cfg.Store.(preplacer)
	if !ok {
		return nil
	}
	var out []preplaced
	for _, w := range msgs {
		if w.m == nil || w.m.GetType() != pb.MsgApp || len(w.m.Entries) == 0 {
			continue
		}
		if r := n.lookup(w.pg); r == nil || r.frozen.Load() {
			continue
		}
		for _, e := range w.m.Entries {
			d, ok := placedData(e)
			if !ok {
				continue
			}
			cut := appendEntryCut(nil, e, len(d.b))
			pp := st.Preplace(w.pg, e.GetIndex(), cut, chunkstore.Place{Object: d.object, Offset: d.offset,
				Lo: len(cut), Hi: len(cut) + len(d.b), Data: d.b, Direct: true})
			if pp != nil {
				out = append(out, preplaced{w.pg, e.GetIndex(), pp})
			}
		}
	}
	return out
}

// holdPre gives the replicas their data placed ahead, for their next
// stage; what no replica takes is released. It runs on the loop.
func (n *Node) holdPre(pres []preplaced) {
	for _, x := range pres {
		r := n.replicas[x.pg]
		if r == nil {
			n.unplace(x.pp)
			continue
		}
		if r.pre == nil {
			r.pre = map[uint64]*chunkstore.Preplaced{}
		}
		if old := r.pre[x.index]; old != nil {
			n.unplace(old) // a retransmission: the newer is the one raft has
		}
		if len(r.pre) == 0 {
			n.preHeld = append(n.preHeld, r)
		}
		r.pre[x.index] = x.pp
	}
}

// dropPre releases the data placed ahead that the cycle's stages did not
// log: entries raft did not append (it had them, or refused the append).
// Raft gives a follower every entry an append added in its next Ready, so
// what is left after the stages will not be logged.
func (n *Node) dropPre() {
	for _, r := range n.preHeld {
		for idx, pp := range r.pre {
			n.unplace(pp)
			delete(r.pre, idx)
		}
	}
	n.preHeld = n.preHeld[:0]
}

func (n *Node) unplace(pp *chunkstore.Preplaced) {
	if st, ok := n.cfg.Store.(preplacer); ok {
		st.Unplace(pp)
	}
}

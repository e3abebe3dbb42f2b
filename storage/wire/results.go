package wire

import "fmt"

// ObjectEntry is one row of a List result.
type ObjectEntry struct {
	Name    string
	Size    int64
	Version uint64
}

// AppendList encodes a List result.
func AppendList(b []byte, ents []ObjectEntry) []byte {
	e := enc{b}
	e.u32(uint32(len(ents)))
	for _, o := range ents {
		e.str(o.Name)
		e.u64(uint64(o.Size))
		e.u64(o.Version)
	}
	return e.b
}

// DecodeList decodes a List result.
func DecodeList(b []byte) ([]ObjectEntry, error) {
	d := dec{b: b}
	n := d.u32()
	if uint64(n) > uint64(len(b))/20 {
		return nil, fmt.Errorf("%w: list count %d", ErrMalformed, n)
	}
	out := make([]ObjectEntry, 0, n)
	for i := uint32(0); i < n && !d.bad; i++ {
		out = append(out, ObjectEntry{Name: d.str(), Size: int64(d.u64()), Version: d.u64()})
	}
	if !d.done() {
		return nil, fmt.Errorf("%w: list", ErrMalformed)
	}
	return out, nil
}

// Digest is one replica's summary of its copy of a PG.
type Digest struct {
	Applied uint64   // raft index the copy reflects
	Objects uint64   // number of objects
	Sum     [32]byte // hash of every object's name, size, version and content
}

// AppendDigest encodes a Digest result.
func AppendDigest(b []byte, dg Digest) []byte {
	e := enc{b}
	e.u64(dg.Applied)
	e.u64(dg.Objects)
	e.b = append(e.b, dg.Sum[:]...)
	return e.b
}

// DecodeDigest decodes a Digest result.
func DecodeDigest(b []byte) (Digest, error) {
	d := dec{b: b}
	var dg Digest
	dg.Applied = d.u64()
	dg.Objects = d.u64()
	copy(dg.Sum[:], d.take(32))
	if !d.done() {
		return Digest{}, fmt.Errorf("%w: digest", ErrMalformed)
	}
	return dg, nil
}

// PGState is one PG's raft state as seen by one member.
type PGState struct {
	Pool, PG uint32
	Leader   int32 // -1 when unknown
	Term     uint64
	Commit   uint64
	Applied  uint64
	Voters   []int32
	// Lagging is filled only by the leader: members whose log match is
	// behind the leader's last index.
	Lagging []int32
	// Learners are the members joining (a move): they copy the PG and
	// count in no quorum until they hold everything.
	Learners []int32
}

// AppendPGStates encodes a PGStatus result.
func AppendPGStates(b []byte, sts []PGState) []byte {
	e := enc{b}
	e.u32(uint32(len(sts)))
	for _, s := range sts {
		e.u32(s.Pool)
		e.u32(s.PG)
		e.u32(uint32(s.Leader))
		e.u64(s.Term)
		e.u64(s.Commit)
		e.u64(s.Applied)
		appendIDs(&e, s.Voters)
		appendIDs(&e, s.Lagging)
		appendIDs(&e, s.Learners)
	}
	return e.b
}

func appendIDs(e *enc, ids []int32) {
	e.u32(uint32(len(ids)))
	for _, id := range ids {
		e.u32(uint32(id))
	}
}

func decodeIDs(d *dec) []int32 {
	n := d.u32()
	if uint64(n)*4 > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(d.u32())
	}
	return ids
}

// DecodePGStates decodes a PGStatus result.
func DecodePGStates(b []byte) ([]PGState, error) {
	d := dec{b: b}
	n := d.u32()
	if uint64(n) > uint64(len(b))/48 {
		return nil, fmt.Errorf("%w: pg states count %d", ErrMalformed, n)
	}
	out := make([]PGState, 0, n)
	for i := uint32(0); i < n && !d.bad; i++ {
		s := PGState{Pool: d.u32(), PG: d.u32(), Leader: int32(d.u32()), Term: d.u64(), Commit: d.u64(), Applied: d.u64()}
		s.Voters = decodeIDs(&d)
		s.Lagging = decodeIDs(&d)
		s.Learners = decodeIDs(&d)
		out = append(out, s)
	}
	if !d.done() {
		return nil, fmt.Errorf("%w: pg states", ErrMalformed)
	}
	return out, nil
}

package wire

import "fmt"

// RaftMsg is one marshalled raft message for one PG, with the leader's
// log-compaction hint (followers may discard log entries below it; 0 = none).
type RaftMsg struct {
	Pool, PG uint32
	Compact  uint64
	Msg      []byte // raftpb.Message, protobuf-encoded
}

// AppendRaftBatch encodes every message one OSD sends another in one cycle.
func AppendRaftBatch(b []byte, from int32, msgs []RaftMsg) []byte {
	e := enc{b}
	e.u32(uint32(from))
	e.u32(uint32(len(msgs)))
	for _, m := range msgs {
		e.u32(m.Pool)
		e.u32(m.PG)
		e.u64(m.Compact)
		e.bytes(m.Msg)
	}
	return e.b
}

// DecodeRaftBatch decodes a raft batch. Msg fields alias b.
func DecodeRaftBatch(b []byte) (from int32, msgs []RaftMsg, err error) {
	d := dec{b: b}
	from = int32(d.u32())
	n := d.u32()
	if uint64(n) > uint64(len(b))/20 {
		return 0, nil, fmt.Errorf("%w: raft batch count %d", ErrMalformed, n)
	}
	msgs = make([]RaftMsg, 0, n)
	for i := uint32(0); i < n && !d.bad; i++ {
		msgs = append(msgs, RaftMsg{Pool: d.u32(), PG: d.u32(), Compact: d.u64(), Msg: d.bytes()})
	}
	if !d.done() {
		return 0, nil, fmt.Errorf("%w: raft batch", ErrMalformed)
	}
	return from, msgs, nil
}

package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
)

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

// AppendRaftFrame appends a whole raft batch frame (header and body).
func AppendRaftFrame(b []byte, from int32, msgs []RaftMsg) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(RaftBatchSize(msgs)))
	b = append(b, FrameRaft)
	return AppendRaftBatch(b, from, msgs)
}

// RaftBatchSize is the body length AppendRaftBatch would produce.
func RaftBatchSize(msgs []RaftMsg) int {
	n := 8
	for _, m := range msgs {
		n += 20 + len(m.Msg)
	}
	return n
}

// WriteRaftBatch writes a raft batch frame straight into w, without
// building the body in memory first (batches can carry megabytes).
func WriteRaftBatch(w *bufio.Writer, from int32, msgs []RaftMsg) error {
	var hdr [5 + 8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(RaftBatchSize(msgs)))
	hdr[4] = FrameRaft
	binary.BigEndian.PutUint32(hdr[5:], uint32(from))
	binary.BigEndian.PutUint32(hdr[9:], uint32(len(msgs)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, m := range msgs {
		var mh [20]byte
		binary.BigEndian.PutUint32(mh[0:], m.Pool)
		binary.BigEndian.PutUint32(mh[4:], m.PG)
		binary.BigEndian.PutUint64(mh[8:], m.Compact)
		binary.BigEndian.PutUint32(mh[16:], uint32(len(m.Msg)))
		if _, err := w.Write(mh[:]); err != nil {
			return err
		}
		if _, err := w.Write(m.Msg); err != nil {
			return err
		}
	}
	return nil
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

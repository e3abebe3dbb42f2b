package wire

import (
	"fmt"
	"net"
)

// RaftMsg is one raft message for one PG, with the leader's log-compaction
// hint (followers may discard log entries below it; 0 = none). The
// message's entries travel beside its protobuf encoding, not inside it, so
// that their data is written from the sender's memory and decoded as
// slices of the received frame: protobuf would copy every entry once to
// encode it and once more to decode it.
type RaftMsg struct {
	Pool, PG uint32
	Compact  uint64
	Msg      []byte    // raftpb.Message without its entries, protobuf-encoded
	Ents     []RaftEnt // the message's entries, in order
}

// RaftEnt is one raft log entry of a RaftMsg.
type RaftEnt struct {
	Term, Index uint64
	Type        uint8 // raftpb.EntryType
	Data        []byte
}

// Sizes of the fixed parts of a raft batch.
const (
	raftBatchHead = 8  // from, count
	raftMsgHead   = 24 // pool, pg, compact, len(msg), count of entries
	raftEntHead   = 21 // term, index, type, len(data)
)

// AppendRaftBatch encodes every message one OSD sends another in one cycle:
//
//	u32 from, u32 count, count × (u32 pool, u32 pg, u64 compact,
//	u32 len, msg, u32 entries, entries × (u64 term, u64 index, u8 type, u32 len, data))
func AppendRaftBatch(b []byte, from int32, msgs []RaftMsg) []byte {
	e := enc{b}
	appendRaftBody(&e, from, msgs, nil)
	return e.b
}

// appendRaftBody encodes a raft batch into e. Entry data for which cut
// returns true is left out of e: the caller sends it beside.
func appendRaftBody(e *enc, from int32, msgs []RaftMsg, cut func(data []byte) bool) {
	e.u32(uint32(from))
	e.u32(uint32(len(msgs)))
	for _, m := range msgs {
		appendRaftMsgHead(e, &m)
		for _, x := range m.Ents {
			appendRaftEntHead(e, &x)
			if cut == nil || !cut(x.Data) {
				e.b = append(e.b, x.Data...)
			}
		}
	}
}

func appendRaftMsgHead(e *enc, m *RaftMsg) {
	e.u32(m.Pool)
	e.u32(m.PG)
	e.u64(m.Compact)
	e.bytes(m.Msg)
	e.u32(uint32(len(m.Ents)))
}

func appendRaftEntHead(e *enc, x *RaftEnt) {
	e.u64(x.Term)
	e.u64(x.Index)
	e.u8(x.Type)
	e.u32(uint32(len(x.Data)))
}

// AppendRaftFrame appends a whole raft batch frame (header and body).
func AppendRaftFrame(b []byte, from int32, msgs []RaftMsg) []byte {
	return AppendRaftBatch(AppendFrameHeader(b, FrameRaft, RaftBatchSize(msgs)), from, msgs)
}

// RaftBatchSize is the body length AppendRaftBatch would produce.
func RaftBatchSize(msgs []RaftMsg) int {
	n := raftBatchHead
	for _, m := range msgs {
		n += raftMsgHead + len(m.Msg)
		for _, x := range m.Ents {
			n += raftEntHead + len(x.Data)
		}
	}
	return n
}

// AppendRaftFrameVec appends the frame AppendRaftFrame would build to bufs,
// for one vectored write: headers, messages and entry data under
// directPayload bytes are copied into scratch, larger entry data is
// referenced, not copied. It returns the new bufs and scratch; the bytes
// of both must stay unchanged until bufs is written. scratch grows by one
// allocation when it lacks room, so buffers already in bufs stay valid.
func AppendRaftFrameVec(bufs net.Buffers, scratch []byte, from int32, msgs []RaftMsg) (net.Buffers, []byte) {
	copied := 5 + raftBatchHead
	for _, m := range msgs {
		copied += raftMsgHead + len(m.Msg)
		for _, x := range m.Ents {
			copied += raftEntHead
			if len(x.Data) < directPayload {
				copied += len(x.Data)
			}
		}
	}
	if cap(scratch)-len(scratch) < copied {
		scratch = make([]byte, 0, max(2*cap(scratch), copied))
	}
	mark := len(scratch)
	e := enc{AppendFrameHeader(scratch, FrameRaft, RaftBatchSize(msgs))}
	appendRaftBody(&e, from, msgs, func(data []byte) bool {
		if len(data) < directPayload {
			return false
		}
		bufs = append(bufs, e.b[mark:len(e.b):len(e.b)], data)
		mark = len(e.b)
		return true
	})
	if mark < len(e.b) {
		bufs = append(bufs, e.b[mark:len(e.b):len(e.b)])
	}
	return bufs, e.b
}

// DecodeRaftBatch decodes a raft batch. Msg and entry Data fields alias b.
func DecodeRaftBatch(b []byte) (from int32, msgs []RaftMsg, err error) {
	d := dec{b: b}
	from = int32(d.u32())
	n := d.u32()
	if uint64(n) > uint64(len(b))/raftMsgHead {
		return 0, nil, fmt.Errorf("%w: raft batch count %d", ErrMalformed, n)
	}
	msgs = make([]RaftMsg, 0, n)
	for i := uint32(0); i < n && !d.bad; i++ {
		m := RaftMsg{Pool: d.u32(), PG: d.u32(), Compact: d.u64(), Msg: d.bytes()}
		k := d.u32()
		if uint64(k) > uint64(len(d.b))/raftEntHead {
			return 0, nil, fmt.Errorf("%w: raft message entry count %d", ErrMalformed, k)
		}
		if k > 0 {
			m.Ents = make([]RaftEnt, 0, k)
		}
		for j := uint32(0); j < k && !d.bad; j++ {
			m.Ents = append(m.Ents, RaftEnt{Term: d.u64(), Index: d.u64(), Type: d.u8(), Data: d.bytes()})
		}
		msgs = append(msgs, m)
	}
	if !d.done() {
		return 0, nil, fmt.Errorf("%w: raft batch", ErrMalformed)
	}
	return from, msgs, nil
}

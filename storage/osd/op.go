package osd

import (
	"encoding/binary"
	"fmt"
)

// opKind is a mutation carried in a raft log entry.
type opKind uint8

const (
	opWrite    opKind = 1
	opTruncate opKind = 2
	opZero     opKind = 3
	opDelete   opKind = 4
)

const opVersion = 1

// op is the payload of a normal raft entry: one object mutation. Applying an
// op is deterministic and idempotent (each writes absolute state), so
// replaying the log after a crash or a client's retry is harmless.
type op struct {
	Kind   opKind
	ReqID  uint64 // proposer's id for matching the waiter; meaningless elsewhere
	Object string
	Offset int64 // write/zero offset, truncate size
	Length int64 // zero length
	Data   []byte

	// frame, when set, is the request frame Data came in as its tail,
	// which encodeOp may write the op's header into, before Data: the
	// header fits where the request's head was (decoded already), and a
	// MiB of data is not copied and zeroed once more per write.
	frame []byte
}

func encodeOp(o *op) []byte {
	h := opHeaderLen(o)
	if start := len(o.frame) - len(o.Data); len(o.Data) > 0 && start >= h &&
		&o.frame[start] == &o.Data[0] && len(o.frame[start:]) == len(o.Data) {
		appendOpHeader(o.frame[start-h:start-h], o) // in place, before Data
		return o.frame[start-h:]
	}
	return append(appendOpHeader(make([]byte, 0, h+len(o.Data)), o), o.Data...)
}

func opHeaderLen(o *op) int { return 1 + 1 + 8 + 2 + len(o.Object) + 8 + 8 }

// appendOpHeader appends o's encoding up to its data.
func appendOpHeader(b []byte, o *op) []byte {
	b = append(b, opVersion, byte(o.Kind))
	b = binary.BigEndian.AppendUint64(b, o.ReqID)
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.Object)))
	b = append(b, o.Object...)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Offset))
	return binary.BigEndian.AppendUint64(b, uint64(o.Length))
}

func decodeOp(b []byte) (op, error) {
	if len(b) < 12 || b[0] != opVersion {
		return op{}, fmt.Errorf("%w: op header", ErrBadEntry)
	}
	o := op{Kind: opKind(b[1]), ReqID: binary.BigEndian.Uint64(b[2:10])}
	n := int(binary.BigEndian.Uint16(b[10:12]))
	b = b[12:]
	if len(b) < n+16 {
		return op{}, fmt.Errorf("%w: op body", ErrBadEntry)
	}
	o.Object = string(b[:n])
	o.Offset = int64(binary.BigEndian.Uint64(b[n:]))
	o.Length = int64(binary.BigEndian.Uint64(b[n+8:]))
	o.Data = b[n+16:]
	if o.Kind < opWrite || o.Kind > opDelete {
		return op{}, fmt.Errorf("%w: op kind %d", ErrBadEntry, o.Kind)
	}
	return o, nil
}

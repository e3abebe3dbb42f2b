package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Op is an object operation a client asks an OSD for.
type Op uint8

// Operations. Mutations (Write, Truncate, Zero, Delete) go through the PG's
// raft log on its leader; Read, Stat and List are served by the leader after a
// read-index check; ReplicaRead, Digest and PGStatus are answered by any
// member from its local state.
const (
	OpRead        Op = 1
	OpWrite       Op = 2
	OpTruncate    Op = 3
	OpZero        Op = 4
	OpDelete      Op = 5
	OpStat        Op = 6
	OpList        Op = 7
	OpReplicaRead Op = 8  // read this replica's copy once it applied MinIndex
	OpDigest      Op = 9  // digest of this replica's copy of the PG
	OpPGStatus    Op = 10 // raft status of every PG on this OSD (Pool, PG ignored)
	OpTransfer    Op = 11 // leader only: hand leadership of the PG to OSD Offset
)

// Mutates reports whether o changes objects (goes through the raft log).
func (o Op) Mutates() bool {
	return o == OpWrite || o == OpTruncate || o == OpZero || o == OpDelete
}

var opNames = map[Op]string{
	OpRead: "read", OpWrite: "write", OpTruncate: "truncate", OpZero: "zero",
	OpDelete: "delete", OpStat: "stat", OpList: "list", OpReplicaRead: "replica-read",
	OpDigest: "digest", OpPGStatus: "pg-status", OpTransfer: "transfer-leader",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Request is one client request. Fields an op does not use are zero.
type Request struct {
	ID       uint64 // chosen by the client, echoed in the Response
	Op       Op
	Epoch    uint64 // cluster map epoch the client computed placement with
	Pool, PG uint32
	Object   string
	Offset   int64  // Read/Write/Zero/ReplicaRead: byte offset; Truncate: new size
	Length   int64  // Read/Zero/ReplicaRead: byte count; List: max names (0 = default)
	MinIndex uint64 // ReplicaRead: wait until this replica applied this index
	// Sent is when the client began writing the request, in milliseconds
	// since it received the OSD's greeting (FrameGreet; its own clock,
	// modulo 2^32), and Budget how many
	// milliseconds from then it waits for the answer (0: no limit). An OSD
	// proposes a mutation only while its client still waits for it and
	// within SettleFor of its sending (see SettleAfter).
	Sent, Budget uint32
	Data         []byte // Write: payload; List: the "after" cursor
}

// SettleAfter is, with SettleFor, how long after sending a mutation a
// client may take it as settled when no answer came: from then on no OSD
// may apply it. An OSD proposes a mutation only within
// min(Budget, SettleFor(len(Data))) of its sending, less a margin, by its
// own clock (Sent, counted from its greeting, tells how long the request
// waited unread; else it answers StatusTooLate); an entry once proposed
// keeps its place in the PG's raft log. A client that gave up on a
// mutation (its deadline, a connection it gave up) waits until it is
// settled before it reports it failed or sends it again, unless the OSD
// said goodbye (FrameGoodbye: it proposes nothing more from that
// connection). So a mutation never lands after the ones its client made
// once it gave up on it.
const SettleAfter = 5 * time.Second

// MinRate is the slowest transfer the protocol allows for: a request's
// window grows by one second per MiB of data, so that a large write over
// a slow link is not refused for the time it takes to arrive.
const MinRate = 1 << 20 // bytes per second

// AtMinRate is how long n bytes take at MinRate.
func AtMinRate(n int) time.Duration { return time.Duration(n) * time.Second / MinRate }

// SettleFor is SettleAfter plus the time n bytes of data take at MinRate.
func SettleFor(n int) time.Duration { return SettleAfter + AtMinRate(n) }

// Version is the client protocol's version, exchanged in FrameGreet: a
// client and an OSD of different versions refuse each other rather than
// misread each other's requests.
const Version = 2

// Greet is a whole FrameGreet frame (header and body), as each end
// sends it first.
func Greet() []byte {
	return binary.BigEndian.AppendUint32(AppendFrameHeader(nil, FrameGreet, 4), Version)
}

// CheckGreet decodes a FrameGreet body: nil if its version is ours.
func CheckGreet(typ byte, body []byte) error {
	if typ != FrameGreet || len(body) != 4 {
		return fmt.Errorf("%w: no greeting (frame type %d): a tsumiki older than the client protocol v%d?", ErrMalformed, typ, Version)
	}
	if v := binary.BigEndian.Uint32(body); v != Version {
		return fmt.Errorf("%w: protocol v%d, this side speaks v%d: run one tsumiki version on clients and OSDs", ErrMalformed, v, Version)
	}
	return nil
}

// AppendRequest appends r's encoding to b.
func AppendRequest(b []byte, r *Request) []byte {
	return append(AppendRequestHead(b, r), r.Data...)
}

// AppendRequestHead appends r's encoding without the bytes of r.Data (its
// length included): the head FrameWriter.WriteFrame sends before r.Data.
func AppendRequestHead(b []byte, r *Request) []byte {
	e := enc{b}
	e.u64(r.ID)
	e.u8(byte(r.Op))
	e.u64(r.Epoch)
	e.u32(r.Pool)
	e.u32(r.PG)
	e.str(r.Object)
	e.u64(uint64(r.Offset))
	e.u64(uint64(r.Length))
	e.u64(r.MinIndex)
	e.u32(r.Sent)
	e.u32(r.Budget)
	e.u32(uint32(len(r.Data)))
	return e.b
}

// DecodeRequest decodes a request body. Data aliases b.
func DecodeRequest(b []byte) (Request, error) {
	d := dec{b: b}
	var r Request
	r.ID = d.u64()
	r.Op = Op(d.u8())
	r.Epoch = d.u64()
	r.Pool = d.u32()
	r.PG = d.u32()
	r.Object = d.str()
	r.Offset = int64(d.u64())
	r.Length = int64(d.u64())
	r.MinIndex = d.u64()
	r.Sent = d.u32()
	r.Budget = d.u32()
	r.Data = d.bytes()
	if !d.done() {
		return Request{}, fmt.Errorf("%w: request", ErrMalformed)
	}
	return r, nil
}

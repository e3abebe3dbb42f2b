package wire

import "fmt"

// Status is the outcome of a request, as sent on the wire.
type Status uint8

// Statuses. The client turns them into its errors (storage/client errors.go);
// the OSD produces them in one place (osd statusOf).
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1 // object does not exist
	StatusNotLeader  Status = 2 // retry at Response.Leader (-1: unknown yet)
	StatusStaleEpoch Status = 3 // client map older than the OSD's: refresh, retry
	StatusNoPG       Status = 4 // this OSD holds no replica of that PG
	StatusCorrupt    Status = 5 // a block failed its checksum here; read elsewhere
	StatusDegraded   Status = 6 // fewer than min_size replicas reachable: retry
	StatusTooLarge   Status = 7 // beyond the 32 MiB object limit
	StatusInvalid    Status = 8 // malformed request
	StatusInternal   Status = 9
	StatusTimeout    Status = 10 // the OSD could not finish in time; outcome unknown
	StatusClosing    Status = 11 // the OSD is shutting down
	StatusNoSpace    Status = 12 // an OSD of the cluster is full: writes are refused
)

var statusNames = map[Status]string{
	StatusOK: "ok", StatusNotFound: "not found", StatusNotLeader: "not leader",
	StatusStaleEpoch: "stale epoch", StatusNoPG: "no such pg here", StatusCorrupt: "corrupt",
	StatusDegraded: "degraded", StatusTooLarge: "too large", StatusInvalid: "invalid",
	StatusInternal: "internal error", StatusTimeout: "timeout", StatusClosing: "closing",
	StatusNoSpace: "no space (an osd is full)",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Response answers the Request with the same ID.
type Response struct {
	ID     uint64
	Status Status
	Epoch  uint64 // the OSD's map epoch
	Leader int32  // NotLeader: the leader's OSD id if known, else -1
	A, B   uint64 // Stat: size, version; Write/…: applied index; Read: read index
	Msg    string // human detail for errors
	Data   []byte // Read: bytes; List/Digest/PGStatus: encoded result
}

// AppendResponse appends r's encoding to b.
func AppendResponse(b []byte, r *Response) []byte {
	e := enc{b}
	e.u64(r.ID)
	e.u8(byte(r.Status))
	e.u64(r.Epoch)
	e.u32(uint32(r.Leader))
	e.u64(r.A)
	e.u64(r.B)
	e.str(r.Msg)
	e.bytes(r.Data)
	return e.b
}

// DecodeResponse decodes a response body. Data aliases b.
func DecodeResponse(b []byte) (Response, error) {
	d := dec{b: b}
	var r Response
	r.ID = d.u64()
	r.Status = Status(d.u8())
	r.Epoch = d.u64()
	r.Leader = int32(d.u32())
	r.A = d.u64()
	r.B = d.u64()
	r.Msg = d.str()
	r.Data = d.bytes()
	if !d.done() {
		return Response{}, fmt.Errorf("%w: response", ErrMalformed)
	}
	return r, nil
}

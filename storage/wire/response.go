package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

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
	StatusTooLate    Status = 13 // not proposed: its client may have given up on it (see SettleFor); retry
)

var statusNames = map[Status]string{
	StatusOK: "ok", StatusNotFound: "not found", StatusNotLeader: "not leader",
	StatusStaleEpoch: "stale epoch", StatusNoPG: "no such pg here", StatusCorrupt: "corrupt",
	StatusDegraded: "degraded", StatusTooLarge: "too large", StatusInvalid: "invalid",
	StatusInternal: "internal error", StatusTimeout: "timeout", StatusClosing: "closing",
	StatusNoSpace: "no space (an osd is full)", StatusTooLate: "too late",
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
	return append(AppendResponseHead(b, r), r.Data...)
}

// AppendResponseHead appends r's encoding without the bytes of r.Data (its
// length included): the head FrameWriter.WriteFrame sends before r.Data.
func AppendResponseHead(b []byte, r *Response) []byte {
	e := enc{b}
	e.u64(r.ID)
	e.u8(byte(r.Status))
	e.u64(r.Epoch)
	e.u32(uint32(r.Leader))
	e.u64(r.A)
	e.u64(r.B)
	e.str(r.Msg)
	e.u32(uint32(len(r.Data)))
	return e.b
}

// DecodeResponse decodes a response body. Data aliases b.
func DecodeResponse(b []byte) (Response, error) {
	d := dec{b: b}
	r := d.responseFixed()
	r.Msg = d.str()
	r.Data = d.bytes()
	if !d.done() {
		return Response{}, fmt.Errorf("%w: response", ErrMalformed)
	}
	return r, nil
}

// responseFixed decodes a response's fixed fields, ID to B.
func (d *dec) responseFixed() Response {
	var r Response
	r.ID = d.u64()
	r.Status = Status(d.u8())
	r.Epoch = d.u64()
	r.Leader = int32(d.u32())
	r.A = d.u64()
	r.B = d.u64()
	return r
}

// responseHeadLen is the fixed part of a response body: ID, Status, Epoch,
// Leader, A, B and the length of Msg.
const responseHeadLen = 8 + 1 + 8 + 4 + 8 + 8 + 4

// ReadResponse reads one response frame from r without a copy of its data:
// once the head is read, into (when not nil) is called with the response's
// ID, and if it returns a slice exactly as long as the data, the data is
// read into it and Data aliases it; otherwise Data is a new slice. into is
// called at most once and only for a well-formed head.
//
// Errors: ErrFrameTooLarge, ErrMalformed (another frame type, or a body
// that does not decode), or r's error. After any error the stream is out of
// step and the connection must be closed.
func ReadResponse(r *bufio.Reader, into func(id uint64) []byte) (Response, error) {
	typ, size, err := readFrameHeader(r)
	if err != nil {
		return Response{}, err
	}
	if typ != FrameResponse {
		return Response{}, fmt.Errorf("%w: frame type %d where a response was due", ErrMalformed, typ)
	}
	n := int64(size)
	if n < responseHeadLen+4 {
		return Response{}, fmt.Errorf("%w: response of %d bytes", ErrMalformed, n)
	}
	var head [responseHeadLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Response{}, err
	}
	d := dec{b: head[:]}
	resp := d.responseFixed()
	mlen := int64(d.u32())
	rest := n - responseHeadLen
	if mlen > rest-4 {
		return Response{}, fmt.Errorf("%w: response message of %d bytes in %d", ErrMalformed, mlen, n)
	}
	msg := make([]byte, mlen+4)
	if _, err := io.ReadFull(r, msg); err != nil {
		return Response{}, err
	}
	resp.Msg = string(msg[:mlen])
	dlen := int64(binary.BigEndian.Uint32(msg[mlen:]))
	if mlen+4+dlen != rest {
		return Response{}, fmt.Errorf("%w: response data of %d bytes in %d", ErrMalformed, dlen, n)
	}
	var dst []byte
	if into != nil {
		dst = into(resp.ID)
	}
	if int64(len(dst)) != dlen {
		dst = make([]byte, dlen)
	}
	if _, err := io.ReadFull(r, dst); err != nil {
		return Response{}, err
	}
	resp.Data = dst
	return resp, nil
}

package nfsgw

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// ONC RPC (RFC 5531) constants used by the gateway.
const (
	rpcVersion = 2

	msgCall  = 0
	msgReply = 1

	msgAccepted = 0
	msgDenied   = 1

	acceptSuccess      = 0
	acceptProgUnavail  = 1
	acceptProgMismatch = 2
	acceptProcUnavail  = 3
	acceptGarbageArgs  = 4
	acceptSystemErr    = 5

	rejectRPCMismatch = 0
	rejectAuthError   = 1

	authNull    = 0
	authSys     = 1
	authBadCred = 1
	authTooWeak = 5

	maxAuthBody = 400
	// maxRecord bounds one RPC record (a WRITE of 1 MiB plus headers fits).
	maxRecord = 4 << 20
)

// authSysCred is an AUTH_SYS (AUTH_UNIX) credential body.
type authSysCred struct {
	Stamp   uint32
	Machine string
	UID     uint32
	GID     uint32
	GIDs    []uint32
}

// rpcCall is a decoded RPC call header and its undecoded arguments.
type rpcCall struct {
	XID        uint32
	RPCVersion uint32
	Prog       uint32
	Vers       uint32
	Proc       uint32
	CredFlavor uint32
	Cred       []byte
	Args       []byte
}

// decodeCall decodes an RPC call message (one whole record). It returns
// ErrGarbage for anything that is not a well-formed call; a call with a
// valid XID but a bad header is returned along with the error so that it
// can be answered.
func decodeCall(rec []byte) (rpcCall, error) {
	r := &xdrReader{b: rec}
	var c rpcCall
	c.XID = r.u32()
	if mt := r.u32(); r.err == nil && mt != msgCall {
		return c, fmt.Errorf("%w: message type %d", ErrGarbage, mt)
	}
	c.RPCVersion = r.u32()
	c.Prog = r.u32()
	c.Vers = r.u32()
	c.Proc = r.u32()
	c.CredFlavor = r.u32()
	c.Cred = r.opaque(maxAuthBody)
	_ = r.u32() // verifier flavor
	_ = r.opaque(maxAuthBody)
	if r.err != nil {
		return c, r.err
	}
	c.Args = r.rest()
	return c, nil
}

// decodeAuthSys decodes an AUTH_SYS credential body.
func decodeAuthSys(b []byte) (authSysCred, error) {
	r := &xdrReader{b: b}
	var a authSysCred
	a.Stamp = r.u32()
	a.Machine = string(r.opaque(255))
	a.UID = r.u32()
	a.GID = r.u32()
	n := r.u32()
	if n > 16 {
		return a, fmt.Errorf("%w: %d groups", ErrGarbage, n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		a.GIDs = append(a.GIDs, r.u32())
	}
	return a, r.err
}

// readRecord reads one RPC record (RFC 5531 record marking), joining its
// fragments.
func readRecord(br *bufio.Reader) ([]byte, error) { return readRecordInto(br, nil) }

// readRecordInto is readRecord into buf's storage (grown if too small), so
// that a pooled buffer can hold the record.
func readRecordInto(br *bufio.Reader, buf []byte) ([]byte, error) {
	rec := buf[:0]
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint32(hdr[:])
		n := int(v &^ (1 << 31))
		if len(rec)+n > maxRecord {
			return nil, fmt.Errorf("%w: record over %d bytes", ErrGarbage, maxRecord)
		}
		start := len(rec)
		rec = slices.Grow(rec, n)[:start+n]
		if _, err := io.ReadFull(br, rec[start:]); err != nil {
			return nil, err
		}
		if v&(1<<31) != 0 {
			return rec, nil
		}
	}
}

// frame prefixes a record with its (single, last) fragment header.
func frame(rec []byte) []byte {
	out := make([]byte, 4, 4+len(rec))
	binary.BigEndian.PutUint32(out, uint32(len(rec))|1<<31)
	return append(out, rec...)
}

// acceptedReply encodes an accepted reply with stat and body.
func acceptedReply(xid, stat uint32, body []byte) []byte {
	w := &xdrWriter{b: make([]byte, 0, acceptedHeaderLen+len(body))}
	w.acceptedHeader(xid, stat)
	w.b = append(w.b, body...)
	return w.b
}

// acceptedHeaderLen is the size of the header acceptedHeader writes.
const acceptedHeaderLen = 24

// acceptedHeader appends the header of an accepted reply (no verifier
// body) with accept_stat stat.
func (w *xdrWriter) acceptedHeader(xid, stat uint32) {
	w.u32(xid)
	w.u32(msgReply)
	w.u32(msgAccepted)
	w.u32(authNull) // verifier
	w.u32(0)
	w.u32(stat)
}

// progMismatchReply answers a call for a version outside [low, high].
func progMismatchReply(xid, low, high uint32) []byte {
	w := &xdrWriter{}
	w.u32(low)
	w.u32(high)
	return acceptedReply(xid, acceptProgMismatch, w.b)
}

// rpcMismatchReply answers a call whose RPC version is not 2.
func rpcMismatchReply(xid uint32) []byte {
	w := &xdrWriter{}
	w.u32(xid)
	w.u32(msgReply)
	w.u32(msgDenied)
	w.u32(rejectRPCMismatch)
	w.u32(rpcVersion)
	w.u32(rpcVersion)
	return w.b
}

// authErrorReply denies a call for an authentication reason.
func authErrorReply(xid, why uint32) []byte {
	w := &xdrWriter{}
	w.u32(xid)
	w.u32(msgReply)
	w.u32(msgDenied)
	w.u32(rejectAuthError)
	w.u32(why)
	return w.b
}

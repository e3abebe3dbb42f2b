package nfsgw

import (
	"encoding/binary"
	"fmt"
)

// xdrReader decodes XDR from a byte slice. The first error sticks; every
// later read returns zero values, so decoders check err once at the end.
type xdrReader struct {
	b   []byte
	off int
	err error
}

func (r *xdrReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: short %s at byte %d", ErrGarbage, what, r.off)
	}
}

func (r *xdrReader) u32() uint32 {
	if r.err != nil || len(r.b)-r.off < 4 {
		r.fail("uint32")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *xdrReader) u64() uint64 {
	hi := r.u32()
	return uint64(hi)<<32 | uint64(r.u32())
}

// opaque reads a variable-length opaque of at most max bytes.
func (r *xdrReader) opaque(max int) []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if int64(n) > int64(max) {
		r.err = fmt.Errorf("%w: opaque of %d bytes, at most %d", ErrGarbage, n, max)
		return nil
	}
	padded := (int(n) + 3) &^ 3
	if len(r.b)-r.off < padded {
		r.fail("opaque")
		return nil
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += padded
	return v
}

// rest returns the unread bytes.
func (r *xdrReader) rest() []byte { return r.b[r.off:] }

// Read implements io.Reader over the unread bytes (for go-nfs's decoders).
func (r *xdrReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		r.fail("body")
		return 0, r.err
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// xdrWriter appends XDR to a byte slice.
type xdrWriter struct{ b []byte }

func (w *xdrWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

func (w *xdrWriter) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

func (w *xdrWriter) bool(v bool) {
	if v {
		w.u32(1)
	} else {
		w.u32(0)
	}
}

func (w *xdrWriter) opaque(p []byte) {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *xdrWriter) str(s string) { w.opaque([]byte(s)) }

// Write implements io.Writer (for go-nfs's encoders).
func (w *xdrWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

package wire

import "fmt"

// Copying a PG for a snapshot install, on a cluster connection of its own
// (OSD → OSD, after FrameHello): the installing OSD sends one FrameCopy;
// the source answers with a FrameCopyObject (or FrameCopyDamaged) per
// object, then one FrameCopyEnd, and the connection closes.
const (
	FrameCopy       byte = 8  // CopyRequest
	FrameCopyObject byte = 9  // CopyObject without damage
	FrameCopyEnd    byte = 10 // CopyEnd
	// FrameCopyDamaged is a CopyObject with damaged ranges: a frame of its
	// own, so that an OSD from before it refuses it as an unknown frame
	// (the copy fails) rather than taking its ranges for data.
	FrameCopyDamaged byte = 11
)

// CopyRequest asks for a copy of a PG from a replica that has applied Min.
type CopyRequest struct {
	Pool, PG uint32
	Min      uint64
}

// AppendCopyRequest encodes r.
func AppendCopyRequest(b []byte, r CopyRequest) []byte {
	e := enc{b}
	e.u32(r.Pool)
	e.u32(r.PG)
	e.u64(r.Min)
	return e.b
}

// DecodeCopyRequest decodes a CopyRequest.
func DecodeCopyRequest(b []byte) (CopyRequest, error) {
	d := dec{b: b}
	r := CopyRequest{Pool: d.u32(), PG: d.u32(), Min: d.u64()}
	if !d.done() {
		return CopyRequest{}, fmt.Errorf("%w: copy request", ErrMalformed)
	}
	return r, nil
}

// CopyObject is one object of a copy: its name, version and whole content
// (len(Data) is its size). Damaged are the ranges of Data that the source
// could not read (zeros in Data): the copy marks them damaged too.
type CopyObject struct {
	Name    string
	Version uint64
	Damaged []CopyRange // sorted, within Data; FrameCopyDamaged only
	Data    []byte
}

// CopyRange is a byte range [Off, Off+Len) of a copied object.
type CopyRange struct{ Off, Len uint64 }

// maxCopyName bounds an object name in a copy (chunkstore's limit is lower).
const maxCopyName = 4096

// AppendCopyObject encodes o, which has no damaged ranges, as a
// FrameCopyObject body (see AppendCopyDamaged).
func AppendCopyObject(b []byte, o CopyObject) []byte {
	e := enc{b}
	e.str(o.Name)
	e.u64(o.Version)
	e.b = append(e.b, o.Data...)
	return e.b
}

// DecodeCopyObject decodes a CopyObject; Data aliases b.
func DecodeCopyObject(b []byte) (CopyObject, error) {
	d := dec{b: b}
	o, ok := d.copyHead()
	if !ok {
		return CopyObject{}, fmt.Errorf("%w: copied object", ErrMalformed)
	}
	o.Data = d.b
	return o, nil
}

// copyHead decodes a copied object's name and version; ok is false when
// they are malformed.
func (d *dec) copyHead() (o CopyObject, ok bool) {
	name := d.bytes()
	o = CopyObject{Name: string(name), Version: d.u64()}
	return o, !d.bad && len(name) > 0 && len(name) <= maxCopyName
}

// AppendCopyDamaged encodes o as a FrameCopyDamaged body: as
// AppendCopyObject, with the damaged ranges before the data.
func AppendCopyDamaged(b []byte, o CopyObject) []byte {
	e := enc{b}
	e.str(o.Name)
	e.u64(o.Version)
	e.u32(uint32(len(o.Damaged)))
	for _, r := range o.Damaged {
		e.u64(r.Off)
		e.u64(r.Len)
	}
	e.b = append(e.b, o.Data...)
	return e.b
}

// DecodeCopyDamaged decodes a FrameCopyDamaged body; Data aliases b. The
// ranges must be non-empty, in order, apart and within the data.
func DecodeCopyDamaged(b []byte) (CopyObject, error) {
	d := dec{b: b}
	o, ok := d.copyHead()
	n := d.u32()
	if !ok || d.bad || n == 0 || uint64(n) > uint64(len(d.b))/16 {
		return CopyObject{}, fmt.Errorf("%w: damaged copied object", ErrMalformed)
	}
	o.Damaged = make([]CopyRange, n)
	for i := range o.Damaged {
		o.Damaged[i] = CopyRange{Off: d.u64(), Len: d.u64()}
	}
	o.Data = d.b
	end := uint64(0)
	for _, r := range o.Damaged {
		if r.Len == 0 || r.Off < end || r.Off > uint64(len(o.Data)) || r.Len > uint64(len(o.Data))-r.Off {
			return CopyObject{}, fmt.Errorf("%w: damaged copied object: range %d+%d of %d bytes", ErrMalformed, r.Off, r.Len, len(o.Data))
		}
		end = r.Off + r.Len
	}
	return o, nil
}

// CopyEnd ends a copy: Through is the source's applied index once it had
// read the last object; a non-empty Err says why the copy failed instead.
type CopyEnd struct {
	Through uint64
	Err     string
}

// AppendCopyEnd encodes c.
func AppendCopyEnd(b []byte, c CopyEnd) []byte {
	e := enc{b}
	e.u64(c.Through)
	e.str(c.Err)
	return e.b
}

// DecodeCopyEnd decodes a CopyEnd.
func DecodeCopyEnd(b []byte) (CopyEnd, error) {
	d := dec{b: b}
	c := CopyEnd{Through: d.u64(), Err: d.str()}
	if !d.done() {
		return CopyEnd{}, fmt.Errorf("%w: copy end", ErrMalformed)
	}
	return c, nil
}

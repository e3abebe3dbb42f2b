package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// MaxFrame bounds a frame body: the largest object IO (32 MiB) plus headers.
const MaxFrame = 33 << 20

// Frame types.
const (
	FrameRequest  byte = 1 // client → OSD: Request
	FrameResponse byte = 2 // OSD → client: Response
	FrameHello    byte = 4 // OSD → OSD: first frame, names the sender
	FrameRaft     byte = 5 // OSD → OSD: raft batch (AppendRaftBatch)
	// FrameGreet is the first frame each way on a client connection: the
	// protocol version (Greet). The OSD sends it at once, and a
	// request's Sent counts from when the client received it.
	FrameGreet byte = 6
	// FrameGoodbye (OSD → client, empty) ends a client connection the OSD
	// closes: it will propose nothing more from it.
	FrameGoodbye byte = 7
	// Type 3 was a raft batch with entries inside the protobuf encoding;
	// an OSD that sends it is refused (the cluster connection closes).
)

// AppendFrameHeader appends the 5-byte header of a frame of type typ whose
// body is n bytes.
func AppendFrameHeader(b []byte, typ byte, n int) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(n)), typ)
}

// WriteFrame writes one frame (5-byte header, body) to w. It does not flush.
func WriteFrame(w *bufio.Writer, typ byte, body []byte) error {
	var hdr [5]byte
	if _, err := w.Write(AppendFrameHeader(hdr[:0], typ, len(body))); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// ReadFrame reads one frame from r. The returned body is freshly allocated
// and owned by the caller.
func ReadFrame(r *bufio.Reader) (typ byte, body []byte, err error) {
	typ, n, err := readFrameHeader(r)
	if err != nil {
		return 0, nil, err
	}
	body = make([]byte, n)
	if _, err = io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// PeekFrameHeader returns the type and body length of the next frame in r
// without consuming it, waiting for its header; ErrFrameTooLarge past
// MaxFrame.
func PeekFrameHeader(r *bufio.Reader) (typ byte, n uint32, err error) {
	hdr, err := r.Peek(5)
	if err != nil {
		return 0, 0, err
	}
	n = binary.BigEndian.Uint32(hdr[:4])
	if n > MaxFrame {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	return hdr[4], n, nil
}

// readFrameHeader reads a frame's type and body length; ErrFrameTooLarge
// past MaxFrame.
func readFrameHeader(r *bufio.Reader) (typ byte, n uint32, err error) {
	var hdr [5]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	n = binary.BigEndian.Uint32(hdr[:4])
	if n > MaxFrame {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	return hdr[4], n, nil
}

package wire

import (
	"io"
	"net"
)

// directPayload is the smallest payload a FrameWriter sends without copying
// it into its buffer.
const directPayload = 64 << 10

// FrameWriter buffers frames for one connection. A frame is a head (the
// encoded message up to its trailing byte field) and a payload (that
// field's bytes). Small payloads are copied into the buffer; a payload of
// 64 KiB or more is sent together with everything buffered in one writev,
// without a copy. Not safe for concurrent use.
type FrameWriter struct {
	w   io.Writer
	buf []byte
	max int
}

// NewFrameWriter returns a writer on w that flushes by itself once size
// bytes are buffered.
func NewFrameWriter(w io.Writer, size int) *FrameWriter {
	return &FrameWriter{w: w, buf: make([]byte, 0, size), max: size}
}

// WriteFrame queues one frame of type typ whose body is head followed by
// payload. Write errors are the connection's.
func (fw *FrameWriter) WriteFrame(typ byte, head, payload []byte) error {
	fw.buf = append(AppendFrameHeader(fw.buf, typ, len(head)+len(payload)), head...)
	if len(payload) >= directPayload {
		bufs := net.Buffers{fw.buf, payload}
		_, err := bufs.WriteTo(fw.w)
		fw.buf = fw.buf[:0]
		return err
	}
	fw.buf = append(fw.buf, payload...)
	if len(fw.buf) >= fw.max {
		return fw.Flush()
	}
	return nil
}

// Buffered returns the number of bytes queued and not yet written.
func (fw *FrameWriter) Buffered() int { return len(fw.buf) }

// Flush writes what is buffered.
func (fw *FrameWriter) Flush() error {
	if len(fw.buf) == 0 {
		return nil
	}
	_, err := fw.w.Write(fw.buf)
	fw.buf = fw.buf[:0]
	return err
}

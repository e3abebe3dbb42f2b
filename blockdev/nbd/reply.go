package nbd

import (
	"fmt"
	"net"
)

// directPayload is the smallest READ payload sent without copying it into
// the connection's output buffer: it goes out in one writev with what is
// buffered.
const directPayload = 64 << 10

// flushAt is how many buffered bytes make the writer write without waiting
// for the reply queue to run empty.
const flushAt = 256 << 10

// reply is the answer to one request, queued for the writer.
type reply struct {
	handle uint64
	cmd    uint16
	err    error        // nil on success; turned into the error value by nbdErrno
	data   []byte       // READ data on success, from the buffer pool
	offset uint64       // READ offset, for NBD_REPLY_TYPE_OFFSET_DATA
	descs  []descriptor // BLOCK_STATUS answer
	budget int64        // payload budget to give back once sent
}

// writeLoop is the connection's only socket writer. It sends replies in
// the order they are queued and flushes when the queue runs empty. After a
// socket error it cancels the connection and keeps draining the queue so
// that request goroutines and budgets are released.
func (c *conn) writeLoop() error {
	var failed error
	for r := range c.replies {
		if failed == nil {
			failed = c.writeReply(r)
			if failed == nil && len(c.replies) == 0 {
				failed = c.flush()
			}
			if failed != nil {
				failed = fmt.Errorf("nbd: writing reply: %w", failed)
				c.cancel()
			}
		}
		c.release(r)
	}
	if failed == nil {
		if err := c.flush(); err != nil {
			failed = fmt.Errorf("nbd: writing reply: %w", err)
		}
	}
	return failed
}

// release gives back what a reply held once it is sent or dropped.
func (c *conn) release(r *reply) {
	if r.data != nil {
		c.s.bufs.Put(r.data)
	}
	if r.budget > 0 {
		c.budget.Release(r.budget)
	}
	c.slots.Release(1)
}

// writeReply encodes one reply into the socket's buffer. Without
// structured replies every answer is a simple reply. With them, reads and
// block status get one chunk with NBD_REPLY_FLAG_DONE, every error is an
// NBD_REPLY_TYPE_ERROR chunk with a message, and other successes stay
// simple replies (the spec allows that for replies without payload).
func (c *conn) writeReply(r *reply) error {
	errno := nbdErrno(r.err)
	b := c.out
	switch {
	case !c.sess.structured:
		b = appendSimpleReply(b, errno, r.handle)
		if errno == 0 && r.cmd == cmdRead {
			return c.write(b, r.data)
		}
	case errno != 0:
		msg := errorMessage(r.err)
		b = appendChunkHeader(b, replyFlagDone, replyTypeError, r.handle, uint32(6+len(msg)))
		b = be.AppendUint32(b, errno)
		b = be.AppendUint16(b, uint16(len(msg)))
		b = append(b, msg...)
	case r.cmd == cmdRead:
		b = appendChunkHeader(b, replyFlagDone, replyTypeOffsetData, r.handle, uint32(8+len(r.data)))
		b = be.AppendUint64(b, r.offset)
		return c.write(b, r.data)
	case r.cmd == cmdBlockStatus:
		b = appendChunkHeader(b, replyFlagDone, replyTypeBlockStatus, r.handle, uint32(4+8*len(r.descs)))
		b = be.AppendUint32(b, metaAllocationID)
		for _, d := range r.descs {
			b = be.AppendUint32(b, d.length)
			b = be.AppendUint32(b, d.flags)
		}
	default:
		b = appendSimpleReply(b, 0, r.handle)
	}
	return c.write(b, nil)
}

// write queues a reply: hdr was appended to c.out, payload follows it. A
// large payload is sent at once with everything buffered, in one writev
// and without a copy.
func (c *conn) write(hdr, payload []byte) error {
	c.out = hdr
	if len(payload) >= directPayload {
		bufs := net.Buffers{c.out, payload}
		_, err := bufs.WriteTo(c.nc)
		c.out = c.out[:0]
		return err
	}
	c.out = append(c.out, payload...)
	if len(c.out) >= flushAt {
		return c.flush()
	}
	return nil
}

// flush writes what is buffered.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// appendSimpleReply appends a simple reply header.
func appendSimpleReply(dst []byte, errno uint32, handle uint64) []byte {
	dst = be.AppendUint32(dst, magicSimpleReply)
	dst = be.AppendUint32(dst, errno)
	return be.AppendUint64(dst, handle)
}

// appendChunkHeader appends a structured reply chunk header.
func appendChunkHeader(dst []byte, flags, typ uint16, handle uint64, length uint32) []byte {
	dst = be.AppendUint32(dst, magicStructuredReply)
	dst = be.AppendUint16(dst, flags)
	dst = be.AppendUint16(dst, typ)
	dst = be.AppendUint64(dst, handle)
	return be.AppendUint32(dst, length)
}

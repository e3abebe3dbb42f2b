package osd

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// maxDirectBytes bounds the batches sendDirect writes from the caller's
// goroutine: raft's small messages (a 4 KiB write's append, its ack,
// heartbeats), not bulk appends.
const maxDirectBytes = 64 << 10

// peerConn is the sending side of one peer: a queue drained by the peer's
// sender goroutine (TCPTransport.pump) and, while the queue is empty, a
// direct path for small batches.
//
// The direct path exists for latency. Handing a batch to the sender
// goroutine costs a wake-up, and the node loop hands off its appends just
// before its own log write: the woken sender waits in the loop's P while
// the loop is in that synchronous write, for 24 µs at the median and 100 µs
// at the 90th percentile (execution trace, 4 KiB sync writes), on the
// critical path of every replicated write.
type peerConn struct {
	id     int32
	q      chan []wire.RaftMsg
	kick   chan struct{} // wakes the sender for rest or broken alone
	addr   func() string
	queued atomic.Int64  // batches in q or taken from it and not yet written
	stall  time.Duration // how long the sender's write may block

	mu     sync.Mutex      // guards the following; the sender holds it while it writes
	raw    syscall.RawConn // the connection, once its hello is out; nil without one
	rest   []byte          // the end of a frame a direct write left unwritten
	broken error           // a direct write's error, for the sender to end the connection with
	buf    []byte          // frame scratch of the direct path
}

func newPeerConn(id int32, addr func() string) *peerConn {
	return &peerConn{id: id, q: make(chan []wire.RaftMsg, 256), kick: make(chan struct{}, 1), addr: addr, stall: 5 * time.Second}
}

// enqueue hands msgs to the sender goroutine, or drops them when its queue
// is full (raft retransmits).
func (p *peerConn) enqueue(msgs []wire.RaftMsg) {
	p.queued.Add(1)
	select {
	case p.q <- msgs:
	default:
		p.queued.Add(-1)
	}
}

// sendDirect writes msgs to the socket from the calling goroutine when they
// are small, a connection is up, nothing is queued or being written before
// them (so frames keep their order) and the sender is not writing. It never
// blocks: the socket is written without waiting, and what does not fit is
// left in rest for the sender goroutine, which writes it before anything
// else. It reports whether msgs were taken (written, or dropped with a
// broken connection); false means the caller should enqueue them.
func (p *peerConn) sendDirect(from int32, msgs []wire.RaftMsg) bool {
	if wire.RaftBatchSize(msgs) > maxDirectBytes || !p.mu.TryLock() {
		return false
	}
	defer p.mu.Unlock()
	if p.raw == nil || p.rest != nil || p.queued.Load() != 0 {
		return false
	}
	p.buf = wire.AppendRaftFrame(p.buf[:0], from, msgs)
	n, err := writeNow(p.raw, p.buf)
	switch {
	case err != nil:
		// msgs are dropped (raft retransmits). The sender may be idle and
		// would not write again by itself: it must end this connection
		// and dial again, so it is woken with the error.
		p.raw, p.broken = nil, err
		p.wake()
	case n < len(p.buf):
		p.rest = append([]byte(nil), p.buf[n:]...)
		p.wake()
	}
	return true
}

// wake makes the sender goroutine run write even with nothing queued.
func (p *peerConn) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// writeNow writes as much of b to the socket as it takes without waiting.
func writeNow(raw syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := unix.Write(int(fd), b[n:])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					werr = err
				}
				break
			}
			if m <= 0 {
				break
			}
			n += m
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// write is the sender goroutine's write of one coalesced batch: first what
// a direct write left, then msgs; written unless more is queued and less
// than flushBytes is pending. Its deadline is cleared afterwards: it would
// fail later direct writes. It returns a direct write's error, which ends
// the connection.
func (p *peerConn) write(conn net.Conn, out *vecOut, from int32, msgs []wire.RaftMsg) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.broken; err != nil {
		p.broken = nil
		return err
	}
	conn.SetWriteDeadline(time.Now().Add(p.stall))
	defer conn.SetWriteDeadline(time.Time{})
	if p.rest != nil {
		out.bufs = append(out.bufs, p.rest)
		p.rest = nil
	}
	if len(msgs) > 0 {
		out.bufs, out.scratch = wire.AppendRaftFrameVec(out.bufs, out.scratch, from, msgs)
	}
	if len(p.q) == 0 || out.pending() >= flushBytes {
		return out.flush(conn)
	}
	return nil
}

// flushBytes is how much the sender lets pend while more is queued.
const flushBytes = 256 << 10

// vecOut is the sender's pending output: buffers for one vectored write.
type vecOut struct {
	bufs    net.Buffers
	scratch []byte // backs the small buffers in bufs
}

func (o *vecOut) pending() int {
	n := 0
	for _, b := range o.bufs {
		n += len(b)
	}
	return n
}

// flush writes the pending buffers (writev on a TCP connection) and
// forgets them, keeping scratch for reuse.
func (o *vecOut) flush(w net.Conn) error {
	bufs := o.bufs
	_, err := bufs.WriteTo(w)
	clear(o.bufs) // drop references to entry data
	o.bufs, o.scratch = o.bufs[:0], o.scratch[:0]
	if cap(o.scratch) > maxScratch {
		o.scratch = nil
	}
	return err
}

// maxScratch bounds the scratch a sender keeps between writes.
const maxScratch = 1 << 20

// attach opens the direct path on conn, whose hello has been written.
func (p *peerConn) attach(conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil // no raw socket: everything goes through the sender
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.raw = raw
	p.mu.Unlock()
	return nil
}

// detach closes the direct path when the connection ends; a partial frame
// left in rest goes with it.
func (p *peerConn) detach() {
	p.mu.Lock()
	p.raw, p.rest, p.broken = nil, nil, nil
	p.mu.Unlock()
}

// drain discards queued messages while the peer is unreachable.
func (p *peerConn) drain() {
	for {
		select {
		case <-p.q:
			p.queued.Add(-1)
		default:
			return
		}
	}
}

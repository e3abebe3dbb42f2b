package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

var errConnClosed = errors.New("client: connection closed")

// writeTimeout bounds a request's write to the socket: a connection whose
// OSD stopped reading this long is given up.
const writeTimeout = 10 * time.Second

// conn is one pipelined connection to an OSD: many requests in flight,
// answers matched by id.
//
// Requests are written under wmu; a writer flushes only when nobody is
// queued behind it (queued), so requests issued together leave in one
// write. The reader reads each answer's data straight into the buffer its
// caller gave (call.into), without a copy.
type conn struct {
	addr  string
	c     net.Conn
	start time.Time // when it was opened: requests' Sent counts from it

	queued atomic.Int32 // callers waiting for wmu
	wmu    sync.Mutex   // guards the following
	w      *wire.FrameWriter
	head   []byte    // encoding scratch
	dl     time.Time // the write deadline set on c

	timing timing

	mu      sync.Mutex // guards the following
	pending map[uint64]*call
	nextID  uint64
	err     error
	// byPeer: the OSD ended the connection (end of stream, reset), so it
	// proposes nothing more from it and its requests are settled at once.
	byPeer bool
}

// call is one request waiting for its answer.
type call struct {
	ch   chan wire.Response // gets the answer; closed when the connection fails first
	into []byte             // where the answer's data goes if it has this length; may be nil
}

// timing is what a connection waits for: an unanswered mutation to
// settle (wire.SettleAfter), an answer that began to end (writeTimeout).
// Tests shorten them.
type timing struct{ settle, frame time.Duration }

var defaultTiming = timing{settle: wire.SettleAfter, frame: writeTimeout}

func dial(ctx context.Context, addr string, t timing) (*conn, error) {
	// Keepalives find a silent OSD while nothing is in flight, the user
	// timeout while requests are.
	d := net.Dialer{Timeout: 3 * time.Second, Control: setUserTimeout(writeTimeout),
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 3 * time.Second, Interval: time.Second, Count: 5}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cn := &conn{addr: addr, c: c, start: time.Now(), w: wire.NewFrameWriter(c, 128<<10), pending: map[uint64]*call{},
		timing: t}
	go cn.readLoop()
	return cn, nil
}

func (cn *conn) readLoop() {
	r := bufio.NewReaderSize(cn.c, 256<<10)
	var err error
	for {
		var claimed *call
		var resp wire.Response
		// An answer that began must end within writeTimeout: an OSD
		// stopped in the middle of one (SIGSTOP, a paused VM) would
		// otherwise hold its caller for ever, since the kernel still
		// acknowledges and answers keepalives. Between answers the
		// connection may idle.
		if err = cn.c.SetReadDeadline(time.Time{}); err == nil {
			if _, err = r.Peek(1); err == nil {
				err = cn.c.SetReadDeadline(time.Now().Add(cn.timing.frame))
			}
		}
		if err == nil {
			resp, err = wire.ReadResponse(r, func(id uint64) []byte {
				cn.mu.Lock()
				claimed = cn.pending[id]
				delete(cn.pending, id)
				cn.mu.Unlock()
				if claimed == nil {
					return nil // its caller gave up
				}
				return claimed.into
			})
		}
		if err != nil {
			cn.mu.Lock()
			cn.byPeer = cn.err == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
			cn.mu.Unlock()
			cn.fail(err)
			if claimed != nil {
				close(claimed.ch) // after fail: the caller reads cn.err
			}
			return
		}
		if claimed != nil {
			claimed.ch <- resp
		}
	}
}

func (cn *conn) fail(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err == nil {
		cn.err = fmt.Errorf("%w: %s: %v", errConnClosed, cn.addr, err)
	}
	for id, cl := range cn.pending {
		close(cl.ch)
		delete(cn.pending, id)
	}
	cn.c.Close()
}

func (cn *conn) broken() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err != nil
}

// call sends req and waits for its answer or ctx. When into is not nil and
// the answer's data has its length, the data is read into it and the
// answer's Data aliases it.
//
// A mutation (wire.Op.Mutates) that gets no answer, because ctx ended or
// the connection failed, is waited for until it is settled
// (wire.SettleAfter after it was sent) before call returns, unless the
// OSD ended the connection: once call returns, a mutation it did not
// answer can no longer land, and the caller may report it failed or send
// it again.
func (cn *conn) call(ctx context.Context, req *wire.Request, into []byte) (wire.Response, error) {
	if err := ctx.Err(); err != nil {
		return wire.Response{}, err
	}
	cl := &call{ch: make(chan wire.Response, 1), into: into}
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return wire.Response{}, err
	}
	cn.nextID++
	req.ID = cn.nextID
	cn.pending[req.ID] = cl
	cn.mu.Unlock()

	sent, err := cn.send(ctx, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) { // nothing was sent
			cn.forget(req.ID)
			return wire.Response{}, err
		}
		cn.fail(err)
		cn.settle(req, sent)
		return wire.Response{}, fmt.Errorf("%w: %s: %v", errConnClosed, cn.addr, err)
	}
	select {
	case resp, ok := <-cl.ch:
		if !ok {
			cn.settle(req, sent)
			return wire.Response{}, cn.closedErr()
		}
		return resp, nil
	case <-ctx.Done():
		if req.Op.Mutates() {
			// Wait for its answer, or its settling: whichever comes
			// first. The answer is dropped.
			t := time.NewTimer(time.Until(sent.Add(cn.timing.settle)))
			defer t.Stop()
			select {
			case _, ok := <-cl.ch:
				if !ok {
					cn.settle(req, sent)
				}
				return wire.Response{}, ctx.Err()
			case <-t.C:
			}
		}
		if !cn.forget(req.ID) {
			// The reader claimed the answer and may be reading it into
			// into: wait until it is done, so that no write to into
			// happens after we return.
			<-cl.ch
		}
		return wire.Response{}, ctx.Err()
	}
}

// forget drops request id's call, and reports whether it was still
// waiting (else the reader has claimed its answer).
func (cn *conn) forget(id uint64) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	_, waiting := cn.pending[id]
	delete(cn.pending, id)
	return waiting
}

// settle waits, for a mutation sent at sent that got no answer, until it
// is settled (see call), unless the OSD ended the connection.
func (cn *conn) settle(req *wire.Request, sent time.Time) {
	cn.mu.Lock()
	byPeer := cn.byPeer
	cn.mu.Unlock()
	if req.Op.Mutates() && !byPeer {
		time.Sleep(time.Until(sent.Add(cn.timing.settle)))
	}
}

// send writes req, and flushes unless another caller is queued to write
// (the last one flushes). It stamps req with when it was sent and how long
// its caller waits for it (ctx's deadline, or its fence if earlier: see
// WithFence), rounded down: the OSD then errs early, never late. Past the deadline nothing is sent and the error
// is context.DeadlineExceeded.
func (cn *conn) send(ctx context.Context, req *wire.Request) (sent time.Time, err error) {
	cn.queued.Add(1)
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.queued.Add(-1)
	now := time.Now()
	if cn.dl.Sub(now) < writeTimeout-time.Second {
		cn.dl = now.Add(writeTimeout)
		if err := cn.c.SetWriteDeadline(cn.dl); err != nil {
			return now, err
		}
	}
	req.Sent, req.Budget = uint32(now.Sub(cn.start).Milliseconds()), 0
	if dl, ok := Deadline(ctx); ok {
		left := dl.Sub(now).Milliseconds()
		if left <= 0 {
			return now, context.DeadlineExceeded
		}
		req.Budget = uint32(min(left, 1<<32-1))
	}
	cn.head = wire.AppendRequestHead(cn.head[:0], req)
	if err := cn.w.WriteFrame(wire.FrameRequest, cn.head, req.Data); err != nil {
		return now, err
	}
	if cn.queued.Load() > 0 {
		return now, nil
	}
	return now, cn.w.Flush()
}

func (cn *conn) closedErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
	// byPeer: the OSD said goodbye (wire.FrameGoodbye): it proposes
	// nothing more from this connection, so what was pending is settled
	// at once. A reset or end of stream says nothing of the kind (a
	// middlebox may cut a connection the OSD still serves).
	byPeer bool
}

// call is one request waiting for its answer.
type call struct {
	ch   chan wire.Response // gets the answer; closed when the connection fails first
	into []byte             // where the answer's data goes if it has this length; may be nil
}

// timing is what a connection waits for: an unanswered mutation to
// settle (wire.SettleAfter, plus its data at wire.MinRate), an answer
// that began to end (writeTimeout, plus its data at wire.MinRate). Tests
// shorten them.
type timing struct{ settle, frame time.Duration }

var defaultTiming = timing{settle: wire.SettleAfter, frame: writeTimeout}

// settleBy is when req, a mutation sent at sent, is settled: its window
// at the OSD is its budget if that is shorter (the OSD enforces both).
func (t timing) settleBy(sent time.Time, req *wire.Request) time.Time {
	d := t.settle + wire.AtMinRate(len(req.Data))
	if req.Budget > 0 {
		d = min(d, time.Duration(req.Budget)*time.Millisecond)
	}
	return sent.Add(d)
}

func dial(ctx context.Context, addr string, t timing) (*conn, error) {
	// Keepalives find a silent OSD while nothing is in flight, the user
	// timeout while requests are.
	d := net.Dialer{Timeout: 3 * time.Second, Control: setUserTimeout(writeTimeout),
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 3 * time.Second, Interval: time.Second, Count: 5}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(c, 256<<10)
	start, err := greet(ctx, c, r)
	if err != nil {
		c.Close()
		return nil, err
	}
	cn := &conn{addr: addr, c: c, start: start, w: wire.NewFrameWriter(c, 128<<10), pending: map[uint64]*call{},
		timing: t}
	go cn.readLoop(r)
	return cn, nil
}

// greet exchanges greetings (wire.FrameGreet) on a new connection, and
// returns when the OSD's arrived: requests' Sent count from then.
func greet(ctx context.Context, c net.Conn, r *bufio.Reader) (time.Time, error) {
	dl := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	if err := c.SetDeadline(dl); err != nil {
		return time.Time{}, err
	}
	if _, err := c.Write(wire.Greet()); err != nil {
		return time.Time{}, err
	}
	typ, body, err := wire.ReadFrame(r)
	if err != nil {
		return time.Time{}, fmt.Errorf("no greeting from the osd (a tsumiki older than the client protocol v%d?): %w", wire.Version, err)
	}
	start := time.Now()
	if err := wire.CheckGreet(typ, body); err != nil {
		return time.Time{}, err
	}
	return start, c.SetDeadline(time.Time{})
}

func (cn *conn) readLoop(r *bufio.Reader) {
	var err error
	for {
		var claimed *call
		var resp wire.Response
		// An answer that began must end within writeTimeout (and its
		// data at wire.MinRate): an OSD stopped in the middle of one
		// (SIGSTOP, a paused VM) would otherwise hold its caller for
		// ever, since the kernel still acknowledges and answers
		// keepalives. Between answers the connection may idle.
		var typ byte
		var n uint32
		if err = cn.c.SetReadDeadline(time.Time{}); err == nil {
			if typ, n, err = wire.PeekFrameHeader(r); err == nil {
				err = cn.c.SetReadDeadline(time.Now().Add(cn.timing.frame + wire.AtMinRate(int(n))))
			}
		}
		if err == nil && typ == wire.FrameGoodbye {
			// The OSD proposes nothing more from this connection: what
			// is pending is settled now.
			cn.mu.Lock()
			cn.byPeer = cn.err == nil
			cn.mu.Unlock()
			err = errors.New("the osd said goodbye")
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

// maxConnAge is how long a connection is used for new requests: Sent
// counts from its start by the client's clock, and clocks that run at
// slightly different rates drift apart over days; a fresh connection
// starts both again.
const maxConnAge = 10 * time.Minute

// usable reports whether new requests to addr may use cn (nil: no).
func (cn *conn) usable(addr string) bool {
	return cn != nil && !cn.broken() && cn.addr == addr && time.Since(cn.start) < maxConnAge
}

// retire ends cn once no request is in flight on it (at most a minute
// from now): it has been replaced, and new requests go elsewhere.
func (cn *conn) retire() {
	for give := time.Now().Add(time.Minute); time.Now().Before(give); time.Sleep(50 * time.Millisecond) {
		cn.mu.Lock()
		idle := len(cn.pending) == 0
		cn.mu.Unlock()
		if idle {
			break
		}
	}
	cn.fail(errors.New("retired"))
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
// (wire.SettleFor after it was sent) before call returns, unless the
// OSD said goodbye: once call returns, a mutation it did not
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
			t := time.NewTimer(time.Until(cn.timing.settleBy(sent, req)))
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
// is settled (see call), unless the OSD said goodbye.
func (cn *conn) settle(req *wire.Request, sent time.Time) {
	cn.mu.Lock()
	byPeer := cn.byPeer
	cn.mu.Unlock()
	if req.Op.Mutates() && !byPeer {
		time.Sleep(time.Until(cn.timing.settleBy(sent, req)))
	}
}

// send writes req, and flushes unless another caller is queued to write
// (the last one flushes). It stamps req with when it was sent and how long
// its caller waits for it (ctx's deadline, or its fence if earlier: see
// WithFence), rounded down: the OSD then errs early, never late. Past
// the deadline nothing is sent and the error is context.DeadlineExceeded.
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
			// Callers before us may have left their requests for us to
			// flush; ours is not sent.
			if err := cn.w.Flush(); err != nil {
				cn.fail(err)
			}
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

package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// conn is one connection in the transmission phase. Three kinds of
// goroutines share it:
//
//   - the reader (the ServeConn goroutine) reads requests off the socket
//     without waiting for earlier ones to finish, validates them, and starts
//     one goroutine per valid request, bounded by slots and budget;
//   - request goroutines call the Export and queue one reply each;
//   - the writer is the only one that writes to the socket, in the order
//     replies are queued (so replies go out of request order).
//
// slots bounds requests from header read to reply sent (so the replies
// channel, sized to the same bound, never blocks); budget bounds payload
// bytes held (write data before WriteAt returns, read data until sent).
type conn struct {
	s    *Server
	nc   net.Conn
	br   *bufio.Reader // reader's
	sess *session
	log  *zap.Logger

	ctx    context.Context // cancelled on shutdown, on a socket error, and on any end but DISC
	cancel context.CancelFunc

	replies chan *reply
	slots   *semaphore.Weighted
	budget  *semaphore.Weighted
	ops     sync.WaitGroup // request goroutines
	writes  barrier

	out []byte // the writer's replies not yet written to nc

	// the reader's (stall.go)
	waited       time.Duration // blocked in acquire since the last look or catch-up
	maxWait      time.Duration // the longest of those waits
	lookAgain    bool          // the last look was cut short
	lastLook     time.Time
	pending      []pendingReq // requests read ahead, not started yet
	pendingBytes int64        // their write payloads
}

// op is one validated request handed to a request goroutine.
type op struct {
	req     request
	payload []byte          // WRITE data, from the buffer pool
	writeID uint64          // barrier id of a write-type request
	waits   []chan struct{} // writes a FLUSH waits for
}

func newConn(ctx context.Context, cancel context.CancelFunc, s *Server, nc net.Conn,
	br *bufio.Reader, sess *session, log *zap.Logger) *conn {
	return &conn{
		s: s, nc: nc, br: br, sess: sess, log: log,
		ctx: ctx, cancel: cancel,
		replies: make(chan *reply, s.cfg.MaxInFlight),
		slots:   semaphore.NewWeighted(int64(s.cfg.MaxInFlight)),
		budget:  semaphore.NewWeighted(s.cfg.MaxInFlightBytes),
	}
}

// serve runs the transmission phase until the client disconnects, breaks
// the protocol, the socket fails or ctx is cancelled. Requests in flight
// have always returned, and their replies been sent (or dropped if the
// socket is gone), before it returns.
//
// Only NBD_CMD_DISC lets the requests in flight run to their end. Any other
// end (EOF, a read error, a protocol violation) is abrupt, as the NBD spec
// says of EOF without DISC: ctx is cancelled so that they stop as soon as
// they can. Nobody is left to read their replies, and a client that
// resends its unanswered requests on another connection (the Linux
// client's multi-conn requeue, qemu's reconnect) may by then have written
// the same range again: an old write still being retried must not land
// after that.
func (c *conn) serve() error {
	werr := make(chan error, 1)
	go func() { werr <- c.writeLoop() }()
	disc, rerr := c.readLoop()
	if !disc {
		c.cancel()
	}
	c.ops.Wait()
	close(c.replies)
	if err := <-werr; rerr == nil {
		rerr = err
	}
	return rerr
}

// isWrite reports whether a command changes the export.
func isWrite(cmd uint16) bool {
	return cmd == cmdWrite || cmd == cmdTrim || cmd == cmdWriteZeroes
}

// readLoop reads requests until NBD_CMD_DISC, EOF, a protocol violation or
// cancellation. It returns whether the client sent NBD_CMD_DISC, and nil
// for a clean end (DISC, EOF between requests, cancellation).
func (c *conn) readLoop() (disc bool, err error) {
	defer c.dropPending()
	for {
		var p pendingReq
		if len(c.pending) > 0 {
			p = c.pending[0]
			c.pending = c.pending[1:]
			c.pendingBytes -= int64(len(p.payload))
		} else {
			t0 := time.Now()
			r, err := c.readHeader()
			if time.Since(t0) >= c.s.cfg.StallIdle {
				// The reader waited for the client: what it sent before
				// has been read and started (requests read ahead are
				// taken before the socket is read).
				c.waited = 0
			}
			if err != nil {
				if c.ctx.Err() != nil || errors.Is(err, io.EOF) {
					return false, nil
				}
				return false, err
			}
			p.req = r
		}
		if p.req.Type == cmdDisc {
			c.log.Debug("client disconnected")
			return true, nil
		}
		if err := c.dispatch(p); err != nil {
			if c.ctx.Err() != nil || errors.Is(err, errAbandoned) {
				return false, nil
			}
			return false, err
		}
	}
}

// readHeader reads and decodes one request header off the socket.
func (c *conn) readHeader() (request, error) {
	var hb [requestHeaderLen]byte
	if _, err := io.ReadFull(c.br, hb[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return request{}, err
		}
		return request{}, fmt.Errorf("nbd: reading request: %w", err)
	}
	return parseRequest(hb[:])
}

// dispatch validates r, reads its payload, and starts it. Invalid requests
// are answered at once; their WRITE payload is read and discarded, whatever
// its length, so the connection stays usable. It returns an error only when
// the connection cannot go on.
func (c *conn) dispatch(p pendingReq) error {
	r := p.req
	if err := c.acquire(c.slots, 1); err != nil {
		c.putPayload(p)
		return err
	}
	if err := c.sess.check(r); err != nil {
		if r.Type == cmdWrite && !p.read {
			if _, derr := io.CopyN(io.Discard, c.br, int64(r.Length)); derr != nil {
				c.slots.Release(1)
				return fmt.Errorf("nbd: discarding write payload: %w", derr)
			}
		}
		c.putPayload(p)
		c.log.Debug("invalid request", zap.Uint16("cmd", r.Type), zap.Uint16("flags", r.CommandFlags),
			zap.Uint64("offset", r.Offset), zap.Uint32("length", r.Length), zap.Error(err))
		c.replies <- &reply{handle: r.Handle, cmd: r.Type, err: err}
		return nil
	}
	o := &op{req: r}
	var held int64 // budget
	switch r.Type {
	case cmdWrite:
		if err := c.acquire(c.budget, int64(r.Length)); err != nil {
			c.putPayload(p)
			c.slots.Release(1)
			return err
		}
		held = int64(r.Length)
		o.payload = p.payload
		if !p.read {
			o.payload = c.s.bufs.Get(int(r.Length))
			if _, err := io.ReadFull(c.br, o.payload); err != nil {
				c.s.bufs.Put(o.payload)
				c.budget.Release(held)
				c.slots.Release(1)
				return fmt.Errorf("nbd: reading write payload: %w", err)
			}
		}
	case cmdRead:
		if err := c.acquire(c.budget, int64(r.Length)); err != nil {
			c.slots.Release(1)
			return err
		}
		held = int64(r.Length)
	}
	if err := c.afterStall(); err != nil {
		if o.payload != nil {
			c.s.bufs.Put(o.payload)
		}
		c.budget.Release(held)
		c.slots.Release(1)
		return err
	}
	if r.Type == cmdFlush {
		o.waits = c.writes.snapshot()
	}
	if isWrite(r.Type) {
		o.writeID = c.writes.start()
	}
	c.ops.Add(1)
	go c.run(o)
	return nil
}

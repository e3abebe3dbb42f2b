package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// A stalled connection's requests must not start after the client gave
// them up.
//
// The reader stops reading while a connection's slots or budget are used
// up, for example while the cluster under the export is stalled. The
// client's later requests wait in the socket meanwhile. A client that
// times out (the Linux driver with a timeout and several connections,
// qemu reconnecting) shuts its end of this connection and sends the same
// requests again on another one, then goes on writing there. If the copies
// left here started once room came back, an old write would land after
// the newer writes over the same range, and an acknowledged write would be
// lost: the image orders only the writes it has been given
// (blockdev/image, Image.order).
//
// The client shuts its end before it resends: the Linux driver shuts the
// socket down before it requeues, qemu closes it before it reconnects. So
// the reader looks before it starts another request once requests may
// have waited unread for StallCheck: after one wait for room of
// StallCheck, or after waits adding up to StallCheck since it last waited
// StallIdle for the client to send, at once if one of them lasted a fifth
// of StallCheck, else at most once per stallRelook times StallCheck
// (ordinary backpressure makes many short waits, and a look stops the
// pipeline for StallIdle). To look, it reads what the client sent until StallIdle
// passes without more (an end shut down arrives after the data ahead of
// it, which flows once the reader makes room), keeping the requests read
// ahead in memory. If the stream ended (EOF, a reset) without
// NBD_CMD_DISC, the client gave up what it had not been answered: nothing
// more starts and the connection ends as an abrupt one does. A client
// that sent NBD_CMD_DISC gets its requests before it run, as the protocol
// asks. A client still there when the reader looked had given up nothing
// yet. A look cut short by the bound on what it may hold tells nothing:
// the reader looks again before each request it starts until one look
// ends on a quiet socket or its end.
//
// Not covered: a client that shuts its end within StallIdle after a look,
// before the requests read ahead have all started, is seen only at the
// next look; a client whose round trip is longer than StallIdle may look
// present when it has gone; under ordinary backpressure a request may
// wait unread up to stallRelook times StallCheck before a look (waits
// each shorter than a fifth of StallCheck); and a client with more in
// flight on one connection than twice MaxInFlightBytes (the budget and
// the look's bound), or twice MaxInFlight requests, can make every look
// end cut short. A client that has shut its end has no more in flight
// than its socket buffers, a few MiB by default.

// pendingReq is a request read ahead, or the request just read.
type pendingReq struct {
	req     request
	payload []byte // a WRITE's data, from the buffer pool, once read
	read    bool   // a WRITE whose payload was read (into payload)
}

// errAbandoned: the client shut its end of a stalled connection without
// NBD_CMD_DISC; the connection ends as an abrupt one does.
var errAbandoned = errors.New("nbd: client left the stalled connection")

// stallRelook: under ordinary backpressure (every wait shorter than
// StallCheck/stallRelook), the reader looks at most once per stallRelook
// times StallCheck.
const stallRelook = 5

// lookResult is what a look found.
type lookResult int

const (
	lookQuiet    lookResult = iota // the client sent nothing more for StallIdle: it is there
	lookEnded                      // the stream ended (EOF, a reset)
	lookDisc                       // NBD_CMD_DISC was read: what is before it runs
	lookCutShort                   // bound reached, or an invalid WRITE: nothing known
)

// acquire takes n from sem, counting the time it waits (stall.go).
func (c *conn) acquire(sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	t0 := time.Now()
	err := sem.Acquire(c.ctx, n)
	w := time.Since(t0)
	c.waited += w
	c.maxWait = max(c.maxWait, w)
	return err
}

// afterStall looks ahead when the rules above call for it. It returns
// errAbandoned if the client shut its end without NBD_CMD_DISC.
func (c *conn) afterStall() error {
	cfg := c.s.cfg
	due := c.lookAgain || c.maxWait >= cfg.StallCheck ||
		c.waited >= cfg.StallCheck && (c.maxWait >= cfg.StallCheck/stallRelook || time.Since(c.lastLook) >= stallRelook*cfg.StallCheck)
	if !due {
		return nil
	}
	c.waited, c.maxWait, c.lookAgain = 0, 0, false
	c.lastLook = time.Now()
	res, err := c.lookAhead()
	switch {
	case err != nil:
		return err
	case res == lookEnded:
		c.log.Info("client closed a stalled connection without NBD_CMD_DISC; its requests not started are dropped (it sends them again elsewhere)",
			zap.Int("dropped", len(c.pending)+1))
		return errAbandoned
	case res == lookCutShort:
		c.lookAgain = true
	}
	return nil
}

// lookAhead reads requests into c.pending until StallIdle passes without
// more, the stream ends, NBD_CMD_DISC is read, or it holds
// MaxInFlightBytes of write data (a WRITE that starts below the bound is
// read whole) or twice MaxInFlight requests. The data of a WRITE too
// large to be valid is dropped as it is read.
func (c *conn) lookAhead() (lookResult, error) {
	if n := len(c.pending); n > 0 && c.pending[n-1].req.Type == cmdDisc {
		return lookDisc, nil // the client sends nothing after it
	}
	for c.pendingBytes < c.s.cfg.MaxInFlightBytes && len(c.pending) < 2*c.s.cfg.MaxInFlight {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.StallIdle))
		_, perr := c.br.Peek(1)
		if err := c.clearReadDeadline(); err != nil {
			return 0, err
		}
		var ne interface{ Timeout() bool }
		switch {
		case perr == nil:
		case errors.As(perr, &ne) && ne.Timeout():
			return lookQuiet, nil
		default:
			return lookEnded, nil
		}
		r, err := c.readHeader()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return lookEnded, nil
			}
			return 0, err
		}
		p := pendingReq{req: r}
		if r.Type == cmdWrite {
			var err error
			if r.Length > c.s.cfg.MaxBlockSize { // refused later: its data is dropped
				_, err = io.CopyN(io.Discard, c.br, int64(r.Length))
			} else {
				p.payload = c.s.bufs.Get(int(r.Length))
				_, err = io.ReadFull(c.br, p.payload)
			}
			if err != nil {
				c.putPayload(p)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return lookEnded, nil
				}
				return 0, fmt.Errorf("nbd: reading write payload: %w", err)
			}
			p.read = true
			c.pendingBytes += int64(len(p.payload))
		}
		c.pending = append(c.pending, p)
		if r.Type == cmdDisc {
			return lookDisc, nil
		}
	}
	return lookCutShort, nil
}

// clearReadDeadline undoes lookAhead's deadline, unless the connection is
// being shut down: ServeConn's shutdown sets a past deadline to unblock
// the reader, and may have done so meanwhile.
func (c *conn) clearReadDeadline() error {
	_ = c.nc.SetReadDeadline(time.Time{})
	if c.ctx.Err() != nil {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		return context.Cause(c.ctx)
	}
	return nil
}

// putPayload gives back p's payload buffer, if it holds one.
func (c *conn) putPayload(p pendingReq) {
	if p.payload != nil {
		c.s.bufs.Put(p.payload)
	}
}

// dropPending gives back the buffers of the requests read ahead and not
// started.
func (c *conn) dropPending() {
	for _, p := range c.pending {
		c.putPayload(p)
	}
	c.pending, c.pendingBytes = nil, 0
}

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
// once the reader has waited StallCheck in all since it last looked, it
// looks before it starts another request: it reads what the client sent
// until StallIdle passes without more (an end shut down arrives after the
// data ahead of it, which arrives once the reader makes room), keeping
// the requests read ahead in memory. If the stream ended (EOF, a reset)
// without NBD_CMD_DISC, the client gave up what it had not been answered:
// nothing more starts and the connection ends as an abrupt one does. A
// client that sent NBD_CMD_DISC gets its requests before it run, as the
// protocol asks. A client still there when the reader looked had given up
// nothing yet; what it sends later is read at once.
//
// A client that shuts its end within StallIdle after the look, before the
// requests read ahead have all started, is not seen; the look is repeated
// after every further StallCheck of waiting. The requests read ahead are
// bounded by MaxInFlightBytes of write data: a client that has shut its
// end has no more in flight than its socket buffers, a few MiB.

// pendingReq is a request read ahead, or the request just read.
type pendingReq struct {
	req     request
	payload []byte // a WRITE's data, from the buffer pool, once read
	read    bool   // a WRITE whose payload was read (into payload)
}

// errAbandoned: the client shut its end of a stalled connection without
// NBD_CMD_DISC; the connection ends as an abrupt one does.
var errAbandoned = errors.New("nbd: client left the stalled connection")

// acquire takes n from sem, counting the time it waits in c.waited.
func (c *conn) acquire(sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	t0 := time.Now()
	err := sem.Acquire(c.ctx, n)
	c.waited += time.Since(t0)
	return err
}

// afterStall looks ahead once the reader has waited StallCheck since the
// last look. It returns errAbandoned if the client shut its end without
// NBD_CMD_DISC.
func (c *conn) afterStall() error {
	if c.waited < c.s.cfg.StallCheck {
		return nil
	}
	c.waited = 0
	ended, err := c.lookAhead()
	if err != nil {
		return err
	}
	if !ended {
		return nil
	}
	for _, p := range c.pending {
		if p.req.Type == cmdDisc {
			return nil
		}
	}
	c.log.Info("client closed a stalled connection without NBD_CMD_DISC; its requests not started are dropped (it sends them again elsewhere)",
		zap.Int("dropped", len(c.pending)+1))
	return errAbandoned
}

// lookAhead reads requests into c.pending until StallIdle passes without
// more, the stream ends (ended: EOF or a reset), NBD_CMD_DISC is read, or
// the payloads reach MaxInFlightBytes.
func (c *conn) lookAhead() (ended bool, err error) {
	if n := len(c.pending); n > 0 && (c.pending[n-1].req.Type == cmdDisc || c.pending[n-1].req.Type == cmdWrite && !c.pending[n-1].read) {
		return false, nil // nothing after a DISC; a payload left on the socket comes next
	}
	for c.pendingBytes < c.s.cfg.MaxInFlightBytes {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.StallIdle))
		_, perr := c.br.Peek(1)
		if err := c.clearReadDeadline(); err != nil {
			return false, err
		}
		var ne interface{ Timeout() bool }
		switch {
		case perr == nil:
		case errors.As(perr, &ne) && ne.Timeout():
			return false, nil
		default:
			return true, nil
		}
		r, err := c.readHeader()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return true, nil
			}
			return false, err
		}
		p := pendingReq{req: r}
		if r.Type == cmdWrite {
			if int64(r.Length) > c.s.cfg.MaxInFlightBytes-c.pendingBytes || r.Length > c.s.cfg.MaxBlockSize {
				c.pending = append(c.pending, p) // its payload stays on the socket
				return false, nil
			}
			p.payload = c.s.bufs.Get(int(r.Length))
			if _, err := io.ReadFull(c.br, p.payload); err != nil {
				c.s.bufs.Put(p.payload)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return true, nil
				}
				return false, fmt.Errorf("nbd: reading write payload: %w", err)
			}
			p.read = true
			c.pendingBytes += int64(r.Length)
		}
		c.pending = append(c.pending, p)
		if r.Type == cmdDisc {
			return false, nil
		}
	}
	return false, nil
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

package nbd

import (
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
)

// run executes one validated request against the Export and queues its
// reply. It runs in its own goroutine.
func (c *conn) run(o *op) {
	defer c.ops.Done()
	r := o.req
	rep := &reply{handle: r.Handle, cmd: r.Type}
	err := c.safely(func() error { return c.execute(o, rep) })
	if isWrite(r.Type) {
		c.writes.done(o.writeID)
	}
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("request failed", zap.Uint16("cmd", r.Type), zap.Uint64("offset", r.Offset),
				zap.Uint32("length", r.Length), zap.Error(err))
		}
		if rep.data != nil {
			c.s.bufs.Put(rep.data)
			rep.data = nil
		}
		rep.descs = nil
		rep.err = err
	}
	c.replies <- rep
}

// execute performs the command and fills in rep. rep.budget is set for a
// READ whatever happens, so that its payload budget is given back once the
// reply is sent.
func (c *conn) execute(o *op, rep *reply) error {
	r, exp, ctx := o.req, c.sess.export, c.ctx
	off, n := int64(r.Offset), int64(r.Length)
	switch r.Type {
	case cmdRead:
		rep.budget = n
		rep.data = c.s.bufs.Get(int(n))
		rep.offset = r.Offset
		return exp.ReadAt(ctx, rep.data, off)
	case cmdWrite:
		err := func() error {
			defer func() { // also when WriteAt panics
				c.s.bufs.Put(o.payload)
				c.budget.Release(n)
			}()
			return exp.WriteAt(ctx, o.payload, off)
		}()
		return c.fua(r, err)
	case cmdTrim:
		return c.fua(r, exp.Trim(ctx, off, n))
	case cmdWriteZeroes:
		return c.fua(r, exp.Zero(ctx, off, n, r.CommandFlags&cmdFlagNoHole == 0))
	case cmdFlush:
		if err := waitAll(ctx, o.waits); err != nil {
			return err
		}
		return exp.Flush(ctx)
	case cmdBlockStatus:
		ext, err := exp.Extents(ctx, off, n)
		if err != nil {
			return err
		}
		rep.descs, err = descriptors(ext, off, n, r.CommandFlags&cmdFlagReqOne != 0, int64(c.sess.align))
		return err
	default:
		return fmt.Errorf("%w: type %d", ErrUnknownCommand, r.Type) // check lets none through
	}
}

// fua makes a successful write durable when the client asked for FUA and
// the Export's writes are not durable by themselves (Config.FlushOnFUA).
func (c *conn) fua(r request, err error) error {
	if err == nil && r.CommandFlags&cmdFlagFUA != 0 && c.s.cfg.FlushOnFUA {
		return c.sess.export.Flush(c.ctx)
	}
	return err
}

// safely calls f and turns a panic in the Export into an EIO reply (logged
// with its stack) instead of a crash of every connection of the process,
// as net/http does for handlers.
func (c *conn) safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("export panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("nbd: export panicked: %v", p)
		}
	}()
	return f()
}

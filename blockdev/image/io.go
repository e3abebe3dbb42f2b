package image

import (
	"context"
	"errors"
	"fmt"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// ReadAt fills p from image offset off; never short. Ranges never written
// read as zeros. The object reads run concurrently. Errors wrap
// ErrOutOfRange, ErrClosed, ErrFenced, or the object store's (e.g.
// client.ErrUnavailable, client.ErrCorrupt), naming the object.
func (im *Image) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := im.usable(false); err != nil {
		return err
	}
	im.ioMu.RLock()
	defer im.ioMu.RUnlock()
	if err := im.checkRange("read", off, int64(len(p))); err != nil {
		return err
	}
	exts := stripe.Map(im.layout, off, int64(len(p)))
	return im.each(ctx, "read", off, int64(len(p)), false, exts, func(ctx context.Context, e stripe.Extent) error {
		buf := p[e.BufOff : e.BufOff+e.Length]
		err := im.objs.Read(ctx, im.pool, im.object(e.Object), e.Offset, buf)
		if errors.Is(err, client.ErrNotFound) {
			clear(buf)
			return nil
		}
		return err
	})
}

// WriteAt writes p at image offset off; never short. It returns once every
// object write is acknowledged, that is durable on a majority of each
// object's replicas. Its object writes start only once the earlier
// writes, zeroes and trims of this Image that overlap it have returned
// (see order). Errors wrap ErrOutOfRange, ErrReadOnly, ErrClosed,
// ErrFenced, ctx's error (while waiting for an overlapping write), or the
// object store's; after an error, any part of p may or may not have been
// written.
func (im *Image) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := im.usable(true); err != nil {
		return err
	}
	im.ioMu.RLock()
	defer im.ioMu.RUnlock()
	if err := im.checkRange("write", off, int64(len(p))); err != nil {
		return err
	}
	done, err := im.order(ctx, "write", off, int64(len(p)))
	defer done()
	if err != nil {
		return err
	}
	exts := stripe.Map(im.layout, off, int64(len(p)))
	return im.each(ctx, "write", off, int64(len(p)), true, exts, func(ctx context.Context, e stripe.Extent) error {
		return im.objs.Write(ctx, im.pool, im.object(e.Object), e.Offset, p[e.BufOff:e.BufOff+e.Length])
	})
}

// order registers a mutation (write, zero, trim) of [off, off+length) and
// waits until every earlier mutation of this Image that overlaps it has
// returned, so that overlapping mutations apply in the order they started.
// A mutation whose caller gave up (its context ended) runs on until the
// object store returns it, and the store returns an unanswered mutation
// only once it can no longer land (client.Client's settle window): without
// the wait, a client that resends a write through another connection and
// then overwrites the range could see the first copy land last. Mutations
// that do not overlap do not wait for each other; reads wait for nothing.
// The wait honours ctx. Call done when the mutation returns, whatever err.
func (im *Image) order(ctx context.Context, op string, off, length int64) (done func(), err error) {
	earlier, done := im.writes.begin(off, length)
	if err := waitAll(ctx, earlier); err != nil {
		return done, im.wrap(err, op, off, length)
	}
	return done, nil
}

// Flush returns once every write that started before it has finished.
// Writes are durable when acknowledged, so there is nothing else to do.
// It returns ErrFenced if the lock was lost, so that a caller relying on
// Flush learns that later writes will fail; ErrClosed after Close.
func (im *Image) Flush(ctx context.Context) error {
	if err := im.writes.wait(ctx); err != nil {
		return err
	}
	return im.usable(false)
}

// each runs fn for every extent, concurrently within the Image's bound,
// checking before each object operation that the Image may still do IO,
// and wraps the first error with the operation and range.
func (im *Image) each(ctx context.Context, op string, off, length int64, write bool, exts []stripe.Extent, fn func(context.Context, stripe.Extent) error) error {
	ctx, cancel := im.ioContext(ctx)
	defer cancel()
	err := im.forEach(ctx, len(exts), func(ctx context.Context, i int) error {
		if err := im.usable(write); err != nil {
			return err
		}
		return fn(ctx, exts[i])
	})
	return im.wrap(err, op, off, length)
}

// wrap adds the operation and range to err; an operation cut short by the
// loss of the lock reports ErrFenced.
func (im *Image) wrap(err error, op string, off, length int64) error {
	if err == nil {
		return nil
	}
	if im.lock != nil && !errors.Is(err, ErrFenced) && !errors.Is(err, ErrClosed) {
		if lerr := im.lock.err(); lerr != nil {
			err = fmt.Errorf("%w (%v)", lerr, err)
		}
	}
	return fmt.Errorf("image: %s %s at %d+%d: %w", op, im.Header().Spec(), off, length, err)
}

// object is the name of data object obj.
func (im *Image) object(obj uint64) string { return ObjectName(im.id, obj) }

package image

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// Progress is told how many of total steps (objects) are done. It is called
// from several goroutines, one call at a time is not guaranteed; done only
// grows.
type Progress func(done, total int64)

// ResizeOptions say how to resize.
type ResizeOptions struct {
	// AllowShrink permits a smaller size, which discards the data past it.
	AllowShrink bool
	// Progress, if set, follows the objects a shrink deletes or truncates.
	Progress Progress
}

// Resize changes the image's size. Growing only rewrites the header: the
// new range reads as zeros. Shrinking first deletes the objects that lie
// wholly past the new size and truncates the one(s) that straddle it, then
// rewrites the header, so that a shrink cut short leaves the old size with
// the tail zeroed, and running it again finishes it. No IO of this Image
// runs meanwhile. The header change is fenced by etcd: it applies only
// while this Image holds the lock.
//
// Errors wrap ErrInvalidSize, ErrShrink, ErrReadOnly, ErrClosed, ErrFenced,
// or are the control plane's or the object store's.
func (im *Image) Resize(ctx context.Context, size int64, o ResizeOptions) error {
	if err := im.usable(true); err != nil {
		return err
	}
	if err := CheckSize(size); err != nil {
		return err
	}
	im.ioMu.Lock()
	defer im.ioMu.Unlock()
	old := im.Size()
	spec := im.Header().Spec()
	switch {
	case size == old:
		return nil
	case size < old && !o.AllowShrink:
		return fmt.Errorf("%w: %s from %d to %d bytes would discard the last %d bytes", ErrShrink, spec, old, size, old-size)
	case size < old:
		if err := im.trimPast(ctx, size, o.Progress); err != nil {
			return im.wrap(err, "shrink", size, old-size)
		}
	}
	if err := im.setSize(ctx, size); err != nil {
		return err
	}
	im.log.Info("image resized", zap.Int64("from", old), zap.Int64("to", size))
	return nil
}

// trimPast deletes or truncates every object so that none holds data at or
// past size. It lists the image's objects rather than visiting every
// object number, so that shrinking a thin image costs what it stores.
func (im *Image) trimPast(ctx context.Context, size int64, progress Progress) error {
	objs, err := im.objs.List(ctx, im.pool, objectPrefix(im.id))
	if err != nil {
		return err
	}
	type cut struct {
		name string
		keep int64 // 0: delete
	}
	var cuts []cut
	for _, o := range objs {
		n, ok := parseObjectName(im.id, o.Name)
		if !ok {
			im.log.Warn("object with the image's prefix but not a data object name; left alone", zap.String("object", o.Name))
			continue
		}
		switch keep := stripe.ObjectLen(im.layout, n, size); {
		case keep == 0:
			cuts = append(cuts, cut{o.Name, 0})
		case o.Size > keep:
			cuts = append(cuts, cut{o.Name, keep})
		}
	}
	ctx, cancel := im.ioContext(ctx)
	defer cancel()
	var done atomic.Int64
	return im.forEach(ctx, len(cuts), func(ctx context.Context, i int) error {
		if err := im.usable(true); err != nil {
			return err
		}
		var err error
		if c := cuts[i]; c.keep == 0 {
			err = im.objs.Delete(ctx, im.pool, c.name)
		} else {
			err = im.objs.Truncate(ctx, im.pool, c.name, c.keep)
		}
		if err == nil && progress != nil {
			progress(done.Add(1), int64(len(cuts)))
		}
		return err
	})
}

// setSize writes the header with the new size, only if it has not changed
// since this Image read it and the lock is still ours.
func (im *Image) setSize(ctx context.Context, size int64) error {
	im.mu.Lock()
	h, rev := im.hdr, im.hdrRev
	im.mu.Unlock()
	h.Size = size
	value, err := json.Marshal(h)
	if err != nil {
		return err
	}
	hk, lk := im.st.headerKey(h.Pool, h.Name), im.st.lockKey(h.Pool, h.Name)
	resp, err := im.st.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(hk), "=", rev),
			clientv3.Compare(clientv3.LeaseValue(lk), "=", im.lock.lease)).
		Then(clientv3.OpPut(hk, string(value))).
		Commit()
	if err != nil {
		return fmt.Errorf("image: resize %s: write %s: %w", h.Spec(), hk, err)
	}
	if !resp.Succeeded {
		if err := im.lock.verify(ctx); err != nil {
			return fmt.Errorf("image: resize %s: %w", h.Spec(), err)
		}
		return fmt.Errorf("image: resize %s: the header %s changed in etcd behind this holder's back; reopen the image and retry", h.Spec(), hk)
	}
	im.mu.Lock()
	im.hdr.Size, im.hdrRev = size, resp.Header.Revision
	im.mu.Unlock()
	return nil
}

package image

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// RemoveOptions say how to remove an image.
type RemoveOptions struct {
	// BreakLock removes the image even if someone holds its lock: the
	// holder is fenced first (see OpenOptions.BreakLock).
	BreakLock bool
	// OnBreak, if set, is called when a lock is broken.
	OnBreak func(old Holder, wait time.Duration)
	// Progress, if set, follows the data objects deleted.
	Progress Progress
}

// Remove deletes pool/name: it takes the lock, deletes every data object,
// checks that none is left, then deletes the header (fenced by etcd on the
// lock) and releases the lock. Removal cut short leaves the image in
// place, partly zeroed; run it again. Errors wrap ErrNotFound, ErrLocked
// (a *LockedError), ErrFenced, or are the control plane's or the object
// store's.
func (s *Store) Remove(ctx context.Context, pool, name string, o RemoveOptions) (err error) {
	im, err := s.Open(ctx, pool, name, OpenOptions{BreakLock: o.BreakLock, OnBreak: o.OnBreak})
	if err != nil {
		return err
	}
	defer im.Close()
	// Keep the lock for as long as the deletes take.
	runCtx, stopRun := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- im.Run(runCtx) }()
	defer func() {
		stopRun()
		if rerr := <-runErr; rerr != nil && err == nil {
			err = rerr
		}
	}()

	if err := im.deleteObjects(ctx, o.Progress); err != nil {
		return im.wrap(err, "remove", 0, im.Size())
	}
	hk, lk := s.headerKey(pool, name), s.lockKey(pool, name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(lk), "=", im.lock.lease)).
		Then(clientv3.OpDelete(hk)).
		Commit()
	if err != nil {
		return fmt.Errorf("image: remove %s/%s: delete %s: %w", pool, name, hk, err)
	}
	if !resp.Succeeded {
		if err := im.lock.verify(ctx); err != nil {
			return fmt.Errorf("image: remove %s/%s: %w", pool, name, err)
		}
		return fmt.Errorf("image: remove %s/%s: the lock was not ours when deleting the header; try again", pool, name)
	}
	s.log.Info("image removed", zap.String("image", pool+"/"+name))
	return nil
}

// deleteObjects deletes every data object of the image, then lists again
// to make sure none is left.
func (im *Image) deleteObjects(ctx context.Context, progress Progress) error {
	ctx, cancel := im.ioContext(ctx)
	defer cancel()
	var done atomic.Int64
	for round := 0; ; round++ {
		objs, err := im.objs.List(ctx, im.pool, objectPrefix(im.id))
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return nil
		}
		if round == 3 {
			return fmt.Errorf("%d data objects are still there after 3 rounds of deletes (first: %s); run the removal again", len(objs), objs[0].Name)
		}
		total := done.Load() + int64(len(objs))
		err = im.forEach(ctx, len(objs), func(ctx context.Context, i int) error {
			if err := im.usable(true); err != nil {
				return err
			}
			if err := im.objs.Delete(ctx, im.pool, objs[i].Name); err != nil {
				return err
			}
			if progress != nil {
				progress(done.Add(1), total)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

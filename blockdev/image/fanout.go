package image

import (
	"context"
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// forEach runs fn(ctx, i) for i in [0, n), at most cap(im.sem) at a time
// across all of the Image's IO, and returns the first error. One item runs
// in the caller's goroutine, the others in goroutines of their own.
//
// A panic in fn (a bug in the object store, say) is recovered, logged with
// its stack and returned as an error, as the NBD server does with a panic
// in a request: in a goroutine of its own nothing else could recover it,
// and it would end the process, and every connection of a gateway with it.
func (im *Image) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	acquire := func(ctx context.Context) error {
		select {
		case im.sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	release := func() { <-im.sem }
	call := func(ctx context.Context, i int) (err error) {
		defer func() {
			if p := recover(); p != nil {
				im.log.Error("object operation panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
				err = fmt.Errorf("image: object operation panicked: %v", p)
			}
		}()
		return fn(ctx, i)
	}
	if n == 1 {
		if err := acquire(ctx); err != nil {
			return err
		}
		defer release()
		return call(ctx, 0)
	}
	grp, gctx := errgroup.WithContext(ctx)
	var acqErr error
	for i := range n {
		if acqErr = acquire(gctx); acqErr != nil {
			break
		}
		grp.Go(func() error {
			defer release()
			return call(gctx, i)
		})
	}
	if err := grp.Wait(); err != nil {
		return err
	}
	return acqErr
}

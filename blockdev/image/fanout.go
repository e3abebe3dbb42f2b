package image

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// forEach runs fn(ctx, i) for i in [0, n), at most cap(sem) at a time
// across everyone sharing sem, and returns the first error. One item runs
// in the caller's goroutine.
func forEach(ctx context.Context, sem chan struct{}, n int, fn func(ctx context.Context, i int) error) error {
	acquire := func(ctx context.Context) error {
		select {
		case sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	release := func() { <-sem }
	if n == 1 {
		if err := acquire(ctx); err != nil {
			return err
		}
		defer release()
		return fn(ctx, 0)
	}
	grp, gctx := errgroup.WithContext(ctx)
	var acqErr error
	for i := range n {
		if acqErr = acquire(gctx); acqErr != nil {
			break
		}
		grp.Go(func() error {
			defer release()
			return fn(gctx, i)
		})
	}
	if err := grp.Wait(); err != nil {
		return err
	}
	return acqErr
}

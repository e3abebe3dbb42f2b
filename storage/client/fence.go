package client

import (
	"context"
	"time"
)

type fenceKey struct{}

// WithFence returns a context whose requests must take effect by the time
// at returns, if they take effect at all: each request's budget (how long
// the OSD may still propose it, see wire.Request.Budget) is cut to it.
// An image's writer passes the time its lock may lapse, after which
// another writer may take the image over and must not find these writes
// landing after its own. at is called once per request sent; a time
// already past fails the request (context.DeadlineExceeded) unsent.
func WithFence(ctx context.Context, at func() time.Time) context.Context {
	return context.WithValue(ctx, fenceKey{}, at)
}

// Deadline is the earlier of ctx's deadline and its fence, if it has
// either: when the client stops waiting for a request sent under ctx, and
// the latest its OSD may apply it.
func Deadline(ctx context.Context) (time.Time, bool) {
	dl, ok := ctx.Deadline()
	if at, _ := ctx.Value(fenceKey{}).(func() time.Time); at != nil {
		if f := at(); !ok || f.Before(dl) {
			dl, ok = f, true
		}
	}
	return dl, ok
}

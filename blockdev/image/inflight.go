package image

import (
	"context"
	"sync"
)

// inflight tracks the writes in progress, so that Flush can wait for the
// ones that started before it without holding up the ones after it.
type inflight struct {
	mu   sync.Mutex // guards the following
	next uint64
	ops  map[uint64]chan struct{}
}

// begin registers a write; call the returned func when it is done.
func (f *inflight) begin() func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops == nil {
		f.ops = map[uint64]chan struct{}{}
	}
	id, ch := f.next, make(chan struct{})
	f.next++
	f.ops[id] = ch
	return func() {
		f.mu.Lock()
		delete(f.ops, id)
		f.mu.Unlock()
		close(ch)
	}
}

// wait returns once every write registered before the call is done, or
// with ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	chs := make([]chan struct{}, 0, len(f.ops))
	for _, ch := range f.ops {
		chs = append(chs, ch)
	}
	f.mu.Unlock()
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

package image

import (
	"context"
	"sync"
)

// inflight tracks the mutations (writes, zeroes, trims) in progress and the
// range each changes, so that
//   - Flush can wait for the ones that started before it without holding
//     up the ones after it, and
//   - a mutation can wait, before its object IO, for the earlier ones that
//     overlap it (see Image.order).
//
// Overlap is looked for by scanning every mutation in progress: there are
// as many as the callers' queue depth, a few dozen, and the scan is a
// comparison each.
type inflight struct {
	mu   sync.Mutex // guards the following
	next uint64
	ops  map[uint64]mutation
}

// mutation is one registered mutation of the image range [off, end).
type mutation struct {
	off, end int64
	done     chan struct{} // closed when it returned
}

// begin registers a mutation of [off, off+length). It returns the done
// channels of the mutations registered earlier and still in progress that
// overlap it (nil when there are none), and the func to call when it is
// done.
func (f *inflight) begin(off, length int64) (earlier []chan struct{}, done func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops == nil {
		f.ops = map[uint64]mutation{}
	}
	end := off + length
	for _, m := range f.ops {
		if m.off < end && off < m.end {
			earlier = append(earlier, m.done)
		}
	}
	id, ch := f.next, make(chan struct{})
	f.next++
	f.ops[id] = mutation{off: off, end: end, done: ch}
	return earlier, func() {
		f.mu.Lock()
		delete(f.ops, id)
		f.mu.Unlock()
		close(ch)
	}
}

// wait returns once every mutation registered before the call is done, or
// with ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	chs := make([]chan struct{}, 0, len(f.ops))
	for _, m := range f.ops {
		chs = append(chs, m.done)
	}
	f.mu.Unlock()
	return waitAll(ctx, chs)
}

// waitAll returns once every channel is closed, or with ctx's cause.
func waitAll(ctx context.Context, chs []chan struct{}) error {
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

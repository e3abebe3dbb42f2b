package nbd

import (
	"context"
	"sync"
)

// barrier tracks the write-type requests (WRITE, TRIM, WRITE_ZEROES) of one
// connection that are executing, so that a FLUSH can wait for every write
// received before it. The spec only asks FLUSH to cover writes already
// replied to; covering all earlier writes of the connection is stronger and
// keeps FLUSH a barrier in request order.
//
// start and snapshot are called by the connection's reader, in request
// order; done by the goroutine that executed the write.
type barrier struct {
	mu      sync.Mutex // guards the following
	next    uint64
	pending map[uint64]chan struct{}
}

// start registers a write and returns its id for done.
func (b *barrier) start() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = make(map[uint64]chan struct{})
	}
	id := b.next
	b.next++
	b.pending[id] = make(chan struct{})
	return id
}

// done marks the write id finished.
func (b *barrier) done(id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.pending[id])
	delete(b.pending, id)
}

// snapshot returns what a flush received now must wait for.
func (b *barrier) snapshot() []chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	chans := make([]chan struct{}, 0, len(b.pending))
	for _, c := range b.pending {
		chans = append(chans, c)
	}
	return chans
}

// waitAll waits until every channel is closed or ctx is done.
func waitAll(ctx context.Context, chans []chan struct{}) error {
	for _, c := range chans {
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

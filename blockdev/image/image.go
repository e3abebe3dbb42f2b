package image

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// OpenOptions say how to open an image.
type OpenOptions struct {
	// ReadOnly opens without the lock: writes fail with ErrReadOnly, and
	// the size is the one at open time.
	ReadOnly bool
	// BreakLock takes the lock from its current holder (fencing it) if
	// someone has it, then waits out the holder's lease TTL before
	// returning. Without it, a held lock fails Open with a *LockedError.
	BreakLock bool
	// OnBreak, if set, is called when a lock is broken, before the wait.
	OnBreak func(old Holder, wait time.Duration)
}

// Image is an open image. It is safe for concurrent use. A writable Image
// holds the image's lock: call Run to keep it, and Close to give it up.
type Image struct {
	st       *Store
	objs     ObjectIO
	pool, id string // fixed for the Image's life
	log      *zap.Logger
	layout   stripe.Layout
	readOnly bool
	lock     *leaseLock    // nil when read-only
	sem      chan struct{} // bounds object operations in flight
	writes   inflight
	stop     context.Context // canceled by Close; ends Run
	stopRun  context.CancelFunc

	// ioMu is held shared by every IO and exclusively by Resize and
	// Close, so that no IO runs while the size changes.
	ioMu sync.RWMutex

	mu     sync.Mutex // guards the following
	hdr    Header
	hdrRev int64 // ModRevision of the header in etcd
	closed bool
}

// Open opens pool/name. Unless opts.ReadOnly, it takes the image's lock.
// Errors wrap ErrNotFound, ErrInvalid, ErrCorrupt, are a *LockedError
// (errors.Is ErrLocked), or are the control plane's.
func (s *Store) Open(ctx context.Context, pool, name string, opts OpenOptions) (*Image, error) {
	if opts.ReadOnly {
		h, rev, err := s.header(ctx, pool, name)
		if err != nil {
			return nil, err
		}
		return s.newImage(h, rev, nil), nil
	}
	if err := errors.Join(CheckName("pool", pool), CheckName("image", name)); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		l, h, rev, err := s.acquire(ctx, pool, name)
		if err == nil {
			s.log.Info("image opened", zap.String("image", h.Spec()), zap.Int64("lease", int64(l.lease)))
			return s.newImage(h, rev, l), nil
		}
		if !errors.Is(err, ErrLocked) || !opts.BreakLock || attempt > 0 {
			return nil, err
		}
		old, wait, err := s.BreakLock(ctx, pool, name)
		if errors.Is(err, ErrNotLocked) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if opts.OnBreak != nil {
			opts.OnBreak(old, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("image: open %s/%s after breaking the lock: %w", pool, name, ctx.Err())
		}
	}
}

func (s *Store) newImage(h Header, rev int64, l *leaseLock) *Image {
	im := &Image{st: s, objs: s.objs, pool: h.Pool, id: h.ID, log: s.log.With(zap.String("image", h.Spec())), layout: h.Layout(),
		readOnly: l == nil, lock: l, sem: make(chan struct{}, s.cfg.MaxInFlight), hdr: h, hdrRev: rev}
	im.stop, im.stopRun = context.WithCancel(context.Background())
	return im
}

// Header returns the image's header as this Image knows it.
func (im *Image) Header() Header {
	im.mu.Lock()
	defer im.mu.Unlock()
	h := im.hdr
	h.Features = append([]string(nil), h.Features...)
	return h
}

// Size is the image's size in bytes.
func (im *Image) Size() int64 {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.hdr.Size
}

// ReadOnly reports whether the image was opened read-only.
func (im *Image) ReadOnly() bool { return im.readOnly }

// Run keeps the lock of a writable Image: it renews the lease and watches
// the lock key until ctx ends or Close is called (nil), or the lock is
// lost (an error wrapping ErrFenced; the Image then refuses all IO). Call
// it once, in its own goroutine, right after Open. Without Run the lease
// is not renewed and the Image fences itself after about 4/5 of the TTL.
// For a read-only Image it just waits.
func (im *Image) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(im.stop, cancel)()
	if im.lock == nil {
		<-ctx.Done()
		return nil
	}
	err := im.lock.run(ctx)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Close waits for the IO in flight, then releases the lock (if held). The
// Image refuses IO afterwards with ErrClosed. Closing twice is a no-op.
func (im *Image) Close() error {
	im.mu.Lock()
	if im.closed {
		im.mu.Unlock()
		return nil
	}
	im.closed = true
	im.mu.Unlock()
	im.ioMu.Lock() // waits for IO in flight
	defer im.ioMu.Unlock()
	im.stopRun()
	if im.lock != nil {
		im.lock.release(im.st)
		im.log.Info("image closed, lock released")
	}
	return nil
}

// Err returns nil while the Image may do IO, else why not: ErrClosed after
// Close, or an error wrapping ErrFenced once the lock is lost (a fenced
// Image never does IO again: close it and open the image anew). It is
// cheap enough to call before handing the Image to a new user.
func (im *Image) Err() error { return im.usable(false) }

// usable returns nil if the Image may do IO (write: may write).
func (im *Image) usable(write bool) error {
	im.mu.Lock()
	closed := im.closed
	im.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case write && im.readOnly:
		return fmt.Errorf("%w: %s", ErrReadOnly, im.Header().Spec())
	case im.lock != nil:
		return im.lock.err()
	}
	return nil
}

// ioContext derives the context of one IO: it is canceled when the lock is
// lost, so that object operations stop being retried, and fenced at the
// lock's deadline, so that no OSD applies one of them after the lock may
// have lapsed and another writer taken over (client.WithFence).
func (im *Image) ioContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if im.lock == nil {
		return ctx, func() {}
	}
	ctx = client.WithFence(ctx, im.lock.fenceAt)
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(im.lock.lost, func() { cancel(context.Cause(im.lock.lost)) })
	return ctx, func() { stop(); cancel(nil) }
}

// checkRange refuses IO outside [0, size).
func (im *Image) checkRange(op string, off, length int64) error {
	size := im.Size()
	if off < 0 || length < 0 || off > size || length > size-off {
		return fmt.Errorf("%w: %s %s at %d+%d: the image has %d bytes", ErrOutOfRange, op, im.Header().Spec(), off, length, size)
	}
	return nil
}

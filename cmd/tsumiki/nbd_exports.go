package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// imageExports serves images as NBD exports named POOL/NAME. Writable
// connections to one image share one open Image (one lock, one lease), so
// several connections of a multi-conn client see each other's writes and a
// FLUSH on any of them covers all; read-only connections open their own
// read-only Image. It implements nbd.Opener.
type imageExports struct {
	st        *image.Store
	log       *zap.Logger
	breakLock bool
	ctx       context.Context // lives as long as the server; ends the images' Run
	// waitGone: how long a writable open waits while the image is locked
	// by a process of this host (host) that is gone, killed or lost in a
	// power cut with its host, before it is refused (0: not at all).
	waitGone time.Duration
	host     string

	// mu is never held across a call to the control plane or the object
	// store: opening an image (which may wait out another holder's lease)
	// and closing one (which waits for its IO in flight) are marked in
	// opening and closing instead, and only opens of that image wait.
	mu   sync.Mutex // guards the following, and sharedImage.refs
	open map[string]*sharedImage
	// opening: images being opened for writing; the channel closes once
	// the open has succeeded (the image is then in open) or failed.
	opening map[string]chan struct{}
	// closing: images whose last writable connection ended and whose
	// lock is being released; the channel closes once it is.
	closing map[string]chan struct{}
}

type sharedImage struct {
	im   *image.Image
	refs int
	stop context.CancelFunc // ends im.Run
	done chan struct{}      // closed when Run returned
}

// newImageExports serves st's images; a writable open waits at most
// waitGone for the lock of a gone holder of this host to expire.
func newImageExports(ctx context.Context, st *image.Store, log *zap.Logger, breakLock bool, waitGone time.Duration) *imageExports {
	host, _ := os.Hostname()
	return &imageExports{st: st, log: log, breakLock: breakLock, ctx: ctx, waitGone: waitGone, host: host,
		open: map[string]*sharedImage{}, opening: map[string]chan struct{}{}, closing: map[string]chan struct{}{}}
}

// List implements nbd.Opener: every image of every pool.
func (e *imageExports) List(ctx context.Context) ([]string, error) {
	hs, err := e.st.List(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Spec()
	}
	return out, nil
}

// exportSpec parses an export name into the image's pool and name.
func exportSpec(name string) (pool, img string, err error) {
	if strings.Contains(name, "@") {
		return "", "", fmt.Errorf("%w: %q: snapshots are not supported yet", nbd.ErrExportNotFound, name)
	}
	pool, img, err = parseSpec(name)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", nbd.ErrExportNotFound, err)
	}
	return pool, img, nil
}

// Info implements nbd.Opener: it reads the image's header, and neither
// takes nor breaks the image's lock (so `nbdinfo --list` disturbs no
// writer, whatever --break-lock says). The export is described as a
// writable open would serve it; the server marks it read-only when it
// serves everything read-only.
func (e *imageExports) Info(ctx context.Context, name string) (nbd.ExportInfo, error) {
	pool, img, err := exportSpec(name)
	if err != nil {
		return nbd.ExportInfo{}, err
	}
	h, err := e.st.Info(ctx, pool, img)
	if err != nil {
		return nbd.ExportInfo{}, exportError(err)
	}
	return nbd.ExportInfo{Size: h.Size, Description: describe(h)}, nil
}

// Open implements nbd.Opener.
func (e *imageExports) Open(ctx context.Context, name string, readOnly bool) (nbd.Export, error) {
	pool, img, err := exportSpec(name)
	if err != nil {
		return nil, err
	}
	if readOnly {
		im, err := e.st.Open(ctx, pool, img, image.OpenOptions{ReadOnly: true})
		if err != nil {
			return nil, exportError(err)
		}
		return &imageExport{im: im, close: im.Close}, nil
	}
	waitedOwn := false
	for {
		if e.waitGone > 0 && !e.breakLock && !e.isOpen(name) {
			// Outside mu: other exports open meanwhile.
			if err := waitGoneHolder(ctx, e.st, name, e.host, e.waitGone, e.log, nil); err != nil {
				return nil, err
			}
		}
		e.mu.Lock()
		// A client that reconnects at once must not find the lock still
		// held by this very server, releasing it for its last connection;
		// and a connection that comes while another opens the image
		// shares what that open gets (or tries itself if it failed).
		busy := e.closing[name]
		if busy == nil {
			busy = e.opening[name]
		}
		if busy != nil {
			e.mu.Unlock()
			select {
			case <-busy:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s := e.open[name]; s != nil {
			if s.im.Err() == nil {
				s.refs++
				e.mu.Unlock()
				return e.export(name, s), nil
			}
			// Fenced (its lock was broken or its lease lapsed): new
			// clients get a fresh open, which retakes the lock if it
			// is free, rather than EIO for as long as one old
			// connection stays; the old ones keep the fenced Image
			// until they end.
			delete(e.open, name)
		}
		opened := make(chan struct{})
		e.opening[name] = opened
		e.mu.Unlock()
		// Outside mu: with --break-lock st.Open waits out the old
		// holder's lease TTL, and every other open and release must go
		// on meanwhile. ctx ends with the client's handshake.
		s, err := e.openShared(ctx, name, pool, img)
		e.mu.Lock()
		delete(e.opening, name)
		if err == nil {
			e.open[name] = s
		}
		e.mu.Unlock()
		close(opened)
		var le *image.LockedError
		if err != nil && e.waitGone > 0 && !waitedOwn && errors.As(err, &le) && le.Holder.Same(e.st.Holder()) {
			// The lock our own open left when it fenced itself (its lease
			// lapsed while the control plane was out of reach) lasts until
			// etcd expires that lease: wait for that rather than refuse a
			// client that reconnects, with this very server named as the
			// holder. Taking it any sooner would cut the margin the
			// expiry leaves for the fenced open's last writes.
			waitedOwn = true
			own := func(h image.Holder) bool { return h.Same(e.st.Holder()) && e.leftBehind(name) }
			if err := waitGoneHolder(ctx, e.st, name, e.host, e.waitGone, e.log, own); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, exportError(err)
		}
		return e.export(name, s), nil
	}
}

// leftBehind reports whether a lock of name held by this server's own
// holder can only be one a fenced open left: no open of it is live,
// being made or being closed.
func (e *imageExports) leftBehind(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.open[name]
	return e.opening[name] == nil && e.closing[name] == nil && (s == nil || s.im.Err() != nil)
}

// openShared opens the writable image name for the connections to share,
// with one reference, and starts its Run. Errors are the image Store's.
func (e *imageExports) openShared(ctx context.Context, name, pool, img string) (*sharedImage, error) {
	im, err := e.st.Open(ctx, pool, img, image.OpenOptions{BreakLock: e.breakLock,
		OnBreak: func(old image.Holder, wait time.Duration) {
			e.log.Warn("breaking the lock of another holder", zap.String("image", name),
				zap.String("holder", old.String()), zap.Duration("wait", wait))
		}})
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(e.ctx)
	s := &sharedImage{im: im, refs: 1, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := im.Run(runCtx); err != nil && runCtx.Err() == nil {
			e.log.Error("lost the image lock: its connected NBD clients now get I/O errors; new connections open it anew", zap.String("image", name), zap.Error(err))
		}
	}()
	return s, nil
}

// export is one connection's export of the shared image s, holding one of
// its references.
func (e *imageExports) export(name string, s *sharedImage) nbd.Export {
	return &imageExport{im: s.im, close: func() error { return e.release(name, s) }}
}

func (e *imageExports) isOpen(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.open[name] != nil
}

// release drops a connection's reference to s and closes s after the last
// one. Only while s is still the image's entry in open do opens of the
// image wait for that (closing): a fenced s that a fresh open replaced
// holds no lock any more.
func (e *imageExports) release(name string, s *sharedImage) error {
	e.mu.Lock()
	s.refs--
	last := s.refs == 0
	var closed chan struct{}
	if last && e.open[name] == s {
		delete(e.open, name)
		closed = make(chan struct{})
		e.closing[name] = closed
	}
	e.mu.Unlock()
	if !last {
		return nil
	}
	if closed != nil {
		defer func() {
			e.mu.Lock()
			delete(e.closing, name)
			e.mu.Unlock()
			close(closed)
		}()
	}
	s.stop()
	<-s.done
	return s.im.Close()
}

// exportError classifies an image's open error for the NBD handshake.
func exportError(err error) error {
	var le *image.LockedError
	switch {
	case errors.Is(err, image.ErrNotFound):
		return fmt.Errorf("%w: %v", nbd.ErrExportNotFound, err)
	case errors.As(err, &le):
		return fmt.Errorf("%w: image %s/%s is locked by %s (stop that writer, or serve with --break-lock)",
			nbd.ErrRefused, le.Pool, le.Name, le.Holder.String())
	}
	return err
}

// imageExport is one connection's view of an image.
type imageExport struct {
	im    *image.Image
	close func() error
	once  sync.Once
}

func (x *imageExport) Size() int64         { return x.im.Size() }
func (x *imageExport) ReadOnly() bool      { return x.im.ReadOnly() }
func (x *imageExport) Description() string { return describe(x.im.Header()) }

// describe is an export's NBD_INFO_DESCRIPTION.
func describe(h image.Header) string {
	return fmt.Sprintf("tsumiki image %s (%s)", h.Spec(), h.Layout())
}

func (x *imageExport) ReadAt(ctx context.Context, p []byte, off int64) error {
	return x.im.ReadAt(ctx, p, off)
}

func (x *imageExport) WriteAt(ctx context.Context, p []byte, off int64) error {
	return x.im.WriteAt(ctx, p, off)
}

func (x *imageExport) Flush(ctx context.Context) error { return x.im.Flush(ctx) }

func (x *imageExport) Trim(ctx context.Context, off, length int64) error {
	return x.im.Trim(ctx, off, length)
}

// zeroChunk bounds the zeros written at once for a NO_HOLE zero.
const zeroChunk = 1 << 20

func (x *imageExport) Zero(ctx context.Context, off, length int64, mayTrim bool) error {
	if mayTrim {
		return x.im.Zero(ctx, off, length)
	}
	// NO_HOLE: the range must stay allocated, so write real zeros.
	zeros := make([]byte, min(length, zeroChunk))
	for length > 0 {
		n := min(length, int64(len(zeros)))
		if err := x.im.WriteAt(ctx, zeros[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

func (x *imageExport) Extents(ctx context.Context, off, length int64) ([]nbd.Extent, error) {
	exts, err := x.im.Extents(ctx, off, length)
	if err != nil {
		return nil, err
	}
	out := make([]nbd.Extent, len(exts))
	for i, e := range exts {
		out[i] = nbd.Extent{Offset: e.Offset, Length: e.Length}
		if !e.Allocated {
			out[i].Flags = nbd.ExtentHole | nbd.ExtentZero
		}
	}
	return out, nil
}

func (x *imageExport) Close() error {
	var err error
	x.once.Do(func() { err = x.close() })
	return err
}

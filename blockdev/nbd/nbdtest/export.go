package nbdtest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// errClosed is returned by an Export used after Close.
var errClosed = errors.New("nbdtest: export closed")

// Export is one open of an Image; it implements nbd.Export,
// nbd.ReadOnlyReporter and nbd.Describer. Safe for concurrent use.
type Export struct {
	im       *Image
	o        *Opener // nil when opened with Image.Open
	readOnly bool
	closed   atomic.Bool
}

var (
	_ nbd.Export           = (*Export)(nil)
	_ nbd.ReadOnlyReporter = (*Export)(nil)
	_ nbd.Describer        = (*Export)(nil)
)

// Open returns a new Export of the image.
func (im *Image) Open(readOnly bool) *Export {
	return &Export{im: im, readOnly: readOnly}
}

// Size implements nbd.Export.
func (e *Export) Size() int64 { return e.im.size }

// ReadOnly implements nbd.ReadOnlyReporter.
func (e *Export) ReadOnly() bool {
	e.im.mu.RLock()
	defer e.im.mu.RUnlock()
	return e.readOnly || e.im.readOnly
}

// Description implements nbd.Describer.
func (e *Export) Description() string {
	e.im.mu.RLock()
	defer e.im.mu.RUnlock()
	return e.im.description
}

// begin checks the export is usable and applies the image's faults.
func (e *Export) begin(ctx context.Context, op Op, off, n int64, writes bool) (corrupt bool, err error) {
	if e.closed.Load() {
		return false, errClosed
	}
	if writes && e.ReadOnly() {
		return false, nbd.ErrReadOnly
	}
	return e.im.call(ctx, op, off, n)
}

// ReadAt implements nbd.Export.
func (e *Export) ReadAt(ctx context.Context, p []byte, off int64) error {
	defer e.im.enter()()
	corrupt, err := e.begin(ctx, OpRead, off, int64(len(p)), false)
	if err != nil {
		return err
	}
	e.im.mu.RLock()
	defer e.im.mu.RUnlock()
	if err := e.im.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	e.im.readLocked(p, off)
	if corrupt && len(p) > 0 {
		p[0] ^= 0xff
	}
	return nil
}

// WriteAt implements nbd.Export.
func (e *Export) WriteAt(ctx context.Context, p []byte, off int64) error {
	defer e.im.enter()()
	if _, err := e.begin(ctx, OpWrite, off, int64(len(p)), true); err != nil {
		return err
	}
	e.im.mu.Lock()
	defer e.im.mu.Unlock()
	return e.im.writeLocked(p, off, true)
}

// Flush implements nbd.Export; it counts flushes.
func (e *Export) Flush(ctx context.Context) error {
	defer e.im.enter()()
	if _, err := e.begin(ctx, OpFlush, 0, 0, false); err != nil {
		return err
	}
	e.im.mu.Lock()
	defer e.im.mu.Unlock()
	e.im.flushes++
	return nil
}

// Trim implements nbd.Export: whole blocks are freed, partial ones zeroed.
func (e *Export) Trim(ctx context.Context, off, length int64) error {
	defer e.im.enter()()
	if _, err := e.begin(ctx, OpTrim, off, length, true); err != nil {
		return err
	}
	e.im.mu.Lock()
	defer e.im.mu.Unlock()
	return e.im.zeroLocked(off, length, true)
}

// Zero implements nbd.Export.
func (e *Export) Zero(ctx context.Context, off, length int64, mayTrim bool) error {
	defer e.im.enter()()
	if _, err := e.begin(ctx, OpZero, off, length, true); err != nil {
		return err
	}
	e.im.mu.Lock()
	defer e.im.mu.Unlock()
	return e.im.zeroLocked(off, length, mayTrim)
}

// Extents implements nbd.Export: unallocated blocks are holes that read as
// zeros, blocks zeroed without trimming read as zeros, others are data.
func (e *Export) Extents(ctx context.Context, off, length int64) ([]nbd.Extent, error) {
	defer e.im.enter()()
	if _, err := e.begin(ctx, OpExtents, off, length, false); err != nil {
		return nil, err
	}
	e.im.mu.RLock()
	defer e.im.mu.RUnlock()
	return e.im.extentsLocked(off, length)
}

// Close implements nbd.Export. A second Close fails.
func (e *Export) Close() error {
	if e.closed.Swap(true) {
		return errClosed
	}
	if e.o != nil {
		e.o.closed()
	}
	return nil
}

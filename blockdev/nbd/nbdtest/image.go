package nbdtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// BlockSize is the allocation unit of an Image.
const BlockSize = 4096

// Image is an in-memory sparse disk image. Every Export opened on it shares
// its data, so writes through one connection are seen by all (what
// NBD_FLAG_CAN_MULTI_CONN promises). Safe for concurrent use.
type Image struct {
	mu          sync.RWMutex // guards the following
	size        int64
	blocks      map[int64][]byte // allocated blocks by index; a nil slice is an allocated block of zeros
	capacity    int              // most blocks that may be allocated; 0 is unlimited
	readOnly    bool
	description string
	faults      []*fault
	flushes     int
	calls       map[Op]int
	running     int // operations executing now
	maxRunning  int // most operations seen executing at once
}

// NewImage returns an empty (all holes) image of size bytes.
func NewImage(size int64) *Image {
	return &Image{size: size, blocks: make(map[int64][]byte), calls: make(map[Op]int)}
}

// SetCapacity limits the image to n allocated blocks; a write that needs
// more fails with an error matching nbd.ErrNoSpace. 0 removes the limit.
func (im *Image) SetCapacity(n int) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.capacity = n
}

// SetReadOnly makes every Export of the image report ReadOnly (like a
// snapshot) and refuse changes with nbd.ErrReadOnly.
func (im *Image) SetReadOnly(ro bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.readOnly = ro
}

// SetDescription sets the text sent as NBD_INFO_DESCRIPTION.
func (im *Image) SetDescription(d string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.description = d
}

// Size returns the image size.
func (im *Image) Size() int64 { return im.size }

// Flushes returns how many times Flush succeeded on any Export of the image.
func (im *Image) Flushes() int {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return im.flushes
}

// Calls returns how many times op was called on any Export of the image
// (including calls that failed).
func (im *Image) Calls(op Op) int {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return im.calls[op]
}

// Allocated returns the number of allocated blocks.
func (im *Image) Allocated() int {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return len(im.blocks)
}

// Contents returns a copy of the whole image.
func (im *Image) Contents() []byte {
	out := make([]byte, im.size)
	im.mu.RLock()
	defer im.mu.RUnlock()
	im.readLocked(out, 0)
	return out
}

// Fill writes p at off directly (no faults, no capacity check).
func (im *Image) Fill(p []byte, off int64) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.writeLocked(p, off, false); err != nil {
		panic(err) // only reachable with a bad offset: a bug in the test
	}
}

func (im *Image) checkRange(off, n int64) error {
	if off < 0 || n < 0 || off > im.size || n > im.size-off {
		return fmt.Errorf("nbdtest: range [%d, +%d) outside image of %d bytes", off, n, im.size)
	}
	return nil
}

func (im *Image) readLocked(p []byte, off int64) {
	for len(p) > 0 {
		idx, in := off/BlockSize, off%BlockSize
		n := min(int64(len(p)), BlockSize-in)
		if b := im.blocks[idx]; b != nil {
			copy(p[:n], b[in:in+n])
		} else {
			clear(p[:n])
		}
		p, off = p[n:], off+n
	}
}

// writeLocked writes p at off, allocating blocks; with limit it fails
// before changing anything when the capacity does not allow the new blocks.
func (im *Image) writeLocked(p []byte, off int64, limit bool) error {
	if err := im.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	if limit && im.capacity > 0 {
		need := 0
		for idx := off / BlockSize; idx*BlockSize < off+int64(len(p)); idx++ {
			if _, ok := im.blocks[idx]; !ok {
				need++
			}
		}
		if len(im.blocks)+need > im.capacity {
			return fmt.Errorf("nbdtest: image full (%d of %d blocks): %w", len(im.blocks), im.capacity, nbd.ErrNoSpace)
		}
	}
	for len(p) > 0 {
		idx, in := off/BlockSize, off%BlockSize
		n := min(int64(len(p)), BlockSize-in)
		b := im.blocks[idx]
		if b == nil {
			b = make([]byte, BlockSize)
			im.blocks[idx] = b
		}
		copy(b[in:in+n], p[:n])
		p, off = p[n:], off+n
	}
	return nil
}

// zeroLocked makes [off, off+n) read as zeros. Whole blocks are freed when
// free is set, else kept allocated (as zeros); partial blocks are cleared.
func (im *Image) zeroLocked(off, n int64, free bool) error {
	if err := im.checkRange(off, n); err != nil {
		return err
	}
	end := off + n
	for off < end {
		idx, in := off/BlockSize, off%BlockSize
		k := min(end-off, BlockSize-in)
		b, allocated := im.blocks[idx]
		switch {
		case k == BlockSize && free:
			delete(im.blocks, idx)
		case k == BlockSize:
			if !allocated && im.capacity > 0 && len(im.blocks) >= im.capacity {
				return fmt.Errorf("nbdtest: image full: %w", nbd.ErrNoSpace)
			}
			im.blocks[idx] = nil
		case b != nil:
			clear(b[in : in+k])
		}
		off += k
	}
	return nil
}

// extentsLocked describes [off, off+n) block by block, merged.
func (im *Image) extentsLocked(off, n int64) ([]nbd.Extent, error) {
	if err := im.checkRange(off, n); err != nil {
		return nil, err
	}
	var out []nbd.Extent
	end := off + n
	for pos := off; pos < end; {
		idx := pos / BlockSize
		k := min(end, (idx+1)*BlockSize) - pos
		var f nbd.ExtentFlags
		b, allocated := im.blocks[idx]
		switch {
		case !allocated:
			f = nbd.ExtentHole | nbd.ExtentZero
		case b == nil:
			f = nbd.ExtentZero
		}
		if l := len(out); l > 0 && out[l-1].Flags == f {
			out[l-1].Length += k
		} else {
			out = append(out, nbd.Extent{Offset: pos, Length: k, Flags: f})
		}
		pos += k
	}
	return out, nil
}

// call counts op and applies the faults that match it: delays are added
// up and waited for, the first matching error is returned, and corrupt
// reports whether a matching fault corrupts the data read.
func (im *Image) call(ctx context.Context, op Op, off, n int64) (corrupt bool, err error) {
	im.mu.Lock()
	im.calls[op]++
	var delay time.Duration
	for _, f := range im.faults {
		if !f.matches(op, off, n) {
			continue
		}
		hit := false
		if f.Delay > 0 {
			delay += f.Delay
			hit = true
		}
		if f.Err != nil && err == nil {
			err = fmt.Errorf("nbdtest: injected %s fault at [%d, +%d): %w", op, off, n, f.Err)
			hit = true
		}
		if f.Corrupt && op == OpRead {
			corrupt = true
			hit = true
		}
		if hit {
			f.hits++
		}
	}
	im.dropSpentLocked()
	im.mu.Unlock()
	if delay > 0 {
		if serr := sleep(ctx, delay); serr != nil {
			return false, serr
		}
	}
	return corrupt, err
}

// enter counts an operation as running until the returned func is called.
func (im *Image) enter() func() {
	im.mu.Lock()
	im.running++
	im.maxRunning = max(im.maxRunning, im.running)
	im.mu.Unlock()
	return func() {
		im.mu.Lock()
		im.running--
		im.mu.Unlock()
	}
}

// MaxConcurrent returns the most operations that ran at the same time on
// the image's Exports (a fault's delay counts as running).
func (im *Image) MaxConcurrent() int {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return im.maxRunning
}

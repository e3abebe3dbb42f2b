package image

import (
	"context"
	"errors"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// Extent is a run of the image that is either allocated (may hold data)
// or a hole (reads as zeros, uses no space).
type Extent struct {
	Offset, Length int64
	Allocated      bool
}

// End is Offset + Length.
func (x Extent) End() int64 { return x.Offset + x.Length }

// Extents reports which parts of [off, off+length) are allocated, in
// order, adjacent runs of the same kind merged. It asks the store for the
// size of each object the range touches (concurrently): a missing object is
// a hole, and so is the part of an object past its end. Inside an object
// it does not look further, so zeroed ranges inside an object still count
// as allocated, and an object's end is rounded up to a multiple of
// SectorSize (calling a little more allocated is always safe), so that
// boundaries are sector aligned. This is what an NBD server needs to answer
// BLOCK_STATUS.
// Errors as ReadAt.
func (im *Image) Extents(ctx context.Context, off, length int64) ([]Extent, error) {
	if err := im.usable(false); err != nil {
		return nil, err
	}
	im.ioMu.RLock()
	defer im.ioMu.RUnlock()
	if err := im.checkRange("extents", off, length); err != nil {
		return nil, err
	}
	exts := stripe.Map(im.layout, off, length)
	groups := groupByObject(exts)
	sizeOf := make([]int64, len(groups)) // 0 for a missing object
	ctx, cancel := im.ioContext(ctx)
	defer cancel()
	err := im.forEach(ctx, len(groups), func(ctx context.Context, i int) error {
		if err := im.usable(false); err != nil {
			return err
		}
		info, err := im.objs.Stat(ctx, im.pool, im.object(groups[i].obj))
		if errors.Is(err, client.ErrNotFound) {
			return nil
		}
		sizeOf[i] = info.Size
		return err
	})
	if err != nil {
		return nil, im.wrap(err, "extents", off, length)
	}
	sizes := make(map[uint64]int64, len(groups))
	for i, g := range groups {
		sizes[g.obj] = sizeOf[i]
	}
	var out []Extent
	add := func(o, n int64, alloc bool) {
		if n <= 0 {
			return
		}
		if k := len(out) - 1; k >= 0 && out[k].Allocated == alloc && out[k].Offset+out[k].Length == o {
			out[k].Length += n
			return
		}
		out = append(out, Extent{Offset: o, Length: n, Allocated: alloc})
	}
	for _, e := range exts {
		// A piece is contiguous in the image and in its object, so the
		// allocated part is its prefix below the object's size.
		end := (sizes[e.Object] + SectorSize - 1) / SectorSize * SectorSize
		a := max(0, min(e.Length, end-e.Offset))
		add(off+e.BufOff, a, true)
		add(off+e.BufOff+a, e.Length-a, false)
	}
	return out, nil
}

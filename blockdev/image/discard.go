package image

import (
	"context"
	"errors"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// Zero makes [off, off+length) read as zeros and frees its space: objects
// the range covers wholly are deleted, parts of other objects are zeroed
// in place (never creating or growing an object). It always may free
// space: a caller that must keep the range allocated (NBD's NO_HOLE) writes
// zeros with WriteAt instead. Errors as WriteAt.
func (im *Image) Zero(ctx context.Context, off, length int64) error {
	return im.discard(ctx, "zero", off, length)
}

// Trim discards [off, off+length): afterwards it reads as zeros and uses no
// space, as with Zero (the image does not keep discarded data around, so
// the two are the same operation; both exist because block protocols have
// both).
func (im *Image) Trim(ctx context.Context, off, length int64) error {
	return im.discard(ctx, "trim", off, length)
}

// objectPieces is the part of a range that falls in one object.
type objectPieces struct {
	obj     uint64
	covered int64
	pieces  []stripe.Extent
}

// groupByObject gathers extents per object, in order of first appearance.
func groupByObject(exts []stripe.Extent) []*objectPieces {
	var out []*objectPieces
	idx := map[uint64]*objectPieces{}
	for _, e := range exts {
		g := idx[e.Object]
		if g == nil {
			g = &objectPieces{obj: e.Object}
			idx[e.Object] = g
			out = append(out, g)
		}
		g.covered += e.Length
		g.pieces = append(g.pieces, e)
	}
	return out
}

func (im *Image) discard(ctx context.Context, op string, off, length int64) error {
	if err := im.usable(true); err != nil {
		return err
	}
	im.ioMu.RLock()
	defer im.ioMu.RUnlock()
	if err := im.checkRange(op, off, length); err != nil {
		return err
	}
	done, err := im.order(ctx, op, off, length)
	defer done()
	if err != nil {
		return err
	}
	size := im.Size()
	groups := groupByObject(stripe.Map(im.layout, off, length))
	ctx, cancel := im.ioContext(ctx)
	defer cancel()
	err = im.forEach(ctx, len(groups), func(ctx context.Context, i int) error {
		if err := im.usable(true); err != nil {
			return err
		}
		g := groups[i]
		name := im.object(g.obj)
		if g.covered >= stripe.ObjectLen(im.layout, g.obj, size) {
			return im.objs.Delete(ctx, im.pool, name)
		}
		info, err := im.objs.Stat(ctx, im.pool, name)
		if errors.Is(err, client.ErrNotFound) {
			return nil // a hole already
		}
		if err != nil {
			return err
		}
		// Zero only what the object holds: past its end it reads as
		// zeros already, and zeroing there would grow it. (Never
		// truncate here: a concurrent write elsewhere in the object
		// may have just extended it.)
		for _, p := range g.pieces {
			if p.Offset >= info.Size {
				break
			}
			if err := im.usable(true); err != nil {
				return err
			}
			if err := im.objs.Zero(ctx, im.pool, name, p.Offset, min(p.Length, info.Size-p.Offset)); err != nil {
				return err
			}
		}
		return nil
	})
	return im.wrap(err, op, off, length)
}

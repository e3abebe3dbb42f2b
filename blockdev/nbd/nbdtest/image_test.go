package nbdtest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// TestImageModel runs random operations against an Image and a flat byte
// slice with a per-block allocation map, then checks contents and extents
// agree with the model.
func TestImageModel(t *testing.T) {
	const size = 256 << 10
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	im := NewImage(size)
	e := im.Open(false)
	model := make([]byte, size)
	alloc := make([]bool, size/BlockSize)
	for range 3000 {
		off := rng.Int64N(size)
		n := 1 + rng.Int64N(min(size-off, 3*BlockSize))
		switch rng.IntN(4) {
		case 0:
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(1 + rng.IntN(255))
			}
			if err := e.WriteAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
			for b := off / BlockSize; b*BlockSize < off+n; b++ {
				alloc[b] = true
			}
		case 1, 2:
			mayTrim := rng.IntN(2) == 0
			var err error
			if mayTrim && rng.IntN(2) == 0 {
				err = e.Trim(ctx, off, n)
			} else {
				err = e.Zero(ctx, off, n, mayTrim)
			}
			if err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+n])
			for b := (off + BlockSize - 1) / BlockSize; (b+1)*BlockSize <= off+n; b++ {
				alloc[b] = !mayTrim
			}
		case 3:
			p := make([]byte, n)
			if err := e.ReadAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, model[off:off+n]) {
				t.Fatalf("read [%d, +%d) differs from the model", off, n)
			}
		}
	}
	if !bytes.Equal(im.Contents(), model) {
		t.Fatal("contents differ from the model")
	}
	ext, err := e.Extents(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	for i, x := range ext {
		if x.Offset != pos || x.Length <= 0 || (i > 0 && ext[i-1].Flags == x.Flags) {
			t.Fatalf("extent %d %+v not consecutive and merged", i, x)
		}
		for b := x.Offset / BlockSize; b*BlockSize < x.Offset+x.Length; b++ {
			if hole := x.Flags&nbd.ExtentHole != 0; hole == alloc[b] {
				t.Fatalf("block %d: hole=%v, model allocated=%v", b, hole, alloc[b])
			}
			if x.Flags&nbd.ExtentZero != 0 && !bytes.Equal(model[b*BlockSize:(b+1)*BlockSize], make([]byte, BlockSize)) {
				t.Fatalf("block %d reported zero but holds data", b)
			}
		}
		pos += x.Length
	}
	if pos != size {
		t.Fatalf("extents cover %d of %d bytes", pos, size)
	}
}

func TestImageFaults(t *testing.T) {
	ctx := context.Background()
	im := NewImage(1 << 20)
	e := im.Open(false)
	boom := errors.New("boom")
	im.Inject(Fault{Ops: OpRead | OpWrite, Off: 8192, Len: 4096, Err: boom, Times: 2})
	im.Inject(Fault{Ops: OpWrite, Err: syscall.ENOSPC}) // never reached for the range above
	if err := e.ReadAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatalf("read outside the fault: %v", err)
	}
	if err := e.ReadAt(ctx, make([]byte, 8192), 4096); !errors.Is(err, boom) {
		t.Fatalf("overlapping read: %v", err)
	}
	if err := e.WriteAt(ctx, make([]byte, 512), 8192); !errors.Is(err, boom) {
		t.Fatalf("first matching fault decides: %v", err)
	}
	if err := e.WriteAt(ctx, make([]byte, 512), 8192); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after Times the next fault applies: %v", err)
	}
	im.ClearFaults()
	if err := e.WriteAt(ctx, make([]byte, 512), 8192); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	im.Inject(Fault{Ops: OpRead, Corrupt: true, Times: 1})
	p := make([]byte, 4)
	if err := e.ReadAt(ctx, p, 100); err != nil || p[0] != 0xff {
		t.Fatalf("corrupt read: %v % x", err, p)
	}

	im.Inject(Fault{Ops: OpFlush, Delay: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := e.Flush(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed flush must honour ctx: %v", err)
	}
	if im.Calls(OpFlush) != 1 || im.Flushes() != 0 {
		t.Fatalf("calls %d flushes %d", im.Calls(OpFlush), im.Flushes())
	}
}

func TestImageCapacityAndReadOnly(t *testing.T) {
	ctx := context.Background()
	im := NewImage(1 << 20)
	im.SetCapacity(2)
	e := im.Open(false)
	if err := e.WriteAt(ctx, make([]byte, 2*BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteAt(ctx, []byte{1}, 10*BlockSize); !errors.Is(err, nbd.ErrNoSpace) {
		t.Fatalf("write past capacity: %v", err)
	}
	if err := e.WriteAt(ctx, []byte{1}, 100); err != nil {
		t.Fatalf("overwrite within capacity: %v", err)
	}
	if err := e.Zero(ctx, 4*BlockSize, BlockSize, false); !errors.Is(err, nbd.ErrNoSpace) {
		t.Fatalf("allocating zero past capacity: %v", err)
	}
	if err := e.Trim(ctx, 0, BlockSize); err != nil || im.Allocated() != 1 {
		t.Fatalf("trim: %v, %d allocated", err, im.Allocated())
	}
	ro := im.Open(true)
	if !ro.ReadOnly() || !errors.Is(ro.WriteAt(ctx, []byte{1}, 0), nbd.ErrReadOnly) {
		t.Fatal("read-only export accepted a write")
	}
	if err := e.ReadAt(ctx, make([]byte, 2), 1<<20-1); err == nil {
		t.Fatal("read past the end succeeded")
	}
	if e.Close() != nil || e.Close() == nil || e.ReadAt(ctx, make([]byte, 1), 0) == nil {
		t.Fatal("Close semantics")
	}
}

func TestOpener(t *testing.T) {
	ctx := context.Background()
	o := NewOpener()
	o.Add("b", NewImage(4096))
	o.Add("a", NewImage(4096))
	if names, _ := o.List(ctx); len(names) != 2 || names[0] != "a" {
		t.Fatalf("List = %v", names)
	}
	if _, err := o.Open(ctx, "zz", false); !errors.Is(err, nbd.ErrExportNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	o.Refuse("a", nbd.ErrRefused)
	if _, err := o.Open(ctx, "a", false); !errors.Is(err, nbd.ErrRefused) {
		t.Fatalf("refused: %v", err)
	}
	e, err := o.Open(ctx, "b", false)
	if err != nil || o.OpenExports() != 1 {
		t.Fatalf("open: %v", err)
	}
	e.Close()
	o.CheckAllClosed(t)
}

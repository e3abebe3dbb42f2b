package image

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// TestImageThin: nothing is stored until written; reads, zeroes and trims
// of holes create no object; one write creates exactly the objects it
// touches; discarding a whole object deletes it; a partial discard zeroes
// in place without growing the object; Extents reports the holes.
func TestImageThin(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	const os = 64 << 10
	h := e.create(t, s, "thin", 1<<20, stripe.Layout{ObjectSize: os})
	im := e.open(t, s, "thin")
	objects := func() []string {
		var names []string
		for n := range e.objs.Objects("rbd", h.ID+".") {
			names = append(names, n)
		}
		slices.Sort(names)
		return names
	}

	if got := readAll(t, im); !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Fatal("a new image does not read as zeros")
	}
	if err := im.Zero(ctx, 100, 3*os); err != nil {
		t.Fatal(err)
	}
	if err := im.Trim(ctx, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := objects(); len(n) != 0 {
		t.Fatalf("reads and discards of holes created objects %v", n)
	}
	if exts, err := im.Extents(ctx, 0, 1<<20); err != nil || len(exts) != 1 || exts[0].Allocated {
		t.Fatalf("Extents of an empty image = %+v, %v; want one hole", exts, err)
	}

	// One write across objects 1 and 2.
	data := bytes.Repeat([]byte("x"), 2000)
	if err := im.WriteAt(ctx, data, 2*os-1000); err != nil {
		t.Fatal(err)
	}
	if got, want := objects(), []string{ObjectName(h.ID, 1), ObjectName(h.ID, 2)}; !slices.Equal(got, want) {
		t.Fatalf("objects after one write: %v, want %v", got, want)
	}
	exts, err := im.Extents(ctx, 0, 1<<20)
	// Object granularity: object 1 is allocated from its start (its size
	// is all Stat tells), object 2 up to the end of the write, rounded up
	// to a sector.
	want := []Extent{{0, os, false}, {os, os + 1024, true}, {2*os + 1024, 1<<20 - 2*os - 1024, false}}
	if err != nil || !slices.Equal(exts, want) {
		t.Fatalf("Extents = %+v, %v; want %+v", exts, err, want)
	}

	// Zeroing the head of object 2 zeroes in place; the object stays its
	// size (it is not grown to the end of the zeroed range either).
	if err := im.Zero(ctx, 2*os, os); err != nil {
		t.Fatal(err)
	}
	if got := e.objs.Objects("rbd", ObjectName(h.ID, 2)); len(got) != 0 {
		// Zero covered object 2 wholly (up to the object size): deleted.
		t.Fatalf("object 2 survived a discard of all of it: %d bytes", len(got[ObjectName(h.ID, 2)]))
	}
	if err := im.Zero(ctx, 2*os-500, 100); err != nil {
		t.Fatal(err)
	}
	o1 := e.objs.Objects("rbd", ObjectName(h.ID, 1))[ObjectName(h.ID, 1)]
	if len(o1) != os {
		t.Fatalf("object 1 is %d bytes after a partial zero, want %d", len(o1), os)
	}
	want1 := make([]byte, os)
	copy(want1[os-1000:], data)
	clear(want1[os-500 : os-400])
	if !bytes.Equal(o1, want1) {
		t.Fatal("object 1 content wrong after a partial zero")
	}
	if err := im.Trim(ctx, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if n := objects(); len(n) != 0 {
		t.Fatalf("trimming everything left %v", n)
	}
	if c := e.objs.Count(imagetest.OpZero); c != 1 {
		t.Fatalf("%d object zero calls, want 1 (holes and whole objects need none)", c)
	}
	e.checkInvariants(t, im)
}

// TestImageBounds: IO past the end, on a read-only image and after Close
// is refused with its sentinel and touches nothing.
func TestImageBounds(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	e.create(t, s, "b", 64<<10, stripe.Layout{ObjectSize: 16 << 10})
	im := e.open(t, s, "b")
	buf := make([]byte, 10)
	for _, err := range []error{
		im.ReadAt(ctx, buf, 64<<10-5),
		im.WriteAt(ctx, buf, 64<<10),
		im.WriteAt(ctx, buf, -1),
		im.Zero(ctx, 0, 64<<10+1),
		im.Trim(ctx, 64<<10, 1),
	} {
		if !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("IO past the end: %v, want ErrOutOfRange", err)
		}
	}
	if _, err := im.Extents(ctx, 1, 64<<10); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Extents past the end: %v", err)
	}
	ro, err := s.Open(ctx, "rbd", "b", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.WriteAt(ctx, buf, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to a read-only image: %v", err)
	}
	if err := ro.Resize(ctx, 128<<10, ResizeOptions{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("resize of a read-only image: %v", err)
	}
	if err := ro.ReadAt(ctx, buf, 0); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if err := ro.ReadAt(ctx, buf, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if n := e.objs.Count(imagetest.OpWrite) + e.objs.Count(imagetest.OpZero) + e.objs.Count(imagetest.OpDelete); n != 0 {
		t.Fatalf("refused IO reached the store: %d changes", n)
	}
}

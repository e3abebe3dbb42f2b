package image

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// TestImageResize: growing is instant and reads zeros; shrinking is
// refused without AllowShrink (nothing changes); with it, objects past the
// end are deleted and the straddling one truncated, with progress, and a
// regrown tail reads zeros.
func TestImageResize(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	const os = 16 << 10
	h := e.create(t, s, "r", 8*os, stripe.Layout{ObjectSize: os})
	im := e.open(t, s, "r")
	data := bytes.Repeat([]byte{7}, 8*os)
	if err := im.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	writes := e.objs.Count(imagetest.OpWrite)

	if err := im.Resize(ctx, 16*os, ResizeOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, im); !bytes.Equal(got[:8*os], data) || !bytes.Equal(got[8*os:], make([]byte, 8*os)) {
		t.Fatal("grown image does not read old data then zeros")
	}
	if n := e.objs.Count(imagetest.OpWrite) + e.objs.Count(imagetest.OpZero); n != writes {
		t.Fatal("growing wrote to objects")
	}

	err := im.Resize(ctx, 3*os, ResizeOptions{})
	if !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink without AllowShrink: %v", err)
	}
	if hh, _ := s.Info(ctx, "rbd", "r"); hh.Size != 16*os || im.Size() != 16*os || len(e.objs.Objects("rbd", h.ID)) != 8 {
		t.Fatal("a refused shrink changed something")
	}

	var mu sync.Mutex
	var last, total int64
	newSize := int64(3*os + 1024)
	err = im.Resize(ctx, newSize, ResizeOptions{AllowShrink: true, Progress: func(d, t int64) {
		mu.Lock()
		last, total = max(last, d), t
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Objects 4..7 deleted, object 3 truncated to 1 KiB: 5 steps.
	if last != 5 || total != 5 {
		t.Fatalf("progress ended at %d/%d, want 5/5", last, total)
	}
	objs := e.objs.Objects("rbd", h.ID)
	if len(objs) != 4 || len(objs[ObjectName(h.ID, 3)]) != 1024 {
		t.Fatalf("after shrinking: %d objects, object 3 has %d bytes; want 4 and 1024", len(objs), len(objs[ObjectName(h.ID, 3)]))
	}
	if hh, _ := s.Info(ctx, "rbd", "r"); hh.Size != newSize {
		t.Fatalf("header size %d, want %d", hh.Size, newSize)
	}
	if err := im.Resize(ctx, 8*os, ResizeOptions{}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, im)
	if !bytes.Equal(got[:newSize], data[:newSize]) || !bytes.Equal(got[newSize:], make([]byte, 8*os-newSize)) {
		t.Fatal("regrown image does not read the kept data then zeros")
	}
	for _, bad := range []int64{0, -512, 1000} {
		if err := im.Resize(ctx, bad, ResizeOptions{AllowShrink: true}); !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("resize to %d: %v", bad, err)
		}
	}
	e.checkInvariants(t, im)
}

// TestImageRemove: removal deletes every data object (with progress) and
// then the header; a locked image is refused unless the lock is broken;
// another image's objects are untouched.
func TestImageRemove(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	other := e.store(t, "other")
	ctx := context.Background()
	const os = 16 << 10
	h := e.create(t, s, "gone", 10*os, stripe.Layout{ObjectSize: os, StripeUnit: 4 << 10, StripeCount: 2})
	keep := e.create(t, s, "kept", 10*os, stripe.Layout{ObjectSize: os})
	for _, name := range []string{"gone", "kept"} {
		im, err := s.Open(ctx, "rbd", name, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := im.WriteAt(ctx, bytes.Repeat([]byte{1}, 10*os), 0); err != nil {
			t.Fatal(err)
		}
		im.Close()
	}
	// Locked by another process: refused, nothing deleted.
	held, err := other.Open(ctx, "rbd", "gone", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "rbd", "gone", RemoveOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("remove of a locked image: %v", err)
	}
	if n := len(e.objs.Objects("rbd", h.ID)); n != 10 {
		t.Fatalf("a refused remove deleted objects: %d left", n)
	}
	held.Close()

	var mu sync.Mutex
	var last, total int64
	err = s.Remove(ctx, "rbd", "gone", RemoveOptions{Progress: func(d, t int64) {
		mu.Lock()
		last, total = max(last, d), t
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if last != 10 || total != 10 {
		t.Fatalf("progress ended at %d/%d, want 10/10", last, total)
	}
	if n := len(e.objs.Objects("rbd", h.ID)); n != 0 {
		t.Fatalf("%d objects left", n)
	}
	if _, err := s.Info(ctx, "rbd", "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("header after remove: %v", err)
	}
	if _, ok, _ := s.LockHolder(ctx, "rbd", "gone"); ok {
		t.Fatal("remove left the lock behind")
	}
	if n := len(e.objs.Objects("rbd", keep.ID)); n != 10 {
		t.Fatalf("the other image lost objects: %d left", n)
	}
	if err := s.Remove(ctx, "rbd", "gone", RemoveOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}

	// Forced: the holder is fenced, the image goes.
	held, err = other.Open(ctx, "rbd", "kept", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := s.Remove(ctx, "rbd", "kept", RemoveOptions{BreakLock: true}); err != nil {
		t.Fatal(err)
	}
	if err := held.WriteAt(ctx, []byte{1}, 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("write by the holder of a force-removed image: %v", err)
	}
	if n := len(e.objs.Objects("rbd", "")); n != 0 {
		t.Fatalf("%d objects left in the pool", n)
	}
}

// TestImageDu: provisioned is the size, used the bytes stored.
func TestImageDu(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	e.create(t, s, "d", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	im := e.open(t, s, "d")
	_, u, err := s.Du(ctx, "rbd", "d")
	if err != nil || u != (Usage{Provisioned: 1 << 20}) {
		t.Fatalf("Du of a new image = %+v, %v", u, err)
	}
	if err := im.WriteAt(ctx, make([]byte, 100), 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := im.WriteAt(ctx, make([]byte, 10), 5*64<<10+90); err != nil {
		t.Fatal(err)
	}
	if _, u, _ := s.Du(ctx, "rbd", "d"); u != (Usage{Provisioned: 1 << 20, Used: 200, Objects: 2}) {
		t.Fatalf("Du = %+v, want 200 bytes in 2 objects", u)
	}
	if _, _, err := s.Du(ctx, "rbd", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Du of a missing image: %v", err)
	}
}

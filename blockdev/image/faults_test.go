package image

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// TestImageObjectFaults: a failing object operation fails the image
// operation with the store's error (classifiable with errors.Is) and the
// object's name; a lost acknowledgement is an error too, and retrying the
// write makes the data right.
func TestImageObjectFaults(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	h := e.create(t, s, "f", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	im := e.open(t, s, "f")
	data := bytes.Repeat([]byte("d"), 200<<10)

	e.objs.Inject(imagetest.FailNext(imagetest.OpWrite, 1, false))
	err := im.WriteAt(ctx, data, 0)
	if !errors.Is(err, imagetest.ErrInjected) || !strings.Contains(err.Error(), h.ID+".") {
		t.Fatalf("write with a failing object write: %v; want the injected error naming the object", err)
	}
	e.objs.Inject(imagetest.FailNext(imagetest.OpWrite, 1, true))
	if err := im.WriteAt(ctx, data, 0); !errors.Is(err, imagetest.ErrInjected) {
		t.Fatalf("write with a lost acknowledgement: %v", err)
	}
	if err := im.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("retried write: %v", err)
	}
	e.objs.Inject(imagetest.FailOp(imagetest.OpRead))
	if err := im.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, imagetest.ErrInjected) {
		t.Fatalf("read with failing object reads: %v", err)
	}
	e.objs.Inject(imagetest.FailOp(imagetest.OpStat))
	if _, err := im.Extents(ctx, 0, 1<<20); !errors.Is(err, imagetest.ErrInjected) {
		t.Fatalf("extents with failing stats: %v", err)
	}
	if err := im.Zero(ctx, 10, 10); !errors.Is(err, imagetest.ErrInjected) {
		t.Fatalf("partial zero with failing stats: %v", err)
	}
	e.objs.ClearFaults()
	got := readAll(t, im)
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatal("data wrong after the faults cleared")
	}
}

// TestImageObjectPanic: a panic in an object operation, in the caller's
// goroutine or in one of the fan-out's, fails the image operation with an
// error instead of ending the process, and gives back its in-flight slots.
func TestImageObjectPanic(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test", func(c *Config) { c.MaxInFlight = 2 })
	ctx := context.Background()
	e.create(t, s, "p", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	im := e.open(t, s, "p")
	e.objs.Inject(func(op imagetest.Op, _, _ string) *imagetest.Fault {
		if op == imagetest.OpWrite {
			panic("bug in the object store")
		}
		return nil
	})
	for _, n := range []int{4096, 256 << 10} { // one object, four
		for range 3 { // more than MaxInFlight: the slots come back
			if err := im.WriteAt(ctx, make([]byte, n), 0); err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Fatalf("a write of %d bytes whose object write panics: %v; want an error", n, err)
			}
		}
	}
	e.objs.ClearFaults()
	if err := im.WriteAt(ctx, make([]byte, 256<<10), 0); err != nil {
		t.Fatalf("a write after the panics: %v", err)
	}
}

// TestImageBoundsInFlight: one large write is split over many objects and
// runs them concurrently, never more than MaxInFlight at once, even with
// several writers.
func TestImageBoundsInFlight(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test", func(c *Config) { c.MaxInFlight = 4 })
	ctx := context.Background()
	e.create(t, s, "c", 4<<20, stripe.Layout{ObjectSize: 16 << 10})
	im := e.open(t, s, "c")
	e.objs.Inject(imagetest.DelayOp(imagetest.OpWrite, 20*time.Millisecond))
	start := time.Now()
	errc := make(chan error, 2)
	for i := range 2 {
		go func() { errc <- im.WriteAt(ctx, make([]byte, 512<<10), int64(i)*(1<<20)) }()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if p := e.objs.PeakInFlight(); p != 4 {
		t.Fatalf("peak %d object operations in flight, want the bound 4", p)
	}
	// 64 object writes of 20ms, 4 at a time: about 320ms, not 1.3s.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("64 object writes took %v: not concurrent", d)
	}
}

// TestImageFlushWaitsForWrites: Flush returns only after the writes that
// started before it, and is not held up by writes that start after it.
func TestImageFlushWaitsForWrites(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	h := e.create(t, s, "fl", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	im := e.open(t, s, "fl")
	e.objs.Inject(func(op imagetest.Op, _, object string) *imagetest.Fault {
		switch {
		case op != imagetest.OpWrite:
			return nil
		case object == ObjectName(h.ID, 0):
			return &imagetest.Fault{Delay: 300 * time.Millisecond}
		}
		return &imagetest.Fault{Delay: 3 * time.Second}
	})
	start := time.Now()
	go func() {
		if err := im.WriteAt(ctx, []byte("before"), 0); err != nil {
			t.Error(err)
		}
	}()
	for e.objs.Count(imagetest.OpWrite) == 0 {
		time.Sleep(time.Millisecond)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- im.Flush(ctx) }()
	time.Sleep(50 * time.Millisecond) // Flush is waiting for "before" now
	go im.WriteAt(ctx, []byte("after"), 64<<10)
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Flush waited for a write that started after it")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("Flush returned %v after a 300ms write started: it did not wait for it", d)
	}
}

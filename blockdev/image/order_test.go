package image

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// delayFirst holds the first object operation of kind op for d, and
// closes entered once it has decided to.
func delayFirst(op imagetest.Op, d time.Duration, entered chan<- struct{}) imagetest.Injector {
	var hit atomic.Bool
	return func(o imagetest.Op, _, _ string) *imagetest.Fault {
		if o != op || !hit.CompareAndSwap(false, true) {
			return nil
		}
		close(entered)
		return &imagetest.Fault{Delay: d}
	}
}

// TestImageOverlappingMutationsInOrder: a mutation that overlaps an
// earlier one still in its object IO (held up in the store, as a write
// being retried is) starts only once that one has returned, so the later
// one is what the image holds, whatever the store's delays.
func TestImageOverlappingMutationsInOrder(t *testing.T) {
	const obj = 64 << 10
	old := bytes.Repeat([]byte("o"), 4096)
	later := bytes.Repeat([]byte("n"), 4096)
	for _, c := range []struct {
		name   string
		setup  bool         // write old at 0 before the test
		delay  imagetest.Op // the first mutation's object operation held up
		first  func(ctx context.Context, im *Image) error
		second func(ctx context.Context, im *Image) error
		want   []byte // at 0
	}{
		{
			name:   "write after write",
			delay:  imagetest.OpWrite,
			first:  func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, old, 0) },
			second: func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, later, 0) },
			want:   later,
		},
		{
			name:   "write after a partly overlapping write",
			delay:  imagetest.OpWrite,
			first:  func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, old, 0) },
			second: func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, later[:100], 4000) },
			want:   append(bytes.Clone(old[:4000]), later[:96]...),
		},
		{
			name:   "zero after write",
			delay:  imagetest.OpWrite,
			first:  func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, old, 0) },
			second: func(ctx context.Context, im *Image) error { return im.Zero(ctx, 0, obj) },
			want:   make([]byte, len(old)),
		},
		{
			name:   "write after trim",
			setup:  true,
			delay:  imagetest.OpZero,
			first:  func(ctx context.Context, im *Image) error { return im.Trim(ctx, 0, 4096) },
			second: func(ctx context.Context, im *Image) error { return im.WriteAt(ctx, later, 0) },
			want:   later,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.store(t, "test")
			ctx := context.Background()
			e.create(t, s, "o", 1<<20, stripe.Layout{ObjectSize: obj})
			im := e.open(t, s, "o")
			if c.setup {
				if err := im.WriteAt(ctx, old, 0); err != nil {
					t.Fatal(err)
				}
			}
			entered := make(chan struct{})
			e.objs.Inject(delayFirst(c.delay, 300*time.Millisecond, entered))
			firstDone := make(chan error, 1)
			go func() { firstDone <- c.first(ctx, im) }()
			<-entered
			if err := c.second(ctx, im); err != nil {
				t.Fatalf("second: %v", err)
			}
			if err := <-firstDone; err != nil {
				t.Fatalf("first: %v", err)
			}
			got := readAll(t, im)[:len(c.want)]
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("byte %d is %q, want %q: the first mutation landed after the second", i, got[i], c.want[i])
				}
			}
			e.checkInvariants(t, im)
		})
	}
}

// TestImageOrderOnlyOverlapping: mutations that do not overlap a held-up
// one (even in the same object) and reads of its range do not wait for
// it; an overlapping one waits only as long as its context allows.
func TestImageOrderOnlyOverlapping(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	e.create(t, s, "n", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	im := e.open(t, s, "n")
	entered := make(chan struct{})
	e.objs.Inject(delayFirst(imagetest.OpWrite, 2*time.Second, entered))
	firstDone := make(chan error, 1)
	go func() { firstDone <- im.WriteAt(ctx, make([]byte, 4096), 4096) }()
	<-entered

	start := time.Now()
	for _, off := range []int64{0, 8192, 512 << 10} {
		if err := im.WriteAt(ctx, make([]byte, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Zero(ctx, 64<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := im.ReadAt(ctx, make([]byte, 4096), 4096); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("IO that does not overlap the held-up write took %v: it waited for it", d)
	}

	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := im.WriteAt(wctx, make([]byte, 1), 5000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an overlapping write whose context ends while it waits: %v, want the context's error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the overlapping write returned %v after its context ended", d)
	}
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
}

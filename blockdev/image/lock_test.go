package image

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// TestImageLockExclusive: a second writer is refused with an error that
// names the holder; readers are not; Close releases the lock at once.
func TestImageLockExclusive(t *testing.T) {
	e := newEnv(t)
	a := e.store(t, "holder-a", func(c *Config) { c.Holder.Address = "10.0.0.1:10809" })
	b := e.store(t, "holder-b")
	ctx := context.Background()
	e.create(t, a, "x", 1<<20, stripe.Layout{})
	im, err := a.Open(ctx, "rbd", "x", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(ctx, "rbd", "x", OpenOptions{})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second writer: %v, want a *LockedError", err)
	}
	if le.Holder.Program != "holder-a" || le.Holder.Address != "10.0.0.1:10809" || le.Holder.PID == 0 || le.Holder.Host == "" || le.Holder.Since.IsZero() {
		t.Fatalf("the error does not describe the holder: %+v", le.Holder)
	}
	if h, ok, err := b.LockHolder(ctx, "rbd", "x"); err != nil || !ok || h.Program != "holder-a" {
		t.Fatalf("LockHolder = %+v, %v, %v", h, ok, err)
	}
	if err := b.Remove(ctx, "rbd", "x", RemoveOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("remove of a locked image: %v", err)
	}
	ro, err := b.Open(ctx, "rbd", "x", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a locked image: %v", err)
	}
	ro.Close()
	im.Close()
	if _, ok, _ := b.LockHolder(ctx, "rbd", "x"); ok {
		t.Fatal("Close did not release the lock")
	}
	im2, err := b.Open(ctx, "rbd", "x", OpenOptions{})
	if err != nil {
		t.Fatalf("open after the holder closed: %v", err)
	}
	im2.Close()
}

// TestImageBreakLockFences: breaking the lock fences the old holder (its
// writes, Run and header changes fail with ErrFenced), the new holder waits
// out the old lease before it returns, and the old holder's Close does not
// release the new holder's lock.
func TestImageBreakLockFences(t *testing.T) {
	e := newEnv(t)
	a := e.store(t, "holder-a")
	b := e.store(t, "holder-b")
	ctx := context.Background()
	e.create(t, a, "x", 1<<20, stripe.Layout{ObjectSize: 64 << 10})
	old, err := a.Open(ctx, "rbd", "x", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- old.Run(ctx) }()
	if err := old.WriteAt(ctx, []byte("old"), 0); err != nil {
		t.Fatal(err)
	}

	var broke Holder
	var waited time.Duration
	start := time.Now()
	im, err := b.Open(ctx, "rbd", "x", OpenOptions{BreakLock: true, OnBreak: func(h Holder, wait time.Duration) { broke, waited = h, wait }})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if broke.Program != "holder-a" || waited < 2*time.Second || time.Since(start) < waited {
		t.Fatalf("OnBreak(%+v, %v) after %v: want holder-a and a wait of the 2s TTL, waited out", broke, waited, time.Since(start))
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("old holder's Run = %v, want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old holder's Run did not notice the broken lock")
	}
	writes := e.objs.Count("write")
	if err := old.WriteAt(ctx, []byte("late"), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's write: %v, want ErrFenced", err)
	}
	if err := old.ReadAt(ctx, make([]byte, 3), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's read: %v, want ErrFenced", err)
	}
	if err := old.Flush(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's flush: %v, want ErrFenced", err)
	}
	if err := old.Resize(ctx, 2<<20, ResizeOptions{}); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's resize: %v, want ErrFenced", err)
	}
	if err := old.Err(); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's Err() = %v, want ErrFenced", err)
	}
	if err := im.Err(); err != nil {
		t.Fatalf("new holder's Err() = %v, want nil", err)
	}
	if n := e.objs.Count("write"); n != writes {
		t.Fatalf("a fenced holder's write reached the store")
	}
	if err := im.WriteAt(ctx, []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	old.Close()
	if err := old.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err() after Close = %v, want ErrClosed", err)
	}
	if h, ok, _ := a.LockHolder(ctx, "rbd", "x"); !ok || h.Program != "holder-b" {
		t.Fatalf("after the old holder closed, lock holder = %+v, %v; want holder-b", h, ok)
	}
	if err := im.Resize(ctx, 2<<20, ResizeOptions{}); err != nil {
		t.Fatalf("new holder's resize: %v", err)
	}
}

// TestImageHeaderChangeFencedByEtcd: even a holder that has not noticed
// yet that its lock is gone (no Run, clock not past the deadline) cannot
// change the header: etcd checks the lock.
func TestImageHeaderChangeFencedByEtcd(t *testing.T) {
	e := newEnv(t)
	a := e.store(t, "holder-a")
	ctx := context.Background()
	e.create(t, a, "x", 1<<20, stripe.Layout{})
	old, err := a.Open(ctx, "rbd", "x", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, _, err := a.BreakLock(ctx, "rbd", "x"); err != nil {
		t.Fatal(err)
	}
	if err := old.Resize(ctx, 4<<20, ResizeOptions{}); !errors.Is(err, ErrFenced) {
		t.Fatalf("resize by a holder whose lock was broken: %v, want ErrFenced", err)
	}
	if h, _ := a.Info(ctx, "rbd", "x"); h.Size != 1<<20 {
		t.Fatalf("size %d after a refused resize", h.Size)
	}
	if _, _, err := a.BreakLock(ctx, "rbd", "x"); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("breaking a lock nobody holds: %v", err)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestImageSelfFenceAtDeadline: a holder that cannot renew its lease (here:
// Run never called, and its clock past the deadline) refuses IO by itself.
func TestImageSelfFenceAtDeadline(t *testing.T) {
	e := newEnv(t)
	clk := &fakeClock{t: time.Now()}
	a := e.store(t, "holder-a", func(c *Config) { c.Now = clk.now })
	ctx := context.Background()
	e.create(t, a, "x", 1<<20, stripe.Layout{})
	im, err := a.Open(ctx, "rbd", "x", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if err := im.WriteAt(ctx, []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	clk.add(deadlineAfter(2*time.Second) + time.Millisecond)
	if err := im.WriteAt(ctx, []byte("b"), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("write past the lease deadline: %v, want ErrFenced", err)
	}
	if err := im.Run(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("Run of a fenced image: %v", err)
	}
}

// TestImageRunKeepsLock: with Run, the lock outlives several TTLs and
// writes keep working.
func TestImageRunKeepsLock(t *testing.T) {
	e := newEnv(t)
	a := e.store(t, "holder-a")
	e.create(t, a, "x", 1<<20, stripe.Layout{})
	im := e.open(t, a, "x")
	for i := range 5 {
		time.Sleep(time.Second)
		if err := im.WriteAt(context.Background(), []byte{byte(i)}, 0); err != nil {
			t.Fatalf("write %d s after open: %v", i+1, err)
		}
	}
}

// TestImageIOFencedAtLockDeadline: an IO's object operations carry the
// lock's deadline as their fence (client.WithFence), so that no OSD
// applies one after the lock may have lapsed and another writer taken the
// image; it follows the deadline as renewals move it.
func TestImageIOFencedAtLockDeadline(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "holder")
	e.create(t, s, "x", 1<<20, stripe.Layout{})
	im := e.open(t, s, "x")
	for range 2 {
		ctx, cancel := im.ioContext(context.Background())
		at, ok := client.Deadline(ctx)
		cancel()
		if want := im.lock.fenceAt(); !ok || !at.Equal(want) {
			t.Fatalf("IO fence %v (%v), want the lock's deadline %v", at, ok, want)
		}
		if left := time.Until(at); left <= 0 || left > deadlineAfter(2*time.Second) {
			t.Fatalf("IO fence %v away, want within the lock's %v", left, deadlineAfter(2*time.Second))
		}
		old, give := im.lock.fenceAt(), time.Now().Add(10*time.Second)
		for im.lock.fenceAt().Equal(old) { // Run renews the lease
			if time.Now().After(give) {
				t.Fatal("the lock's deadline did not move in 10s: no renewal")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ro, err := s.Open(context.Background(), "rbd", "x", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ctx, cancel := ro.ioContext(context.Background())
	defer cancel()
	if _, ok := client.Deadline(ctx); ok {
		t.Fatal("a read-only image's IO is fenced: it holds no lock")
	}
}

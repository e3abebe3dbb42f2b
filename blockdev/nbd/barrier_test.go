package nbd

import (
	"context"
	"testing"
	"time"
)

func TestBarrier(t *testing.T) {
	var b barrier
	w1 := b.start()
	w2 := b.start()
	waits := b.snapshot() // a flush after w1 and w2
	w3 := b.start()       // a write after the flush
	done := make(chan error, 1)
	go func() { done <- waitAll(context.Background(), waits) }()
	b.done(w2)
	b.done(w3)
	select {
	case <-done:
		t.Fatal("flush finished before the first write")
	case <-time.After(20 * time.Millisecond):
	}
	b.done(w1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(b.snapshot()) != 0 {
		t.Fatal("writes still pending")
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.start()
	cancel()
	if err := waitAll(ctx, b.snapshot()); err != context.Canceled {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestBufPool(t *testing.T) {
	var p bufPool
	for _, n := range []int{1, 512, 4096, 4097, 1 << 20, 32 << 20, 32<<20 + 1} {
		b := p.get(n)
		if len(b) != n {
			t.Fatalf("get(%d) has length %d", n, len(b))
		}
		p.put(b)
		if c := bufClass(n); c >= 0 && 1<<(minBufShift+c) < n {
			t.Fatalf("class %d too small for %d", c, n)
		}
	}
	if bufClass(0) != -1 || bufClass(64<<20) != -1 {
		t.Fatal("sizes outside the classes must not be pooled")
	}
}

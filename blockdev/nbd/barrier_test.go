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

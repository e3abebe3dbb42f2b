package osd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
)

var errAcceptFailed = errors.New("accept failed")

// failingListener hands out its connections, then fails.
type failingListener struct{ conns chan net.Conn }

func (l *failingListener) Accept() (net.Conn, error) {
	if c, ok := <-l.conns; ok {
		return c, nil
	}
	return nil, errAcceptFailed
}
func (l *failingListener) Close() error   { return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestServeEndsConnectionsOnAcceptError: when the listener fails, Serve
// returns the error after ending its connections itself; it used to wait
// for them to end with the caller's context, which the daemon's errgroup
// cancels only once Serve has returned.
func TestServeEndsConnectionsOnAcceptError(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	l := &failingListener{conns: make(chan net.Conn, 1)}
	l.conns <- server
	close(l.conns)
	s := NewServer(nil, nil, zap.NewNop()) // no request arrives: neither is used
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), l) }()
	select {
	case err := <-done:
		if !errors.Is(err, errAcceptFailed) {
			t.Fatalf("Serve = %v, want the accept error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve hangs after an accept error while a connection is open")
	}
}

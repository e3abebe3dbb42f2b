// Package montest starts real single-member control planes (storage/mon) on
// free 127.0.0.1 ports for tests.
//
// Who may import it: tests only (_test.go files of any package).
package montest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/mon"
)

// Running is a started mon. It is not safe for concurrent use: one
// goroutine calls Stop and Restart, alternately, starting with Stop.
type Running struct {
	// Endpoints are the client URLs to pass to clientv3 or clustermap.Dial.
	// They stay the same across Restart.
	Endpoints []string
	// DataDir is the mon's data directory.
	DataDir string

	cfg    mon.Config
	cancel context.CancelFunc
	done   chan error
}

// Stop cancels the mon and returns Run's result (nil after a clean stop).
func (r *Running) Stop() error {
	r.cancel()
	return <-r.done
}

// Restart starts the stopped mon again on the same directory and URLs and
// waits until it is ready.
func (r *Running) Restart() error {
	return r.run()
}

// FreeURL returns http://127.0.0.1:PORT for a port that was free a moment
// ago. Another process may take it before it is used; Start retries.
func FreeURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "http://" + l.Addr().String(), nil
}

// Start runs a single-member mon in dir on free ports and waits until it is
// ready. log may be nil (no logging).
func Start(dir string, log *zap.Logger) (*Running, error) {
	if log == nil {
		log = zap.NewNop()
	}
	var err error
	for range 5 {
		var r *Running
		r, err = startOnce(dir, log)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, err
}

func startOnce(dir string, log *zap.Logger) (*Running, error) {
	client, err := FreeURL()
	if err != nil {
		return nil, err
	}
	peer, err := FreeURL()
	if err != nil {
		return nil, err
	}
	r := &Running{DataDir: dir, cfg: mon.Config{DataDir: dir, ListenClient: client, ListenPeer: peer, Logger: log}}
	if err := r.run(); err != nil {
		return nil, err
	}
	return r, nil
}

// run starts r.cfg and waits until it is ready.
func (r *Running) run() error {
	m, err := mon.New(r.cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	readyc := make(chan []string, 1)
	go func() { r.done <- m.Run(ctx, func(urls []string) { readyc <- urls }) }()
	select {
	case r.Endpoints = <-readyc:
		return nil
	case err := <-r.done:
		cancel()
		if err == nil {
			err = errors.New("montest: mon stopped before it was ready")
		}
		return fmt.Errorf("montest: start mon in %s: %w", r.DataDir, err)
	}
}

// StartTB starts a mon in tb.TempDir and stops it in tb.Cleanup, failing
// the test if it does not stop cleanly. It returns the client endpoints.
func StartTB(tb testing.TB) []string {
	tb.Helper()
	r, err := Start(tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Stop(); err != nil {
			tb.Errorf("montest: stop mon: %v", err)
		}
	})
	return r.Endpoints
}

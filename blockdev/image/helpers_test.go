package image

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// env is a real control plane (one embedded etcd member) and an in-memory
// object store with pool "rbd".
type env struct {
	cli  *clientv3.Client
	objs *imagetest.MemObjects
}

func newEnv(t *testing.T) *env {
	t.Helper()
	eps := montest.StartTB(t)
	cli, err := clustermap.Dial(context.Background(), eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &env{cli: cli, objs: imagetest.NewMemObjects("rbd")}
}

// store returns a Store of a process named program (the lock holder's
// description) with a 2-second lock TTL.
func (e *env) store(t *testing.T, program string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Etcd: e.cli, Objects: e.objs, LockTTL: 2 * time.Second, MaxInFlight: 8, Holder: Holder{Program: program}}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) create(t *testing.T, s *Store, name string, size int64, l stripe.Layout) Header {
	t.Helper()
	h, err := s.Create(context.Background(), CreateOptions{Pool: "rbd", Name: name, Size: size, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// open opens name writable, runs it, and closes it at cleanup.
func (e *env) open(t *testing.T, s *Store, name string) *Image {
	t.Helper()
	im, err := s.Open(context.Background(), "rbd", name, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- im.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, ErrFenced) {
			t.Errorf("Run: %v", err)
		}
		im.Close()
	})
	return im
}

// checkInvariants: every object of the image has a data object name, lies
// below the image size, and holds nothing past it.
func (e *env) checkInvariants(t *testing.T, im *Image) {
	t.Helper()
	h := im.Header()
	for name, data := range e.objs.Objects("rbd", h.ID+".") {
		n, ok := parseObjectName(h.ID, name)
		if !ok {
			t.Fatalf("object %s is not a data object name", name)
		}
		if max := stripe.ObjectLen(h.Layout(), n, h.Size); int64(len(data)) > max {
			t.Fatalf("object %s (number %d) holds %d bytes; only %d of it are below the image size %d", name, n, len(data), max, h.Size)
		}
	}
}

// readAll reads the whole image.
func readAll(t *testing.T, im *Image) []byte {
	t.Helper()
	buf := bytes.Repeat([]byte{0xEE}, int(im.Size()))
	if err := im.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf
}

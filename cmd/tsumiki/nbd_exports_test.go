package main

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// TestExportsReopenWaitsForOwnRelease: a client whose last writable
// connection ends and who reconnects at once must not be refused because
// this server still holds the image's lock, releasing it for that last
// connection (the release waits for the connection's writes in flight).
// The reopen waits for the release and then serves.
func TestExportsReopenWaitsForOwnRelease(t *testing.T) {
	ctx := context.Background()
	cli, err := clustermap.Dial(ctx, montest.StartTB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	objs := imagetest.NewMemObjects("rbd")
	st, err := image.NewStore(image.Config{Etcd: cli, Objects: objs, LockTTL: 2 * time.Second, Holder: image.Holder{Program: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, image.CreateOptions{Pool: "rbd", Name: "img", Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	e := newImageExports(ctx, st, zap.NewNop(), false, 0)

	x1, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatal(err)
	}
	// The last connection's write is held in the object store, so its
	// Close (the lock's release) waits for it.
	entered, gate := make(chan struct{}), make(chan struct{})
	objs.Inject(func(op imagetest.Op, _, _ string) *imagetest.Fault {
		if op == imagetest.OpWrite {
			close(entered)
			<-gate
		}
		return nil
	})
	wrote := make(chan error, 1)
	go func() { wrote <- x1.WriteAt(ctx, make([]byte, 4096), 0) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- x1.Close() }()
	for releasing := false; !releasing; time.Sleep(time.Millisecond) {
		e.mu.Lock()
		releasing = e.closing["rbd/img"] != nil
		e.mu.Unlock()
	}

	reopened := make(chan error, 1)
	var x2 interface{ Close() error }
	go func() {
		x, err := e.Open(ctx, "rbd/img", false)
		x2 = x
		reopened <- err
	}()
	select {
	case err := <-reopened:
		t.Fatalf("the reopen returned while the server still released the lock: %v; want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	objs.ClearFaults()
	close(gate)
	if err := <-wrote; err != nil {
		t.Fatalf("the last connection's write: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-reopened; err != nil {
		t.Fatalf("the reopen after the release: %v", err)
	}
	if err := x2.Close(); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/image/imagetest"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// exportsEnv is a control plane (one embedded etcd member) and an
// in-memory object store with pool "rbd", shared by the Stores of several
// holders.
type exportsEnv struct {
	cli  *clientv3.Client
	objs *imagetest.MemObjects
}

func newExportsEnv(t *testing.T) *exportsEnv {
	t.Helper()
	cli, err := clustermap.Dial(context.Background(), montest.StartTB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &exportsEnv{cli: cli, objs: imagetest.NewMemObjects("rbd")}
}

// store is a Store of the holder program, with a lock TTL of ttl.
func (e *exportsEnv) store(t *testing.T, program string, ttl time.Duration) *image.Store {
	t.Helper()
	st, err := image.NewStore(image.Config{Etcd: e.cli, Objects: e.objs, LockTTL: ttl, Holder: image.Holder{Program: program}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hold creates rbd/name of 8 MiB with st and opens it writable: st's
// holder has its lock until the test ends.
func hold(t *testing.T, st *image.Store, name string) *image.Image {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Create(ctx, image.CreateOptions{Pool: "rbd", Name: name, Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	im, err := st.Open(ctx, "rbd", name, image.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- im.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		im.Close()
	})
	return im
}

// nbdOptInfo asks srv, over a pipe, for NBD_OPT_INFO of name as a client
// such as `nbdinfo --list` does, and returns the export's size and
// transmission flags (or the error reply's message).
func nbdOptInfo(t *testing.T, srv *nbd.Server, name string) (uint64, uint16, error) {
	t.Helper()
	client, server := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- srv.ServeConn(context.Background(), server) }()
	defer func() {
		client.Close()
		if err := <-served; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	}()
	be := binary.BigEndian
	br := bufio.NewReader(client)
	if _, err := io.ReadFull(br, make([]byte, 18)); err != nil { // greeting
		t.Fatal(err)
	}
	msg := be.AppendUint32(nil, 1|2) // FIXED_NEWSTYLE | NO_ZEROES
	msg = be.AppendUint64(msg, 0x49484156454F5054)
	msg = be.AppendUint32(msg, 6) // NBD_OPT_INFO
	msg = be.AppendUint32(msg, uint32(4+len(name)+2))
	msg = be.AppendUint32(msg, uint32(len(name)))
	msg = append(msg, name...)
	msg = be.AppendUint16(msg, 0)
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	var size uint64
	var flags uint16
	for {
		h := make([]byte, 20)
		if _, err := io.ReadFull(br, h); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, be.Uint32(h[16:]))
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		switch typ := be.Uint32(h[12:]); {
		case typ == 1: // NBD_REP_ACK
			return size, flags, nil
		case typ&(1<<31) != 0:
			return 0, 0, errors.New(string(data))
		case typ == 3 && be.Uint16(data) == 0: // NBD_REP_INFO, NBD_INFO_EXPORT
			size, flags = be.Uint64(data[2:]), be.Uint16(data[10:])
		}
	}
}

// TestExportsInfoLeavesLockAlone: NBD_OPT_INFO (`nbdinfo --list`) on a
// server that breaks locks describes an image another holder has locked
// from its header: the holder keeps its lock and goes on writing.
func TestExportsInfoLeavesLockAlone(t *testing.T) {
	env := newExportsEnv(t)
	ctx := context.Background()
	other := env.store(t, "other writer", 2*time.Second)
	held := hold(t, other, "held")
	e := newImageExports(ctx, env.store(t, "nbd serve", 2*time.Second), zap.NewNop(), true, 0)
	srv, err := nbd.NewServer(nbd.Config{Opener: e, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	size, flags, err := nbdOptInfo(t, srv, "rbd/held")
	if err != nil {
		t.Fatalf("NBD_OPT_INFO: %v", err)
	}
	const flagReadOnly = 1 << 1
	if size != 8<<20 || flags&flagReadOnly != 0 {
		t.Fatalf("NBD_OPT_INFO: size %d flags %#x; want %d, writable", size, flags, 8<<20)
	}
	if h, ok, err := other.LockHolder(ctx, "rbd", "held"); err != nil || !ok || h.Program != "other writer" {
		t.Fatalf("after NBD_OPT_INFO the lock is held by %v (held %v, %v); want the other writer still", h, ok, err)
	}
	data := bytes.Repeat([]byte("w"), 4096)
	if err := held.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("the other writer's write after NBD_OPT_INFO: %v", err)
	}
}

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

// within runs f and fails t unless it returns within d.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s took more than %v: held up by a slow open of another image", what, d)
	}
}

// TestExportsSlowOpenHoldsUpNoOther: while a writable open waits out the
// lease of a holder whose lock it broke (a whole lock TTL), the opens and
// releases of other images go on.
func TestExportsSlowOpenHoldsUpNoOther(t *testing.T) {
	env := newExportsEnv(t)
	ctx := context.Background()
	hold(t, env.store(t, "other writer", 10*time.Second), "held")
	st := env.store(t, "nbd serve", 2*time.Second)
	for _, name := range []string{"b", "c"} {
		if _, err := st.Create(ctx, image.CreateOptions{Pool: "rbd", Name: name, Size: 8 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	e := newImageExports(ctx, st, zap.NewNop(), true, 0)
	xb, err := e.Open(ctx, "rbd/b", false)
	if err != nil {
		t.Fatal(err)
	}

	slowCtx, cancelSlow := context.WithCancel(ctx)
	slow := make(chan error, 1)
	go func() {
		x, err := e.Open(slowCtx, "rbd/held", false)
		if err == nil {
			x.Close()
		}
		slow <- err
	}()
	defer func() {
		cancelSlow()
		if err := <-slow; !errors.Is(err, context.Canceled) {
			t.Errorf("the slow open, cancelled: %v", err)
		}
	}()
	for broken := false; !broken; time.Sleep(10 * time.Millisecond) {
		_, held, err := st.LockHolder(ctx, "rbd", "held")
		if err != nil {
			t.Fatal(err)
		}
		broken = !held // the slow open now waits out the old lease
	}

	within(t, time.Second, "a release of another image", xb.Close)
	within(t, time.Second, "an open of another image", func() error {
		x, err := e.Open(ctx, "rbd/c", false)
		if err != nil {
			return err
		}
		return x.Close()
	})
}

// TestExportsFencedImageNotReused: once the shared Image of an image is
// fenced (its lock broken), a new connection gets a fresh open, which
// retakes the free lock, instead of the fenced Image and EIO for as long
// as an old connection stays; the old connection's close then leaves the
// new Image and its lock alone.
func TestExportsFencedImageNotReused(t *testing.T) {
	env := newExportsEnv(t)
	ctx := context.Background()
	st := env.store(t, "nbd serve", 2*time.Second)
	if _, err := st.Create(ctx, image.CreateOptions{Pool: "rbd", Name: "img", Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	e := newImageExports(ctx, st, zap.NewNop(), false, 0)
	old, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, _, err := env.store(t, "operator", 2*time.Second).BreakLock(ctx, "rbd", "img"); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 4096)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := old.WriteAt(ctx, data, 0)
		if errors.Is(err, image.ErrFenced) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write after the lock was broken: %v; want ErrFenced", err)
		}
	}

	fresh, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatalf("an open after the fencing: %v", err)
	}
	defer fresh.Close()
	if err := fresh.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("a new connection's write after the old Image was fenced: %v; want a fresh Image", err)
	}
	if err := old.Close(); err != nil && !errors.Is(err, image.ErrFenced) {
		t.Fatalf("closing the fenced connection: %v", err)
	}
	shared, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatalf("an open while the fresh Image is open: %v", err)
	}
	defer shared.Close()
	for _, x := range []nbd.Export{fresh, shared} {
		if err := x.WriteAt(ctx, data, 4096); err != nil {
			t.Fatalf("a write after the fenced connection closed: %v", err)
		}
	}
	if h, ok, err := st.LockHolder(ctx, "rbd", "img"); err != nil || !ok || h.Program != "nbd serve" {
		t.Fatalf("after the fenced connection closed the lock is held by %v (held %v, %v); want the server still", h, ok, err)
	}
}

// TestExportsReopenWaitsForOwnFencedLock: when the server's own open fences
// itself (its lease lapsed: here its clock jumps past the deadline), the
// lock it held lasts until etcd expires the lease. A client that
// reconnects then waits for that and is served, instead of being refused
// with this very server named as the holder.
func TestExportsReopenWaitsForOwnFencedLock(t *testing.T) {
	env := newExportsEnv(t)
	ctx := context.Background()
	var mu sync.Mutex
	skew := time.Duration(0)
	st, err := image.NewStore(image.Config{Etcd: env.cli, Objects: env.objs, LockTTL: 2 * time.Second,
		Holder: image.Holder{Program: "nbd serve"},
		Now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, image.CreateOptions{Pool: "rbd", Name: "img", Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	e := newImageExports(ctx, st, zap.NewNop(), false, 10*time.Second)
	old, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	mu.Lock()
	skew = time.Minute
	mu.Unlock()
	data := bytes.Repeat([]byte("x"), 4096)
	if err := old.WriteAt(ctx, data, 0); !errors.Is(err, image.ErrFenced) {
		t.Fatalf("a write past the lock's deadline: %v; want ErrFenced", err)
	}
	if h, ok, err := st.LockHolder(ctx, "rbd", "img"); err != nil || !ok || h.Program != "nbd serve" {
		t.Fatalf("right after the fence the lock is held by %v (held %v, %v); want the server's own, not yet expired", h, ok, err)
	}
	fresh, err := e.Open(ctx, "rbd/img", false)
	if err != nil {
		t.Fatalf("a reconnecting client's open after the server's own open fenced itself: %v", err)
	}
	defer fresh.Close()
	if err := fresh.WriteAt(ctx, data, 0); err != nil {
		t.Fatalf("a write through the fresh open: %v", err)
	}
}

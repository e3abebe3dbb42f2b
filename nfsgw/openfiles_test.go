package nfsgw

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenFilesBoundAndIdle: the cache keeps at most max descriptors
// (least recently used out), closes them after the idle time, closes one
// in use only when released, and closes everything on closeAll. The
// invariant checked after each step: the descriptors open on the folder
// are exactly the cached ones plus those still in use.
func TestOpenFilesBoundAndIdle(t *testing.T) {
	fs, dir := newTestFS(t)
	now := time.Unix(1000, 0)
	c := newOpenFiles(fs, func(error) {})
	c.max = 2
	c.now = func() time.Time { return now }
	var fhs [][]byte
	for _, n := range []string{"a", "b", "c", "d"} {
		writeFile(t, fs, n, n)
		fh, err := fs.handleOf(n)
		if err != nil {
			t.Fatal(err)
		}
		fhs = append(fhs, fh)
	}
	check := func(step string, cached, open int) {
		t.Helper()
		if got := c.len(); got != cached {
			t.Fatalf("%s: %d cached, want %d", step, got, cached)
		}
		if got := openFDsUnder(t, dir); got != open {
			t.Fatalf("%s: %d descriptors open, want %d", step, got, open)
		}
	}
	use := func(i, flags int) *openFile {
		t.Helper()
		f, err := c.acquire(fhs[i], flags)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cached := func(i, flags int) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.entries[openKey{string(fhs[i]), flags}] != nil
	}
	tick := func() { now = now.Add(time.Second) }

	a := use(0, unix.O_RDONLY)
	c.release(a)
	tick()
	c.release(use(1, unix.O_RDONLY))
	check("a and b", 2, 2)
	tick()
	again := use(0, unix.O_RDONLY) // a is now the most recent
	if again != a {
		t.Fatal("a second acquire opened the file again")
	}
	c.release(again)
	tick()
	c.release(use(2, unix.O_RDONLY)) // c in, b (least recent) out
	check("bound", 2, 2)
	if !cached(0, unix.O_RDONLY) || cached(1, unix.O_RDONLY) || !cached(2, unix.O_RDONLY) {
		t.Fatal("LRU evicted the wrong entry")
	}

	// A reader takes a read-write entry of the same file.
	tick()
	rw := use(3, unix.O_RDWR) // d in, a out
	if r := use(3, unix.O_RDONLY); r != rw {
		t.Fatal("a reader opened the file again beside its read-write entry")
	} else {
		c.release(r)
	}
	c.release(rw)
	check("read-write entry", 2, 2)

	// Idle: entries unused for the idle time are closed.
	tick()
	held := use(0, unix.O_RDONLY) // a in, c out; in use
	now = now.Add(c.idle)
	c.release(held) // last use now: not idle
	c.closeIdle()
	check("idle", 1, 1)
	if !cached(0, unix.O_RDONLY) {
		t.Fatal("the recently used entry was closed")
	}

	// Evicted while in use: closed by the release, not before.
	held = use(0, unix.O_RDONLY)
	c.max = 0
	c.release(use(1, unix.O_RDONLY))
	check("evicted in use", 0, 1)
	if _, err := unix.Pread(held.fd, make([]byte, 1), 0); err != nil {
		t.Fatalf("descriptor in use was closed: %v", err)
	}
	c.release(held)
	check("released", 0, 0)

	// closeAll: cached ones at once, one in use at its release; later
	// acquires are not cached.
	c.max = 10
	c.release(use(0, unix.O_RDONLY))
	held = use(1, unix.O_RDWR)
	c.closeAll()
	check("closeAll", 0, 1)
	c.release(held)
	late := use(2, unix.O_RDONLY)
	check("after closeAll", 0, 1)
	c.release(late)
	check("all released", 0, 0)
}

// TestServerCloseClosesFiles: Run's end closes the cached descriptors.
func TestServerCloseClosesFiles(t *testing.T) {
	fs, dir := newTestFS(t)
	s, err := NewServer(Config{FS: fs, Exports: allowAll("/data"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	writeFile(t, fs, "f", "data")
	fh, _ := fs.handleOf("f")
	r := dialRPC(t, s.Addr())
	r.read(fh, 0, 4)
	if n := openFDsUnder(t, dir); n != 1 {
		t.Fatalf("%d descriptors open after a READ", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := openFDsUnder(t, dir); n != 0 {
		t.Fatalf("%d descriptors open after Run returned", n)
	}
}

package nbd_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

// TestKernelSession: the kernel client's path (no handshake, simple
// replies) writes, reads back, flushes and disconnects; the export is
// closed at the end and the flags offer flush, FUA, trim and zeroes.
func TestKernelSession(t *testing.T) {
	o := nbdtest.NewOpener()
	img := o.Add("pool/k", nbdtest.NewImage(8<<20))
	srv, err := nbd.NewServer(nbd.Config{Opener: o, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := srv.OpenKernel(context.Background(), "pool/k")
	if err != nil {
		t.Fatal(err)
	}
	if ks.Size() != 8<<20 || ks.BlockSize() != 4096 {
		t.Fatalf("size %d block %d", ks.Size(), ks.BlockSize())
	}
	const want = 1<<0 | 1<<2 | 1<<3 | 1<<5 | 1<<6 | 1<<8 // has flags, flush, fua, trim, write zeroes, multi-conn
	if f := ks.Flags(); f&want != want || f&(1<<1) != 0 {
		t.Fatalf("flags %#x, want %#x and not read-only", f, want)
	}
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- ks.Serve(context.Background(), server) }()
	c := &rawClient{t: t, nc: client, br: bufio.NewReader(client)}
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	data := bytes.Repeat([]byte("kernel!!"), 512)
	if r := c.do(0, wCmdWrite, 4096, uint32(len(data)), data); r.errno != 0 {
		t.Fatalf("write errno %d", r.errno)
	}
	if r := c.do(0, wCmdRead, 4096, uint32(len(data)), nil); r.errno != 0 || !bytes.Equal(r.data(), data) {
		t.Fatalf("read back: errno %d", r.errno)
	}
	flushes := img.Flushes()
	if r := c.do(0, wCmdFlush, 0, 0, nil); r.errno != 0 || img.Flushes() != flushes+1 {
		t.Fatalf("flush: errno %d, flushes %d", r.errno, img.Flushes())
	}
	c.request(0, wCmdDisc, 1, 0, 0, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not end after NBD_CMD_DISC")
	}
	o.CheckAllClosed(t)
}

package nbd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

const imgSize = 4 << 20

func newImageServer(t *testing.T, cfg func(*nbd.Config)) (*testServer, *nbdtest.Image) {
	o := nbdtest.NewOpener()
	img := o.Add("img", nbdtest.NewImage(imgSize))
	o.Add("ro", nbdtest.NewImage(imgSize)).SetReadOnly(true)
	return startServer(t, o, cfg), img
}

// TestCommands runs every command in both reply modes and checks the
// replies and the image.
func TestCommands(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			s, img := newImageServer(t, nil)
			c, size, flags := connect(t, s.addr, "img", sessionOpts{structured: structured, meta: structured, blockSizes: true})
			wantFlags := uint16(wFlagsReadWrite)
			if structured {
				wantFlags |= wFlagDF
			}
			if size != imgSize || flags != wantFlags {
				t.Fatalf("size %d flags %#x, want %d %#x", size, flags, imgSize, wantFlags)
			}
			data := bytes.Repeat([]byte("tsumiki!"), 8192) // 64 KiB
			if r := c.do(0, wCmdWrite, 64<<10, uint32(len(data)), data); r.errno != 0 || r.structured {
				t.Fatalf("write: %+v", r)
			}
			r := c.do(0, wCmdRead, 64<<10, uint32(len(data)), nil)
			if r.errno != 0 || !bytes.Equal(r.data(), data) {
				t.Fatalf("read back: errno %d, %d bytes", r.errno, len(r.data()))
			}
			if structured && (r.typ != wChunkData || wbe.Uint64(r.payload) != 64<<10) {
				t.Fatalf("structured read chunk type %d offset %d", r.typ, wbe.Uint64(r.payload))
			}
			if !bytes.Equal(img.Contents()[64<<10:128<<10], data) {
				t.Fatalf("image does not hold the write")
			}
			if r := c.do(wCmdFlagFUA, wCmdWrite, 0, 512, make([]byte, 512)); r.errno != 0 {
				t.Fatalf("FUA write: %+v", r)
			}
			before := img.Flushes()
			if r := c.do(0, wCmdFlush, 0, 0, nil); r.errno != 0 {
				t.Fatalf("flush: %+v", r)
			}
			if img.Flushes() != before+1 {
				t.Fatalf("flush did not reach the export")
			}
			if r := c.do(0, wCmdTrim, 64<<10, 4096, nil); r.errno != 0 {
				t.Fatalf("trim: %+v", r)
			}
			if r := c.do(wCmdFlagNoHole, wCmdZeroes, 72<<10, 8192, nil); r.errno != 0 {
				t.Fatalf("zero: %+v", r)
			}
			want := append(append(make([]byte, 4096), data[4096:8192]...), make([]byte, 8192)...)
			if r := c.do(0, wCmdRead, 64<<10, 16<<10, nil); !bytes.Equal(r.data(), want) {
				t.Fatalf("read after trim and zero differs")
			}
			if structured {
				r := c.do(0, wCmdBlock, 64<<10, 32<<10, nil)
				if r.typ != wChunkBlock || wbe.Uint32(r.payload) != wBaseAllocID {
					t.Fatalf("block status: %+v", r)
				}
				var got [][2]uint32
				for d := r.payload[4:]; len(d) >= 8; d = d[8:] {
					got = append(got, [2]uint32{wbe.Uint32(d), wbe.Uint32(d[4:])})
				}
				want := [][2]uint32{{4096, wStateHole | wStateZero}, {4096, 0}, {8192, wStateZero}, {16384, 0}}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("block status %v, want %v", got, want)
				}
				r = c.do(wCmdFlagReqOne, wCmdBlock, 64<<10, 32<<10, nil)
				if len(r.payload) != 12 {
					t.Fatalf("REQ_ONE: %d descriptors", (len(r.payload)-4)/8)
				}
				if r := c.do(wCmdFlagDF, wCmdRead, 0, 4096, nil); r.errno != 0 || r.typ != wChunkData {
					t.Fatalf("DF read: %+v", r)
				}
			}
			c.request(0, wCmdDisc, 1, 0, 0, nil)
			c.expectClosed()
		})
	}
}

// TestInvalidRequests: every bad request gets an error reply and the
// connection goes on.
func TestInvalidRequests(t *testing.T) {
	s, _ := newImageServer(t, nil)
	big := make([]byte, 40<<20)
	tests := []struct {
		name    string
		export  string
		opts    sessionOpts
		flags   uint16
		cmd     uint16
		off     uint64
		length  uint32
		payload []byte
		errno   uint32
		msg     string // part of the structured error message
	}{
		{name: "unknown command", cmd: 42, length: 512, errno: wEINVAL, msg: "unknown command"},
		{name: "cache", cmd: wCmdCache, length: 512, errno: wEINVAL},
		{name: "command 0xffff", cmd: 0xffff, errno: wEINVAL},
		{name: "unknown flag", flags: 1 << 10, cmd: wCmdRead, length: 512, errno: wEINVAL, msg: "flags"},
		{name: "req_one on read", flags: wCmdFlagReqOne, cmd: wCmdRead, length: 512, errno: wEINVAL},
		{name: "no_hole on write", flags: wCmdFlagNoHole, cmd: wCmdWrite, length: 512, payload: make([]byte, 512), errno: wEINVAL},
		{name: "df without structured", opts: sessionOpts{}, flags: wCmdFlagDF, cmd: wCmdRead, length: 512, errno: wEINVAL},
		{name: "read past end", cmd: wCmdRead, off: imgSize, length: 512, errno: wEINVAL, msg: "beyond the end"},
		{name: "read across end", cmd: wCmdRead, off: imgSize - 512, length: 1024, errno: wEINVAL},
		{name: "read offset overflow", cmd: wCmdRead, off: 1<<64 - 512, length: 1024, errno: wEINVAL},
		{name: "write past end", cmd: wCmdWrite, off: imgSize, length: 512, payload: make([]byte, 512), errno: wENOSPC},
		{name: "zero past end", cmd: wCmdZeroes, off: imgSize, length: 512, errno: wENOSPC},
		{name: "trim past end", cmd: wCmdTrim, off: imgSize, length: 512, errno: wEINVAL},
		{name: "block status past end", opts: sessionOpts{structured: true, meta: true, blockSizes: true}, cmd: wCmdBlock, off: imgSize, length: 512, errno: wEINVAL},
		{name: "block status without context", opts: sessionOpts{structured: true}, cmd: wCmdBlock, length: 512, errno: wEINVAL, msg: "metadata context"},
		{name: "misaligned read", cmd: wCmdRead, off: 1, length: 512, errno: wEINVAL, msg: "aligned"},
		{name: "misaligned write", cmd: wCmdWrite, off: 512, length: 100, payload: make([]byte, 100), errno: wEINVAL},
		{name: "zero length read", cmd: wCmdRead, errno: wEINVAL},
		{name: "zero length trim", cmd: wCmdTrim, errno: wEINVAL},
		{name: "flush with length", cmd: wCmdFlush, length: 512, errno: wEINVAL},
		{name: "oversized read", cmd: wCmdRead, length: 32<<20 + 512, errno: wEINVAL, msg: "larger"},
		{name: "oversized write", cmd: wCmdWrite, length: uint32(len(big)), payload: big, errno: wEINVAL},
		{name: "write read-only", export: "ro", cmd: wCmdWrite, length: 512, payload: make([]byte, 512), errno: wEPERM, msg: "read-only"},
		{name: "trim read-only", export: "ro", cmd: wCmdTrim, length: 512, errno: wEPERM},
		{name: "zero read-only", export: "ro", cmd: wCmdZeroes, length: 512, errno: wEPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == (sessionOpts{}) && !strings.Contains(tc.name, "without structured") {
				opts = sessionOpts{structured: true, blockSizes: true}
			}
			export := tc.export
			if export == "" {
				export = "img"
			}
			c, _, _ := connect(t, s.addr, export, opts)
			r := c.do(tc.flags, tc.cmd, tc.off, tc.length, tc.payload)
			if r.errno != tc.errno {
				t.Fatalf("errno %d (%s), want %d", r.errno, r.msg(), tc.errno)
			}
			if opts.structured && (r.typ != wChunkError || !strings.Contains(r.msg(), tc.msg)) {
				t.Errorf("error chunk type %#x message %q, want one containing %q", r.typ, r.msg(), tc.msg)
			}
			// The connection is still in sync.
			if r := c.do(0, wCmdRead, 0, 4096, nil); r.errno != 0 || len(r.data()) != 4096 {
				t.Fatalf("read after the bad request: %+v", r)
			}
		})
	}
}

// TestUnalignedWithoutBlockSizes: a client that did not ask for block size
// constraints may use any alignment (the spec's default minimum is 1).
func TestUnalignedWithoutBlockSizes(t *testing.T) {
	s, img := newImageServer(t, nil)
	c, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	if r := c.do(0, wCmdWrite, 3, 5, []byte("hello")); r.errno != 0 {
		t.Fatalf("unaligned write: %+v", r)
	}
	if r := c.do(0, wCmdRead, 1, 9, nil); r.errno != 0 || string(r.data()) != "\x00\x00hello\x00\x00" {
		t.Fatalf("unaligned read: %+v", r)
	}
	if string(img.Contents()[3:8]) != "hello" {
		t.Fatalf("image does not hold the unaligned write")
	}
}

// TestBackendErrors: Export errors become errno replies.
func TestBackendErrors(t *testing.T) {
	tests := []struct {
		name  string
		op    nbdtest.Op
		err   error
		cmd   uint16
		errno uint32
	}{
		{"read EIO", nbdtest.OpRead, errors.New("disk on fire"), wCmdRead, wEIO},
		{"write EIO", nbdtest.OpWrite, errors.New("disk on fire"), wCmdWrite, wEIO},
		{"write full", nbdtest.OpWrite, nbd.ErrNoSpace, wCmdWrite, wENOSPC},
		{"write ENOSPC", nbdtest.OpWrite, syscall.ENOSPC, wCmdWrite, wENOSPC},
		{"write EDQUOT", nbdtest.OpWrite, syscall.EDQUOT, wCmdWrite, wENOSPC},
		{"write EROFS", nbdtest.OpWrite, syscall.EROFS, wCmdWrite, wEPERM},
		{"flush EIO", nbdtest.OpFlush, errors.New("fsync failed"), wCmdFlush, wEIO},
		{"trim EIO", nbdtest.OpTrim, errors.New("disk on fire"), wCmdTrim, wEIO},
		{"zero full", nbdtest.OpZero, nbd.ErrNoSpace, wCmdZeroes, wENOSPC},
		{"extents EIO", nbdtest.OpExtents, errors.New("map lost"), wCmdBlock, wEIO},
	}
	for _, structured := range []bool{false, true} {
		for _, tc := range tests {
			if tc.cmd == wCmdBlock && !structured {
				continue
			}
			t.Run(fmt.Sprintf("%s/structured=%v", tc.name, structured), func(t *testing.T) {
				s, img := newImageServer(t, nil)
				img.Inject(nbdtest.Fault{Ops: tc.op, Err: tc.err, Times: 1})
				c, _, _ := connect(t, s.addr, "img", sessionOpts{structured: structured, meta: structured, blockSizes: true})
				var payload []byte
				length := uint32(4096)
				if tc.cmd == wCmdWrite {
					payload = make([]byte, length)
				}
				if tc.cmd == wCmdFlush {
					length = 0
				}
				r := c.do(0, tc.cmd, 0, length, payload)
				if r.errno != tc.errno {
					t.Fatalf("errno %d, want %d", r.errno, tc.errno)
				}
				if structured && strings.Contains(r.msg(), "fire") {
					t.Errorf("backend error text leaked to the client: %q", r.msg())
				}
				if r := c.do(0, tc.cmd, 0, length, payload); r.errno != 0 {
					t.Fatalf("same request after the fault is gone: errno %d", r.errno)
				}
			})
		}
	}
}

// TestPipelining: replies go out as requests finish, not in request order,
// and up to MaxInFlight requests run at once.
func TestPipelining(t *testing.T) {
	s, img := newImageServer(t, func(c *nbd.Config) { c.MaxInFlight = 4 })
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpRead, Off: 0, Len: 4096, Delay: 600 * time.Millisecond})
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpRead, Off: 1 << 20, Len: 1 << 20, Delay: 50 * time.Millisecond})
	c, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	c.request(0, wCmdRead, 1, 0, 4096, nil) // slow
	for i := range uint64(10) {
		c.request(0, wCmdRead, 100+i, 1<<20+i*4096, 4096, nil)
	}
	c.request(0, wCmdRead, 2, 8192, 4096, nil) // fast
	var order []uint64
	for range 12 {
		r := c.readReply(0)
		if r.errno != 0 || r.typ != wChunkData {
			t.Fatalf("reply %+v", r)
		}
		order = append(order, r.handle)
	}
	if order[len(order)-1] == 2 || order[0] == 1 {
		t.Errorf("replies in request order %v: requests were not executed concurrently", order)
	}
	if m := img.MaxConcurrent(); m < 2 || m > 4 {
		t.Errorf("%d reads ran at once, want between 2 and MaxInFlight=4", m)
	}
}

// TestFlushBarrier: FLUSH waits for the writes received before it (the
// write is in the image when the flush is answered) and does not hold
// back other requests. The flush and write replies may come in either
// order: the write is complete before the flush runs.
func TestFlushBarrier(t *testing.T) {
	s, img := newImageServer(t, nil)
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Delay: 200 * time.Millisecond, Times: 1})
	c, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	data := bytes.Repeat([]byte("barrier!"), 64)
	c.request(0, wCmdWrite, 1, 0, uint32(len(data)), data)
	c.request(0, wCmdFlush, 2, 0, 0, nil)
	c.request(0, wCmdRead, 3, 8192, 512, nil)
	var order []uint64
	for range 3 {
		r := c.readReply(0)
		if r.errno != 0 {
			t.Fatalf("reply %+v", r)
		}
		if r.handle == 2 && !bytes.Equal(img.Contents()[:len(data)], data) {
			t.Fatalf("flush answered before the earlier write reached the export")
		}
		order = append(order, r.handle)
	}
	if order[0] != 3 {
		t.Errorf("reply order %v: the read was held back behind the flush", order)
	}
	if img.Flushes() != 1 {
		t.Errorf("%d flushes", img.Flushes())
	}
}

// TestMultiConnFlush: a write acknowledged on one connection is read and
// flushed through another (CAN_MULTI_CONN).
func TestMultiConnFlush(t *testing.T) {
	s, img := newImageServer(t, nil)
	a, _, flags := connect(t, s.addr, "img", sessionOpts{structured: true})
	b, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	if flags&wFlagMultiConn == 0 {
		t.Fatalf("CAN_MULTI_CONN not advertised")
	}
	data := bytes.Repeat([]byte{7}, 4096)
	if r := a.do(0, wCmdWrite, 4096, 4096, data); r.errno != 0 {
		t.Fatal(r)
	}
	before := img.Flushes()
	if r := b.do(0, wCmdFlush, 0, 0, nil); r.errno != 0 || img.Flushes() != before+1 {
		t.Fatalf("flush on the second connection: %+v", r)
	}
	if r := b.do(0, wCmdRead, 4096, 4096, nil); !bytes.Equal(r.data(), data) {
		t.Fatalf("second connection does not see the write")
	}
}

func TestFlushOnFUA(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			s, img := newImageServer(t, func(c *nbd.Config) { c.FlushOnFUA = on })
			c, _, _ := connect(t, s.addr, "img", sessionOpts{})
			c.do(wCmdFlagFUA, wCmdWrite, 0, 512, make([]byte, 512))
			c.do(wCmdFlagFUA, wCmdTrim, 0, 512, nil)
			c.do(wCmdFlagFUA, wCmdZeroes, 0, 512, nil)
			c.do(0, wCmdWrite, 0, 512, make([]byte, 512))
			if want := map[bool]int{false: 0, true: 3}[on]; img.Flushes() != want {
				t.Errorf("%d flushes for three FUA requests, want %d", img.Flushes(), want)
			}
		})
	}
}

// TestDisconnectFinishesInFlight: after NBD_CMD_DISC the server still
// answers and applies the requests received before it.
func TestDisconnectFinishesInFlight(t *testing.T) {
	s, img := newImageServer(t, nil)
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Delay: 100 * time.Millisecond})
	c, _, _ := connect(t, s.addr, "img", sessionOpts{})
	c.request(0, wCmdWrite, 1, 0, 4, []byte("last"))
	c.request(0, wCmdDisc, 2, 0, 0, nil)
	if r := c.readReply(0); r.handle != 1 || r.errno != 0 {
		t.Fatalf("reply %+v", r)
	}
	c.expectClosed()
	if string(img.Contents()[:4]) != "last" {
		t.Fatalf("write before DISC lost")
	}
}

// TestAbruptCloseCancelsInFlight: a connection that ends without DISC
// cancels its requests in flight. A client that resends its unanswered
// writes on another connection after a drop (Linux multi-conn requeue,
// qemu reconnect) then writes the range again and flushes must not have
// the dead connection's delayed write land over it.
func TestAbruptCloseCancelsInFlight(t *testing.T) {
	s, img := newImageServer(t, nil)
	const delay = 300 * time.Millisecond
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Delay: delay, Times: 1})
	a, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	b, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	a.request(0, wCmdWrite, 1, 0, 3, []byte("old"))
	for img.Calls(nbdtest.OpWrite) == 0 {
		time.Sleep(time.Millisecond)
	}
	a.nc.Close() // no DISC
	if r := b.do(0, wCmdWrite, 0, 3, []byte("new")); r.errno != 0 {
		t.Fatalf("write on the second connection: %+v", r)
	}
	if r := b.do(0, wCmdFlush, 0, 0, nil); r.errno != 0 {
		t.Fatalf("flush on the second connection: %+v", r)
	}
	time.Sleep(2 * delay) // the old write would have landed by now
	if r := b.do(0, wCmdRead, 0, 3, nil); r.errno != 0 || string(r.data()) != "new" {
		t.Fatalf("read after the dead connection's write: %q (errno %d), want %q", r.data(), r.errno, "new")
	}
}

// TestShutdown: cancelling the server answers in-flight requests (here
// with ESHUTDOWN, the export's wait is cancelled), closes connections and
// exports, and Serve returns nil.
func TestShutdown(t *testing.T) {
	o := nbdtest.NewOpener()
	img := o.Add("img", nbdtest.NewImage(imgSize))
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpRead, Delay: time.Minute})
	srv, err := nbd.NewServer(nbd.Config{Opener: o, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c, _, _ := connect(t, ln.Addr().String(), "img", sessionOpts{structured: true})
	idle := dialRaw(t, ln.Addr().String()) // still negotiating
	idle.greet(wFixedNewstyle)
	c.request(0, wCmdRead, 9, 0, 4096, nil)
	for img.Calls(nbdtest.OpRead) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if r := c.readReply(0); r.handle != 9 || r.errno != wESHUTDOWN {
		t.Fatalf("in-flight read at shutdown: %+v", r)
	}
	c.expectClosed()
	idle.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if n := o.OpenExports(); n != 0 {
		t.Fatalf("%d exports left open", n)
	}
}

// TestBrokenClientDoesNotDisturbOthers: garbage on one connection closes
// only that one.
func TestBrokenClientDoesNotDisturbOthers(t *testing.T) {
	s, _ := newImageServer(t, nil)
	good, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	bad, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	bad.send(bytes.Repeat([]byte{0xde, 0xad}, 64))
	bad.expectClosed()
	truncated, _, _ := connect(t, s.addr, "img", sessionOpts{})
	truncated.send(wbe.AppendUint32(nil, wRequestMagic))
	truncated.nc.(*net.TCPConn).CloseWrite()
	truncated.expectClosed()
	if r := good.do(0, wCmdRead, 0, 4096, nil); r.errno != 0 {
		t.Fatalf("good connection: %+v", r)
	}
}

// panicky is an Export whose ReadAt panics.
type panicky struct{ nbd.Export }

func (panicky) ReadAt(context.Context, []byte, int64) error { panic("bug in export") }

type panickyOpener struct{ *nbdtest.Opener }

func (o panickyOpener) Open(ctx context.Context, name string, ro bool) (nbd.Export, error) {
	e, err := o.Opener.Open(ctx, name, ro)
	return panicky{e}, err
}

func TestExportPanic(t *testing.T) {
	o := nbdtest.NewOpener()
	o.Add("img", nbdtest.NewImage(imgSize))
	s := startServer(t, o, func(c *nbd.Config) { c.Opener = panickyOpener{o}; c.Logger = zap.NewNop() })
	c, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
	if r := c.do(0, wCmdRead, 0, 4096, nil); r.errno != wEIO {
		t.Fatalf("read from a panicking export: %+v", r)
	}
	if r := c.do(0, wCmdWrite, 0, 512, make([]byte, 512)); r.errno != 0 {
		t.Fatalf("write after the panic: %+v", r)
	}
}

// TestServeConnPipe serves one connection over net.Pipe with ServeConn.
func TestServeConnPipe(t *testing.T) {
	o := nbdtest.NewOpener()
	o.Add("img", nbdtest.NewImage(imgSize))
	srv, err := nbd.NewServer(nbd.Config{Opener: o, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() { serveErr = srv.ServeConn(context.Background(), server) })
	c := &rawClient{t: t, nc: client}
	c.br = bufioReader(client)
	c.greet(wFixedNewstyle | wNoZeroes)
	c.option(wOptGo, infoData("img"))
	c.optReplies()
	if r := c.do(0, wCmdWrite, 0, 3, []byte("abc")); r.errno != 0 {
		t.Fatal(r)
	}
	c.request(0, wCmdDisc, 0, 0, 0, nil)
	wg.Wait()
	client.Close()
	if serveErr != nil {
		t.Fatalf("ServeConn: %v", serveErr)
	}
	o.CheckAllClosed(t)
}

func TestNewServerConfig(t *testing.T) {
	o := nbdtest.NewOpener()
	log := zap.NewNop()
	tests := []struct {
		name string
		cfg  nbd.Config
		bad  string // part of the error, "" for a valid config
	}{
		{"defaults", nbd.Config{Opener: o, Logger: log}, ""},
		{"no opener", nbd.Config{Logger: log}, "Opener"},
		{"no logger", nbd.Config{Opener: o}, "Logger"},
		{"min not power of two", nbd.Config{Opener: o, Logger: log, MinBlockSize: 1000}, "MinBlockSize"},
		{"min too large", nbd.Config{Opener: o, Logger: log, MinBlockSize: 128 << 10, PreferredBlockSize: 128 << 10}, "MinBlockSize"},
		{"preferred below min", nbd.Config{Opener: o, Logger: log, MinBlockSize: 4096, PreferredBlockSize: 512}, "PreferredBlockSize"},
		{"max not multiple", nbd.Config{Opener: o, Logger: log, MaxBlockSize: 1<<20 + 1}, "MaxBlockSize"},
		{"budget below max", nbd.Config{Opener: o, Logger: log, MaxInFlightBytes: 1 << 20}, "MaxInFlightBytes"},
		{"negative in flight", nbd.Config{Opener: o, Logger: log, MaxInFlight: -1}, "MaxInFlight"},
		{"negative timeout", nbd.Config{Opener: o, Logger: log, HandshakeTimeout: -1}, "HandshakeTimeout"},
		{"small blocks", nbd.Config{Opener: o, Logger: log, MinBlockSize: 1, PreferredBlockSize: 512, MaxBlockSize: 1 << 20}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nbd.NewServer(tc.cfg)
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("NewServer: %v", err)
			case tc.bad != "" && (!errors.Is(err, nbd.ErrConfig) || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("NewServer: %v, want an ErrConfig about %s", err, tc.bad)
			}
		})
	}
}

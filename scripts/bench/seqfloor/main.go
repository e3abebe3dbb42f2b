//go:build linux

// Command seqfloor measures how fast any 3-way replicated block device with
// tsumiki's (and Ceph's) data path could take large writes on this machine:
// an NBD server (tsumiki's own, blockdev/nbd) hands each write to a primary
// over loopback TCP; the primary sends it on to two replicas over TCP,
// writes its own copy, and answers once all three copies are written with
// O_DIRECT and fdatasynced (group commit: one fdatasync covers every write
// finished before it started). Everything runs in this one process, as in
// `tsumiki up`.
//
// It is a floor of cost, not a storage system: no checksums, no log, no
// metadata, no placement, one file per replica (preallocated, or sparse
// with -sparse), written in place. A real system does all of that on top,
// so what seqfloor reaches bounds what a system with this path (an NBD
// gateway, a primary, two replicas, over TCP: tsumiki's) can reach on the
// same machine. Ceph in scripts/bench/nbd.sh runs librbd inside fio: one
// hop (the gateway's) fewer than this.
//
//	seqfloor [-listen 127.0.0.1:10899] [-dir DIR] [-size 4G] [-for 10m]
//
// serves one export "floor" of -size bytes until SIGINT/SIGTERM or -for
// passes. Reads return the bytes of the primary's file; trim and zero are
// refused (EINVAL): this is for sequential and random write jobs.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

const align = 4096

func main() {
	listen := flag.String("listen", "127.0.0.1:10899", "NBD listen address")
	dir := flag.String("dir", os.TempDir(), "folder for the three replica files")
	size := flag.Int64("size", 4<<30, "export size in bytes")
	limit := flag.Duration("for", 10*time.Minute, "stop by itself after this long")
	debug := flag.String("debug-addr", "", "serve net/http/pprof on this address (empty: off)")
	sparse := flag.Bool("sparse", false, "leave the replica files sparse (writes fill holes) instead of preallocating them")
	flag.Parse()
	if *debug != "" {
		go http.ListenAndServe(*debug, nil) //nolint:errcheck // profiling only
	}
	if err := run(*listen, *dir, *size, *limit, *sparse); err != nil {
		fmt.Fprintln(os.Stderr, "seqfloor:", err)
		os.Exit(1)
	}
}

func run(listen, dir string, size int64, limit time.Duration, sparse bool) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, limit)
	defer cancelT()

	var addrs [3]string
	var reps [3]*replica
	for i := range reps {
		r, err := openReplica(fmt.Sprintf("%s/seqfloor-%d.img", dir, i), size, sparse)
		if err != nil {
			return err
		}
		defer r.close()
		reps[i] = r
	}
	for i := 1; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
		go serveReplica(ln, reps[i], nil)
	}
	var followers [2]*peer
	for i := range followers {
		p, err := dialPeer(addrs[i+1])
		if err != nil {
			return err
		}
		followers[i] = p
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pln.Close()
	go serveReplica(pln, reps[0], followers[:])
	primary, err := dialPeer(pln.Addr().String())
	if err != nil {
		return err
	}

	srv, err := nbd.NewServer(nbd.Config{Opener: opener{&export{primary: primary, local: reps[0], size: size}}, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("seqfloor: serving nbd://%s/floor (%d bytes) in %s\n", ln.Addr(), size, dir)
	return srv.Serve(ctx, ln)
}

// replica is one copy: a preallocated file written with O_DIRECT, synced
// by group commit.
type replica struct {
	f, direct *os.File
	mu        sync.Mutex
	cond      *sync.Cond
	started   uint64 // fdatasyncs started
	done      uint64 // fdatasyncs finished
	running   bool
	err       error
}

func openReplica(path string, size int64, sparse bool) (*replica, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	os.Remove(path) // gone when closed
	if sparse {
		err = f.Truncate(size)
	} else {
		err = syscall.Fallocate(int(f.Fd()), 0, 0, size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("preallocate %s: %w", path, err)
	}
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("O_DIRECT: %w", err)
	}
	r := &replica{f: f, direct: d}
	r.cond = sync.NewCond(&r.mu)
	return r, nil
}

func (r *replica) close() { r.direct.Close(); r.f.Close() }

// write writes p (aligned) at off and returns once an fdatasync that
// started after the write has finished.
func (r *replica) write(p []byte, off int64) error {
	if _, err := r.direct.WriteAt(p, off); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := r.started + 1
	for r.done < want {
		if r.running {
			r.cond.Wait()
			continue
		}
		r.running = true
		r.started++
		gen := r.started
		r.mu.Unlock()
		err := syscall.Fdatasync(int(r.f.Fd()))
		r.mu.Lock()
		r.running, r.done = false, gen
		if err != nil && r.err == nil {
			r.err = err // sticky: a failed fdatasync may have lost any write before it
		}
		r.cond.Broadcast()
	}
	return r.err
}

// Wire: request = id u64, off u64, len u32, data; reply = id u64, status u8.

// peer is a pipelined connection to a replica: many requests in flight,
// replies matched by id.
type peer struct {
	wmu     sync.Mutex
	w       *bufio.Writer
	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan error
}

func dialPeer(addr string) (*peer, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &peer{w: bufio.NewWriterSize(c, 64<<10), waiting: map[uint64]chan error{}}
	go p.readReplies(bufio.NewReader(c))
	return p, nil
}

func (p *peer) readReplies(r *bufio.Reader) {
	var b [9]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			p.mu.Lock()
			for id, ch := range p.waiting {
				ch <- err
				delete(p.waiting, id)
			}
			p.mu.Unlock()
			return
		}
		id := binary.BigEndian.Uint64(b[:8])
		p.mu.Lock()
		ch := p.waiting[id]
		delete(p.waiting, id)
		p.mu.Unlock()
		if ch == nil {
			continue
		}
		if b[8] != 0 {
			ch <- errors.New("replica write failed")
		} else {
			ch <- nil
		}
	}
}

// send writes the request and returns the channel its reply comes on.
func (p *peer) send(data []byte, off int64) <-chan error {
	ch := make(chan error, 1)
	p.mu.Lock()
	p.next++
	id := p.next
	p.waiting[id] = ch
	p.mu.Unlock()
	var h [20]byte
	binary.BigEndian.PutUint64(h[:8], id)
	binary.BigEndian.PutUint64(h[8:16], uint64(off))
	binary.BigEndian.PutUint32(h[16:], uint32(len(data)))
	p.wmu.Lock()
	p.w.Write(h[:])
	p.w.Write(data)
	err := p.w.Flush()
	p.wmu.Unlock()
	if err != nil {
		ch <- err // the reader fails the others
	}
	return ch
}

// serveReplica reads requests from each connection of ln, writes them to
// r (after sending them on to followers, if any) and replies.
func serveReplica(ln net.Listener, r *replica, followers []*peer) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serveConn(c, r, followers)
	}
}

func serveConn(c net.Conn, r *replica, followers []*peer) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	var wmu sync.Mutex
	bw := bufio.NewWriter(c)
	for {
		var h [20]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		id := binary.BigEndian.Uint64(h[:8])
		off := int64(binary.BigEndian.Uint64(h[8:16]))
		n := int(binary.BigEndian.Uint32(h[16:]))
		buf := getBuf(n)
		data := (*buf)[:n]
		if _, err := io.ReadFull(br, data); err != nil {
			return
		}
		go func() {
			defer bufs.Put(buf)
			own := make(chan error, 1)
			go func() { own <- r.write(data, off) }()
			var sent []<-chan error
			for _, f := range followers {
				sent = append(sent, f.send(data, off))
			}
			err := <-own
			for _, ch := range sent {
				if e := <-ch; err == nil {
					err = e
				}
			}
			reply := [9]byte{}
			binary.BigEndian.PutUint64(reply[:8], id)
			if err != nil {
				reply[8] = 1
			}
			wmu.Lock()
			bw.Write(reply[:])
			bw.Flush()
			wmu.Unlock()
		}()
	}
}

// bufs recycles the aligned request buffers of the replicas.
var bufs sync.Pool

// getBuf returns a recycled aligned buffer of at least n bytes.
func getBuf(n int) *[]byte {
	if b, ok := bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := alignedBuf(max(n, 1<<20))
	return &b
}

// alignedBuf returns n bytes whose address is a multiple of align.
func alignedBuf(n int) []byte {
	b := make([]byte, n+align)
	a := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % align)
	if a != 0 {
		a = align - a
	}
	return b[a : a+n : a+n]
}

// export is the NBD export: writes go to the primary, reads come from the
// primary's file.
type export struct {
	primary *peer
	local   *replica
	size    int64
}

var errUnsupported = errors.New("seqfloor takes reads and aligned writes only")

func (e *export) Size() int64 { return e.size }
func (e *export) ReadAt(_ context.Context, p []byte, off int64) error {
	_, err := e.local.f.ReadAt(p, off)
	return err
}
func (e *export) WriteAt(_ context.Context, p []byte, off int64) error {
	if off%align != 0 || len(p)%align != 0 {
		return errUnsupported
	}
	return <-e.primary.send(p, off)
}
func (e *export) Flush(context.Context) error              { return nil } // every write is synced
func (e *export) Trim(context.Context, int64, int64) error { return errUnsupported }
func (e *export) Zero(context.Context, int64, int64, bool) error {
	return errUnsupported
}
func (e *export) Extents(_ context.Context, off, length int64) ([]nbd.Extent, error) {
	return []nbd.Extent{{Offset: off, Length: length}}, nil
}
func (e *export) Close() error { return nil }

type opener struct{ e *export }

func (o opener) Open(_ context.Context, name string, _ bool) (nbd.Export, error) {
	if name != "floor" && name != "" {
		return nil, fmt.Errorf("%w: %q (the export is \"floor\")", nbd.ErrExportNotFound, name)
	}
	return o.e, nil
}
func (o opener) Info(ctx context.Context, name string) (nbd.ExportInfo, error) {
	e, err := o.Open(ctx, name, false)
	if err != nil {
		return nbd.ExportInfo{}, err
	}
	return nbd.ExportInfo{Size: e.Size()}, nil
}
func (o opener) List(context.Context) ([]string, error) { return []string{"floor"}, nil }

package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// rawOSD accepts one connection and hands each request to fn, which writes
// whatever it likes on w (flushing itself).
func rawOSD(t *testing.T, fn func(req wire.Request, w *bufio.Writer)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		serveRequests(c, func(req wire.Request, w *bufio.Writer) error {
			fn(req, w)
			return nil
		})
	}()
	return l.Addr().String()
}

// TestCallReadsIntoCallersBuffer: an answer whose data has the length of
// the caller's buffer lands in that buffer; another length gets its own.
func TestCallReadsIntoCallersBuffer(t *testing.T) {
	addr := rawOSD(t, func(req wire.Request, w *bufio.Writer) {
		resp := wire.Response{ID: req.ID, Data: bytes.Repeat([]byte{byte(req.Length)}, int(req.Length))}
		_ = wire.WriteFrame(w, wire.FrameResponse, wire.AppendResponse(nil, &resp))
		_ = w.Flush()
	})
	cn, err := dial(context.Background(), addr, defaultTiming)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.fail(errors.New("test over"))
	into := make([]byte, 100)
	resp, err := cn.call(context.Background(), &wire.Request{Op: wire.OpRead, Length: 100}, into)
	if err != nil {
		t.Fatal(err)
	}
	if &resp.Data[0] != &into[0] || into[99] != 100 {
		t.Fatal("data of the caller's length was not read into its buffer")
	}
	resp, err = cn.call(context.Background(), &wire.Request{Op: wire.OpRead, Length: 7}, into)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 7 || &resp.Data[0] == &into[0] || into[0] != 100 {
		t.Fatal("data of another length must not touch the caller's buffer")
	}
}

// TestCancelWhileAnswerArrives: the caller's context ends while the reader
// is reading its answer into the caller's buffer. call must not return
// before the reader is done with the buffer (the race detector and the
// content check catch a write after return).
func TestCancelWhileAnswerArrives(t *testing.T) {
	const n = 256 << 10
	addr := rawOSD(t, func(req wire.Request, w *bufio.Writer) {
		resp := wire.Response{ID: req.ID, Data: bytes.Repeat([]byte{0xab}, n)}
		frame := wire.AppendResponse(nil, &resp)
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(frame)))
		hdr[4] = wire.FrameResponse
		_, _ = w.Write(hdr[:])
		_, _ = w.Write(frame[:len(frame)/2])
		_ = w.Flush()
		time.Sleep(300 * time.Millisecond) // the caller gives up meanwhile
		_, _ = w.Write(frame[len(frame)/2:])
		_ = w.Flush()
	})
	cn, err := dial(context.Background(), addr, defaultTiming)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.fail(errors.New("test over"))
	into := make([]byte, n)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = cn.call(ctx, &wire.Request{Op: wire.OpRead, Length: n}, into)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if !bytes.Equal(into, bytes.Repeat([]byte{0xab}, n)) {
		t.Fatal("call returned while its buffer was still being filled")
	}
}

// TestConcurrentFirstCallsShareAConn: many calls to an OSD the client has
// no connection to yet, at once (a gateway's first burst, `pg verify`'s
// replicas). Each may dial; none may fail because another's connection
// replaced the one it was using.
func TestConcurrentFirstCallsShareAConn(t *testing.T) {
	c, fakes := setup(t)
	for _, f := range fakes {
		f.handle(func(wire.Request) wire.Response {
			time.Sleep(10 * time.Millisecond) // keep each call in flight while others dial
			return wire.Response{Status: wire.StatusOK}
		})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*16)
	for id := range fakes {
		for range 16 {
			wg.Go(func() {
				_, err := c.call(context.Background(), id, &wire.Request{Op: wire.OpPGStatus}, nil)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent first call failed: %v", err)
		}
	}
}

// recordingConn is a connection to an OSD that answers every request OK
// and hands it to the returned channel.
func recordingConn(t *testing.T) (*conn, <-chan wire.Request) {
	t.Helper()
	got := make(chan wire.Request, 8)
	addr := rawOSD(t, func(req wire.Request, w *bufio.Writer) {
		got <- req
		resp := wire.Response{ID: req.ID}
		_ = wire.WriteFrame(w, wire.FrameResponse, wire.AppendResponse(nil, &resp))
		_ = w.Flush()
	})
	cn, err := dial(context.Background(), addr, defaultTiming)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.fail(errors.New("test over")) })
	return cn, got
}

// TestCallStampsSentAndBudget: each request says when it was sent (since
// the connection opened) and how long its caller waits, rounded down, so
// that the OSD never proposes it after the caller gave up; a call already
// past its deadline sends nothing.
func TestCallStampsSentAndBudget(t *testing.T) {
	cn, got := recordingConn(t)
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Since(cn.start)
	if _, err := cn.call(ctx, &wire.Request{Op: wire.OpWrite}, nil); err != nil {
		t.Fatal(err)
	}
	after := time.Since(cn.start)
	req := <-got
	if sent := time.Duration(req.Sent) * time.Millisecond; sent < before.Truncate(time.Millisecond) || sent > after {
		t.Errorf("Sent %v, want between %v and %v", sent, before, after)
	}
	if b := time.Duration(req.Budget) * time.Millisecond; b <= 4*time.Second || b > 5*time.Second {
		t.Errorf("Budget %v, want under the 5s deadline", b)
	}
	if _, err := cn.call(context.Background(), &wire.Request{Op: wire.OpWrite}, nil); err != nil {
		t.Fatal(err)
	}
	if req := <-got; req.Budget != 0 {
		t.Errorf("Budget %d without a deadline, want 0 (none)", req.Budget)
	}
	late, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := cn.call(late, &wire.Request{Op: wire.OpWrite}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its deadline: %v, want DeadlineExceeded", err)
	}
	if cn.broken() {
		t.Error("a call past its deadline broke the connection")
	}
	select {
	case req := <-got:
		t.Errorf("a call past its deadline was sent: %+v", req)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCallBudgetCutToFence: a context's fence (an image lock's deadline)
// bounds the budget when it comes before the deadline; past it, nothing
// is sent.
func TestCallBudgetCutToFence(t *testing.T) {
	cn, got := recordingConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fence := time.Now().Add(3 * time.Second)
	fenced := WithFence(ctx, func() time.Time { return fence })
	if _, err := cn.call(fenced, &wire.Request{Op: wire.OpWrite}, nil); err != nil {
		t.Fatal(err)
	}
	if b := time.Duration((<-got).Budget) * time.Millisecond; b <= 2*time.Second || b > 3*time.Second {
		t.Errorf("Budget %v under a fence 3s away, want at most 3s", b)
	}
	fence = time.Now().Add(-time.Millisecond)
	if _, err := cn.call(fenced, &wire.Request{Op: wire.OpWrite}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its fence: %v, want DeadlineExceeded", err)
	}
	select {
	case req := <-got:
		t.Errorf("a call past its fence was sent: %+v", req)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestUnansweredMutationSettlesFirst: a mutation that gets no answer, for
// its deadline or a failed connection, returns only once the OSD can no
// longer apply it (timing.settle after it was sent), so that its caller may
// report it failed or send it again without it landing later; a reset
// does not change that (a middlebox may cut a connection the OSD still
// serves), but the OSD's goodbye settles it at once. Reads do not wait.
func TestUnansweredMutationSettlesFirst(t *testing.T) {
	const settle = 400 * time.Millisecond
	addr := func(onWrite string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go serveRequests(c, func(req wire.Request, w *bufio.Writer) error {
					if req.Op != wire.OpWrite {
						return nil
					}
					switch onWrite {
					case "goodbye":
						_, _ = w.Write(wire.AppendFrameHeader(nil, wire.FrameGoodbye, 0))
						_ = w.Flush()
						return errors.New("closing") // serveRequests closes c
					case "close":
						return errors.New("closing")
					}
					return nil // never answers
				})
			}
		}()
		return ln.Addr().String()
	}
	silent, closing, leaving := addr(""), addr("close"), addr("goodbye")
	open := func(a string) *conn {
		cn, err := dial(context.Background(), a, timing{settle: settle, frame: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.fail(errors.New("test over")) })
		return cn
	}
	// ctxFor is the call's deadline; cancelAfter cancels it sooner,
	// failAfter gives the connection up.
	timed := func(cn *conn, op wire.Op, ctxFor, cancelAfter, failAfter time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), ctxFor)
		defer cancel()
		if cancelAfter > 0 {
			time.AfterFunc(cancelAfter, cancel)
		}
		if failAfter > 0 {
			time.AfterFunc(failAfter, func() { cn.fail(errors.New("given up")) })
		}
		start := time.Now()
		_, err := cn.call(ctx, &wire.Request{Op: op, Data: []byte("x")}, nil)
		return time.Since(start), err
	}
	if d, err := timed(open(silent), wire.OpWrite, time.Minute, 20*time.Millisecond, 0); err == nil || d < settle {
		t.Errorf("a write whose caller gave up returned after %v (%v), want an error after %v", d, err, settle)
	}
	// Its budget bounds its window at the OSD too: a deadline before the
	// settling time settles it.
	if d, err := timed(open(silent), wire.OpWrite, settle/4, 0, 0); err == nil || d >= settle {
		t.Errorf("a write past a deadline of %v returned after %v (%v), want an error before %v", settle/4, d, err, settle)
	}
	if d, err := timed(open(silent), wire.OpWrite, time.Minute, 0, 20*time.Millisecond); err == nil || d < settle {
		t.Errorf("a write on a connection given up returned after %v (%v), want an error after %v", d, err, settle)
	}
	if d, err := timed(open(silent), wire.OpRead, time.Minute, 20*time.Millisecond, 0); err == nil || d >= settle {
		t.Errorf("a read whose caller gave up returned after %v (%v), want an error before %v", d, err, settle)
	}
	if d, err := timed(open(closing), wire.OpWrite, time.Minute, 0, 0); !errors.Is(err, errConnClosed) || d < settle {
		t.Errorf("a write whose connection was closed without a goodbye returned after %v (%v), want errConnClosed after %v", d, err, settle)
	}
	if d, err := timed(open(leaving), wire.OpWrite, time.Minute, 0, 0); !errors.Is(err, errConnClosed) || d >= settle {
		t.Errorf("a write whose OSD said goodbye returned after %v (%v), want errConnClosed before %v", d, err, settle)
	}
}

// TestAnswerStoppedMidwayFails: an OSD that stops in the middle of an
// answer (SIGSTOP, a paused VM: its kernel still acknowledges) fails the
// connection after the frame timeout instead of holding the caller, whose
// answer the reader had claimed, for ever.
func TestAnswerStoppedMidwayFails(t *testing.T) {
	addr := rawOSD(t, func(req wire.Request, w *bufio.Writer) {
		resp := wire.Response{ID: req.ID, Data: make([]byte, 4096)}
		b := wire.AppendResponse(nil, &resp)
		var frame bytes.Buffer
		fw := bufio.NewWriter(&frame)
		_ = wire.WriteFrame(fw, wire.FrameResponse, b)
		_ = fw.Flush()
		_, _ = w.Write(frame.Bytes()[:frame.Len()/2]) // and never the rest
		_ = w.Flush()
	})
	cn, err := dial(context.Background(), addr, timing{settle: time.Millisecond, frame: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cn.fail(errors.New("test over"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cn.call(ctx, &wire.Request{Op: wire.OpRead, Length: 4096}, make([]byte, 4096))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a half answer was taken for an answer")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a caller whose answer stopped midway is still held after 10s")
	}
	if !cn.broken() {
		t.Fatal("the connection is still in use after an answer stopped midway")
	}
}

// TestDialRefusesOtherVersions: an OSD that greets with another protocol
// version is refused at once, naming both versions, before any request
// could be misread.
func TestDialRefusesOtherVersions(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		body := binary.BigEndian.AppendUint32(nil, wire.Version+1)
		_, _ = c.Write(append(wire.AppendFrameHeader(nil, wire.FrameGreet, len(body)), body...))
		_, _ = io.Copy(io.Discard, c)
	}()
	_, err = dial(context.Background(), l.Addr().String(), defaultTiming)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("protocol v%d", wire.Version+1)) {
		t.Fatalf("dial to an OSD of another version: %v", err)
	}
}

package osd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
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

// serveLeader runs three loops with one PG and a Server on its leader, on
// a local port; shutdown ends the server (also at cleanup).
func serveLeader(t *testing.T) (lc *loopCluster, pg PG, lead int, addr string, shutdown func()) {
	t.Helper()
	lc = newLoopCluster(t, 1)
	pg = PG{Pool: 1, Seq: 0}
	lc.write(pg, "warm", []byte("x")) // a leader exists
	lead = lc.agreedLeader(pg)
	s := NewServer(lc.nodes[lead], ChunkStore{lc.stores[lead]}, zap.NewNop())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()
	var once sync.Once
	shutdown = func() { once.Do(func() { cancel(); <-served }) }
	t.Cleanup(shutdown)
	return lc, pg, lead, l.Addr().String(), shutdown
}

// greeted is a client connection to addr past the greetings (ours is
// buffered in w); opened is when the server's arrived, which requests'
// Sent count from.
func greeted(t *testing.T, addr string) (r *bufio.Reader, w *bufio.Writer, opened time.Time) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, w = bufio.NewReader(c), bufio.NewWriter(c)
	if typ, body, err := wire.ReadFrame(r); err != nil || wire.CheckGreet(typ, body) != nil {
		t.Fatalf("the server's greeting: type %d, %v", typ, err)
	}
	opened = time.Now()
	if _, err := w.Write(wire.Greet()); err != nil {
		t.Fatal(err)
	}
	return r, w, opened
}

// ask sends req on a greeted connection and returns the answer. stamp
// sets its Sent and Budget before each send: answers a client retries
// (degraded: the leader did not hear from enough replicas lately, as
// under -race; timeout) are retried for up to 30 s.
func ask(t *testing.T, r *bufio.Reader, w *bufio.Writer, req wire.Request, stamp func(*wire.Request)) wire.Response {
	t.Helper()
	give := time.Now().Add(30 * time.Second)
	for {
		stamp(&req)
		resp := askOnce(t, r, w, req)
		if (resp.Status != wire.StatusDegraded && resp.Status != wire.StatusTimeout) || time.Now().After(give) {
			return resp
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// askOnce sends req and returns its answer; no answer in 30 s fails t.
func askOnce(t *testing.T, r *bufio.Reader, w *bufio.Writer, req wire.Request) wire.Response {
	t.Helper()
	if err := wire.WriteFrame(w, wire.FrameRequest, wire.AppendRequest(nil, &req)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	answered := make(chan wire.Response, 1)
	go func() {
		_, body, err := wire.ReadFrame(r)
		if err != nil {
			answered <- wire.Response{Status: wire.StatusInternal, Msg: err.Error()}
			return
		}
		resp, err := wire.DecodeResponse(body)
		if err != nil {
			resp = wire.Response{Status: wire.StatusInternal, Msg: err.Error()}
		}
		answered <- resp
	}()
	select {
	case resp := <-answered:
		return resp
	case <-time.After(30 * time.Second):
		t.Fatalf("%v %s: no answer in 30s", req.Op, req.Object)
		return wire.Response{}
	}
}

// TestServerRefusesStaleMutations: a mutation read off a connection later
// than its client may still wait for it (its Sent says how long it waited
// unread; its Budget how long the client waits) is answered Timeout and
// never proposed, so it cannot land after writes its client made once it
// gave up on it. Fresh ones, and a client clock a little ahead, go through.
func TestServerRefusesStaleMutations(t *testing.T) {
	lc, pg, lead, addr, _ := serveLeader(t)
	r, w, opened := greeted(t, addr)
	write := func(object string, sentAgo time.Duration, budget uint32) wire.Status {
		t.Helper()
		req := wire.Request{ID: 1, Op: wire.OpWrite, Pool: pg.Pool, PG: pg.Seq, Object: object, Data: []byte("data")}
		return ask(t, r, w, req, func(req *wire.Request) {
			req.Sent = uint32(time.Since(opened).Milliseconds()) - uint32(sentAgo.Milliseconds()) // mod 2^32, as a client's
			req.Budget = budget
		}).Status
	}
	for _, tc := range []struct {
		object  string
		sentAgo time.Duration
		budget  uint32
		want    wire.Status
	}{
		{"fresh", 0, 30000, wire.StatusOK},
		{"no-budget", 0, 0, wire.StatusOK},
		{"clock-ahead", -50 * time.Millisecond, 30000, wire.StatusOK},
		{"waited-unread", wire.SettleFor(4), 30000, wire.StatusTooLate},
		{"client-done", 0, 200, wire.StatusTooLate},
	} {
		if got := write(tc.object, tc.sentAgo, tc.budget); got != tc.want {
			t.Errorf("%s: status %v, want %v", tc.object, got, tc.want)
		}
		_, err := lc.stores[lead].Stat(pg, tc.object)
		if exists := err == nil; exists != (tc.want == wire.StatusOK) {
			t.Errorf("%s: object exists: %v (%v), want %v", tc.object, exists, err, tc.want == wire.StatusOK)
		}
	}
}

// TestProposeRefusedOnTheLoopWhenLate: the deadline to propose is checked
// by the loop right before it proposes, not when the request was read: a
// request that waits for the loop past it is refused, and not applied.
func TestProposeRefusedOnTheLoopWhenLate(t *testing.T) {
	lc := newLoopCluster(t, 1)
	pg := PG{Pool: 1, Seq: 0}
	lc.write(pg, "warm", []byte("x"))
	lead := lc.agreedLeader(pg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := lc.nodes[lead].propose(ctx, pg, op{Kind: opWrite, Object: "late", Data: []byte("x")}, time.Now().Add(-time.Millisecond))
	if !errors.Is(err, ErrTooLate) {
		t.Fatalf("a proposal past its deadline: %v, want ErrTooLate", err)
	}
	if _, err := lc.stores[lead].Stat(pg, "late"); err == nil {
		t.Fatal("a proposal refused as too late was applied")
	}
}

// TestServerGreetsAndSaysGoodbye: a client that does not greet (an older
// tsumiki, whose requests this one would misread) is refused before any
// request is read; a greeted connection the server ends (shutdown) gets
// a goodbye, which tells the client nothing more from it will be
// proposed.
func TestServerGreetsAndSaysGoodbye(t *testing.T) {
	lc, pg, lead, addr, shutdown := serveLeader(t)
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	ow := bufio.NewWriter(old)
	req := wire.Request{ID: 1, Op: wire.OpWrite, Pool: pg.Pool, PG: pg.Seq, Object: "ungreeted", Data: []byte("data")}
	_ = wire.WriteFrame(ow, wire.FrameRequest, wire.AppendRequest(nil, &req))
	_ = ow.Flush()
	or := bufio.NewReader(old)
	if typ, _, err := wire.ReadFrame(or); err != nil || typ != wire.FrameGreet {
		t.Fatalf("first frame: type %d, %v; want the greeting", typ, err)
	}
	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if typ, _, err := wire.ReadFrame(or); err == nil && typ != wire.FrameGoodbye {
		t.Fatalf("an ungreeted request was answered (frame type %d)", typ)
	}
	if _, err := lc.stores[lead].Stat(pg, "ungreeted"); err == nil {
		t.Fatal("a request from a client that did not greet was applied")
	}

	r, w, _ := greeted(t, addr)
	req.Object = "greeted"
	if resp := ask(t, r, w, req, func(*wire.Request) {}); resp.Status != wire.StatusOK {
		t.Fatalf("a greeted request: %v %s", resp.Status, resp.Msg)
	}
	shutdown()
	if typ, _, err := wire.ReadFrame(r); err != nil || typ != wire.FrameGoodbye {
		t.Fatalf("at shutdown: frame type %d, %v; want a goodbye", typ, err)
	}
}

// TestServerTakesWholeObjectRequests: a write of a whole 32 MiB object
// (and a read of one) weighs more than the server's in-flight budget with
// its head; it must take the whole budget and be answered, not wait for
// ever for more (which stalled its connection). Any answer will do: under
// -race a 32 MiB proposal may cost the PG its leader.
func TestServerTakesWholeObjectRequests(t *testing.T) {
	_, pg, _, addr, _ := serveLeader(t)
	r, w, opened := greeted(t, addr)
	for _, req := range []wire.Request{
		{ID: 1, Op: wire.OpWrite, Object: "big", Data: make([]byte, chunkstore.MaxObjectSize)},
		{ID: 2, Op: wire.OpRead, Object: "big", Length: chunkstore.MaxObjectSize},
	} {
		req.Pool, req.PG = pg.Pool, pg.Seq
		req.Sent, req.Budget = uint32(time.Since(opened).Milliseconds()), 30000
		if resp := askOnce(t, r, w, req); resp.Status == wire.StatusInternal {
			t.Fatalf("%v of 32 MiB: %v %s", req.Op, resp.Status, resp.Msg)
		}
	}
}

package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// fakeOSD answers wire requests with a handler; it stands for an OSD so the
// client's retry logic can be checked answer by answer.
type fakeOSD struct {
	l  net.Listener
	mu sync.Mutex
	fn func(wire.Request) wire.Response
	n  map[wire.Op]int // requests seen per op
}

func startFake(t *testing.T) *fakeOSD {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOSD{l: l, n: map[wire.Op]int{}}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeOSD) handle(fn func(wire.Request) wire.Response) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *fakeOSD) count(op wire.Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[op]
}

func (f *fakeOSD) serve(c net.Conn) {
	serveRequests(c, func(req wire.Request, w *bufio.Writer) error {
		f.mu.Lock()
		f.n[req.Op]++
		fn := f.fn
		f.mu.Unlock()
		resp := wire.Response{Status: wire.StatusInternal, Leader: -1}
		if fn != nil {
			resp = fn(req)
		}
		resp.ID = req.ID
		if err := wire.WriteFrame(w, wire.FrameResponse, wire.AppendResponse(nil, &resp)); err != nil {
			return err
		}
		return w.Flush()
	})
}

// serveRequests reads requests off c and hands each to handle, which
// answers on w; it closes c when the stream ends or handle fails.
func serveRequests(c net.Conn, handle func(req wire.Request, w *bufio.Writer) error) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	// Greetings, as an OSD's (wire.FrameGreet).
	if _, err := w.Write(wire.Greet()); err != nil || w.Flush() != nil {
		return
	}
	if typ, body, err := wire.ReadFrame(r); err != nil || wire.CheckGreet(typ, body) != nil {
		return
	}
	for {
		_, body, err := wire.ReadFrame(r)
		if err != nil {
			return
		}
		req, err := wire.DecodeRequest(body)
		if err != nil || handle(req, w) != nil {
			return
		}
	}
}

// setup registers three fake OSDs and a size-3 pool of one PG in a real
// control plane and returns a client and the fakes by OSD id.
func setup(t *testing.T) (*Client, map[int32]*fakeOSD) {
	return setupPGs(t, 1)
}

// setupPGs is setup with a pool of pgs PGs.
func setupPGs(t *testing.T, pgs uint32) (*Client, map[int32]*fakeOSD) {
	eps := montest.StartTB(t)
	ctx := context.Background()
	cli, err := clustermap.Dial(ctx, eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := clustermap.NewStore(cli, "/tsumiki", nil)
	fakes := map[int32]*fakeOSD{}
	for i := 0; i < 3; i++ {
		f := startFake(t)
		o, err := st.RegisterOSD(ctx, clustermap.OSD{UUID: fmt.Sprint(i), Host: fmt.Sprintf("h%d", i), Class: "hdd", Weight: 1,
			PublicAddr: f.l.Addr().String(), ClusterAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		fakes[o.ID] = f
	}
	if _, err := st.CreatePool(ctx, clustermap.Pool{Name: "p", Size: 3, MinSize: 2, PGNum: pgs, FailureDomain: "host"}); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Config{Etcd: cli, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fakes
}

func TestFollowsLeaderHint(t *testing.T) {
	c, fakes := setup(t)
	const leader = 2
	for id, f := range fakes {
		if id == leader {
			f.handle(func(r wire.Request) wire.Response { return wire.Response{Status: wire.StatusOK} })
		} else {
			f.handle(func(r wire.Request) wire.Response { return wire.Response{Status: wire.StatusNotLeader, Leader: leader} })
		}
	}
	for i := 0; i < 3; i++ {
		if err := c.Write(context.Background(), "p", "obj", 0, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// The first write may ask a non-leader once; later ones go straight to
	// the cached leader.
	if n := fakes[leader].count(wire.OpWrite); n != 3 {
		t.Fatalf("leader saw %d writes, want 3", n)
	}
	others := 0
	for id, f := range fakes {
		if id != leader {
			others += f.count(wire.OpWrite)
		}
	}
	if others > 1 {
		t.Fatalf("non-leaders were asked %d times; the leader hint is not cached", others)
	}
}

func TestDegradedRetriesUntilDeadline(t *testing.T) {
	c, fakes := setup(t)
	for _, f := range fakes {
		f.handle(func(r wire.Request) wire.Response { return wire.Response{Status: wire.StatusDegraded} })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Write(ctx, "p", "obj", 0, []byte("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write to a degraded PG: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("gave up after %v, want about the 500ms deadline", d)
	}
	total := 0
	for _, f := range fakes {
		total += f.count(wire.OpWrite)
	}
	if total < 3 {
		t.Fatalf("only %d attempts: the client does not retry", total)
	}
}

func TestCorruptLeaderReadServedByReplica(t *testing.T) {
	c, fakes := setup(t)
	good := bytes.Repeat([]byte("g"), 10)
	const leader = 0
	for id, f := range fakes {
		f.handle(func(r wire.Request) wire.Response {
			switch {
			case r.Op == wire.OpRead && id == leader:
				return wire.Response{Status: wire.StatusCorrupt, A: 42, Msg: "block 0"}
			case r.Op == wire.OpRead:
				return wire.Response{Status: wire.StatusNotLeader, Leader: leader}
			case r.Op == wire.OpReplicaRead && id == leader:
				return wire.Response{Status: wire.StatusCorrupt}
			case r.Op == wire.OpReplicaRead && r.MinIndex == 42:
				return wire.Response{Status: wire.StatusOK, Data: good}
			}
			return wire.Response{Status: wire.StatusInvalid}
		})
	}
	buf := make([]byte, 10)
	if err := c.Read(context.Background(), "p", "obj", 0, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, good) {
		t.Fatalf("read %q, want the good replica's data", buf)
	}
	// Every replica corrupt: the read fails as corrupt, never with data.
	for _, f := range fakes {
		f.handle(func(r wire.Request) wire.Response {
			return wire.Response{Status: wire.StatusCorrupt, A: 1}
		})
	}
	if err := c.Read(context.Background(), "p", "obj", 0, buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read with every copy corrupt: %v, want ErrCorrupt", err)
	}
}

func TestBadInputIsRefusedLocally(t *testing.T) {
	c, fakes := setup(t)
	ctx := context.Background()
	if err := c.Write(ctx, "p", "obj", MaxObjectSize, []byte("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past 32 MiB: %v", err)
	}
	if err := c.Write(ctx, "nope", "obj", 0, []byte("x")); !errors.Is(err, ErrNoPool) {
		t.Fatalf("write to a missing pool: %v", err)
	}
	if err := c.Write(ctx, "p", "", 0, []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("write with no name: %v", err)
	}
	for _, f := range fakes {
		if n := f.count(wire.OpWrite); n != 0 {
			t.Fatalf("bad input reached an OSD (%d writes)", n)
		}
	}
}

func TestStaleEpochRefreshesTheMap(t *testing.T) {
	c, fakes := setup(t)
	before := c.Map().Epoch
	// Bump the epoch behind the client's back, as another admin would.
	if err := c.Maps().SetFlag(context.Background(), "noout", true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var epochs []uint64
	for _, f := range fakes {
		f.handle(func(r wire.Request) wire.Response {
			mu.Lock()
			epochs = append(epochs, r.Epoch)
			mu.Unlock()
			if r.Epoch <= before {
				return wire.Response{Status: wire.StatusStaleEpoch, Epoch: before + 1}
			}
			return wire.Response{Status: wire.StatusOK}
		})
	}
	if err := c.Write(context.Background(), "p", "obj", 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := c.Map().Epoch; got <= before {
		t.Fatalf("map epoch %d after a stale-epoch answer, want > %d", got, before)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(epochs) != 2 || epochs[0] != before || epochs[1] <= before {
		t.Fatalf("request epochs %v: want one at %d, then one retry with the refreshed map", epochs, before)
	}
}

// TestMapBehindTheOSDs: an OSD that has seen a newer map than the control
// plane holds (restored from a backup) is not asked again at once after
// each reread, and the error says what to do.
func TestMapBehindTheOSDs(t *testing.T) {
	c, fakes := setup(t)
	var mu sync.Mutex
	asked := 0
	ahead := c.Map().Epoch + 100
	for _, f := range fakes {
		f.handle(func(r wire.Request) wire.Response {
			mu.Lock()
			asked++
			mu.Unlock()
			return wire.Response{Status: wire.StatusStaleEpoch, Epoch: ahead}
		})
	}
	err := c.Write(context.Background(), "p", "obj", 0, []byte("x"))
	if !errors.Is(err, ErrMapBehind) || !strings.Contains(err.Error(), fmt.Sprintf("tsumiki epoch raise %d", ahead+1)) {
		t.Fatalf("write against OSDs ahead of the control plane: %v, want ErrMapBehind naming the epoch to raise to", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked > 40 { // backing off from 5 ms to 500 ms over the 2 s timeout: about 10
		t.Fatalf("the OSDs were asked %d times in one call's timeout", asked)
	}
}

// TestMovedOSDsAreFoundAgain: every OSD restarts on a new address after the
// client loaded the map (as `tsumiki up` does with --osd-port 0). The client
// must reread the map when it cannot connect, not retry the old addresses
// until its deadline.
func TestMovedOSDsAreFoundAgain(t *testing.T) {
	c, fakes := setup(t)
	ctx := context.Background()
	old := c.Map()
	for id, f := range fakes {
		f.l.Close()
		nf := startFake(t)
		nf.handle(func(wire.Request) wire.Response { return wire.Response{Status: wire.StatusOK, Leader: -1} })
		o, _ := old.OSD(id)
		o.PublicAddr = nf.l.Addr().String()
		if _, err := c.Maps().RegisterOSD(ctx, o); err != nil {
			t.Fatal(err)
		}
		fakes[id] = nf
	}
	if err := c.Write(ctx, "p", "obj", 0, []byte("x")); err != nil {
		t.Fatalf("write after every OSD moved: %v", err)
	}
	if got := c.Map().Epoch; got <= old.Epoch {
		t.Fatalf("map epoch %d, want newer than %d", got, old.Epoch)
	}
}

// TestSilentLeaderGivenUp: a leader that takes requests and never answers
// (its host lost power; its sockets stay open) is given up after one
// attempt, and the write goes to the PG's other replicas, well within its
// deadline, instead of failing at it.
func TestSilentLeaderGivenUp(t *testing.T) {
	c, fakes := setup(t)
	c.attempt, c.timing.settle = 200*time.Millisecond, 100*time.Millisecond
	const silent = 0
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	for id, f := range fakes {
		f.handle(func(wire.Request) wire.Response {
			if id == silent {
				<-hang
			}
			return wire.Response{Status: wire.StatusOK}
		})
	}
	key := pgKey{c.Map().Pools[0].ID, 0}
	c.mu.Lock()
	c.leaders[key] = silent
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Write(ctx, "p", "obj", 0, []byte("x")); err != nil {
		t.Fatalf("write with a silent leader: %v", err)
	}
	if fakes[silent].count(wire.OpWrite) == 0 {
		t.Fatal("the silent leader was never asked: the test does not test")
	}
}

// A client that does not know a PG's leader asks the replicas the map
// shows up before a down one: a down OSD cut off the network costs a dial
// timeout per try (seen in TestClusterNetCut: 3 s per object get).
func TestUnknownLeaderAsksUpReplicasFirst(t *testing.T) {
	c, fakes := setup(t)
	p := c.Map().Pools[0]
	reps := c.Map().Replicas(p, 0)
	down := reps[0] // first in placement order: asked first if all were alike
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range reps[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Maps().KeepAlive(ctx, id, 0) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := c.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o1, _ := m.OSD(reps[1]); o1.Up {
			if o2, _ := m.OSD(reps[2]); o2.Up {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the liveness leases never showed in the map")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range fakes {
		f.handle(func(r wire.Request) wire.Response { return wire.Response{Status: wire.StatusOK} })
	}
	if err := c.Write(context.Background(), "p", "obj", 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := fakes[down].count(wire.OpWrite); n != 0 {
		t.Fatalf("the down osd.%d was asked %d times while up replicas answer", down, n)
	}
	if n := fakes[reps[1]].count(wire.OpWrite); n != 1 {
		t.Fatalf("the first up replica osd.%d was asked %d times, want 1", reps[1], n)
	}
}

package osd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// Batches written directly and through the sender goroutine, including
// direct writes cut short by a full socket, reach the peer whole and in the
// order they were sent.
func TestPeerConnKeepsOrder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 201 // the last is sent alone, long after the sender's last write
	msg := func(i int) []byte {
		size := []int{100, 8 << 10, 40 << 10, 60 << 10}[i%4]
		if i%16 == 15 {
			size = 100 << 10 // too large for a direct write
		}
		b := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	got := make(chan []byte, n)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(200 * time.Millisecond) // let the sender's socket fill
		r := bufio.NewReader(c)
		if typ, _, err := wire.ReadFrame(r); err != nil || typ != wire.FrameHello {
			t.Errorf("first frame %d, %v: want hello", typ, err)
			return
		}
		for {
			typ, body, err := wire.ReadFrame(r)
			if err != nil {
				return
			}
			from, msgs, err := wire.DecodeRaftBatch(body)
			if typ != wire.FrameRaft || from != 1 || err != nil {
				t.Errorf("frame type %d from %d: %v", typ, from, err)
				return
			}
			for _, m := range msgs {
				got <- m.Msg
			}
		}
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetWriteBuffer(4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTCPTransport(1, zap.NewNop())
	p := newPeerConn(2, func() string { return "" })
	p.stall = 400 * time.Millisecond // longer than the reader sleeps, shorter than the pause before the last message
	done := make(chan error, 1)
	go func() { done <- tr.pump(ctx, p, conn) }()
	for attached := false; !attached; {
		p.mu.Lock()
		attached = p.raw != nil
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	direct, partial, lastDirect := 0, 0, false
	for i := range n {
		if i == n-1 {
			time.Sleep(600 * time.Millisecond)
		}
		if i%16 == 0 || i == n-1 { // let the sender drain its queue, so direct sends resume
			for j := 0; j < 1000 && p.queued.Load() != 0; j++ {
				time.Sleep(time.Millisecond)
			}
		}
		msgs := []wire.RaftMsg{{Pool: 1, PG: uint32(i), Msg: msg(i)}}
		if p.sendDirect(1, msgs) {
			direct++
			lastDirect = i == n-1
			p.mu.Lock()
			if p.rest != nil {
				partial++
			}
			p.mu.Unlock()
		} else {
			p.enqueue(msgs)
		}
	}
	for i := range n {
		select {
		case m := <-got:
			if !bytes.Equal(m, msg(i)) {
				t.Fatalf("message %d: got message %d (%d bytes)", i, binary.BigEndian.Uint32(m), len(m))
			}
		case <-time.After(10 * time.Second):
			cancel()
			conn.Close()
			t.Fatalf("message %d never arrived; pump: %v", i, <-done)
		}
	}
	if direct == 0 || partial == 0 || direct == n || !lastDirect {
		t.Errorf("%d direct sends, %d of them cut short, of %d: the test did not exercise every path (the last sent direct: %v)", direct, partial, n, lastDirect)
	}
	t.Logf("%d of %d batches direct, %d cut short", direct, n, partial)
	cancel()
	conn.Close()
	<-done
}

// When the peer goes away while the sender goroutine is idle, the small
// batches that fail on the direct path make the sender dial again (they
// alone would otherwise never reach it), and once the new connection is up
// small batches go direct again and arrive.
func TestPeerConnRedialsAfterDirectWriteFails(t *testing.T) {
	testRedial(t, 100)
}

// The same with batches too large for the direct path: the sender's write
// fails with batches taken from the queue, which must still be counted out
// (or the direct path would stay shut for good).
func TestPeerConnRedialsAfterSenderWriteFails(t *testing.T) {
	testRedial(t, 100<<10)
}

func testRedial(t *testing.T, size int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTCPTransport(1, zap.NewNop())
	tr.Start(ctx)
	defer tr.Wait()
	defer cancel()
	tr.SetAddrs(map[int32]string{2: l.Addr().String()})
	batch := func(i, size int) []wire.RaftMsg {
		return []wire.RaftMsg{{Pool: 1, PG: uint32(i), Msg: make([]byte, size)}}
	}
	small := func(i int) []wire.RaftMsg { return batch(i, 100) }
	tr.Send(2, small(0))
	var c1 net.Conn
	select {
	case c1 = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no first connection")
	}
	r := bufio.NewReader(c1)
	for range 2 { // hello, then the batch
		if _, _, err := wire.ReadFrame(r); err != nil {
			t.Fatal(err)
		}
	}
	c1.Close() // the peer restarts
	var c2 net.Conn
	for i := 1; c2 == nil; i++ {
		if i > 500 {
			t.Fatalf("sends of %d bytes never made the transport dial again", size)
		}
		tr.Send(2, batch(i, size))
		select {
		case c2 = <-accepted:
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer c2.Close()
	got := make(chan uint32, 100)
	go func() {
		r := bufio.NewReader(c2)
		for {
			_, body, err := wire.ReadFrame(r)
			if err != nil {
				return
			}
			if _, msgs, err := wire.DecodeRaftBatch(body); err == nil {
				for _, m := range msgs {
					got <- m.PG
				}
			}
		}
	}()
	tr.mu.Lock()
	p := tr.peers[2]
	tr.mu.Unlock()
	for j := 0; p.queued.Load() != 0; j++ {
		if j > 2000 {
			t.Fatalf("%d batches still counted as queued long after the new connection", p.queued.Load())
		}
		time.Sleep(time.Millisecond)
	}
	direct := 0
	for i := range 20 {
		if p.sendDirect(1, small(1000+i)) {
			direct++
		} else {
			p.enqueue(small(1000 + i))
		}
		time.Sleep(2 * time.Millisecond)
	}
	if direct == 0 {
		t.Errorf("after the new connection no send went direct (queued %d)", p.queued.Load())
	}
	for i := 0; i < 20; {
		select {
		case pg := <-got:
			if pg < 1000 {
				continue // queued while the peer was away, sent on the new connection
			}
			if pg != uint32(1000+i) {
				t.Fatalf("got batch %d, want %d", pg, 1000+i)
			}
			i++
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d never arrived on the new connection", 1000+i)
		}
	}
}

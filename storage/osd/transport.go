package osd

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// TCPTransport sends raft batches to peer OSDs over the cluster network:
// one connection and one sender goroutine per peer, frames coalesced while
// the connection is busy. A small batch with nothing queued before it is
// written straight to the socket by the caller instead (see sendDirect).
// Messages to an unreachable peer are dropped (raft retransmits); nothing
// here blocks the node loop.
type TCPTransport struct {
	self int32
	log  *zap.Logger

	mu    sync.Mutex // guards the following
	addrs map[int32]string
	peers map[int32]*peerConn
	ctx   context.Context
	wg    sync.WaitGroup
}

// maxBatchBytes stops coalescing queued messages into one frame.
const maxBatchBytes = 4 << 20

// NewTCPTransport returns a transport for OSD self. Start must be called
// before Send has any effect.
func NewTCPTransport(self int32, log *zap.Logger) *TCPTransport {
	return &TCPTransport{self: self, log: log, addrs: map[int32]string{}, peers: map[int32]*peerConn{}}
}

// Start lets Send start sender goroutines bound to ctx; Wait joins them.
func (t *TCPTransport) Start(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
}

// Wait returns once every sender goroutine has exited (after ctx is done).
func (t *TCPTransport) Wait() { t.wg.Wait() }

// SetAddrs replaces the cluster addresses of the peers (from the map).
func (t *TCPTransport) SetAddrs(addrs map[int32]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addrs = addrs
}

func (t *TCPTransport) addrOf(id int32) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs[id]
}

// Send implements Transport.
func (t *TCPTransport) Send(to int32, msgs []wire.RaftMsg) {
	t.mu.Lock()
	p := t.peers[to]
	if p == nil && t.ctx != nil {
		p = newPeerConn(to, func() string { return t.addrOf(to) })
		t.peers[to] = p
		t.wg.Add(1)
		go func(ctx context.Context) {
			defer t.wg.Done()
			t.runPeer(ctx, p)
		}(t.ctx)
	}
	t.mu.Unlock()
	if p == nil || p.sendDirect(t.self, msgs) {
		return
	}
	p.enqueue(msgs)
}

func (t *TCPTransport) runPeer(ctx context.Context, p *peerConn) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		addr := p.addr()
		var conn net.Conn
		var err error
		if addr != "" {
			d := net.Dialer{Timeout: 2 * time.Second}
			conn, err = d.DialContext(ctx, "tcp", addr)
		}
		if addr == "" || err != nil {
			p.drain()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		err = t.pump(ctx, p, conn)
		conn.Close()
		if ctx.Err() == nil {
			t.log.Debug("peer connection lost", zap.Int32("peer", p.id), zap.Error(err))
		}
	}
}

func (t *TCPTransport) pump(ctx context.Context, p *peerConn, conn net.Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hello := binary.BigEndian.AppendUint32(wire.AppendFrameHeader(nil, wire.FrameHello, 4), uint32(t.self))
	if _, err := conn.Write(hello); err != nil {
		return err
	}
	var out vecOut
	if err := p.attach(conn); err != nil {
		return err
	}
	defer p.detach()
	for {
		var msgs []wire.RaftMsg
		n := int64(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msgs = <-p.q:
		case <-p.kick:
			n = 0
		}
		// Coalesce whatever else is queued into one frame, up to a size.
		size := wire.RaftBatchSize(msgs)
	more:
		for len(msgs) < 4096 && size < maxBatchBytes {
			select {
			case m := <-p.q:
				msgs = append(msgs, m...)
				size += wire.RaftBatchSize(m) - 8
				n++
			default:
				break more
			}
		}
		err := p.write(conn, &out, t.self, msgs)
		p.queued.Add(-n) // written, or dropped with the connection
		if err != nil {
			return err
		}
	}
}

// ServeCluster accepts peer connections on l and delivers their raft batches
// to n until ctx is done.
func ServeCluster(ctx context.Context, l net.Listener, n *Node, log *zap.Logger) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
			servePeer(ctx, c, n, log)
		}()
	}
}

func servePeer(ctx context.Context, c net.Conn, n *Node, log *zap.Logger) {
	r := bufio.NewReaderSize(c, 256<<10)
	typ, body, err := wire.ReadFrame(r)
	if err != nil || typ != wire.FrameHello || len(body) != 4 {
		log.Debug("rejecting cluster connection without hello", zap.Stringer("remote", c.RemoteAddr()))
		return
	}
	peer := int32(binary.BigEndian.Uint32(body))
	if typ, _, err := wire.PeekFrameHeader(r); err == nil && typ == wire.FrameCopy {
		serveCopy(ctx, c, r, n, peer, log)
		return
	}
	for {
		typ, body, err := wire.ReadFrame(r)
		if err != nil {
			return
		}
		if typ != wire.FrameRaft {
			log.Warn("unexpected frame on cluster connection", zap.Int32("peer", peer), zap.Uint8("type", typ))
			return
		}
		from, msgs, err := wire.DecodeRaftBatch(body)
		if err != nil || from != peer {
			log.Warn("bad raft batch", zap.Int32("peer", peer), zap.Error(err))
			return
		}
		n.Deliver(from, msgs)
	}
}

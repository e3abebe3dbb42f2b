package osd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/tsumiki-storage/tsumiki/internal/bufpool"
	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// maxProposal bounds one raft entry's payload; larger writes are split.
const maxProposal = 1 << 20

// maxInflightBytes bounds the request payloads an OSD works on at once,
// across all connections: beyond it, reading more requests waits. Each
// written byte is copied several times on its way to disk and to the
// peers, so this is what keeps an OSD's memory flat under heavy writes.
const maxInflightBytes = 32 << 20

// Server answers client requests (public network) from the node and store.
type Server struct {
	node     *Node
	store    Store
	log      *zap.Logger
	timeout  time.Duration // per request
	epoch    atomic.Uint64 // the newest map epoch this OSD knows
	inflight *semaphore.Weighted
	full     atomic.Pointer[string] // non-nil: which OSDs are full (writes refused)
	bufs     bufpool.Pool           // read results, recycled once sent
}

// SetFull records which OSDs of the cluster report their device full ("":
// none). While one does, writes are refused with ErrFull: a replica that
// cannot write its log stops, and three of them stop a PG.
func (s *Server) SetFull(osds string) {
	if osds == "" {
		s.full.Store(nil)
		return
	}
	s.full.Store(&osds)
}

// NewServer returns a server for n's PGs.
func NewServer(n *Node, store Store, log *zap.Logger) *Server {
	return &Server{node: n, store: store, log: log, timeout: 20 * time.Second, inflight: semaphore.NewWeighted(maxInflightBytes)}
}

// Epoch returns the newest cluster map epoch the server has seen.
func (s *Server) Epoch() uint64 { return s.epoch.Load() }

// SetEpoch records the newest cluster map epoch seen by this OSD.
func (s *Server) SetEpoch(e uint64) {
	for {
		old := s.epoch.Load()
		if e <= old || s.epoch.CompareAndSwap(old, e) {
			return
		}
	}
}

// Serve accepts client connections on l until ctx is done, or until l
// fails; then it ends the connections and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// The connections end with ctx. On an accept error it is cancelled
	// here, before the wait: the caller's context ends only after Serve
	// returns, and waiting for it hung the daemon.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The greeting's deadline is set before the stop's below, so that a
	// stop never has its deadline undone by it.
	if err := c.SetDeadline(time.Now().Add(greetTimeout)); err != nil {
		return
	}
	// When ctx ends (shutdown, a failed reply) reads and writes stop on a
	// deadline in the past; the connection stays open for the goodbye.
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)); close(unblocked) })
	defer stop()
	start, r, err := s.greet(c)
	if err != nil {
		s.log.Debug("client connection refused", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
		return
	}
	if ctx.Err() != nil { // greet's clearing may have undone the stop's deadline
		<-unblocked
		return
	}
	out := make(chan wire.Response, 256)
	var wg sync.WaitGroup
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w := wire.NewFrameWriter(c, 256<<10)
		var head []byte
		for {
			select {
			case <-ctx.Done():
				return
			case resp := <-out:
				head = wire.AppendResponseHead(head[:0], &resp)
				err := w.WriteFrame(wire.FrameResponse, head, resp.Data)
				s.recycle(resp.Data) // nothing else holds a response's data
				if err != nil {
					cancel()
					return
				}
				if len(out) == 0 && w.Flush() != nil {
					cancel()
					return
				}
			}
		}
	}()
	sem := make(chan struct{}, 256)
	for {
		typ, body, err := wire.ReadFrame(r)
		if err != nil {
			break
		}
		if typ != wire.FrameRequest {
			break
		}
		req, err := wire.DecodeRequest(body)
		if err != nil {
			break // a malformed frame leaves the stream unsynchronised
		}
		by := proposeBy(start, time.Now(), &req)
		weight := int64(len(body))
		if req.Op == wire.OpRead || req.Op == wire.OpReplicaRead {
			weight += min(max(req.Length, 0), wire.MaxFrame) // the reply buffer
		}
		// A request weighing more than the whole budget (a 32 MiB write:
		// its head too) would wait for ever: it takes the whole budget.
		weight = min(weight, maxInflightBytes)
		if err := s.inflight.Acquire(ctx, weight); err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			s.inflight.Release(weight)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem; s.inflight.Release(weight) }()
			resp := s.handle(ctx, &req, body, by)
			select {
			case out <- resp:
			case <-ctx.Done():
			}
		}()
	}
	// Requests not yet proposed never will be (the loop checks ctx right
	// before it proposes), and once the handlers are done nothing from
	// this connection is: say so, so that the client may send what it
	// has pending again at once (wire.SettleAfter).
	cancel()
	wg.Wait()
	<-writerDone
	<-unblocked
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(wire.AppendFrameHeader(nil, wire.FrameGoodbye, 0))
}

// greetTimeout bounds the wait for a new client's greeting.
const greetTimeout = 10 * time.Second

// greet sends the OSD's greeting on a new client connection and checks
// the client's, within the deadline the caller set on c, which it then
// clears. start is when the greeting went out: requests' Sent count from
// the client's receipt of it, which is later, so that a request's lag is
// never underestimated.
func (s *Server) greet(c net.Conn) (start time.Time, r *bufio.Reader, err error) {
	start = time.Now()
	if _, err := c.Write(wire.Greet()); err != nil {
		return start, nil, err
	}
	r = bufio.NewReaderSize(c, 256<<10)
	typ, body, err := wire.ReadFrame(r)
	if err == nil {
		err = wire.CheckGreet(typ, body)
	}
	if err != nil {
		return start, nil, err
	}
	return start, r, c.SetDeadline(time.Time{})
}

// staleMargin is what proposeBy keeps in hand: for clocks that run at
// slightly different rates over a connection's life (clients retire
// connections after maxConnAge), and for scheduling.
const staleMargin = 250 * time.Millisecond

// proposeBy is the latest time a mutation read off a connection this
// server greeted at start may be proposed: while its client still waits
// for it, and before the client takes it as settled (wire.SettleFor) and
// may send it again elsewhere. A request proposed later could land after
// writes its client made once it gave up on it, and undo them. now is
// when it was read; its Sent tells how long it waited unread (behind a
// stall, in socket buffers).
func proposeBy(start, now time.Time, req *wire.Request) time.Time {
	// Milliseconds since start, modulo 2^32 as Sent is: the difference is
	// right on connections of any age.
	lag := int32(uint32(now.Sub(start).Milliseconds()) - req.Sent)
	sent := now.Add(-time.Duration(max(lag, 0)) * time.Millisecond)
	wait := wire.SettleFor(len(req.Data))
	if req.Budget > 0 {
		wait = min(wait, time.Duration(req.Budget)*time.Millisecond)
	}
	return sent.Add(wait - staleMargin)
}

// handle answers req, decoded from frame (whose tail is req.Data).
func (s *Server) handle(ctx context.Context, req *wire.Request, frame []byte, by time.Time) wire.Response {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp := wire.Response{ID: req.ID, Epoch: s.epoch.Load(), Leader: -1}
	if req.Epoch < resp.Epoch && req.Op != wire.OpPGStatus && req.Op != wire.OpDigest {
		resp.Status = wire.StatusStaleEpoch
		return resp
	}
	pg := PG{Pool: req.Pool, Seq: req.PG}
	var err error
	switch req.Op {
	case wire.OpWrite, wire.OpTruncate, wire.OpZero, wire.OpDelete:
		resp.A, err = s.mutate(ctx, pg, req, frame, by)
	case wire.OpRead:
		resp.A, resp.Data, err = s.read(ctx, pg, req)
	case wire.OpStat:
		var info chunkstore.ObjectInfo
		if resp.A, err = s.node.readIndex(ctx, pg); err == nil {
			if info, err = s.store.Stat(pg, req.Object); err == nil {
				resp.A, resp.B = uint64(info.Size), info.Version
			}
		}
	case wire.OpList:
		resp.Data, err = s.list(ctx, pg, req)
	case wire.OpReplicaRead:
		err = s.node.readOwn(ctx, pg, req.MinIndex, func() (err error) {
			resp.Data, err = s.readLocal(pg, req)
			return err
		})
	case wire.OpDigest:
		resp.Data, err = s.digest(ctx, pg)
	case wire.OpPGStatus:
		var sts []wire.PGState
		if sts, err = s.node.States(ctx); err == nil {
			resp.Data = wire.AppendPGStates(nil, sts)
		}
	case wire.OpTransfer:
		err = s.node.transferLeader(ctx, pg, int32(req.Offset))
	default:
		err = errInvalid("unknown op " + req.Op.String())
	}
	if err != nil {
		resp.Status, resp.Msg = statusOf(err)
		resp.Data = nil
		if resp.Status == wire.StatusNotLeader {
			resp.Leader, _ = s.node.Leader(pg)
		}
	}
	return resp
}

// maxPooledRead is the largest read buffer the server recycles. Block
// workloads read at most a few hundred KiB per object IO; whole-object
// reads (4 MiB) are rare, and pooling them kept tens of MiB alive between
// garbage collections against the OSD's memory limit.
const maxPooledRead = 1 << 20

// readBuf returns a buffer for an n-byte read (contents unspecified).
func (s *Server) readBuf(n int) []byte {
	if n > maxPooledRead {
		return make([]byte, n)
	}
	return s.bufs.Get(n)
}

// recycle gives back a response's data once it is sent.
func (s *Server) recycle(p []byte) {
	if cap(p) <= maxPooledRead {
		s.bufs.Put(p)
	}
}

type invalidError string

func (e invalidError) Error() string { return string(e) }

func errInvalid(msg string) error { return invalidError(msg) }

func checkRange(off, length int64) error {
	if off < 0 || length < 0 {
		return errInvalid("negative offset or length")
	}
	if off+length > chunkstore.MaxObjectSize {
		return chunkstore.ErrTooLarge
	}
	return nil
}

func (s *Server) mutate(ctx context.Context, pg PG, req *wire.Request, frame []byte, by time.Time) (uint64, error) {
	o := op{Object: req.Object, Offset: req.Offset}
	switch req.Op {
	case wire.OpWrite:
		if full := s.full.Load(); full != nil {
			return 0, fmt.Errorf("%w: %s full; free space (delete or trim) or add capacity", ErrFull, *full)
		}
		if err := checkRange(req.Offset, int64(len(req.Data))); err != nil {
			return 0, err
		}
		if len(req.Data) > maxProposal {
			return s.splitWrite(ctx, pg, req, by)
		}
		o.Kind, o.Data, o.frame = opWrite, req.Data, frame
	case wire.OpTruncate:
		if err := checkRange(req.Offset, 0); err != nil {
			return 0, err
		}
		o.Kind = opTruncate
	case wire.OpZero:
		if err := checkRange(req.Offset, req.Length); err != nil {
			return 0, err
		}
		o.Kind, o.Length = opZero, req.Length
	case wire.OpDelete:
		o.Kind = opDelete
	}
	if req.Object == "" {
		return 0, errInvalid("empty object name")
	}
	return s.node.propose(ctx, pg, o, by)
}

// splitWrite proposes a large write as several entries, pipelined. The
// pieces are not atomic together, as with a disk's multi-sector write.
func (s *Server) splitWrite(ctx context.Context, pg PG, req *wire.Request, by time.Time) (uint64, error) {
	type res struct {
		idx uint64
		err error
	}
	n := (len(req.Data) + maxProposal - 1) / maxProposal
	ch := make(chan res, n)
	for i := 0; i < n; i++ {
		lo := i * maxProposal
		hi := min(lo+maxProposal, len(req.Data))
		go func() {
			idx, err := s.node.propose(ctx, pg, op{Kind: opWrite, Object: req.Object, Offset: req.Offset + int64(lo), Data: req.Data[lo:hi]}, by)
			ch <- res{idx, err}
		}()
	}
	var last uint64
	var first error
	for i := 0; i < n; i++ {
		r := <-ch
		if r.err != nil && first == nil {
			first = r.err
		}
		last = max(last, r.idx)
	}
	return last, first
}

func (s *Server) read(ctx context.Context, pg PG, req *wire.Request) (uint64, []byte, error) {
	if err := checkRange(req.Offset, req.Length); err != nil {
		return 0, nil, err
	}
	idx, err := s.node.readIndex(ctx, pg)
	if err != nil {
		return 0, nil, err
	}
	r := s.node.lookup(pg)
	p := s.readBuf(int(req.Length))
	err = s.store.Read(pg, req.Object, req.Offset, p)
	if r == nil || s.node.lookup(pg) != r || r.frozen.Load() {
		// The replica was dropped (it moved away: move.go) or replaced
		// since the read index was granted: the store may no longer hold
		// what the index promised.
		err = fmt.Errorf("%w: pg %s changed on osd.%d during a read", ErrInstalling, pg, s.node.cfg.ID)
	}
	if err != nil {
		s.recycle(p)
		return idx, nil, err
	}
	return idx, p, nil
}

func (s *Server) readLocal(pg PG, req *wire.Request) ([]byte, error) {
	if err := checkRange(req.Offset, req.Length); err != nil {
		return nil, err
	}
	p := s.readBuf(int(req.Length))
	if err := s.store.Read(pg, req.Object, req.Offset, p); err != nil {
		s.recycle(p)
		return nil, err
	}
	return p, nil
}

func (s *Server) list(ctx context.Context, pg PG, req *wire.Request) ([]byte, error) {
	if _, err := s.node.readIndex(ctx, pg); err != nil {
		return nil, err
	}
	limit := int(req.Length)
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	infos, err := s.store.List(pg, req.Object, string(req.Data), limit)
	if err != nil {
		return nil, err
	}
	ents := make([]wire.ObjectEntry, len(infos))
	for i, in := range infos {
		ents[i] = wire.ObjectEntry{Name: in.Name, Size: in.Size, Version: in.Version}
	}
	return wire.AppendList(nil, ents), nil
}

func (s *Server) digest(ctx context.Context, pg PG) ([]byte, error) {
	var apply []byte
	var sum [32]byte
	var count int
	if s.node.lookup(pg) == nil {
		return nil, ErrNoPG
	}
	err := s.node.readOwn(ctx, pg, 0, func() (err error) {
		apply, sum, count, err = s.store.Digest(pg)
		return err
	})
	if err != nil {
		return nil, err
	}
	dg := wire.Digest{Objects: uint64(count), Sum: sum}
	if len(apply) > 0 {
		as, err := decodeApplyState(apply)
		if err != nil {
			return nil, err
		}
		dg.Applied = as.Applied
	}
	return wire.AppendDigest(nil, dg), nil
}

// statusOf is the one place OSD errors become wire statuses.
func statusOf(err error) (wire.Status, string) {
	var inv invalidError
	switch {
	case errors.Is(err, chunkstore.ErrNotFound):
		return wire.StatusNotFound, ""
	case errors.Is(err, ErrNotLeader):
		return wire.StatusNotLeader, ""
	case errors.Is(err, ErrNoPG):
		return wire.StatusNoPG, ""
	case errors.Is(err, chunkstore.ErrCorrupt):
		return wire.StatusCorrupt, err.Error()
	case errors.Is(err, ErrDegraded):
		return wire.StatusDegraded, ""
	case errors.Is(err, ErrInstalling):
		return wire.StatusDegraded, err.Error()
	case errors.Is(err, chunkstore.ErrTooLarge):
		return wire.StatusTooLarge, "objects are limited to 32 MiB"
	case errors.As(err, &inv):
		return wire.StatusInvalid, inv.Error()
	case errors.Is(err, ErrTooLate):
		return wire.StatusTooLate, ""
	case errors.Is(err, ErrTimeout):
		return wire.StatusTimeout, ""
	case errors.Is(err, ErrClosing):
		return wire.StatusClosing, ""
	case errors.Is(err, ErrFull):
		return wire.StatusNoSpace, err.Error()
	}
	return wire.StatusInternal, err.Error()
}

package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/internal/bufpool"
)

// Server serves NBD clients. Create it with NewServer; it starts nothing
// until Serve or ServeConn is called. Its methods are safe for concurrent
// use; one Server may serve many listeners and connections at once.
type Server struct {
	cfg  Config
	log  *zap.Logger
	bufs bufpool.Pool
}

// NewServer checks cfg and returns a Server. It starts no goroutines. The
// error matches ErrConfig.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Server{cfg: cfg, log: cfg.Logger}, nil
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ctx is cancelled; then it closes ln, lets every connection finish
// the requests in flight (bounded by Config.ShutdownTimeout), and returns
// nil once all connection goroutines are gone. It closes ln when it
// returns. Transient accept errors are retried with backoff; any other
// accept error is returned (after the connections have ended).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("nbd: accept: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		wg.Go(func() {
			if err := s.ServeConn(ctx, nc); err != nil {
				s.log.Info("connection ended with an error", zap.Stringer("remote", nc.RemoteAddr()), zap.Error(err))
			}
		})
	}
}

// ServeConn serves one client on nc and closes nc when it returns. It
// blocks until the client disconnects, breaks the protocol, or ctx is
// cancelled (then the requests in flight are answered first, within
// Config.ShutdownTimeout). It returns nil for a clean end (NBD_CMD_DISC,
// NBD_OPT_ABORT, EOF between requests, shutdown) and otherwise the reason,
// often matching ErrProtocol. Nothing a client sends makes it panic or
// affects other connections.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	defer nc.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cctx, func() {
		// Unblock the reader at once; give queued replies time to go out.
		_ = nc.SetReadDeadline(time.Unix(1, 0))
		_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.ShutdownTimeout))
	})
	defer stop()

	log := s.log.With(zap.Stringer("remote", nc.RemoteAddr()))
	br := bufio.NewReaderSize(nc, 64<<10)
	bw := bufio.NewWriterSize(nc, 64<<10)
	// The Opener's calls end with the handshake too.
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	_ = nc.SetDeadline(deadline)
	hctx, hcancel := context.WithDeadline(cctx, deadline)
	sess, err := s.negotiate(hctx, br, bw, log)
	hcancel()
	switch {
	case err == nil:
	case errors.Is(err, errAborted), ctx.Err() != nil:
		return nil
	case errors.Is(err, io.EOF):
		return nil // client left during negotiation (nbdinfo --list does)
	default:
		return err
	}
	log = log.With(zap.String("export", sess.name))
	defer func() {
		if err := sess.export.Close(); err != nil {
			log.Warn("closing export", zap.Error(err))
		}
	}()
	// Clear the handshake deadline, then look at ctx: if the shutdown
	// callback ran before the clear, ctx is already cancelled.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("nbd: clearing deadline: %w", err)
	}
	if cctx.Err() != nil {
		return nil
	}
	log.Debug("transmission", zap.Int64("size", sess.size), zap.Uint16("flags", sess.flags),
		zap.Bool("structured", sess.structured), zap.Bool("base_allocation", sess.metaAlloc))
	c := newConn(cctx, cancel, s, nc, br, sess, log)
	if err := c.serve(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// resolve maps the empty export name to the default export.
func (s *Server) resolve(name string) string {
	if name == "" {
		return s.cfg.DefaultExport
	}
	return name
}

// blockSizes are the constraints advertised for an export of the given
// size. An export whose size is not a multiple of the minimum block size
// gets a minimum of 1 so that its tail stays addressable.
func (s *Server) blockSizes(size int64) (minimum, preferred, maximum uint32) {
	minimum = s.cfg.MinBlockSize
	if size%int64(minimum) != 0 {
		minimum = 1
	}
	return minimum, s.cfg.PreferredBlockSize, s.cfg.MaxBlockSize
}

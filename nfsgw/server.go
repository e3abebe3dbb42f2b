package nfsgw

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	nfs "github.com/willscott/go-nfs"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Config configures a Server.
type Config struct {
	// FS is the folder served. Required; the Server does not close it.
	FS *FS
	// Exports are the export rules, in match order. Required (at least one).
	Exports []Export
	// Listen is the TCP (and UDP, for MOUNT) address of the NFS and MOUNT
	// services, e.g. "127.0.0.1:2049". Zero means ":2049"; port 0 picks one.
	Listen string
	// PortmapListen is the TCP and UDP address of the portmapper, e.g.
	// "127.0.0.1:111". Empty: no portmapper.
	PortmapListen string
	// Logger receives connection-level events. Nil: no logging.
	Logger *zap.Logger
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":2049"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate returns an error wrapping ErrConfig for the first broken rule.
func (c Config) Validate() error {
	if c.FS == nil {
		return fmt.Errorf("%w: FS is nil", ErrConfig)
	}
	if len(c.Exports) == 0 {
		return fmt.Errorf("%w: no exports", ErrConfig)
	}
	for _, e := range c.Exports {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Server is the NFS gateway's network side: an RPC front on the NFS port
// that answers the portmapper, MOUNT and the NFS procedures go-nfs gets
// wrong, and hands every other NFS call to go-nfs (see the package doc).
// NewServer binds the sockets; Run serves until its context ends.
type Server struct {
	cfg   Config
	fs    *FS
	log   *zap.Logger
	verf  atomic.Uint64 // the write verifier (writeVerifier)
	files *openFiles    // descriptors for READ, WRITE and COMMIT
	drc   *replyCache   // replies of calls that change something (replycache.go)
	bufs  sync.Pool     // of *[]byte with capacity bufCap (getBuf)

	tcp     net.Listener
	udp     net.PacketConn
	pmapTCP net.Listener
	pmapUDP net.PacketConn

	wg sync.WaitGroup // go-nfs servers started by innerFor

	mu        sync.Mutex // guards the following
	mountList map[mountEntry]bool
	conns     map[net.Conn]bool
	inners    map[credKey]*pipeListener // one go-nfs server per identity
	closed    bool
}

// NewServer validates cfg and binds its sockets. It starts no goroutine;
// call Run, or Close if Run is never called.
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, fs: cfg.FS, log: cfg.Logger, mountList: map[mountEntry]bool{}, conns: map[net.Conn]bool{}, inners: map[credKey]*pipeListener{}}
	s.files = newOpenFiles(cfg.FS, s.resetVerifier)
	s.drc = newReplyCache(time.Now)
	var verf [8]byte
	if _, err := rand.Read(verf[:]); err != nil {
		return nil, fmt.Errorf("nfsgw: verifier: %w", err)
	}
	s.verf.Store(binary.BigEndian.Uint64(verf[:]))
	var err error
	if s.tcp, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("nfsgw: listen %s: %w", cfg.Listen, err)
	}
	// MOUNT over UDP on the same port number.
	host, _, _ := net.SplitHostPort(cfg.Listen)
	udpAddr := net.JoinHostPort(host, strconv.Itoa(s.nfsPort()))
	if s.udp, err = net.ListenPacket("udp", udpAddr); err != nil {
		s.udp = nil
		s.log.Warn("no MOUNT over UDP", zap.Error(err))
	}
	if cfg.PortmapListen != "" {
		if s.pmapTCP, err = net.Listen("tcp", cfg.PortmapListen); err != nil {
			s.Close()
			return nil, fmt.Errorf("nfsgw: portmapper listen %s: %w", cfg.PortmapListen, err)
		}
		if s.pmapUDP, err = net.ListenPacket("udp", s.pmapTCP.Addr().String()); err != nil {
			s.Close()
			return nil, fmt.Errorf("nfsgw: portmapper listen udp %s: %w", cfg.PortmapListen, err)
		}
	}
	return s, nil
}

// Addr is the NFS service's TCP address.
func (s *Server) Addr() net.Addr { return s.tcp.Addr() }

// PortmapAddr is the portmapper's TCP address, or nil.
func (s *Server) PortmapAddr() net.Addr {
	if s.pmapTCP == nil {
		return nil
	}
	return s.pmapTCP.Addr()
}

func (s *Server) nfsPort() int { return s.tcp.Addr().(*net.TCPAddr).Port }

func (s *Server) portmapPort() int {
	if s.pmapTCP == nil {
		return 0
	}
	return s.pmapTCP.Addr().(*net.TCPAddr).Port
}

// Close closes the sockets and the cached file descriptors (those in use
// when their call ends). Run calls it when its context ends.
func (s *Server) Close() {
	for _, l := range []net.Listener{s.tcp, s.pmapTCP} {
		if l != nil {
			_ = l.Close()
		}
	}
	for _, p := range []net.PacketConn{s.udp, s.pmapUDP} {
		if p != nil {
			_ = p.Close()
		}
	}
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	for _, l := range s.inners {
		_ = l.Close()
	}
	s.mu.Unlock()
	s.files.closeAll()
}

// innerFor returns the listener of the go-nfs server that runs calls as
// cred (nil: as the gateway), starting that server on first use. Each
// go-nfs server has a Handler over an FS view made with FS.As, since
// go-nfs passes no per-call context to the filesystem.
func (s *Server) innerFor(ctx context.Context, cred *Cred) (*pipeListener, error) {
	var k credKey
	fs := s.fs
	if cred != nil {
		k = cred.key()
		fs = s.fs.As(*cred)
	} else {
		k = credKey{groups: "gateway"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, net.ErrClosed
	}
	if l, ok := s.inners[k]; ok {
		return l, nil
	}
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	s.inners[k] = l
	// ID is go-nfs's write verifier; it answers no WRITE or COMMIT here.
	srv := &nfs.Server{Handler: NewHandler(fs), ID: s.writeVerifier(), Context: ctx}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(l) // returns net.ErrClosed when Close closes l
	}()
	return l, nil
}

// Run serves until ctx ends, then closes every socket and connection and
// returns nil; it returns an error if a listener fails otherwise.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		s.Close()
		return nil
	})
	g.Go(func() error {
		s.files.run(gctx)
		return nil
	})
	defer s.wg.Wait()
	accept := func(l net.Listener) func() error {
		return func() error {
			for {
				c, err := l.Accept()
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("nfsgw: accept: %w", err)
				}
				g.Go(func() error {
					s.serveConn(gctx, c)
					return nil
				})
			}
		}
	}
	g.Go(accept(s.tcp))
	if s.pmapTCP != nil {
		g.Go(accept(s.pmapTCP))
	}
	for _, p := range []net.PacketConn{s.udp, s.pmapUDP} {
		if p != nil {
			g.Go(func() error {
				s.serveUDP(gctx, p)
				return nil
			})
		}
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// pipeListener hands go-nfs the inner ends of the front's pipes.
type pipeListener struct {
	conns    chan net.Conn
	done     chan struct{}
	doneOnce sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.doneOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// clientAddr returns the address of a connection's peer.
func clientAddr(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// maxDataCalls bounds the READ, WRITE and COMMIT calls of one connection
// served at the same time (the Linux client keeps up to 65536 RPCs in
// flight on one connection; each call holds a buffer of up to bufCap).
const maxDataCalls = 16

// maxDupWaits bounds the copies of running calls (replycache.go) one
// connection has waiting for the first copy's reply.
const maxDupWaits = 64

// serveConn runs the front for one TCP connection: each call is answered
// here or passed to the go-nfs server of the caller's identity over a pipe
// (one per identity seen on this connection); replies (ours and go-nfs's)
// go back as they come, matched by XID as RPC over TCP allows. READ, WRITE
// and COMMIT are served by goroutines of their own (at most maxDataCalls
// at once), so that an fsync does not hold up the calls behind it; the
// rest are answered in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	var copiers, workers sync.WaitGroup
	pipes := map[credKey]net.Conn{}
	gone := make(chan struct{}) // closed once the connection is done with
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
		close(gone)
		for _, p := range pipes {
			_ = p.Close()
		}
		copiers.Wait()
		workers.Wait()
	}()
	client := clientAddr(c.RemoteAddr())
	clientPort, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	var wmu sync.Mutex
	// sendFramed sends a record whose first 4 bytes are room for the
	// record mark.
	sendFramed := func(rec []byte) error {
		binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|1<<31)
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(rec)
		return err
	}
	send := func(rec []byte) error { return sendFramed(frame(rec)) }
	slots := make(chan struct{}, maxDataCalls)
	dups := make(chan struct{}, maxDupWaits)
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		bp := s.getBuf()
		rec, err := readRecordInto(br, *bp)
		if err != nil {
			s.putBuf(bp)
			return
		}
		*bp = rec[:0] // keep the storage if the record outgrew it
		reply, fwd := s.dispatch(rec, client, true)
		if fwd == nil {
			s.putBuf(bp)
			if reply == nil {
				return // not an RPC call: drop the connection
			}
			if send(reply) != nil {
				return
			}
			continue
		}
		if fwd.data != nil {
			var ce *drcEntry
			if cachedProc(fwd.data.proc) && clientPort.IsValid() {
				e, dup := s.drc.begin(keyOf(clientPort, fwd.data.xid, fwd.data.proc, fwd.data.args))
				if dup {
					s.putBuf(bp)
					// A copy of a call made before: its reply once that
					// call is done. The copy holds no buffer and takes no
					// data slot; beyond maxDupWaits copies waiting on this
					// connection, it gets none (the client sends it again).
					// The first copy may be waiting for a slot of a dead
					// connection whose calls hang; this one waits as long.
					select {
					case dups <- struct{}{}:
					default:
						continue
					}
					workers.Add(1)
					go func() {
						defer workers.Done()
						defer func() { <-dups }()
						select {
						case <-e.done:
						case <-gone:
							return
						}
						if e.reply != nil && send(e.reply) != nil {
							_ = c.Close()
						}
					}()
					continue
				}
				ce = e
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				if ce != nil {
					s.drc.abandon(ce)
				}
				s.putBuf(bp)
				return
			}
			workers.Add(1)
			go func(dc *dataCall) {
				defer workers.Done()
				out, obuf := s.serveData(dc)
				s.putBuf(bp) // the call's arguments are no longer used
				if ce != nil {
					s.drc.finish(ce, out[4:])
				}
				if sendFramed(out) != nil {
					_ = c.Close()
				}
				if obuf != nil {
					s.putBuf(obuf)
				}
				<-slots
			}(fwd.data)
			continue
		}
		k := credKey{groups: "gateway"}
		if fwd.cred != nil {
			k = fwd.cred.key()
		}
		outer, ok := pipes[k]
		if !ok {
			inner, err := s.innerFor(ctx, fwd.cred)
			if err != nil {
				s.putBuf(bp)
				return
			}
			a, b := net.Pipe()
			select {
			case inner.conns <- &remoteConn{Conn: b, remote: c.RemoteAddr()}:
			case <-inner.done:
				s.putBuf(bp)
				return
			case <-ctx.Done():
				s.putBuf(bp)
				return
			}
			outer = a
			pipes[k] = a
			copiers.Add(1)
			go func() {
				defer copiers.Done()
				rb := bufio.NewReader(a)
				for {
					r, err := readRecord(rb)
					if err != nil {
						_ = c.Close()
						return
					}
					if send(r) != nil {
						return
					}
				}
			}()
		}
		_, err = outer.Write(frame(rec)) // returns once go-nfs has read it all
		s.putBuf(bp)
		if err != nil {
			return
		}
	}
}

// bufCap is the capacity of the pooled buffers: a record with 1 MiB of
// data and its headers (a WRITE call, a READ reply).
const bufCap = maxData + 4096

// getBuf returns a pooled buffer of capacity at least bufCap.
func (s *Server) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, bufCap)
	return &b
}

// putBuf returns a buffer to the pool (one that grew far beyond bufCap is
// left to the garbage collector).
func (s *Server) putBuf(bp *[]byte) {
	if cap(*bp) < bufCap || cap(*bp) > 2*bufCap {
		return
	}
	*bp = (*bp)[:0]
	s.bufs.Put(bp)
}

// remoteConn is a pipe end that reports the real client's address.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (r *remoteConn) RemoteAddr() net.Addr { return r.remote }

// serveUDP answers portmapper and MOUNT calls over UDP (NFS itself is TCP
// only here).
func (s *Server) serveUDP(ctx context.Context, p net.PacketConn) {
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, from, err := p.ReadFrom(buf)
		if err != nil {
			return
		}
		reply, _ := s.dispatch(append([]byte(nil), buf[:n]...), clientAddr(from), false)
		if reply != nil {
			_, _ = p.WriteTo(reply, from)
		}
	}
}

// forward says that a call is not answered in the read loop: a data call
// (READ, WRITE, COMMIT) to serve with serveData, else a call to pass to
// go-nfs, run as cred (nil: the gateway).
type forward struct {
	cred *Cred
	data *dataCall
}

// dataCall is a call the front answers in a worker (READ, WRITE, COMMIT,
// and the calls that change or list a directory); args points into the
// call's record.
type dataCall struct {
	xid  uint32
	proc uint32
	args []byte
	fs   *FS  // the caller's view (FS.As), or the gateway's FS
	sync bool // every WRITE synced (the export does not allow UnstableWrites)
}

// serveData answers a dataCall. The reply's first 4 bytes are room for
// the record mark; buf, if not nil, is the pooled buffer holding it, to
// give back with putBuf once sent.
func (s *Server) serveData(dc *dataCall) (reply []byte, buf *[]byte) {
	var body []byte
	switch dc.proc {
	case nfsProcRead:
		return s.nfsRead(dc.xid, dc.fs, dc.args)
	case nfsProcWrite:
		return s.nfsWrite(dc.xid, dc.fs, dc.args, dc.sync), nil
	case nfsProcCommit:
		return s.nfsCommit(dc.xid, dc.fs, dc.args), nil
	case nfsProcSetattr:
		body = s.nfsSetattr(dc.fs, dc.args)
	case nfsProcRemove, nfsProcRmdir:
		body = s.nfsRemove(dc.fs, dc.args, dc.proc == nfsProcRmdir)
	case nfsProcRename:
		body = s.nfsRename(dc.fs, dc.args)
	case nfsProcLink:
		body = s.nfsLink(dc.fs, dc.args)
	case nfsProcMknod:
		body = s.nfsMknod(dc.fs, dc.args)
	case nfsProcCreate:
		body = s.nfsCreate(dc.fs, dc.args)
	case nfsProcMkdir:
		body = s.nfsMkdir(dc.fs, dc.args)
	case nfsProcSymlink:
		body = s.nfsSymlink(dc.fs, dc.args)
	case nfsProcReaddir, nfsProcReaddirP:
		body = s.nfsReaddir(dc.fs, dc.args, dc.proc == nfsProcReaddirP)
	default:
		return frame(acceptedReply(dc.xid, acceptProcUnavail, nil)), nil
	}
	return frame(acceptedReply(dc.xid, acceptSuccess, body)), nil
}

// dispatch decides what to do with one RPC record: it returns the reply
// to send, or a forward to pass the call to go-nfs. A nil reply without
// forward means the record is not an answerable call.
func (s *Server) dispatch(rec []byte, client netip.Addr, stream bool) (reply []byte, fwd *forward) {
	c, err := decodeCall(rec)
	if err != nil {
		if len(rec) >= 8 && c.RPCVersion == rpcVersion {
			return acceptedReply(c.XID, acceptGarbageArgs, nil), nil
		}
		return nil, nil
	}
	if c.RPCVersion != rpcVersion {
		return rpcMismatchReply(c.XID), nil
	}
	switch c.Prog {
	case progPortmap:
		return s.portmap(c), nil
	case progMount:
		return s.mount(c, client), nil
	case progNFS:
		if !stream {
			return acceptedReply(c.XID, acceptProgUnavail, nil), nil
		}
		return s.nfs(c, client)
	}
	return acceptedReply(c.XID, acceptProgUnavail, nil), nil
}

// nfs answers the NFS calls the front handles itself and forwards the rest.
func (s *Server) nfs(c rpcCall, client netip.Addr) ([]byte, *forward) {
	if c.Vers != nfsVers {
		return progMismatchReply(c.XID, nfsVers, nfsVers), nil
	}
	if c.Proc > nfsProcMax {
		return acceptedReply(c.XID, acceptProcUnavail, nil), nil
	}
	if c.Proc == nfsProcNull {
		return acceptedReply(c.XID, acceptSuccess, nil), nil
	}
	exp, ok, _ := exportFor(s.cfg.Exports, "", client)
	if !ok {
		return authErrorReply(c.XID, authTooWeak), nil
	}
	var a authSysCred
	switch c.CredFlavor {
	case authNull:
	case authSys:
		var err error
		if a, err = decodeAuthSys(c.Cred); err != nil {
			return authErrorReply(c.XID, authBadCred), nil
		}
	default:
		return authErrorReply(c.XID, authTooWeak), nil
	}
	cred := exp.credFor(c.CredFlavor, a)
	if exp.ReadOnly && changeProcWords(c.Proc) >= 0 && c.Proc != nfsProcCommit {
		return acceptedReply(c.XID, acceptSuccess, nfsFailure(c.Proc, nfsStatus(ErrReadOnly))), nil
	}
	fs := s.fs
	if cred != nil {
		fs = s.fs.As(*cred)
	}
	switch c.Proc {
	case nfsProcAccess:
		return acceptedReply(c.XID, acceptSuccess, s.nfsAccess(fs, exp.ReadOnly, c.Args)), nil
	case nfsProcFSInfo:
		return acceptedReply(c.XID, acceptSuccess, s.nfsFSInfo(c.Args)), nil
	case nfsProcRead, nfsProcWrite, nfsProcCommit, nfsProcSetattr,
		nfsProcCreate, nfsProcMkdir, nfsProcSymlink, nfsProcMknod, nfsProcRemove, nfsProcRmdir, nfsProcRename, nfsProcLink,
		nfsProcReaddir, nfsProcReaddirP:
		// Each may wait on the disk (an fsync, a long listing): a worker
		// answers it, and the calls behind it go on meanwhile.
		return nil, &forward{data: &dataCall{xid: c.XID, proc: c.Proc, args: c.Args, fs: fs, sync: !exp.UnstableWrites}}
	}
	return nil, &forward{cred: cred}
}

// dispatchNoNet is dispatch for a server without sockets (fuzzing): the
// portmapper table needs the NFS port, so portmapper calls are skipped;
// data calls are answered at once.
func (s *Server) dispatchNoNet(rec []byte, client netip.Addr) ([]byte, *forward) {
	if c, err := decodeCall(rec); err == nil && c.Prog == progPortmap {
		return nil, nil
	}
	reply, fwd := s.dispatch(rec, client, true)
	if fwd != nil && fwd.data != nil {
		out, buf := s.serveData(fwd.data)
		reply = append([]byte(nil), out[4:]...)
		if buf != nil {
			s.putBuf(buf)
		}
		return reply, nil
	}
	return reply, fwd
}

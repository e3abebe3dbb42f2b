package nfsgw

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// testServer starts a Server on 127.0.0.1 (ports picked by the kernel)
// serving a temp folder with exports.
func testServer(t *testing.T, exports []Export) (*Server, *FS, string) {
	t.Helper()
	fs, dir := newTestFS(t)
	s, err := NewServer(Config{FS: fs, Exports: exports, Listen: "127.0.0.1:0", PortmapListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(context.Background())
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s, fs, dir
}

func allowAll(path string) []Export {
	// UnstableWrites: the data tests check each stability level honoured.
	return []Export{{Path: path, Networks: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, UnstableWrites: true}}
}

// rpcConn is a minimal ONC RPC client over TCP for tests.
type rpcConn struct {
	uid, gid uint32 // AUTH_SYS credentials sent
	t        *testing.T
	c        net.Conn
	br       *bufio.Reader
	xid      uint32
}

func dialRPC(t *testing.T, addr net.Addr) *rpcConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rpcConn{t: t, c: c, br: bufio.NewReader(c)}
}

// callRaw sends a call with AUTH_SYS r.uid, r.gid and returns the raw reply record.
func (r *rpcConn) callRaw(rpcvers, prog, vers, proc uint32, args []byte) []byte {
	r.t.Helper()
	r.xid++
	if _, err := r.c.Write(frame(r.callRecord(r.xid, rpcvers, prog, vers, proc, args))); err != nil {
		r.t.Fatal(err)
	}
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rec, err := readRecord(r.br)
	if err != nil {
		r.t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(rec); got != r.xid {
		r.t.Fatalf("reply xid %d, want %d", got, r.xid)
	}
	return rec
}

// callRecord encodes a call record with AUTH_SYS r.uid, r.gid.
func (r *rpcConn) callRecord(xid, rpcvers, prog, vers, proc uint32, args []byte) []byte {
	w := &xdrWriter{}
	w.u32(xid)
	w.u32(msgCall)
	w.u32(rpcvers)
	w.u32(prog)
	w.u32(vers)
	w.u32(proc)
	cred := &xdrWriter{}
	cred.u32(0)
	cred.str("test")
	cred.u32(r.uid)
	cred.u32(r.gid)
	cred.u32(0)
	w.u32(authSys)
	w.opaque(cred.b)
	w.u32(authNull)
	w.u32(0)
	return append(w.b, args...)
}

// call sends a call and returns accept_stat and the result body (it fails
// the test on a denied reply).
func (r *rpcConn) call(prog, vers, proc uint32, args []byte) (uint32, *xdrReader) {
	r.t.Helper()
	rec := r.callRaw(rpcVersion, prog, vers, proc, args)
	x := &xdrReader{b: rec}
	x.u32()
	x.u32()
	if st := x.u32(); st != msgAccepted {
		r.t.Fatalf("reply denied: %x", rec)
	}
	x.u32()
	x.opaque(maxAuthBody)
	return x.u32(), x
}

func strArg(s string) []byte { w := &xdrWriter{}; w.str(s); return w.b }

func (r *rpcConn) mnt(path string) (uint32, []byte) {
	r.t.Helper()
	st, x := r.call(progMount, 3, mountProcMnt, strArg(path))
	if st != acceptSuccess {
		r.t.Fatalf("MNT accept_stat %d", st)
	}
	status := x.u32()
	if status != mnt3OK {
		return status, nil
	}
	return status, x.opaque(64)
}

func TestRPCProtocolHygiene(t *testing.T) {
	s, _, _ := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	cases := []struct {
		name             string
		prog, vers, proc uint32
		want             uint32
	}{
		{"unknown program", 200000, 1, 0, acceptProgUnavail},
		{"nfs v2", progNFS, 2, 0, acceptProgMismatch},
		{"nfs v4", progNFS, 4, 0, acceptProgMismatch},
		{"nfs proc 22", progNFS, 3, 22, acceptProcUnavail},
		{"mount proc 6", progMount, 3, 6, acceptProcUnavail},
		{"portmap v3", progPortmap, 3, 0, acceptProgMismatch},
		{"nfs null", progNFS, 3, 0, acceptSuccess},
		{"mount null", progMount, 3, 0, acceptSuccess},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, x := r.call(c.prog, c.vers, c.proc, nil)
			if st != c.want {
				t.Fatalf("accept_stat %d, want %d", st, c.want)
			}
			if st == acceptProgMismatch {
				lo, hi := x.u32(), x.u32()
				if x.err != nil || lo > hi {
					t.Fatalf("mismatch range %d-%d %v", lo, hi, x.err)
				}
			}
		})
	}
	rec := r.callRaw(3, progNFS, 3, 0, nil)
	if x := (&xdrReader{b: rec}); x.u32() != r.xid || x.u32() != msgReply || x.u32() != msgDenied || x.u32() != rejectRPCMismatch {
		t.Fatalf("rpc version 3: %x", rec)
	}
}

func TestPortmap(t *testing.T) {
	s, _, _ := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.PortmapAddr())
	nfsPort := uint32(s.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		m    pmapMapping
		want uint32
	}{
		{pmapMapping{Prog: progNFS, Vers: 3, Prot: ipprotoTCP}, nfsPort},
		{pmapMapping{Prog: progNFS, Vers: 3, Prot: ipprotoUDP}, 0},
		{pmapMapping{Prog: progMount, Vers: 3, Prot: ipprotoTCP}, nfsPort},
		{pmapMapping{Prog: progMount, Vers: 3, Prot: ipprotoUDP}, nfsPort},
		{pmapMapping{Prog: progNFS, Vers: 4, Prot: ipprotoTCP}, 0},
	} {
		w := &xdrWriter{}
		w.u32(c.m.Prog)
		w.u32(c.m.Vers)
		w.u32(c.m.Prot)
		w.u32(0)
		st, x := r.call(progPortmap, 2, pmapProcGetport, w.b)
		if got := x.u32(); st != acceptSuccess || got != c.want {
			t.Errorf("GETPORT %+v = %d (stat %d), want %d", c.m, got, st, c.want)
		}
	}
	st, x := r.call(progPortmap, 2, pmapProcDump, nil)
	n := 0
	for st == acceptSuccess && x.u32() == 1 {
		x.u32()
		x.u32()
		x.u32()
		x.u32()
		n++
	}
	if x.err != nil || n != len(s.pmapTable()) {
		t.Fatalf("DUMP listed %d entries (%v)", n, x.err)
	}
	// GETPORT over UDP, as rpcbind clients often ask.
	u, err := net.Dial("udp", s.PortmapAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	w := &xdrWriter{}
	for _, v := range []uint32{77, msgCall, 2, progPortmap, 2, pmapProcGetport, 0, 0, 0, 0, progMount, 3, ipprotoUDP, 0} {
		w.u32(v)
	}
	if _, err := u.Write(w.b); err != nil {
		t.Fatal(err)
	}
	_ = u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	k, err := u.Read(buf)
	if err != nil || k != 28 || binary.BigEndian.Uint32(buf[24:]) != nfsPort {
		t.Fatalf("UDP GETPORT: %x %v", buf[:k], err)
	}
}

func TestMountService(t *testing.T) {
	exports := []Export{
		{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Path: "/far", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
	}
	s, fs, _ := testServer(t, exports)
	r := dialRPC(t, s.Addr())
	st, fh := r.mnt("/data/")
	root, _ := fs.RootHandle()
	if st != mnt3OK || string(fh) != string(root) {
		t.Fatalf("MNT /data: %d %x", st, fh)
	}
	if st, _ := r.mnt("/far"); st != mnt3ErrAcces {
		t.Fatalf("MNT /far from outside its networks: %d, want MNT3ERR_ACCES", st)
	}
	if st, _ := r.mnt("/nope"); st != mnt3ErrNoEnt {
		t.Fatalf("MNT /nope: %d, want MNT3ERR_NOENT", st)
	}
	_, x := r.call(progMount, 3, mountProcExport, nil)
	var got []string
	for x.u32() == 1 {
		got = append(got, string(x.opaque(1024)))
		for x.u32() == 1 {
			x.opaque(1024)
		}
	}
	if x.err != nil || len(got) != 2 || got[0] != "/data" || got[1] != "/far" {
		t.Fatalf("EXPORT: %v %v", got, x.err)
	}
	_, x = r.call(progMount, 3, mountProcDump, nil)
	if x.u32() != 1 || string(x.opaque(255)) != "127.0.0.1" || string(x.opaque(1024)) != "/data" || x.u32() != 0 {
		t.Fatalf("DUMP after MNT: %v", x.err)
	}
	r.call(progMount, 3, mountProcUmnt, strArg("/data"))
	if _, x = r.call(progMount, 3, mountProcDump, nil); x.u32() != 0 {
		t.Fatal("DUMP after UMNT not empty")
	}
}

func TestNFSThroughFront(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	writeFile(t, fs, "f", "hello")
	fh, _ := fs.handleOf("f")

	// GETATTR goes to go-nfs with our handle.
	w := &xdrWriter{}
	w.opaque(fh)
	st, x := r.call(progNFS, 3, 1, w.b)
	if st != acceptSuccess || x.u32() != uint32(nfs.NFSStatusOk) {
		t.Fatalf("GETATTR: %d %v", st, x.err)
	}

	// WRITE (answered by the front) lands in the file.
	w = &xdrWriter{}
	w.opaque(fh)
	w.u32(0)
	w.u32(5) // offset (uint64)
	w.u32(6)
	w.u32(2) // FILE_SYNC
	w.opaque([]byte(" world"))
	if st, x := r.call(progNFS, 3, nfsProcWrite, w.b); st != acceptSuccess || x.u32() != 0 {
		t.Fatalf("WRITE: %d %x", st, x.b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "hello world" {
		t.Fatalf("after WRITE: %q", b)
	}

	// LINK (intercepted): file handle first, then where.
	w = &xdrWriter{}
	w.opaque(fh)
	w.opaque(root)
	w.str("hard")
	if _, x := r.call(progNFS, 3, nfsProcLink, w.b); x.u32() != 0 {
		t.Fatal("LINK failed")
	}
	a, _ := os.Stat(filepath.Join(dir, "hard"))
	b, _ := os.Stat(filepath.Join(dir, "f"))
	if !os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
		t.Fatal("LINK did not make a hard link")
	}

	// MKNOD of a character device (intercepted) creates it.
	w = &xdrWriter{}
	w.opaque(root)
	w.str("null")
	w.u32(ftypeCHR)
	w.u32(1)
	w.u32(0o640) // set mode
	for i := 0; i < 5; i++ {
		w.u32(0) // uid, gid, size, atime, mtime: don't set
	}
	w.u32(1)
	w.u32(3)
	if _, x := r.call(progNFS, 3, nfsProcMknod, w.b); x.u32() != 0 || x.u32() != 1 || len(x.opaque(64)) == 0 {
		t.Fatalf("MKNOD failed: %v", x.err)
	}
	var sst unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "null"), &sst); err != nil || sst.Mode&unix.S_IFMT != unix.S_IFCHR || sst.Mode&0o777 != 0o640 || sst.Rdev != unix.Mkdev(1, 3) {
		t.Fatalf("MKNOD made %o %v", sst.Mode, err)
	}

	// COMMIT (answered by the front) answers OK.
	w = &xdrWriter{}
	w.opaque(fh)
	w.u32(0)
	w.u32(0)
	w.u32(0)
	if _, x := r.call(progNFS, 3, nfsProcCommit, w.b); x.u32() != 0 {
		t.Fatal("COMMIT failed")
	}

	// A handle of a removed file is stale through go-nfs too.
	if err := fs.Remove("hard"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("f"); err != nil {
		t.Fatal(err)
	}
	w = &xdrWriter{}
	w.opaque(fh)
	if _, x := r.call(progNFS, 3, 1, w.b); x.u32() != uint32(nfs.NFSStatusStale) {
		t.Fatal("GETATTR of a removed file is not NFS3ERR_STALE")
	}
}

func TestReadOnlyAndDeniedClient(t *testing.T) {
	exports := []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, ReadOnly: true}}
	s, fs, _ := testServer(t, exports)
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	w := &xdrWriter{}
	w.opaque(root)
	w.str("new")
	w.u32(0) // UNCHECKED
	for i := 0; i < 6; i++ {
		w.u32(0)
	}
	if _, x := r.call(progNFS, 3, nfsProcCreate, w.b); x.u32() != uint32(nfs.NFSStatusROFS) {
		t.Fatal("CREATE on a ro export is not NFS3ERR_ROFS")
	}
	if _, err := fs.Lstat("new"); err == nil {
		t.Fatal("CREATE on a ro export created the file")
	}

	other := []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	s2, _, _ := testServer(t, other)
	r2 := dialRPC(t, s2.Addr())
	if st, _ := r2.mnt("/data"); st != mnt3ErrAcces {
		t.Fatalf("MNT from outside: %d", st)
	}
	rec := r2.callRaw(rpcVersion, progNFS, 3, 1, (&xdrWriter{}).b)
	if x := (&xdrReader{b: rec}); x.u32() != r2.xid || x.u32() != msgReply || x.u32() != msgDenied || x.u32() != rejectAuthError {
		t.Fatalf("NFS from outside: %x", rec)
	}
}

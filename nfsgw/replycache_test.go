package nfsgw

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	nfs "github.com/willscott/go-nfs"
)

// resend sends the call last made on r again (same xid, same bytes) and
// returns the reply's NFS status.
func (r *rpcConn) resend(proc uint32, args []byte) (nfs.NFSStatus, []byte) {
	r.t.Helper()
	r.xid--
	_, x := r.call(progNFS, 3, proc, args)
	return nfs.NFSStatus(x.u32()), x.b
}

// TestRetransmitsAnsweredFromCache: a call sent again with its xid is not
// run again: a MKDIR or REMOVE answers what it answered first, not EXIST
// or NOENT, and a WRITE sent again after another client's write over the
// same range does not land over it. Both copies of a call sent twice
// before its reply get the reply of one run.
func TestRetransmitsAnsweredFromCache(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	other := dialRPC(t, s.Addr())
	other.mnt("/data")
	writeFile(t, fs, "gone", "x")
	writeFile(t, fs, "shared", "....")
	fh := mustHandle(t, fs, "shared")
	dirop := func(name string) []byte {
		w := &xdrWriter{}
		w.opaque(root)
		w.str(name)
		return w.b
	}

	_, x := r.call(progNFS, 3, nfsProcMkdir, mkdirArgsOf(root, "d", 0o755))
	first := append([]byte(nil), x.b...)
	if st, again := r.resend(nfsProcMkdir, mkdirArgsOf(root, "d", 0o755)); st != nfs.NFSStatusOk || !bytes.Equal(again, first) {
		t.Errorf("MKDIR sent again: status %d, same reply %v; want the first reply", st, bytes.Equal(again, first))
	}
	if _, x := r.call(progNFS, 3, nfsProcMkdir, mkdirArgsOf(root, "d", 0o755)); nfs.NFSStatus(x.u32()) != nfs.NFSStatusExist {
		t.Error("a new MKDIR of the same name (new xid) is not EXIST")
	}

	if _, x := r.call(progNFS, 3, nfsProcRemove, dirop("gone")); nfs.NFSStatus(x.u32()) != nfs.NFSStatusOk {
		t.Fatal("REMOVE failed")
	}
	if st, _ := r.resend(nfsProcRemove, dirop("gone")); st != nfs.NFSStatusOk {
		t.Errorf("REMOVE sent again: status %d, want OK", st)
	}

	if res := r.write(fh, 0, 2, []byte("AAAA")); res.status != nfs.NFSStatusOk {
		t.Fatalf("WRITE: %d", res.status)
	}
	if res := other.write(fh, 0, 2, []byte("BBBB")); res.status != nfs.NFSStatusOk {
		t.Fatalf("other's WRITE: %d", res.status)
	}
	r.xid--
	if res := r.write(fh, 0, 2, []byte("AAAA")); res.status != nfs.NFSStatusOk {
		t.Fatalf("WRITE sent again: %d", res.status)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "shared")); string(data) != "BBBB" {
		t.Errorf("after a WRITE sent again over another client's write, the file holds %q, want BBBB", data)
	}

	// Two copies in flight: one runs, both get its reply.
	rec := r.callRecord(r.xid+1, rpcVersion, progNFS, 3, nfsProcMkdir, mkdirArgsOf(root, "twice", 0o755))
	r.xid++
	if _, err := r.c.Write(append(frame(rec), frame(rec)...)); err != nil {
		t.Fatal(err)
	}
	var replies [][]byte
	for range 2 {
		_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rep, err := readRecord(r.br)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, rep)
	}
	if !bytes.Equal(replies[0], replies[1]) {
		t.Errorf("the two copies got different replies:\n%x\n%x", replies[0], replies[1])
	}
	x = &xdrReader{b: replies[0]}
	x.off = 24 // xid, msg type, reply stat, verifier (flavor, empty body), accept stat
	if st := nfs.NFSStatus(x.u32()); st != nfs.NFSStatusOk {
		t.Errorf("MKDIR sent twice at once: status %d, want OK", st)
	}
}

// TestReplyCacheKeepsRecentReplies: finished replies are dropped past the
// age or count limit, the oldest first; running calls never are.
func TestReplyCacheKeepsRecentReplies(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(func() time.Time { return now })
	c.max = 2
	client := netip.MustParseAddrPort("10.0.0.1:700")
	key := func(xid uint32) drcKey { return keyOf(client, xid, nfsProcWrite, []byte("args")) }
	running, _ := c.begin(key(1))
	for xid := uint32(2); xid <= 4; xid++ {
		e, dup := c.begin(key(xid))
		if dup {
			t.Fatalf("xid %d: a new call taken for a copy", xid)
		}
		c.finish(e, []byte{byte(xid)})
	}
	for xid, want := range map[uint32]bool{1: true, 2: false, 3: true, 4: true} {
		if _, dup := c.begin(key(xid)); dup != want {
			t.Errorf("xid %d: known %v, want %v", xid, dup, want)
		}
	}
	if e, dup := c.begin(keyOf(client, 3, nfsProcWrite, []byte("other"))); dup {
		t.Errorf("other arguments under a known xid taken for a copy: %v", e.key)
	}
	now = now.Add(drcKeep + time.Second)
	if _, dup := c.begin(key(3)); dup {
		t.Error("a reply older than drcKeep is still answered")
	}
	if e, dup := c.begin(key(1)); !dup || e != running {
		t.Error("a running call was dropped")
	}
}

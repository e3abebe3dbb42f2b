package nfsgw

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// Wire helpers for READ, WRITE and COMMIT in tests.

func writeArgsXDR(fh []byte, off uint64, stable uint32, data []byte) []byte {
	w := &xdrWriter{}
	w.opaque(fh)
	w.u64(off)
	w.u32(uint32(len(data)))
	w.u32(stable)
	w.opaque(data)
	return w.b
}

func readArgsXDR(fh []byte, off uint64, count uint32) []byte {
	w := &xdrWriter{}
	w.opaque(fh)
	w.u64(off)
	w.u32(count)
	return w.b
}

func commitArgsXDR(fh []byte) []byte {
	w := &xdrWriter{}
	w.opaque(fh)
	w.u64(0)
	w.u32(0)
	return w.b
}

// testAttr is the part of a fattr3 the tests look at.
type testAttr struct {
	typ, mode, nlink, uid, gid uint32
	size, fileid               uint64
}

func readTestAttr(x *xdrReader) testAttr {
	a := testAttr{typ: x.u32(), mode: x.u32(), nlink: x.u32(), uid: x.u32(), gid: x.u32(), size: x.u64()}
	x.off += 8 + 8 + 8 // used, rdev, fsid
	a.fileid = x.u64()
	x.off += fattr3Len - 60
	return a
}

func readPostOp(x *xdrReader) *testAttr {
	if x.u32() == 0 {
		return nil
	}
	a := readTestAttr(x)
	return &a
}

type writeRes struct {
	status    nfs.NFSStatus
	preSize   uint64
	hasPre    bool
	post      *testAttr
	count     uint32
	committed uint32
	verf      [8]byte
}

func (r *rpcConn) write(fh []byte, off uint64, stable uint32, data []byte) writeRes {
	r.t.Helper()
	st, x := r.call(progNFS, 3, nfsProcWrite, writeArgsXDR(fh, off, stable, data))
	if st != acceptSuccess {
		r.t.Fatalf("WRITE accept_stat %d", st)
	}
	var res writeRes
	res.status = nfs.NFSStatus(x.u32())
	if x.u32() == 1 {
		res.hasPre = true
		res.preSize = x.u64()
		x.off += 16
	}
	res.post = readPostOp(x)
	if res.status == nfs.NFSStatusOk {
		res.count = x.u32()
		res.committed = x.u32()
		copy(res.verf[:], x.b[x.off:])
		x.off += 8
	}
	if x.err != nil || x.off != len(x.b) {
		r.t.Fatalf("WRITE reply: %v, %d of %d bytes read", x.err, x.off, len(x.b))
	}
	return res
}

type readRes struct {
	status nfs.NFSStatus
	post   *testAttr
	eof    bool
	data   []byte
}

func (r *rpcConn) read(fh []byte, off uint64, count uint32) readRes {
	r.t.Helper()
	st, x := r.call(progNFS, 3, nfsProcRead, readArgsXDR(fh, off, count))
	if st != acceptSuccess {
		r.t.Fatalf("READ accept_stat %d", st)
	}
	var res readRes
	res.status = nfs.NFSStatus(x.u32())
	res.post = readPostOp(x)
	if res.status == nfs.NFSStatusOk {
		n := x.u32()
		res.eof = x.u32() == 1
		res.data = x.opaque(maxData)
		if uint32(len(res.data)) != n {
			r.t.Fatalf("READ count %d with %d bytes", n, len(res.data))
		}
	}
	if x.err != nil || x.off != len(x.b) {
		r.t.Fatalf("READ reply: %v, %d of %d bytes read", x.err, x.off, len(x.b))
	}
	return res
}

func (r *rpcConn) commit(fh []byte) (nfs.NFSStatus, [8]byte) {
	r.t.Helper()
	_, x := r.call(progNFS, 3, nfsProcCommit, commitArgsXDR(fh))
	status := nfs.NFSStatus(x.u32())
	if x.u32() == 1 {
		x.off += 24
	}
	readPostOp(x)
	var v [8]byte
	if status == nfs.NFSStatusOk {
		copy(v[:], x.b[x.off:])
		x.off += 8
	}
	if x.err != nil || x.off != len(x.b) {
		r.t.Fatalf("COMMIT reply: %v, %d of %d bytes read", x.err, x.off, len(x.b))
	}
	return status, v
}

// openFDsUnder counts this process's descriptors of files under dir.
func openFDsUnder(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		p, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(p, dir+"/") {
			n++
		}
	}
	return n
}

func TestWriteStabilityAndCommit(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	writeFile(t, fs, "f", "0123456789")
	fh, _ := fs.handleOf("f")
	verf := s.writeVerifier()
	for _, tc := range []struct {
		name          string
		stable, wants uint32
		off           uint64
		data          string
	}{
		{"unstable", stableUnstable, stableUnstable, 2, "ab"},
		{"data sync", stableDataSync, stableDataSync, 10, "XYZ"},
		{"file sync", stableFileSync, stableFileSync, 20, "end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.Stat(filepath.Join(dir, "f"))
			res := r.write(fh, tc.off, tc.stable, []byte(tc.data))
			if res.status != nfs.NFSStatusOk || res.count != uint32(len(tc.data)) || res.committed != tc.wants || res.verf != verf {
				t.Fatalf("WRITE: %+v, want committed %d verifier %x", res, tc.wants, verf)
			}
			after, _ := os.Stat(filepath.Join(dir, "f"))
			if !res.hasPre || res.preSize != uint64(before.Size()) || res.post == nil || res.post.size != uint64(after.Size()) {
				t.Fatalf("wcc: pre %v %d (file was %d), post %+v (file is %d)", res.hasPre, res.preSize, before.Size(), res.post, after.Size())
			}
		})
	}
	b, _ := os.ReadFile(filepath.Join(dir, "f"))
	if want := "01ab456789XYZ\x00\x00\x00\x00\x00\x00\x00end"; string(b) != want {
		t.Fatalf("file is %q, want %q", b, want)
	}
	if st, v := r.commit(fh); st != nfs.NFSStatusOk || v != verf {
		t.Fatalf("COMMIT: %d %x, want OK %x", st, v, verf)
	}
	// A failed fsync changes the verifier, so clients resend.
	s.resetVerifier(unix.EIO)
	if st, v := r.commit(fh); st != nfs.NFSStatusOk || v == verf {
		t.Fatalf("COMMIT after a verifier reset: %d %x (old %x)", st, v, verf)
	}
	// Malformed WRITEs.
	bad := writeArgsXDR(fh, 0, 3, []byte("x"))
	if _, x := r.call(progNFS, 3, nfsProcWrite, bad); nfs.NFSStatus(x.u32()) != nfs.NFSStatusInval {
		t.Fatal("stable_how 3 is not NFS3ERR_INVAL")
	}
	bad = writeArgsXDR(fh, 0, 0, []byte("abcd"))
	binary.BigEndian.PutUint32(bad[len(fh)+4+8:], 2) // count 2, 4 bytes of data
	if _, x := r.call(progNFS, 3, nfsProcWrite, bad); nfs.NFSStatus(x.u32()) != nfs.NFSStatusInval {
		t.Fatal("count != data length is not NFS3ERR_INVAL")
	}
	if res := r.write(fh, 1<<63-2, 0, []byte("abcd")); res.status != nfs.NFSStatusFBig {
		t.Fatalf("WRITE past 2^63: %d", res.status)
	}
	root, _ := fs.RootHandle()
	if res := r.write(root, 0, 0, []byte("x")); res.status != nfs.NFSStatusIsDir {
		t.Fatalf("WRITE to a directory: %d", res.status)
	}
}

func TestReadEOF(t *testing.T) {
	s, fs, _ := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	writeFile(t, fs, "f", "hello world")
	fh, _ := fs.handleOf("f")
	for _, tc := range []struct {
		name  string
		off   uint64
		count uint32
		want  string
		eof   bool
	}{
		{"start", 0, 5, "hello", false},
		{"to the end exactly", 6, 5, "world", true},
		{"across the end", 6, 100, "world", true},
		{"at EOF", 11, 10, "", true},
		{"past EOF", 1000, 10, "", true},
		{"past any file", 1<<64 - 1, 10, "", true},
		{"count 0", 0, 0, "", false},
		{"odd length", 1, 3, "ell", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.read(fh, tc.off, tc.count)
			if res.status != nfs.NFSStatusOk || string(res.data) != tc.want || res.eof != tc.eof {
				t.Fatalf("READ: status %d data %q eof %v, want %q eof %v", res.status, res.data, res.eof, tc.want, tc.eof)
			}
			if res.post == nil || res.post.size != 11 || res.post.typ != uint32(nfs.FileTypeRegular) {
				t.Fatalf("post-op attributes %+v", res.post)
			}
		})
	}
	// A count over rtmax is cut to it.
	big := bytes.Repeat([]byte{7}, maxData+10)
	if err := os.WriteFile(filepath.Join(fs.Dir(), "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	bh, _ := fs.handleOf("big")
	if res := r.read(bh, 0, maxData+10); res.status != nfs.NFSStatusOk || len(res.data) != maxData || res.eof {
		t.Fatalf("READ of %d: %d bytes eof %v", maxData+10, len(res.data), res.eof)
	}
	root, _ := fs.RootHandle()
	if res := r.read(root, 0, 10); res.status != nfs.NFSStatusIsDir {
		t.Fatalf("READ of a directory: %d", res.status)
	}
	if err := fs.Mkfifo("fifo", 0o666); err != nil {
		t.Fatal(err)
	}
	ff, _ := fs.handleOf("fifo")
	if res := r.read(ff, 0, 10); res.status != nfs.NFSStatusInval {
		t.Fatalf("READ of a fifo: %d", res.status)
	}
	if res := r.read([]byte{1, 2, 3, 4}, 0, 10); res.status != nfs.NFSStatusBadHandle {
		t.Fatalf("READ of a garbage handle: %d", res.status)
	}
}

// TestRenameAndUnlinkWhileCached: a cached descriptor follows its file
// through a rename (the Linux client's silly rename keeps an unlinked open
// file as .nfsXXXX), and a deleted or replaced file answers NFS3ERR_STALE
// although the cache still holds a descriptor of it.
func TestRenameAndUnlinkWhileCached(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	writeFile(t, fs, "f", "data")
	fh, _ := fs.handleOf("f")
	if res := r.read(fh, 0, 10); string(res.data) != "data" {
		t.Fatalf("READ: %+v", res)
	}
	w := &xdrWriter{}
	w.opaque(root)
	w.str("f")
	w.opaque(root)
	w.str(".nfs0001")
	if _, x := r.call(progNFS, 3, nfsProcRename, w.b); x.u32() != 0 {
		t.Fatal("RENAME failed")
	}
	if res := r.read(fh, 0, 10); res.status != nfs.NFSStatusOk || string(res.data) != "data" {
		t.Fatalf("READ after rename: %+v", res)
	}
	if res := r.write(fh, 4, stableUnstable, []byte("+")); res.status != nfs.NFSStatusOk {
		t.Fatalf("WRITE after rename: %+v", res)
	}
	// Deleted behind the gateway's back: stale, although cached.
	if err := os.Remove(filepath.Join(dir, ".nfs0001")); err != nil {
		t.Fatal(err)
	}
	if res := r.read(fh, 0, 10); res.status != nfs.NFSStatusStale {
		t.Fatalf("READ of a deleted file: %d", res.status)
	}
	if res := r.write(fh, 0, stableUnstable, []byte("x")); res.status != nfs.NFSStatusStale {
		t.Fatalf("WRITE of a deleted file: %d", res.status)
	}
	if st, _ := r.commit(fh); st != nfs.NFSStatusStale {
		t.Fatalf("COMMIT of a deleted file: %d", st)
	}
	if n := openFDsUnder(t, dir); n != 0 {
		t.Fatalf("%d descriptors of the deleted file still open", n)
	}
	// Replaced by a rename through the gateway: the old handle is stale,
	// the descriptor is closed at once, the new file is served.
	writeFile(t, fs, "a", "old")
	writeFile(t, fs, "b", "new")
	ah, _ := fs.handleOf("a")
	r.read(ah, 0, 10)
	r.write(ah, 0, stableUnstable, []byte("OLD"))
	if n := openFDsUnder(t, dir); n != 2 {
		t.Fatalf("%d descriptors open, want 2 (read and read-write)", n)
	}
	w = &xdrWriter{}
	w.opaque(root)
	w.str("b")
	w.opaque(root)
	w.str("a")
	if _, x := r.call(progNFS, 3, nfsProcRename, w.b); x.u32() != 0 {
		t.Fatal("RENAME over failed")
	}
	if n := openFDsUnder(t, dir); n != 0 {
		t.Fatalf("%d descriptors of the replaced file still open", n)
	}
	if res := r.read(ah, 0, 10); res.status != nfs.NFSStatusStale {
		t.Fatalf("READ of a replaced file: %d", res.status)
	}
	nh, _ := fs.handleOf("a")
	if res := r.read(nh, 0, 10); string(res.data) != "new" {
		t.Fatalf("READ of the new file: %+v", res)
	}
	// REMOVE through the gateway closes the descriptor too.
	w = &xdrWriter{}
	w.opaque(root)
	w.str("a")
	if _, x := r.call(progNFS, 3, nfsProcRemove, w.b); x.u32() != 0 {
		t.Fatal("REMOVE failed")
	}
	if n := openFDsUnder(t, dir); n != 0 {
		t.Fatalf("%d descriptors of the removed file still open", n)
	}
}

// TestDataAccessAsCaller: READ, WRITE and COMMIT are checked as the
// caller on every call, with knfsd's owner override and read-if-exec.
func TestDataAccessAsCaller(t *testing.T) {
	skipUnlessRoot(t)
	exports := []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RootSquash: true}}
	s, fs, dir := testServer(t, exports)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, mode os.FileMode, uid int) []byte {
		t.Helper()
		writeFile(t, fs, name, "r")
		if err := fs.Lchown(name, uid, uid); err != nil { // before chmod: chown clears setuid
			t.Fatal(err)
		}
		if err := fs.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
		fh, _ := fs.handleOf(name)
		return fh
	}
	rootfile := mk("rootfile", 0o644, 0)
	secret := mk("secret", 0o600, 0)
	exe := mk("exe", 0o711, 0)
	mine := mk("mine", 0o444, 1000)
	setuid := mk("setuid", os.ModeSetuid|0o777, 0)
	if fi, _ := os.Stat(filepath.Join(dir, "setuid")); fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("setuid file has mode %v", fi.Mode())
	}
	r := dialRPC(t, s.Addr())
	// The descriptors are the gateway's, cached on first use by anyone;
	// each call below is checked as its caller.
	r.uid, r.gid = 1000, 1000
	for _, tc := range []struct {
		name string
		fh   []byte
		op   string
		want nfs.NFSStatus
	}{
		{"read 0644", rootfile, "read", nfs.NFSStatusOk},
		{"write 0644 of another", rootfile, "write", nfs.NFSStatusAccess},
		{"commit 0644 of another", rootfile, "commit", nfs.NFSStatusAccess},
		{"read 0600 of another", secret, "read", nfs.NFSStatusAccess},
		{"read 0711 binary", exe, "read", nfs.NFSStatusOk},
		{"write own 0444 (owner override)", mine, "write", nfs.NFSStatusOk},
		{"read own 0444", mine, "read", nfs.NFSStatusOk},
		{"commit own 0444", mine, "commit", nfs.NFSStatusOk},
		{"write 04777 of another", setuid, "write", nfs.NFSStatusOk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got nfs.NFSStatus
			switch tc.op {
			case "read":
				got = r.read(tc.fh, 0, 1).status
			case "write":
				got = r.write(tc.fh, 0, stableUnstable, []byte("w")).status
			case "commit":
				got, _ = r.commit(tc.fh)
			}
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rootfile")); string(b) != "r" {
		t.Fatalf("rootfile is %q", b)
	}
	// The write ran as uid 1000: the kernel cleared the setuid bit.
	if fi, _ := os.Stat(filepath.Join(dir, "setuid")); fi.Mode()&os.ModeSetuid != 0 {
		t.Fatalf("setuid file written by a non-owner keeps mode %v", fi.Mode())
	}
	// Another user is refused the 0444 file its owner may write.
	r.uid, r.gid = 1001, 1001
	if res := r.write(mine, 0, stableUnstable, []byte("x")); res.status != nfs.NFSStatusAccess {
		t.Fatalf("non-owner WRITE of 0444: %d", res.status)
	}
	// Squashed root is checked like anyone.
	r.uid, r.gid = 0, 0
	if res := r.read(secret, 0, 1); res.status != nfs.NFSStatusAccess {
		t.Fatalf("squashed root READ of 0600: %d", res.status)
	}
	// Permissions are checked per call, not at open: a chmod takes effect
	// although the descriptor stays cached.
	r.uid, r.gid = 1000, 1000
	if err := fs.Chmod("rootfile", 0o600); err != nil {
		t.Fatal(err)
	}
	if res := r.read(rootfile, 0, 1); res.status != nfs.NFSStatusAccess {
		t.Fatalf("READ after chmod 0600: %d", res.status)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "mine"), &st); err != nil || st.Uid != 1000 {
		t.Fatalf("mine: uid %d %v", st.Uid, err)
	}
}

func TestDataOnReadOnlyExport(t *testing.T) {
	exports := []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, ReadOnly: true}}
	s, fs, dir := testServer(t, exports)
	writeFile(t, fs, "f", "data")
	fh, _ := fs.handleOf("f")
	r := dialRPC(t, s.Addr())
	if res := r.write(fh, 0, stableFileSync, []byte("X")); res.status != nfs.NFSStatusROFS {
		t.Fatalf("WRITE on a ro export: %d", res.status)
	}
	if res := r.read(fh, 0, 10); res.status != nfs.NFSStatusOk || string(res.data) != "data" {
		t.Fatalf("READ on a ro export: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "data" {
		t.Fatalf("file is %q", b)
	}
}

// TestPipelinedWrites: calls sent back to back on one connection are
// answered (out of order is allowed) and all land.
func TestPipelinedWrites(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	writeFile(t, fs, "f", "")
	if err := fs.Chmod("f", 0o666); err != nil { // the calls are AUTH_NULL: nobody
		t.Fatal(err)
	}
	fh, _ := fs.handleOf("f")
	r := dialRPC(t, s.Addr())
	const n, size = 40, 64 << 10
	want := make([]byte, n*size)
	var out []byte
	for i := 0; i < n; i++ {
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(want[i*size:], chunk)
		w := &xdrWriter{}
		for _, v := range []uint32{uint32(1000 + i), msgCall, rpcVersion, progNFS, 3, nfsProcWrite, authNull, 0, authNull, 0} {
			w.u32(v)
		}
		proc := uint32(nfsProcWrite)
		if i == n-1 {
			w.b = w.b[:20]
			proc = nfsProcCommit
			w.u32(proc)
			for _, v := range []uint32{authNull, 0, authNull, 0} {
				w.u32(v)
			}
			w.b = append(w.b, commitArgsXDR(fh)...)
		} else {
			w.b = append(w.b, writeArgsXDR(fh, uint64(i*size), stableUnstable, chunk)...)
		}
		out = append(out, frame(w.b)...)
	}
	want = want[:(n-1)*size]
	if _, err := r.c.Write(out); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for i := 0; i < n; i++ {
		rec, err := readRecord(r.br)
		if err != nil {
			t.Fatal(err)
		}
		x := &xdrReader{b: rec}
		xid := x.u32()
		x.off = 24
		if st := x.u32(); st != 0 || seen[xid] {
			t.Fatalf("reply %d: status %d (seen %v)", xid, st, seen[xid])
		}
		seen[xid] = true
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, want) {
		t.Fatalf("file has %d bytes, want %d (or differs)", len(b), len(want))
	}
}

func TestFSInfo(t *testing.T) {
	s, fs, _ := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	root, _ := fs.RootHandle()
	w := &xdrWriter{}
	w.opaque(root)
	_, x := r.call(progNFS, 3, nfsProcFSInfo, w.b)
	if nfs.NFSStatus(x.u32()) != nfs.NFSStatusOk {
		t.Fatal("FSINFO failed")
	}
	if a := readPostOp(x); a == nil || a.typ != uint32(nfs.FileTypeDirectory) {
		t.Fatalf("FSINFO attributes %+v", a)
	}
	rtmax, rtpref, _, wtmax, wtpref := x.u32(), x.u32(), x.u32(), x.u32(), x.u32()
	if rtmax != maxData || rtpref != maxData || wtmax != maxData || wtpref != maxData {
		t.Fatalf("rtmax %d rtpref %d wtmax %d wtpref %d", rtmax, rtpref, wtmax, wtpref)
	}
	x.u32() // wtmult
	x.u32() // dtpref
	x.u64() // maxfilesize
	if x.u32() != 0 || x.u32() != 1 {
		t.Fatal("time_delta is not 1 ns")
	}
	if props := x.u32(); x.err != nil || props != fsfLink|fsfSymlink|fsfHomogeneous|fsfCanSetTime || x.off != len(x.b) {
		t.Fatalf("properties %#x, %v", props, x.err)
	}
}

// TestSyncWritesExport: by default every WRITE is synced and answered
// FILE_SYNC, an UNSTABLE one too.
func TestSyncWritesExport(t *testing.T) {
	s, fs, _ := testServer(t, []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}})
	r := dialRPC(t, s.Addr())
	writeFile(t, fs, "f", "0123")
	fh, _ := fs.handleOf("f")
	for _, stable := range []uint32{stableUnstable, stableDataSync, stableFileSync} {
		if res := r.write(fh, 0, stable, []byte("ab")); res.status != nfs.NFSStatusOk || res.committed != stableFileSync {
			t.Fatalf("WRITE stable_how %d on a default export: %+v, want FILE_SYNC", stable, res)
		}
	}
}

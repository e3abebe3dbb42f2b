package nfsgw

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// sattr3 encodes a sattr3 that sets the mode (when mode >= 0) and the
// size (when size >= 0), and nothing else.
func sattr3(w *xdrWriter, mode, size int64) {
	sattr3Times(w, mode, size, timeDontChange, timeDontChange, 0)
}

// sattr3Times is sattr3 with the times: each how is timeDontChange,
// timeServer, or timeClient (then sec is the time given).
func sattr3Times(w *xdrWriter, mode, size int64, atimeHow, mtimeHow uint32, sec uint32) {
	w.bool(mode >= 0)
	if mode >= 0 {
		w.u32(uint32(mode))
	}
	w.u32(0) // uid
	w.u32(0) // gid
	w.bool(size >= 0)
	if size >= 0 {
		w.u64(uint64(size))
	}
	for _, how := range []uint32{atimeHow, mtimeHow} {
		w.u32(how)
		if how == timeClient {
			w.u32(sec)
			w.u32(0)
		}
	}
}

func createArgsOf(dir []byte, name string, how uint32, mode, size int64, verf uint64) []byte {
	w := &xdrWriter{}
	w.opaque(dir)
	w.str(name)
	w.u32(how)
	if how == createExclusive {
		w.u64(verf)
	} else {
		sattr3(w, mode, size)
	}
	return w.b
}

func mkdirArgsOf(dir []byte, name string, mode int64) []byte {
	w := &xdrWriter{}
	w.opaque(dir)
	w.str(name)
	sattr3(w, mode, -1)
	return w.b
}

// TestCreateKeepsData: CREATE and MKDIR follow RFC 1813 as Linux's nfsd
// does. An UNCHECKED create of an existing file (what Linux sends for
// open(O_CREAT) over a cached negative entry) keeps its data: go-nfs
// truncated it. GUARDED and EXCLUSIVE are atomic, MKDIR of an existing
// name is EXIST.
func TestCreateKeepsData(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	writeFile(t, fs, "f", "hello")
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	size := func(name string) int64 {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			return -1
		}
		return fi.Size()
	}
	for _, tc := range []struct {
		name     string
		proc     uint32
		args     []byte
		want     nfs.NFSStatus
		file     string
		wantSize int64 // of file afterwards; -1: must not exist
	}{
		{"unchecked existing keeps data", nfsProcCreate, createArgsOf(root, "f", createUnchecked, 0o644, -1, 0), nfs.NFSStatusOk, "f", 5},
		{"guarded existing", nfsProcCreate, createArgsOf(root, "f", createGuarded, 0o644, -1, 0), nfs.NFSStatusExist, "f", 5},
		{"exclusive existing", nfsProcCreate, createArgsOf(root, "f", createExclusive, 0, 0, 7), nfs.NFSStatusExist, "f", 5},
		{"unchecked over a directory", nfsProcCreate, createArgsOf(root, "d", createUnchecked, 0o644, -1, 0), nfs.NFSStatusExist, "f", 5},
		{"unchecked with size 0 truncates", nfsProcCreate, createArgsOf(root, "f", createUnchecked, -1, 0, 0), nfs.NFSStatusOk, "f", 0},
		{"unchecked new", nfsProcCreate, createArgsOf(root, "new", createUnchecked, 0o600, -1, 0), nfs.NFSStatusOk, "new", 0},
		{"guarded new", nfsProcCreate, createArgsOf(root, "g", createGuarded, 0o600, -1, 0), nfs.NFSStatusOk, "g", 0},
		{"exclusive new", nfsProcCreate, createArgsOf(root, "x", createExclusive, 0, 0, 0x1234_5678_9abc_def0), nfs.NFSStatusOk, "x", 0},
		{"exclusive retransmitted", nfsProcCreate, createArgsOf(root, "x", createExclusive, 0, 0, 0x1234_5678_9abc_def0), nfs.NFSStatusOk, "x", 0},
		{"exclusive other verifier", nfsProcCreate, createArgsOf(root, "x", createExclusive, 0, 0, 1), nfs.NFSStatusExist, "x", 0},
		{"mkdir existing directory", nfsProcMkdir, mkdirArgsOf(root, "d", 0o755), nfs.NFSStatusExist, "f", 0},
		{"mkdir over a file", nfsProcMkdir, mkdirArgsOf(root, "f", 0o755), nfs.NFSStatusExist, "f", 0},
		{"mkdir new", nfsProcMkdir, mkdirArgsOf(root, "m", 0o700), nfs.NFSStatusOk, "f", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, x := r.call(progNFS, 3, tc.proc, tc.args)
			if got := nfs.NFSStatus(x.u32()); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if got := size(tc.file); got != tc.wantSize {
				t.Fatalf("%s has %d bytes, want %d", tc.file, got, tc.wantSize)
			}
		})
	}
	for name, want := range map[string]os.FileMode{"new": 0o600, "g": 0o600, "m": os.ModeDir | 0o700} {
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "x")); err != nil || fi.Sys().(*syscall.Stat_t).Mtim.Sec != 0x12345678 {
		t.Errorf("x: the verifier is not in its times: %v", err)
	}
}

// TestGuardedCreateIsExclusive: of many clients that create one name at
// once, GUARDED (what Linux falls back to for O_EXCL) or MKDIR, exactly
// one succeeds: lock files and lock directories work.
func TestGuardedCreateIsExclusive(t *testing.T) {
	s, _, _ := testServer(t, allowAll("/data"))
	const clients = 12
	conns := make([]*rpcConn, clients)
	var root []byte
	for i := range conns {
		conns[i] = dialRPC(t, s.Addr())
		_, root = conns[i].mnt("/data")
	}
	for _, tc := range []struct {
		proc uint32
		args []byte
	}{
		{nfsProcCreate, createArgsOf(root, "lock", createGuarded, 0o644, -1, 0)},
		{nfsProcMkdir, mkdirArgsOf(root, "lockdir", 0o755)},
	} {
		var wg sync.WaitGroup
		statuses := make([]nfs.NFSStatus, clients)
		for i, r := range conns {
			wg.Go(func() {
				_, x := r.call(progNFS, 3, tc.proc, tc.args)
				statuses[i] = nfs.NFSStatus(x.u32())
			})
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			switch st {
			case nfs.NFSStatusOk:
				ok++
			case nfs.NFSStatusExist:
			default:
				t.Errorf("proc %d: status %d", tc.proc, st)
			}
		}
		if ok != 1 {
			t.Errorf("proc %d: %d clients created the name, want exactly 1", tc.proc, ok)
		}
	}
}

// symlinkArgsOf is SYMLINK3args: where and attributes as MKDIR's, then
// the target.
func symlinkArgsOf(dir []byte, name, target string) []byte {
	w := &xdrWriter{b: mkdirArgsOf(dir, name, 0o777)}
	w.str(target)
	return w.b
}

// TestSymlink: SYMLINK stores the target as given, answers the new
// handle, refuses an existing name (EXIST) and a name under a file
// (NOTDIR), and a retransmission gets the first reply, not EXIST.
func TestSymlink(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	writeFile(t, fs, "file", "x")

	_, x := r.call(progNFS, 3, nfsProcSymlink, symlinkArgsOf(root, "abs", "/etc/passwd"))
	first := append([]byte(nil), x.b...)
	if st := nfs.NFSStatus(x.u32()); st != nfs.NFSStatusOk {
		t.Fatalf("SYMLINK: status %d", st)
	}
	if follows := x.u32(); follows != 1 || !bytes.Equal(x.opaque(nfsHandleMaxLen), mustHandle(t, fs, "abs")) {
		t.Error("SYMLINK's reply does not carry the link's handle")
	}
	if got, err := os.Readlink(filepath.Join(dir, "abs")); err != nil || got != "/etc/passwd" {
		t.Fatalf("stored %q (%v), want /etc/passwd", got, err)
	}
	if st, again := r.resend(nfsProcSymlink, symlinkArgsOf(root, "abs", "/etc/passwd")); st != nfs.NFSStatusOk || !bytes.Equal(again, first) {
		t.Errorf("SYMLINK sent again: status %d, same reply %v; want the first reply", st, bytes.Equal(again, first))
	}
	for _, tc := range []struct {
		dir    []byte
		name   string
		target string
		want   nfs.NFSStatus
	}{
		{root, "abs", "t", nfs.NFSStatusExist},
		{root, "file", "t", nfs.NFSStatusExist},
		{mustHandle(t, fs, "file"), "x", "t", nfs.NFSStatusNotDir},
		{root, "a/b", "t", nfs.NFSStatusAccess},
		{root, "empty", "", nfs.NFSStatusInval},
		{root, "long", strings.Repeat("x", unix.PathMax), nfs.NFSStatusNameTooLong},
	} {
		if _, x := r.call(progNFS, 3, nfsProcSymlink, symlinkArgsOf(tc.dir, tc.name, tc.target)); nfs.NFSStatus(x.u32()) != tc.want {
			t.Errorf("SYMLINK %q to %.10q: want status %d", tc.name, tc.target, tc.want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "file")); string(got) != "x" {
		t.Errorf("the file is now %q", got)
	}
}

func FuzzDecodeCreateArgs(f *testing.F) {
	fh := []byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(createArgsOf(fh, "f", createUnchecked, 0o644, 0, 0))
	f.Add(createArgsOf(fh, "f", createExclusive, 0, 0, 42))
	f.Add(mkdirArgsOf(fh, "d", 0o755))
	f.Add(symlinkArgsOf(fh, "l", "/target"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeSymlinkArgs(b); err == nil && (len(a.Where.Name) > nfsNameMax || len(a.Target) > maxSymlinkTarget || a.Attrs == nil) {
			t.Fatalf("accepted %+v", a)
		}
		if a, err := decodeCreateArgs(b); err == nil && (len(a.Where.Name) > nfsNameMax || (a.Mode != createExclusive && a.Attrs == nil)) {
			t.Fatalf("accepted %+v", a)
		}
		if where, attrs, err := decodeMkdirArgs(b); err == nil && (len(where.Name) > nfsNameMax || attrs == nil) {
			t.Fatalf("accepted %+v", where)
		}
	})
}

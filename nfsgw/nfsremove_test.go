package nfsgw

import (
	"os"
	"path/filepath"
	"testing"

	nfs "github.com/willscott/go-nfs"
)

// TestRemoveRenameStatus: REMOVE, RMDIR and RENAME answer the kernel's
// own status, not go-nfs's NFS3ERR_IO.
func TestRemoveRenameStatus(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	for _, d := range []string{"full/x", "empty", "d3"} {
		if err := fs.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, fs, "file", "f")
	dirop := func(names ...string) []byte {
		w := &xdrWriter{}
		for _, n := range names {
			w.opaque(root)
			w.str(n)
		}
		return w.b
	}
	for _, tc := range []struct {
		name string
		proc uint32
		args []byte
		want nfs.NFSStatus
	}{
		{"rmdir non-empty", nfsProcRmdir, dirop("full"), nfs.NFSStatusNotEmpty},
		{"rmdir a file", nfsProcRmdir, dirop("file"), nfs.NFSStatusNotDir},
		{"remove a directory", nfsProcRemove, dirop("empty"), nfs.NFSStatusIsDir},
		{"remove missing", nfsProcRemove, dirop("nope"), nfs.NFSStatusNoEnt},
		{"rename dir over non-empty dir", nfsProcRename, dirop("empty", "full"), nfs.NFSStatusNotEmpty},
		{"rename dir over file", nfsProcRename, dirop("empty", "file"), nfs.NFSStatusNotDir},
		{"rename dir over empty dir", nfsProcRename, dirop("d3", "empty"), nfs.NFSStatusOk},
		{"rmdir empty", nfsProcRmdir, dirop("empty"), nfs.NFSStatusOk},
		{"remove file", nfsProcRemove, dirop("file"), nfs.NFSStatusOk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, x := r.call(progNFS, 3, tc.proc, tc.args)
			if got := nfs.NFSStatus(x.u32()); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	for _, gone := range []string{"file", "empty", "d3"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", gone)
		}
	}
}

func FuzzDecodeRenameArgs(f *testing.F) {
	w := &xdrWriter{}
	for i := 0; i < 2; i++ {
		w.opaque([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
		w.str("name")
	}
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeRenameArgs(b); err == nil && (len(a.From.Name) > nfsNameMax || len(a.To.Dir) > nfsHandleMaxLen) {
			t.Fatalf("accepted %+v", a)
		}
		_, _ = decodeDirOpArgs(b)
	})
}

func FuzzDecodeAccessArgs(f *testing.F) {
	w := &xdrWriter{}
	w.opaque([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	w.u32(0x3f)
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if fh, _, err := decodeAccessArgs(b); err == nil && len(fh) > nfsHandleMaxLen {
			t.Fatal("handle over the limit")
		}
	})
}

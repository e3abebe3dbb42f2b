package nfsgw

import (
	"bufio"
	"bytes"
	"net/netip"
	"testing"
)

func FuzzDecodeCall(f *testing.F) {
	w := &xdrWriter{}
	for _, v := range []uint32{1, msgCall, 2, progNFS, 3, 1, authNull, 0, authNull, 0, 0xdead} {
		w.u32(v)
	}
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCall(b)
		if err == nil && len(c.Args) > len(b) {
			t.Fatal("args longer than the record")
		}
	})
}

func FuzzDecodeAuthSys(f *testing.F) {
	w := &xdrWriter{}
	w.u32(1)
	w.str("host")
	w.u32(1000)
	w.u32(1000)
	w.u32(2)
	w.u32(4)
	w.u32(5)
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAuthSys(b)
		if err == nil && (len(a.GIDs) > 16 || len(a.Machine) > 255) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzDecodePmapMapping(f *testing.F) {
	f.Add([]byte{0, 1, 0x86, 0xa3, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodePmapMapping(b); err == nil && len(b) < 16 {
			t.Fatal("decoded a short mapping")
		}
	})
}

func FuzzDecodeMountPath(f *testing.F) {
	f.Add(strArg("/data"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodeMountPath(b); err == nil && len(p) > mountPathMax {
			t.Fatal("path over the limit")
		}
	})
}

func FuzzDecodeLinkArgs(f *testing.F) {
	w := &xdrWriter{}
	w.opaque([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	w.opaque([]byte{1, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 9})
	w.str("name")
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeLinkArgs(b); err == nil && (len(a.File) > 64 || len(a.Link.Name) > nfsNameMax) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzDecodeMknodArgs(f *testing.F) {
	w := &xdrWriter{}
	w.opaque([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	w.str("dev")
	w.u32(ftypeCHR)
	w.u32(1)
	w.u32(0o600)
	for i := 0; i < 5; i++ {
		w.u32(0)
	}
	w.u32(1)
	w.u32(3)
	f.Add(w.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeMknodArgs(b)
	})
}

func fhArg(fh []byte) []byte { w := &xdrWriter{}; w.opaque(fh); return w.b }

func FuzzDecodeWriteArgs(f *testing.F) {
	f.Add(writeArgsXDR([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 4096, stableFileSync, []byte("hello")))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeWriteArgs(b)
		if err == nil && (len(a.File) > nfsHandleMaxLen || uint32(len(a.Data)) != a.Count || a.Stable > stableFileSync || len(a.Data) > len(b)) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzDecodeReadArgs(f *testing.F) {
	f.Add(readArgsXDR([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 1<<40, 1<<20))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeReadArgs(b); err == nil && len(a.File) > nfsHandleMaxLen {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzDecodeCommitArgs(f *testing.F) {
	f.Add(commitArgsXDR([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeCommitArgs(b); err == nil && len(a.File) > nfsHandleMaxLen {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzReadRecord(f *testing.F) {
	f.Add(frame([]byte{1, 2, 3, 4}))
	f.Add([]byte{0, 0, 0, 2, 1, 2, 0x80, 0, 0, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := readRecord(bufio.NewReader(bytes.NewReader(b)))
		if err == nil && len(rec) > len(b) {
			t.Fatal("record longer than its input")
		}
	})
}

// FuzzDispatch feeds whole records to the front (MOUNT, portmapper and
// the intercepted NFS procedures) against a real folder: no panic, and a
// reply for every record that carries an XID and RPC version 2.
func FuzzDispatch(f *testing.F) {
	w := &xdrWriter{}
	for _, v := range []uint32{1, msgCall, 2, progMount, 3, mountProcMnt, authNull, 0, authNull, 0} {
		w.u32(v)
	}
	w.str("/data")
	f.Add(w.b)
	fs, err := OpenFS(f.TempDir(), false)
	if err != nil {
		f.Fatal(err)
	}
	defer fs.Close()
	s := &Server{cfg: Config{FS: fs, Exports: allowAll("/data")}, fs: fs, mountList: map[mountEntry]bool{}}
	s.cfg = s.cfg.withDefaults()
	s.log = s.cfg.Logger
	s.files = newOpenFiles(fs, s.resetVerifier)
	defer s.files.closeAll()
	writeFile(f, fs, "f", "seed")
	if fh, err := fs.handleOf("f"); err == nil {
		for _, c := range []struct {
			proc uint32
			args []byte
		}{
			{nfsProcRead, readArgsXDR(fh, 0, 10)},
			{nfsProcWrite, writeArgsXDR(fh, 2, stableUnstable, []byte("xy"))},
			{nfsProcCommit, commitArgsXDR(fh)},
			{nfsProcFSInfo, fhArg(fh)},
			{nfsProcSymlink, symlinkArgsOf(mustHandle(f, fs, "."), "l", "t")},
		} {
			w := &xdrWriter{}
			for _, v := range []uint32{7, msgCall, 2, progNFS, 3, c.proc, authNull, 0, authNull, 0} {
				w.u32(v)
			}
			f.Add(append(w.b, c.args...))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, _ = s.dispatchNoNet(b, netip.MustParseAddr("127.0.0.1"))
	})
}

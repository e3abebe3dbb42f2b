package nfsgw

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	nfs "github.com/willscott/go-nfs"
)

func readdirArgsOf(dir []byte, cookie uint64, plus bool, count uint32) []byte {
	w := &xdrWriter{}
	w.opaque(dir)
	w.u64(cookie)
	w.u64(0) // cookie verifier
	if plus {
		w.u32(count / 8) // dircount, as Linux sends it
	}
	w.u32(count)
	return w.b
}

// listed is one entry of a READDIR or READDIRPLUS reply.
type listed struct {
	name     string
	fileid   uint64
	cookie   uint64
	attrs    bool
	fileidOf uint64 // from the attributes, if any
	handle   []byte
}

// readdirPage sends one READDIR (or READDIRPLUS) and returns its status,
// entries and eof.
func (r *rpcConn) readdirPage(dir []byte, cookie uint64, plus bool, count uint32) (nfs.NFSStatus, []listed, bool) {
	r.t.Helper()
	proc := uint32(nfsProcReaddir)
	if plus {
		proc = nfsProcReaddirP
	}
	_, x := r.call(progNFS, 3, proc, readdirArgsOf(dir, cookie, plus, count))
	st := nfs.NFSStatus(x.u32())
	readPostOp(x)
	if st != nfs.NFSStatusOk {
		return st, nil, false
	}
	x.u64() // cookie verifier
	var out []listed
	for x.u32() == 1 && x.err == nil {
		e := listed{fileid: x.u64(), name: string(x.opaque(nfsNameMax)), cookie: x.u64()}
		if plus {
			if a := readPostOp(x); a != nil {
				e.attrs, e.fileidOf = true, a.fileid
			}
			if x.u32() == 1 {
				e.handle = x.opaque(nfsHandleMaxLen)
			}
		}
		out = append(out, e)
	}
	eof := x.u32() == 1
	if x.err != nil || x.off != len(x.b) {
		r.t.Fatalf("READDIR reply: %v, %d of %d bytes read", x.err, x.off, len(x.b))
	}
	return st, out, eof
}

// TestReaddirCookiesSurviveChanges: a listing read in small pages while
// names are removed and added goes on from its cookie, and every name
// that existed throughout is listed exactly once (go-nfs failed the next
// page with BAD_COOKIE, and Linux's restart from the beginning skipped or
// repeated names: rsync --delete from such a listing deletes files).
func TestReaddirCookiesSurviveChanges(t *testing.T) {
	for _, plus := range []bool{false, true} {
		t.Run(fmt.Sprintf("plus=%v", plus), func(t *testing.T) {
			s, _, dir := testServer(t, allowAll("/data"))
			r := dialRPC(t, s.Addr())
			_, root := r.mnt("/data")
			const files = 300
			for i := range files {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%03d", i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]int{}
			removed := ""
			cookie, pages := uint64(0), 0
			for eof := false; !eof; pages++ {
				if pages > 1000 {
					t.Fatal("the listing does not end")
				}
				var st nfs.NFSStatus
				var page []listed
				st, page, eof = r.readdirPage(root, cookie, plus, 2048)
				if st != nfs.NFSStatusOk {
					t.Fatalf("page %d (cookie %d): status %d", pages, cookie, st)
				}
				for _, e := range page {
					seen[e.name]++
					cookie = e.cookie
				}
				if pages == 0 {
					// Change the directory between two pages: one name
					// already listed goes, a new one comes.
					for _, e := range page {
						if e.name != "." && e.name != ".." {
							removed = e.name
							break
						}
					}
					if err := os.Remove(filepath.Join(dir, removed)); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if pages < 3 {
				t.Fatalf("%d pages: the test needs several", pages)
			}
			for i := range files {
				name := fmt.Sprintf("n%03d", i)
				if seen[name] != 1 {
					t.Errorf("%s listed %d times", name, seen[name])
				}
			}
			for _, name := range []string{".", "..", "new"} {
				if seen[name] > 1 {
					t.Errorf("%s listed %d times", name, seen[name])
				}
			}
		})
	}
}

// TestReaddirPlusAttributes: READDIRPLUS gives each entry the attributes
// and handle that GETATTR and LOOKUP give, and a count that holds no
// entry is TOOSMALL.
func TestReaddirPlusAttributes(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	_, root := r.mnt("/data")
	writeFile(t, fs, "f", "data")
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	st, page, eof := r.readdirPage(root, 0, true, 64<<10)
	if st != nfs.NFSStatusOk || !eof || len(page) != 4 {
		t.Fatalf("status %d eof %v, %d entries: %+v", st, eof, len(page), page)
	}
	for _, e := range page {
		if e.name == "." || e.name == ".." {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, e.name))
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		fh, err := s.fs.handleOf(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if e.fileid != ino || !e.attrs || e.fileidOf != ino || string(e.handle) != string(fh) {
			t.Errorf("%s: %+v, want fileid %d and its handle", e.name, e, ino)
		}
	}
	if st, _, _ := r.readdirPage(root, 0, false, 64); st != nfs.NFSStatusTooSmall {
		t.Errorf("READDIR count 64: status %d, want TOOSMALL", st)
	}
	if st, _, _ := r.readdirPage(root, 1<<63, false, 4096); st != nfs.NFSStatusBadCookie {
		t.Errorf("READDIR cookie 2^63: status %d, want BAD_COOKIE", st)
	}
	// A cookie with a verifier is go-nfs's (an index): start again.
	args := readdirArgsOf(root, 5, false, 4096)
	args[len(args)-5] = 1 // the verifier's last byte
	if _, x := r.call(progNFS, 3, nfsProcReaddir, args); nfs.NFSStatus(x.u32()) != nfs.NFSStatusBadCookie {
		t.Error("a cookie with go-nfs's verifier was taken")
	}
}

func FuzzDecodeReaddirArgs(f *testing.F) {
	fh := []byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(readdirArgsOf(fh, 7, false, 4096))
	f.Add(readdirArgsOf(fh, 7, true, 4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, plus := range []bool{false, true} {
			if a, err := decodeReaddirArgs(b, plus); err == nil && len(a.Dir) > nfsHandleMaxLen {
				t.Fatalf("accepted %+v", a)
			}
		}
	})
}

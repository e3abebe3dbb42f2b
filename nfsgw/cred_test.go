package nfsgw

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

func skipUnlessRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (setfsuid, chown)")
	}
}

func TestFSAsCred(t *testing.T) {
	skipUnlessRoot(t)
	fs, dir := newTestFS(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "rootfile", "r") // 0666 &^ umask, owned by root
	if err := fs.Chmod("rootfile", 0o644); err != nil {
		t.Fatal(err)
	}
	u := fs.As(Cred{UID: 1000, GID: 1000, Groups: []uint32{1000, 50}})
	writeFile(t, u, "mine", "m")
	if err := u.MkdirAll("mydir/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"mine", "mydir/sub"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, n), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
			t.Fatalf("%s: uid %d gid %d %v", n, st.Uid, st.Gid, err)
		}
	}
	if _, err := u.OpenFile("rootfile", os.O_WRONLY, 0); !errors.Is(err, unix.EACCES) || nfsStatus(err) != nfs.NFSStatusAccess {
		t.Fatalf("non-owner opened a 0644 file for writing: %v", err)
	}
	if err := u.Lchown("mine", 2000, 2000); nfsStatus(err) != nfs.NFSStatusPerm {
		t.Fatalf("chown to another user: %v", err)
	}
	if err := u.access("rootfile", unix.R_OK); err != nil {
		t.Fatalf("read access: %v", err)
	}
	if err := u.access("rootfile", unix.W_OK); err == nil {
		t.Fatal("write access granted to a non-owner")
	}
	// the gateway's own identity is back afterwards
	if err := fs.Lchown("mine", 2000, 2000); err != nil {
		t.Fatalf("root after a Cred call: %v", err)
	}
}

func TestCredFor(t *testing.T) {
	sq := Export{RootSquash: true, AnonUID: 99, AnonGID: 98}
	plain := Export{}
	for _, tc := range []struct {
		name   string
		e      Export
		flavor uint32
		a      authSysCred
		want   *Cred
	}{
		{"root unsquashed", plain, authSys, authSysCred{UID: 0, GID: 0}, nil},
		{"user", plain, authSys, authSysCred{UID: 1000, GID: 100, GIDs: []uint32{100, 0}}, &Cred{1000, 100, []uint32{100, 0}}},
		{"root squashed", sq, authSys, authSysCred{UID: 0, GID: 0, GIDs: []uint32{0, 5}}, &Cred{99, 98, []uint32{5}}},
		{"auth null", plain, authNull, authSysCred{}, &Cred{65534, 65534, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.e.credFor(tc.flavor, tc.a)
			if (got == nil) != (tc.want == nil) || (got != nil && (got.UID != tc.want.UID || got.GID != tc.want.GID || len(got.Groups) != len(tc.want.Groups))) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestAuthSysThroughFront: calls carry AUTH_SYS ids; go-nfs's CREATE runs as
// the caller, ACCESS reports what the kernel allows, root is squashed.
func TestAuthSysThroughFront(t *testing.T) {
	skipUnlessRoot(t)
	exports := []Export{{Path: "/data", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RootSquash: true}}
	s, fs, dir := testServer(t, exports)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "rootfile", "r")
	if err := fs.Chmod("rootfile", 0o644); err != nil {
		t.Fatal(err)
	}
	r := dialRPC(t, s.Addr())
	r.uid, r.gid = 1000, 1000
	_, root := r.mnt("/data")
	create := func(name string) {
		t.Helper()
		w := &xdrWriter{}
		w.opaque(root)
		w.str(name)
		w.u32(0) // UNCHECKED
		for i := 0; i < 6; i++ {
			w.u32(0)
		}
		if _, x := r.call(progNFS, 3, nfsProcCreate, w.b); x.u32() != 0 {
			t.Fatalf("CREATE %s failed", name)
		}
	}
	create("byuser")
	r.uid, r.gid = 0, 0
	create("byroot")
	for n, want := range map[string]uint32{"byuser": 1000, "byroot": 65534} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, n), &st); err != nil || st.Uid != want || st.Gid != want {
			t.Errorf("%s: uid %d gid %d, want %d (%v)", n, st.Uid, st.Gid, want, err)
		}
	}
	// ACCESS: uid 1000 may read but not modify root's 0644 file.
	r.uid, r.gid = 1000, 1000
	fh, _ := fs.handleOf("rootfile")
	w := &xdrWriter{}
	w.opaque(fh)
	w.u32(access3Read | access3Modify | access3Extend)
	_, x := r.call(progNFS, 3, nfsProcAccess, w.b)
	if x.u32() != 0 || x.u32() != 1 {
		t.Fatal("ACCESS failed")
	}
	x.off += 84 // fattr3
	if got := x.u32(); got != access3Read {
		t.Fatalf("ACCESS granted %#x, want READ only", got)
	}
	// WRITE by a non-owner is refused.
	w = &xdrWriter{}
	w.opaque(fh)
	w.u32(0)
	w.u32(0)
	w.u32(1)
	w.u32(2)
	w.opaque([]byte("x"))
	if _, x := r.call(progNFS, 3, nfsProcWrite, w.b); x.u32() == 0 {
		t.Fatal("a non-owner wrote a 0644 file")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rootfile")); string(b) != "r" {
		t.Fatalf("rootfile is %q", b)
	}
}

package nfsgw

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// setattrCall encodes SETATTR3args: mode and size when >= 0, both times
// by time_how (with sec for timeClient), and a ctime guard when guard.
func setattrCall(fh []byte, mode, size int64, timeHow uint32, sec uint32, guard *nfs.FileTime) []byte {
	return setattrTimes(fh, mode, size, timeHow, timeHow, sec, guard)
}

// setattrTimes is setattrCall with atime and mtime set each its own way.
func setattrTimes(fh []byte, mode, size int64, atimeHow, mtimeHow uint32, sec uint32, guard *nfs.FileTime) []byte {
	w := &xdrWriter{}
	w.opaque(fh)
	sattr3Times(w, mode, size, atimeHow, mtimeHow, sec)
	w.bool(guard != nil)
	if guard != nil {
		w.u32(guard.Seconds)
		w.u32(guard.Nseconds)
	}
	return w.b
}

// TestSetattrOnTheHandle: SETATTR changes the inode its handle names,
// keeps the setuid, setgid and sticky bits of a mode, lets a writer who
// is not the owner set the times to now (touch), honours the guard, and
// refuses a handle whose file was replaced by a rename.
func TestSetattrOnTheHandle(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	r.mnt("/data")
	writeFile(t, fs, "f", "hello")
	writeFile(t, fs, "shared", "x")
	writeFile(t, fs, "old", "old data")
	writeFile(t, fs, "new", "new data")
	writeFile(t, fs, "shared2", "data")
	writeFile(t, fs, "mine", "data")
	if err := os.Chmod(filepath.Join(dir, "shared2"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "mine"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not exported"), 0o644); err != nil {
		t.Fatal(err)
	}
	kh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, outside, 0)
	if err != nil {
		t.Fatal(err)
	}
	outsideFH, err := encodeHandle(fileHandle{file: kh})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "shared"), 0o666); err != nil {
		t.Fatal(err)
	}
	fh := func(name string) []byte { return mustHandle(t, fs, name) }
	oldFH := fh("old")
	if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	writer := dialRPC(t, s.Addr())
	writer.uid, writer.gid = 1000, 1000
	writer.mnt("/data")
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dir, "f"), &st); err != nil {
		t.Fatal(err)
	}
	ctime := nfs.ToFileAttribute(&statInfo{st: st}, "").Ctime
	stale := ctime
	stale.Seconds--
	for _, tc := range []struct {
		name string
		r    *rpcConn
		args []byte
		want nfs.NFSStatus
	}{
		{"setuid mode", r, setattrCall(fh("f"), 0o4755, -1, timeDontChange, 0, &ctime), nfs.NFSStatusOk},
		{"sticky directory", r, setattrCall(fh("d"), 0o1777, -1, timeDontChange, 0, nil), nfs.NFSStatusOk},
		{"stale guard", r, setattrCall(fh("f"), 0o600, -1, timeDontChange, 0, &stale), nfs.NFSStatusNotSync},
		{"truncate", r, setattrCall(fh("f"), -1, 2, timeDontChange, 0, nil), nfs.NFSStatusOk},
		{"touch by a writer", writer, setattrCall(fh("shared"), -1, -1, timeServer, 0, nil), nfs.NFSStatusOk},
		{"explicit times by a writer", writer, setattrCall(fh("shared"), -1, -1, timeClient, 12345, nil), nfs.NFSStatusPerm},
		{"a handle whose name was replaced", r, setattrCall(oldFH, -1, 0, timeDontChange, 0, nil), nfs.NFSStatusStale},
		// What Linux sends for open(O_TRUNC): the size, and the mtime only.
		{"truncate by a writer", writer, setattrTimes(fh("shared2"), -1, 0, timeDontChange, timeServer, 0, nil), nfs.NFSStatusOk},
		{"setuid with a size, by the owner", writer, setattrCall(fh("mine"), 0o4755, 1, timeDontChange, 0, nil), nfs.NFSStatusOk},
		{"a file outside the export", r, setattrCall(outsideFH, 0o600, 0, timeDontChange, 0, nil), nfs.NFSStatusStale},
	} {
		_, x := tc.r.call(progNFS, 3, nfsProcSetattr, tc.args)
		if got := nfs.NFSStatus(x.u32()); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	for name, want := range map[string]os.FileMode{"f": os.ModeSetuid | 0o755, "d": os.ModeDir | os.ModeSticky | 0o777, "mine": os.ModeSetuid | 0o755} {
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "f")); string(data) != "he" {
		t.Errorf("f holds %q after a truncate to 2", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "old")); string(data) != "new data" {
		t.Errorf("the file renamed over the handle's name holds %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "shared2")); len(data) != 0 {
		t.Errorf("shared2 holds %q after a writer's truncate", data)
	}
	if fi, err := os.Stat(outside); err != nil || fi.Size() != int64(len("not exported")) || fi.Mode() != 0o644 {
		t.Errorf("a file outside the export was changed: %v %v", fi, err)
	}
}

// TestSetattrSizeUnderALeaseAnswersJukebox: a truncate of a file someone
// holds a lease on waits for the lease to be broken; the gateway does not
// wait (its open does not block) and answers JUKEBOX, which makes the
// client retry later, as nfsd does, instead of failing with IO.
func TestSetattrSizeUnderALeaseAnswersJukebox(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	r.mnt("/data")
	writeFile(t, fs, "leased", "hello")
	fd, err := unix.Open(filepath.Join(dir, "leased"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		t.Skipf("cannot take a lease here: %v", err)
	}
	_, x := r.call(progNFS, 3, nfsProcSetattr, setattrCall(mustHandle(t, fs, "leased"), -1, 0, timeDontChange, 0, nil))
	if got := nfs.NFSStatus(x.u32()); got != nfs.NFSStatusJukebox {
		t.Fatalf("truncate under a lease: status %d, want JUKEBOX (%d)", got, nfs.NFSStatusJukebox)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "leased")); string(data) != "hello" {
		t.Fatalf("the leased file holds %q", data)
	}
}

func FuzzDecodeSetattrArgs(f *testing.F) {
	fh := []byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(setattrCall(fh, 0o644, 10, timeClient, 7, &nfs.FileTime{Seconds: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeSetattrArgs(b); err == nil && (len(a.File) > nfsHandleMaxLen || a.Atime.Nsec >= 1e9 && a.Atime.Nsec != nsecOmit && a.Atime.Nsec != nsecNow) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

const nsecOmit, nsecNow = (1 << 30) - 2, (1 << 30) - 1 // unix.UTIME_OMIT, unix.UTIME_NOW

// TestModeShowsSpecialBits: the mode clients read (the low 12 bits of the
// attribute's mode word) carries setuid, setgid and sticky.
func TestModeShowsSpecialBits(t *testing.T) {
	for _, mode := range []uint32{0o4755, 0o2755, 0o1777, 0o644} {
		fi := &statInfo{st: syscall.Stat_t{Mode: syscall.S_IFREG | mode}}
		if got := nfs.ToFileAttribute(fi, "").FileMode & 0o7777; got != mode {
			t.Errorf("mode %o is sent as %o", mode, got)
		}
	}
}

// TestSetattrUnopened: a special file's mode and times, and a symlink's
// owner and times, are set on the inode itself; a symlink's mode request
// leaves its target alone (fchmodat would follow the link); a handle whose
// name now holds another special file is stale.
func TestSetattrUnopened(t *testing.T) {
	s, fs, dir := testServer(t, allowAll("/data"))
	r := dialRPC(t, s.Addr())
	r.mnt("/data")
	writeFile(t, fs, "target", "x")
	if err := os.Chmod(filepath.Join(dir, "target"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fifo", "fifo2", "gone"} {
		if err := unix.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fh := func(name string) []byte { return mustHandle(t, fs, name) }
	goneFH := fh("gone")
	if err := os.Rename(filepath.Join(dir, "fifo2"), filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []byte
		want nfs.NFSStatus
	}{
		{"fifo mode and mtime", setattrTimes(fh("fifo"), 0o2640, -1, timeDontChange, timeClient, 12345, nil), nfs.NFSStatusOk},
		{"symlink mode", setattrCall(fh("link"), 0o777, -1, timeDontChange, 0, nil), nfs.NFSStatusOk},
		{"symlink owner and mtime", setattrOwner(fh("link"), 1000, 1000, timeClient, 23456), nfs.NFSStatusOk},
		{"a fifo renamed over the handle's name", setattrCall(goneFH, 0o666, -1, timeDontChange, 0, nil), nfs.NFSStatusStale},
	} {
		_, x := r.call(progNFS, 3, nfsProcSetattr, tc.args)
		if got := nfs.NFSStatus(x.u32()); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "fifo"), &st); err != nil || st.Mode&0o7777 != 0o2640 || st.Mtim.Sec != 12345 {
		t.Errorf("fifo: mode %o mtime %d (%v), want 2640 and 12345", st.Mode&0o7777, st.Mtim.Sec, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "target")); err != nil || fi.Mode() != 0o644 || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.ModTime().Unix() == 23456 {
		t.Errorf("the symlink's target changed: %v (%v)", fi, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "link"), &st); err != nil || st.Uid != 1000 || st.Mtim.Sec != 23456 {
		t.Errorf("link: owner %d mtime %d (%v), want 1000 and 23456", st.Uid, st.Mtim.Sec, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "gone")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the fifo renamed over the handle's name: mode %v (%v), want 0600", fi.Mode(), err)
	}
}

// setattrOwner encodes SETATTR args that set the owner and the mtime.
func setattrOwner(fh []byte, uid, gid uint32, mtimeHow, sec uint32) []byte {
	w := &xdrWriter{}
	w.opaque(fh)
	w.bool(false) // mode
	w.bool(true)
	w.u32(uid)
	w.bool(true)
	w.u32(gid)
	w.bool(false) // size
	w.u32(timeDontChange)
	w.u32(mtimeHow)
	if mtimeHow == timeClient {
		w.u32(sec)
		w.u32(0)
	}
	w.bool(false) // guard
	return w.b
}

// mustHandle returns the file handle of name in fs.
func mustHandle(t testing.TB, fs *FS, name string) []byte {
	t.Helper()
	h, err := fs.handleOf(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

package nfsgw

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

func newTestFS(t testing.TB) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := OpenFS(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	return fs, fs.Dir()
}

func writeFile(t testing.TB, fs *FS, name, data string) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFSChange(t *testing.T) {
	fs, dir := newTestFS(t)
	writeFile(t, fs, "a", "hello")
	if err := fs.Chmod("a", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Lchown("a", 1234, 5678); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_000_000_000, 123)
	if err := fs.Chtimes("a", mt, mt); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o600 || st.Uid != 1234 || st.Gid != 5678 || !fi.ModTime().Equal(mt) {
		t.Fatalf("got mode %v uid %d gid %d mtime %v", fi.Mode(), st.Uid, st.Gid, fi.ModTime())
	}
	// truncate the way go-nfs's SETATTR does it
	f, err := fs.OpenFile("a", os.O_WRONLY|os.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "he" {
		t.Fatalf("after truncate: %q", b)
	}
}

func TestFSRenameLinkSpecial(t *testing.T) {
	fs, dir := newTestFS(t)
	for _, d := range []string{"d1/sub", "d2"} {
		if err := fs.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, fs, "d1/sub/f", "x")
	if err := fs.Rename("d1", "d2"); err != nil { // directory over an empty directory
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d2/sub/f")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "g", "y")
	if err := fs.Rename("g", "d2/sub/f"); err != nil { // file over file
		t.Fatal(err)
	}
	if err := fs.Link("d2/sub/f", "hard"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(dir, "hard"))
	b, _ := os.Stat(filepath.Join(dir, "d2/sub/f"))
	if !os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
		t.Fatal("hard link is not the same inode with nlink 2")
	}
	if err := fs.Symlink("/etc/passwd", "abs"); err != nil {
		t.Fatal(err)
	}
	if got, _ := fs.Readlink("abs"); got != "/etc/passwd" {
		t.Fatalf("symlink target %q", got)
	}
	// a symlink in the export never leads the gateway outside it
	if _, err := fs.Open("abs"); err == nil {
		t.Fatal("opened a symlink pointing outside the folder")
	}
	if fi, err := fs.Stat("abs"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("Stat followed the symlink: %v %v", fi, err)
	}
	if err := fs.Mkfifo("fifo", 0o640); err != nil {
		t.Fatal(err)
	}
	if err := fs.Mknod("chr", unix.S_IFCHR|0o600, 1, 3); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o640 {
		t.Fatalf("fifo: %o %v", st.Mode, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "chr"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Fatalf("chr: %o %v", st.Mode, err)
	}
	if _, err := fs.Open("../../etc/passwd"); err == nil {
		t.Fatal(".. left the folder")
	}
}

func TestFSReadOnly(t *testing.T) {
	dir := t.TempDir()
	fs, err := OpenFS(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if _, err := fs.Create("x"); !errors.Is(err, ErrReadOnly) || nfsStatus(err) != nfs.NFSStatusROFS {
		t.Fatalf("create on ro: %v", err)
	}
	if err := fs.MkdirAll("d", 0o755); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("mkdir on ro: %v", err)
	}
}

func TestHandles(t *testing.T) {
	fs, dir := newTestFS(t)
	h := NewHandler(fs)
	if err := fs.MkdirAll("a/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "a/b/c/f", "data")
	fh := h.ToHandle(fs, []string{"a", "b", "c", "f"})
	dh := h.ToHandle(fs, []string{"a", "b"})
	root := h.ToHandle(fs, nil)
	for _, x := range [][]byte{fh, dh, root} {
		if len(x) == 0 || len(x)%4 != 0 || len(x) > 64 {
			t.Fatalf("handle length %d", len(x))
		}
	}
	if _, p, err := h.FromHandle(root); err != nil || len(p) != 0 {
		t.Fatalf("root: %v %v", p, err)
	}
	// rename a parent: both handles still resolve, to the new paths
	if err := fs.Rename("a", "z"); err != nil {
		t.Fatal(err)
	}
	if _, p, err := h.FromHandle(fh); err != nil || fs.Join(p...) != "z/b/c/f" {
		t.Fatalf("file after parent rename: %v %v", p, err)
	}
	// a restart: a new FS and Handler on the same folder
	fs2, err := OpenFS(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fs2.Close()
	h2 := NewHandler(fs2)
	if _, p, err := h2.FromHandle(dh); err != nil || fs.Join(p...) != "z/b" {
		t.Fatalf("dir after restart: %v %v", p, err)
	}
	// a deleted file is stale, even while it is still open
	f, err := fs.Open("z/b/c/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fs.Remove("z/b/c/f"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.FromHandle(fh); !errors.Is(err, ErrStale) || nfsStatus(err) != nfs.NFSStatusStale {
		t.Fatalf("deleted file: %v", err)
	}
	// a handle of a file outside the folder is stale
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "o"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	kh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, filepath.Join(outside, "o"), 0)
	if err != nil {
		t.Fatal(err)
	}
	oh, _ := encodeHandle(fileHandle{file: kh})
	if _, _, err := h.FromHandle(oh); !errors.Is(err, ErrStale) {
		t.Fatalf("outside file: %v", err)
	}
	if _, _, err := h.FromHandle([]byte{1, 2, 3}); !errors.Is(err, ErrBadHandle) {
		t.Fatalf("garbage handle: %v", err)
	}
}

func TestFSStat(t *testing.T) {
	fs, _ := newTestFS(t)
	var s nfs.FSStat
	if err := NewHandler(fs).FSStat(t.Context(), fs, &s); err != nil {
		t.Fatal(err)
	}
	if s.TotalSize == 0 || s.TotalSize >= 1<<62 || s.FreeSize > s.TotalSize {
		t.Fatalf("fsstat %+v", s)
	}
}

// TestHandleAfterDentryEviction: a file whose dentry left the kernel's
// cache comes back from open_by_handle_at disconnected; the handle's
// parent part finds it again (without it the gateway would answer STALE
// for a live file). Needs root to drop the caches.
func TestHandleAfterDentryEviction(t *testing.T) {
	fs, _ := newTestFS(t)
	h := NewHandler(fs)
	if err := fs.MkdirAll("a/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "a/b/c/f", "data")
	writeFile(t, fs, "top", "data")
	fh := h.ToHandle(fs, []string{"a", "b", "c", "f"})
	th := h.ToHandle(fs, []string{"top"})
	if err := fs.Rename("a/b", "a/B"); err != nil { // a parent renamed: the directory part still resolves
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0o200); err != nil {
		t.Skipf("cannot drop the dentry cache: %v", err)
	}
	if _, p, err := h.FromHandle(fh); err != nil || fs.Join(p...) != "a/B/c/f" {
		t.Fatalf("after eviction: %v %v", p, err)
	}
	if _, p, err := h.FromHandle(th); err != nil || fs.Join(p...) != "top" {
		t.Fatalf("top-level file after eviction: %v %v", p, err)
	}
	// moved to another directory, then evicted: found by the tree search
	if err := fs.Rename("a/B/c/f", "moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0o200); err != nil {
		t.Fatal(err)
	}
	if _, p, err := h.FromHandle(fh); err != nil || fs.Join(p...) != "moved" {
		t.Fatalf("moved file after eviction: %v %v", p, err)
	}
}

func FuzzDecodeHandle(f *testing.F) {
	f.Add([]byte{2, 8, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{2, 5, 8, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		kh, err := decodeHandle(b)
		if err != nil {
			return
		}
		again, err := encodeHandle(kh)
		if err != nil || string(again) != string(b) {
			t.Fatalf("round trip %x -> %x (%v)", b, again, err)
		}
	})
}

// TestMetadataChangesSyncTheInode: chmod, chown and utimes fsync the
// changed inode itself (on xfs an fsync of its directory does not commit
// a change to a file's inode); a symlink is never opened, and its change
// syncs the filesystem (on ext4 an fsync of its untouched directory
// commits nothing); a chmod of a symlink changes nothing and syncs nothing.
func TestMetadataChangesSyncTheInode(t *testing.T) {
	fs, dir := newTestFS(t)
	writeFile(t, fs, "f", "data")
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.Symlink("f", "l"); err != nil {
		t.Fatal(err)
	}
	var synced []uint64
	fs.fsyncInode = recordSyncs(&synced)
	fsSyncs := 0
	fs.syncFS = func(fd int) error { fsSyncs++; return unix.Syncfs(fd) }
	ino := func(name string) uint64 {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	for _, tc := range []struct {
		name   string
		change func() error
		want   []uint64
		wantFS int // syncs of the whole filesystem
	}{
		{"chmod f", func() error { return fs.Chmod("f", 0o600) }, []uint64{ino("f")}, 0},
		{"chown d", func() error { return fs.Lchown("d", os.Getuid(), os.Getgid()) }, []uint64{ino("d")}, 0},
		{"utimes f", func() error { return fs.Chtimes("f", time.Unix(1, 0), time.Unix(2, 0)) }, []uint64{ino("f")}, 0},
		{"chown l", func() error { return fs.Lchown("l", os.Getuid(), os.Getgid()) }, nil, 1},
		{"utimes l", func() error { return fs.Chtimes("l", time.Unix(1, 0), time.Unix(2, 0)) }, nil, 1},
		{"chmod l", func() error { return fs.Chmod("l", 0o600) }, nil, 0},
	} {
		synced, fsSyncs = nil, 0
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(synced, tc.want) || fsSyncs != tc.wantFS {
			t.Errorf("%s: synced inodes %v and the filesystem %d times, want %v and %d", tc.name, synced, fsSyncs, tc.want, tc.wantFS)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "l"), &st); err != nil || st.Mtim.Sec != 2 {
		t.Errorf("utimes l: the symlink's mtime is %d (%v), want 2", st.Mtim.Sec, err)
	}
}

// TestFSNeverFollowsADirectorySymlink: a directory of a path that another
// client swapped for a symlink (here planted: the state the race leaves)
// is refused by every call that acts on a name, and nothing outside the
// folder is read or changed.
func TestFSNeverFollowsADirectorySymlink(t *testing.T) {
	fs, dir := newTestFS(t)
	outside := t.TempDir()
	for _, n := range []string{"x", "y"} {
		if err := os.WriteFile(filepath.Join(outside, n), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(outside, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(outside, "lx")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "in", "evil")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "mine", "mine")
	snapshot := func() map[string]string {
		got := map[string]string{}
		_ = filepath.Walk(outside, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				got[p] = fi.Mode().String() + fi.ModTime().String()
				if fi.Mode().IsRegular() { // a fifo planted there would block
					b, _ := os.ReadFile(p)
					got[p] += string(b)
				}
			}
			return nil
		})
		return got
	}
	before := snapshot()
	mt := time.Unix(1_000_000_000, 0)
	for _, through := range []string{"evil", "in/evil"} {
		calls := map[string]func() error{
			"lstat":    func() error { _, err := fs.Lstat(through + "/x"); return err },
			"remove":   func() error { return fs.Remove(through + "/x") },
			"rmdir":    func() error { return fs.Remove(through + "/d") },
			"unlink":   func() error { return fs.Unlink(through + "/y") },
			"rmdir(2)": func() error { return fs.Rmdir(through + "/d") },
			"rename":   func() error { return fs.Rename(through+"/x", "stolen") },
			"rename in": func() error {
				return fs.Rename("mine", through+"/planted")
			},
			"link":       func() error { return fs.Link(through+"/x", "stolen") },
			"link in":    func() error { return fs.Link("mine", through+"/planted") },
			"mkdir":      func() error { return fs.Mkdir(through+"/new", 0o755) },
			"symlink":    func() error { return fs.Symlink("t", through+"/s") },
			"readlink":   func() error { _, err := fs.Readlink(through + "/lx"); return err },
			"chmod":      func() error { return fs.Chmod(through+"/x", 0o777) },
			"chown":      func() error { return fs.Lchown(through+"/x", 4321, 4321) },
			"chtimes":    func() error { return fs.Chtimes(through+"/x", mt, mt) },
			"mknod":      func() error { return fs.Mkfifo(through+"/fifo", 0o644) },
			"access":     func() error { return fs.access(through+"/x", unix.R_OK) },
			"handle":     func() error { _, err := fs.handleOf(through + "/x"); return err },
			"open":       func() error { _, err := fs.Open(through + "/x"); return err },
			"readdir":    func() error { _, err := fs.ReadDir(through); return err },
			"readdir in": func() error { _, err := fs.ReadDir(through + "/d"); return err },
		}
		for name, call := range calls {
			err := call()
			if err == nil {
				t.Errorf("%s through %s: no error", name, through)
			} else if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
				t.Errorf("%s through %s: %v, want ENOTDIR (ELOOP from an open)", name, through, err)
			}
		}
	}
	if after := snapshot(); !maps.Equal(before, after) {
		t.Fatalf("outside the folder changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Lstat(filepath.Join(dir, "stolen")); err == nil {
		t.Fatal("a file from outside the folder was linked or moved in")
	}

	// A chmod of a symlink in the folder leaves its target alone.
	if err := fs.Symlink("mine", "lm"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Chmod("lm", 0o777); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "mine")); fi.Mode().Perm() == 0o777 {
		t.Fatal("chmod of a symlink changed its target")
	}
}

// TestChangesSyncTheDirectoryTheyChanged: a call that changes a directory
// fsyncs that directory, not whatever its name leads to afterwards (here
// it is renamed away, and another put in its place, between the change
// and the sync).
func TestChangesSyncTheDirectoryTheyChanged(t *testing.T) {
	fs, dir := newTestFS(t)
	inode := func(p string) uint64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	var synced []uint64
	fs.fsyncDir = recordSyncs(&synced)
	n := 0
	swap := func() {
		n++
		moved := fmt.Sprintf("moved%d", n)
		if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, moved)); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "f", "x")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"mkdir", func() error { return fs.Mkdir("a/d", 0o755) }},
		{"create", func() error {
			f, err := fs.OpenFile("a/n", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err == nil {
				err = f.Close()
			}
			return err
		}},
		{"symlink", func() error { return fs.Symlink("t", "a/s") }},
		{"rename in", func() error { return fs.Rename("f", "a/f") }},
		{"link", func() error { return fs.Link("a/f", "a/g") }},
		{"remove", func() error { return fs.Remove("a/g") }},
	} {
		changed := inode("a")
		synced = nil
		fs.beforeSync = swap
		err := tc.call()
		fs.beforeSync = nil
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(synced) == 0 || synced[len(synced)-1] != changed {
			t.Errorf("%s: synced directories %v, want the changed one (inode %d) last", tc.name, synced, changed)
		}
		// The next call works in the new "a": give it what it needs.
		switch tc.name {
		case "rename in":
			if err := os.Rename(filepath.Join(dir, fmt.Sprintf("moved%d", n), "f"), filepath.Join(dir, "a", "f")); err != nil {
				t.Fatal(err)
			}
		case "link":
			if err := os.Rename(filepath.Join(dir, fmt.Sprintf("moved%d", n), "g"), filepath.Join(dir, "a", "g")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// recordSyncs is an fsync that appends the inode number it syncs to *to.
func recordSyncs(to *[]uint64) func(fd int) error {
	return func(fd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		*to = append(*to, st.Ino)
		return unix.Fsync(fd)
	}
}

// TestMetadataChangesSyncTheInodeTheyChanged: chmod, chown and utimes
// fsync the inode they changed, not whatever the name leads to afterwards
// (here the file is renamed away, and another put in its place, between
// the change and the sync).
func TestMetadataChangesSyncTheInodeTheyChanged(t *testing.T) {
	fs, dir := newTestFS(t)
	var synced []uint64
	fs.fsyncInode = recordSyncs(&synced)
	n := 0
	fs.beforeSync = func() {
		n++
		if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, fmt.Sprintf("moved%d", n))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"chmod", func() error { return fs.Chmod("f", 0o600) }},
		{"chown", func() error { return fs.Lchown("f", os.Getuid(), os.Getgid()) }},
		{"utimes", func() error { return fs.Chtimes("f", time.Unix(1, 0), time.Unix(2, 0)) }},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, "f"), &st); err != nil {
			t.Fatal(err)
		}
		synced = nil
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(synced, []uint64{st.Ino}) {
			t.Errorf("%s: synced inodes %v, want the changed one, %d", tc.name, synced, st.Ino)
		}
	}
}

// TestLinkNamesTheHandlesInode: LINK makes a new name of the inode its
// file handle names, even when another client renamed that file away and
// put another at its old name after the handle was looked up (a link by
// path linked the newcomer).
func TestLinkNamesTheHandlesInode(t *testing.T) {
	fs, dir := newTestFS(t)
	writeFile(t, fs, "a", "the handle's file")
	_, pfd, err := fs.openResolved(mustHandle(t, fs, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("a newcomer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fs.linkInode(pfd, "l"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "l")); string(data) != "the handle's file" {
		t.Fatalf("the link holds %q", data)
	}
}

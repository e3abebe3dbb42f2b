package nfsgw

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	billy "github.com/go-git/go-billy/v5"
	"golang.org/x/sys/unix"
)

// FS is the billy filesystem the gateway serves: a folder of a mounted
// kernel filesystem (the image's ext4/xfs, or any folder with --dir).
//
// Paths are slash-separated and relative to the folder; ".." never leaves
// it. Stat does not follow a final symlink (an NFS server never follows
// symlinks for the client), and files are opened with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so a symlink stored in the export
// cannot make the gateway read or write outside it. The calls that act
// on a name (stat, remove, rename, link, mkdir, chmod, ...) open its
// directory the same way and act on the last component there (fsat.go).
// Symlink targets are stored exactly as given (absolute ones too).
//
// Durability: a file written through FS is fsynced before Close returns,
// and every call that changes a directory (create, mkdir, remove, rename,
// link, symlink, mknod) fsyncs the directories it changed before it
// returns, so an NFS reply sent after the call acknowledges durable state.
// Chmod, chown and utimes fsync the inode itself when it is a regular
// file or a directory (on xfs an fsync of its directory would not commit
// the change). A symlink or a special file is never opened (a fifo or a
// device could block or reach a driver): the filesystem is synced.
//
// FS also implements billy.Change and go-nfs's UnixChange (Mknod, Mkfifo,
// Socket, Link). It is safe for concurrent use; it holds one open
// descriptor of the folder, released by Close.
type FS struct {
	root       string // absolute, symlinks resolved
	rootFD     int
	readOnly   bool
	cred       *Cred    // nil: operations run as the gateway
	rootGroups []uint32 // the gateway's groups, restored after a Cred call
	// fsyncInode is unix.Fsync for syncInode, and syncFS unix.Syncfs for
	// syncUnopened (tests record what they sync).
	fsyncInode func(fd int) error
	syncFS     func(fd int) error
	// fsyncDir is unix.Fsync for the directories FS syncs after changing
	// them; beforeSync, if set, runs between a change and that sync in
	// change, change2 and node (fsat.go). Tests set both.
	fsyncDir   func(fd int) error
	beforeSync func()
}

// OpenFS opens the folder dir as an FS. readOnly makes every change fail
// with ErrReadOnly.
func OpenFS(dir string, readOnly bool) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("nfsgw: open %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("nfsgw: open %s: %w", dir, err)
	}
	fd, err := unix.Open(real, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nfsgw: open %s: %w", real, err)
	}
	return &FS{root: real, rootFD: fd, readOnly: readOnly, rootGroups: processGroups(),
		fsyncInode: unix.Fsync, syncFS: unix.Syncfs, fsyncDir: unix.Fsync}, nil
}

// Close releases the folder's descriptor.
func (f *FS) Close() error { return unix.Close(f.rootFD) }

// Dir returns the absolute folder served.
func (f *FS) Dir() string { return f.root }

// rel cleans name into a path relative to the root ("." for the root).
func rel(name string) string {
	c := path.Clean("/" + filepath.ToSlash(name))
	if c == "/" {
		return "."
	}
	return c[1:]
}

func (f *FS) checkWrite(op, name string) error {
	if f.readOnly {
		return fmt.Errorf("%w: %s %s", ErrReadOnly, op, name)
	}
	return nil
}

// syncUnopened makes a change to the inode of name, a symlink or special
// file (which cannot be opened to fsync), durable by syncing the whole
// filesystem. An fsync of its directory is not enough: ext4 commits only
// up to the transaction that last changed the inode fsynced, so a
// directory the change did not touch commits nothing, and xfs logs the
// child apart.
func (f *FS) syncUnopened(name string) error {
	if err := f.syncFS(f.rootFD); err != nil {
		return fmt.Errorf("nfsgw: sync %s: %w", name, err)
	}
	return nil
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// Create creates or truncates name for reading and writing.
func (f *FS) Create(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open opens name read-only.
func (f *FS) Open(name string) (billy.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

// OpenFile opens name with flag and perm, never following a symlink and
// never leaving the folder. A file opened for writing is fsynced on Close.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	writes := flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0
	if writes {
		if err := f.checkWrite("open", name); err != nil {
			return nil, err
		}
	}
	if flag&os.O_CREATE == 0 {
		flag &^= os.O_EXCL // go-nfs's truncate passes O_EXCL alone
	}
	how := &unix.OpenHow{
		Flags:   uint64(flag) | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	}
	if flag&os.O_CREATE != 0 {
		how.Mode = uint64(perm.Perm()) // openat2 refuses a mode without O_CREAT
	}
	// Opened beneath the name's directory, which a create then fsyncs
	// (fsat.go); the descriptor is closed if that fails.
	fd := -1
	open := func(dirfd int, base string) (err error) {
		fd, err = unix.Openat2(dirfd, base, how)
		return err
	}
	var err error
	if flag&os.O_CREATE != 0 {
		err = f.change(name, open)
	} else {
		err = f.at(name, open)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, pathErr("open", name, err)
	}
	return &File{File: os.NewFile(uintptr(fd), name), name: name, dirty: flag&os.O_TRUNC != 0}, nil
}

// Stat returns name's attributes without following a final symlink.
func (f *FS) Stat(name string) (os.FileInfo, error) { return f.Lstat(name) }

// Lstat returns name's attributes without following a final symlink.
func (f *FS) Lstat(name string) (os.FileInfo, error) {
	r := rel(name)
	fi := &statInfo{name: path.Base(r)}
	if r == "." {
		fi.name = "/"
	}
	err := f.at(r, func(dfd int, base string) error {
		return unix.Fstatat(dfd, base, (*unix.Stat_t)(unsafe.Pointer(&fi.st)), unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return fi, nil
}

// Rename renames oldpath to newpath (rename(2): a directory may replace
// an empty directory, a file a file).
func (f *FS) Rename(oldpath, newpath string) error {
	if err := f.checkWrite("rename", oldpath); err != nil {
		return err
	}
	if err := f.change2(oldpath, newpath, true, unix.Renameat); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(name string) error {
	if err := f.checkWrite("remove", name); err != nil {
		return err
	}
	r := rel(name)
	if r == "." {
		return pathErr("remove", name, unix.EBUSY)
	}
	err := f.change(r, func(dfd int, base string) error {
		err := unix.Unlinkat(dfd, base, 0)
		if err == unix.EISDIR || err == unix.EPERM {
			var st unix.Stat_t
			if unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR)
			}
		}
		return err
	})
	if err != nil {
		return pathErr("remove", name, err)
	}
	return nil
}

// Join joins path elements with slashes.
func (f *FS) Join(elem ...string) string { return path.Join(elem...) }

// TempFile creates a new temporary file in dir.
func (f *FS) TempFile(dir, prefix string) (billy.File, error) {
	for i := 0; i < 100; i++ {
		name := path.Join(dir, prefix+strconv.FormatInt(time.Now().UnixNano()+int64(i), 36))
		file, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !os.IsExist(err) {
			return file, err
		}
	}
	return nil, pathErr("tempfile", dir, unix.EEXIST)
}

// ReadDir lists the directory name, sorted by name.
func (f *FS) ReadDir(name string) ([]os.FileInfo, error) {
	var out []os.FileInfo
	err := f.do(func() error {
		fd, err := unix.Openat2(f.rootFD, rel(name), &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err != nil {
			return err
		}
		d := os.NewFile(uintptr(fd), name)
		defer d.Close()
		names, err := d.Readdirnames(-1)
		if err != nil {
			return err
		}
		sort.Strings(names)
		out = make([]os.FileInfo, 0, len(names))
		for _, n := range names {
			fi := &statInfo{name: n}
			if err := unix.Fstatat(fd, n, (*unix.Stat_t)(unsafe.Pointer(&fi.st)), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue // removed since the listing
			}
			out = append(out, fi)
		}
		return nil
	})
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return out, nil
}

// Mkdir creates the directory name with the permission bits perm (less
// the gateway's umask); an existing name, of any type, is EEXIST.
func (f *FS) Mkdir(name string, perm uint32) error {
	if err := f.checkWrite("mkdir", name); err != nil {
		return err
	}
	if err := f.change(name, func(dfd int, base string) error { return unix.Mkdirat(dfd, base, perm) }); err != nil {
		return pathErr("mkdir", name, err)
	}
	return nil
}

// MkdirAll creates name and any missing parents.
func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	if err := f.checkWrite("mkdir", name); err != nil {
		return err
	}
	r := rel(name)
	if r == "." {
		return nil
	}
	parts := strings.Split(r, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		err := f.change(p, func(dfd int, base string) error { return unix.Mkdirat(dfd, base, uint32(perm.Perm())) })
		if err == unix.EEXIST {
			fi, serr := f.Lstat(p)
			if serr == nil && fi.IsDir() {
				continue
			}
			return pathErr("mkdir", p, unix.EEXIST)
		}
		if err != nil {
			return pathErr("mkdir", p, err)
		}
	}
	return nil
}

// Symlink creates link pointing at target; target is stored as given.
func (f *FS) Symlink(target, link string) error {
	if err := f.checkWrite("symlink", link); err != nil {
		return err
	}
	if err := f.change(link, func(dfd int, base string) error { return unix.Symlinkat(target, dfd, base) }); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: link, Err: err}
	}
	return nil
}

// Readlink returns the target of the symlink link, as stored.
func (f *FS) Readlink(link string) (string, error) {
	var target string
	err := f.at(link, func(dfd int, base string) error {
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dfd, base, buf)
		target = string(buf[:max(n, 0)])
		return err
	})
	if err != nil {
		return "", pathErr("readlink", link, err)
	}
	return target, nil
}

// Chroot is not supported: the gateway serves one folder.
func (f *FS) Chroot(p string) (billy.Filesystem, error) {
	return nil, fmt.Errorf("%w: chroot %s", ErrNotSupported, p)
}

// Root returns "/": paths are relative to the served folder.
func (f *FS) Root() string { return "/" }

// Capabilities reports what FS can do.
func (f *FS) Capabilities() billy.Capability {
	c := billy.ReadCapability | billy.SeekCapability | billy.ReadAndWriteCapability | billy.TruncateCapability
	if !f.readOnly {
		c |= billy.WriteCapability
	}
	return c
}

// errSymlinkChmod ends Chmod's call on a symlink, which has no mode to
// change; it never leaves Chmod.
var errSymlinkChmod = errors.New("nfsgw: chmod of a symlink")

// Chmod changes name's permission bits. Symlinks have none; chmod of a
// symlink is a no-op, as on Linux.
func (f *FS) Chmod(name string, mode os.FileMode) error {
	if err := f.checkWrite("chmod", name); err != nil {
		return err
	}
	m := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&os.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&os.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	// fchmodat follows a final symlink (Linux before 6.6 has no
	// AT_SYMLINK_NOFOLLOW for it): the inode is changed through its
	// O_PATH descriptor's /proc name instead.
	link := false
	err := f.node(name, func(pfd int, st *unix.Stat_t) error {
		if link = st.Mode&unix.S_IFMT == unix.S_IFLNK; link {
			return errSymlinkChmod
		}
		return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(pfd), m, 0)
	})
	if link {
		return nil
	}
	if err != nil {
		return pathErr("chmod", name, err)
	}
	return nil
}

// Lchown changes the owner of name without following a symlink.
func (f *FS) Lchown(name string, uid, gid int) error {
	if err := f.checkWrite("chown", name); err != nil {
		return err
	}
	err := f.node(name, func(pfd int, _ *unix.Stat_t) error { return unix.Fchownat(pfd, "", uid, gid, unix.AT_EMPTY_PATH) })
	if err != nil {
		return pathErr("chown", name, err)
	}
	return nil
}

// Chown changes the owner of name; like Lchown (the gateway never follows
// symlinks).
func (f *FS) Chown(name string, uid, gid int) error { return f.Lchown(name, uid, gid) }

// Chtimes sets name's access and modification times without following a
// symlink.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	if err := f.checkWrite("utimes", name); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	err := f.node(name, func(pfd int, _ *unix.Stat_t) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(pfd), ts, 0)
	})
	if err != nil {
		return pathErr("utimes", name, err)
	}
	return nil
}

// Mknod creates a special file; mode carries the type bits (S_IFCHR,
// S_IFBLK, S_IFIFO, S_IFSOCK) and the permissions.
func (f *FS) Mknod(name string, mode uint32, major uint32, minor uint32) error {
	if err := f.checkWrite("mknod", name); err != nil {
		return err
	}
	if err := f.change(name, func(dfd int, base string) error { return unix.Mknodat(dfd, base, mode, int(unix.Mkdev(major, minor))) }); err != nil {
		return pathErr("mknod", name, err)
	}
	return nil
}

// Mkfifo creates a named pipe with the permission bits of mode.
func (f *FS) Mkfifo(name string, mode uint32) error {
	return f.Mknod(name, unix.S_IFIFO|(mode&0o7777), 0, 0)
}

// Socket creates a socket special file.
func (f *FS) Socket(name string) error {
	return f.Mknod(name, unix.S_IFSOCK|0o755, 0, 0)
}

// Link creates the hard link link to the existing file path.
func (f *FS) Link(existing string, link string) error {
	if err := f.checkWrite("link", link); err != nil {
		return err
	}
	linkat := func(od int, ob string, nd int, nb string) error { return unix.Linkat(od, ob, nd, nb, 0) }
	if err := f.change2(existing, link, false, linkat); err != nil {
		return &os.LinkError{Op: "link", Old: existing, New: link, Err: err}
	}
	return nil
}

// linkInode makes link a new name of the inode open as pfd (an O_PATH
// descriptor: LINK's file handle), as f's identity: linkat through
// /proc/self/fd, which names the inode itself, never a path that a rename
// by another client could point at another file meanwhile. The
// directory is synced (change).
func (f *FS) linkInode(pfd int, link string) error {
	if err := f.checkWrite("link", link); err != nil {
		return err
	}
	self := "/proc/self/fd/" + strconv.Itoa(pfd)
	err := f.change(link, func(dirfd int, base string) error {
		return unix.Linkat(unix.AT_FDCWD, self, dirfd, base, unix.AT_SYMLINK_FOLLOW)
	})
	if err != nil {
		return &os.LinkError{Op: "link", Old: self, New: link, Err: err}
	}
	return nil
}

// access checks, as f's identity, whether name allows mode (R_OK, W_OK,
// X_OK), without following a final symlink.
func (f *FS) access(name string, mode uint32) error {
	return f.at(name, func(dfd int, base string) error {
		return unix.Faccessat2(dfd, base, mode, unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW)
	})
}

package nfsgw

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	billy "github.com/go-git/go-billy/v5"
	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// Handler is the go-nfs Handler of the gateway: it serves one FS and maps
// file handles to paths through the kernel's handles (see handle.go),
// replacing go-nfs's in-memory CachingHandler. Safe for concurrent use.
type Handler struct {
	fs *FS
}

// NewHandler returns a Handler serving fs (possibly a view made with
// FS.As: the paths it resolves are then used as that Cred).
func NewHandler(fs *FS) *Handler { return &Handler{fs: fs} }

// Mount answers go-nfs's MOUNT; the gateway's front answers MOUNT itself,
// so this is only reached if the front is bypassed.
func (h *Handler) Mount(context.Context, net.Conn, nfs.MountRequest) (nfs.MountStatus, billy.Filesystem, []nfs.AuthFlavor) {
	return nfs.MountStatusOk, h.fs, []nfs.AuthFlavor{nfs.AuthFlavorUnix, nfs.AuthFlavorNull}
}

// Change returns the FS itself (it implements billy.Change and UnixChange),
// or nil for a read-only FS.
func (h *Handler) Change(fs billy.Filesystem) billy.Change {
	f, ok := fs.(*FS)
	if !ok || f.readOnly {
		return nil
	}
	return f
}

// FSStat fills in the real size and free space of the filesystem.
func (h *Handler) FSStat(_ context.Context, _ billy.Filesystem, s *nfs.FSStat) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(h.fs.rootFD, &st); err != nil {
		return fmt.Errorf("nfsgw: statfs: %w", err)
	}
	bs := uint64(st.Bsize)
	s.TotalSize = st.Blocks * bs
	s.FreeSize = st.Bfree * bs
	s.AvailableSize = st.Bavail * bs
	s.TotalFiles = st.Files
	s.FreeFiles = st.Ffree
	s.AvailableFiles = st.Ffree
	return nil
}

// ToHandle returns the file handle of path, or nil if it cannot be made
// (the file is gone).
func (h *Handler) ToHandle(_ billy.Filesystem, p []string) []byte {
	fh, err := h.fs.handleOf(strings.Join(p, "/"))
	if err != nil {
		return nil
	}
	return fh
}

// FromHandle resolves a file handle to the path of its file now. A handle
// of a deleted file, or of one outside the folder, returns ErrStale.
func (h *Handler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	p, err := h.fs.pathOf(fh)
	if err != nil {
		return nil, nil, err
	}
	if p == "." {
		return h.fs, []string{}, nil
	}
	return h.fs, strings.Split(p, "/"), nil
}

// InvalidateHandle is a no-op: handles are not cached.
func (h *Handler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

// HandleLimit is large: handles cost no memory.
func (h *Handler) HandleLimit() int { return 1 << 30 }

// handleOf returns the file handle of name (not following a final
// symlink), with its directory's handle for a non-directory.
func (f *FS) handleOf(name string) ([]byte, error) {
	r := rel(name)
	var h fileHandle
	err := f.atLocked(r, func(dfd int, base string) error {
		kh, _, err := unix.NameToHandleAt(dfd, base, 0)
		if err != nil {
			return err
		}
		h.file = kh
		var st unix.Stat_t
		if r != "." && unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if ph, _, err := unix.NameToHandleAt(dfd, "", unix.AT_EMPTY_PATH); err == nil {
				h.parent, h.hasParent = ph, true
			}
		}
		return nil
	})
	if err != nil {
		return nil, pathErr("name_to_handle_at", name, err)
	}
	return encodeHandle(h)
}

// RootHandle returns the file handle of the folder itself.
func (f *FS) RootHandle() ([]byte, error) { return f.handleOf(".") }

// openHandle opens a kernel handle with O_PATH; ErrStale if it names
// nothing (any more).
func (f *FS) openHandle(kh unix.FileHandle) (int, error) {
	fd, err := unix.OpenByHandleAt(f.rootFD, kh, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		if err == unix.ESTALE || err == unix.ENOENT || err == unix.EINVAL {
			return -1, fmt.Errorf("%w: %v", ErrStale, err)
		}
		return -1, fmt.Errorf("nfsgw: open_by_handle_at: %w", err)
	}
	return fd, nil
}

// fdPath returns the path of an open descriptor relative to the root, or
// ok=false when the kernel cannot name it under the root (a disconnected
// dentry, a file outside the folder, a deleted file).
func (f *FS) fdPath(fd int) (string, bool) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || strings.HasSuffix(p, " (deleted)") {
		return "", false
	}
	if p == f.root {
		return ".", true
	}
	r, err := filepath.Rel(f.root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") || !filepath.IsAbs(p) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// pathOf resolves a file handle to the file's current path relative to the
// root ("." for the root).
func (f *FS) pathOf(fh []byte) (string, error) {
	p, _, err := f.resolve(fh)
	return p, err
}

// resolve is pathOf that also returns the file's attributes. A handle of
// a deleted file (no links left), or of a file the kernel cannot name
// under the folder, is ErrStale.
func (f *FS) resolve(fh []byte) (string, *unix.Stat_t, error) {
	h, err := decodeHandle(fh)
	if err != nil {
		return "", nil, err
	}
	fd, err := f.openHandle(h.file)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", nil, fmt.Errorf("nfsgw: fstat: %w", err)
	}
	if st.Nlink == 0 {
		return "", nil, fmt.Errorf("%w: deleted", ErrStale)
	}
	if p, ok := f.fdPath(fd); ok {
		return p, &st, nil
	}
	// A file whose dentry left the cache comes back disconnected: find its
	// name in the directory it was in (which the kernel can reconnect).
	if h.hasParent {
		if p, ok := f.findIn(h.parent, &st); ok {
			return p, &st, nil
		}
	}
	// Moved to another directory since the handle was made: search the
	// tree (bounded; rare: it needs both a move and a cache eviction).
	if p, ok := f.searchTree(&st, maxSearchEntries); ok {
		return p, &st, nil
	}
	return "", nil, fmt.Errorf("%w: the kernel cannot name inode %d under the folder", ErrStale, st.Ino)
}

// openResolved is resolve's path of the file with handle fh, and an
// O_PATH descriptor of its inode, which the caller closes; a file deleted
// in between is ErrStale. Errors as resolve's.
func (f *FS) openResolved(fh []byte) (string, int, error) {
	name, _, err := f.resolve(fh)
	if err != nil {
		return "", -1, err
	}
	h, err := decodeHandle(fh)
	if err != nil {
		return "", -1, err
	}
	pfd, err := f.openHandle(h.file)
	if err != nil {
		return "", -1, err
	}
	var now unix.Stat_t
	err = unix.Fstat(pfd, &now)
	if err == nil && now.Nlink == 0 {
		err = fmt.Errorf("%w: deleted", ErrStale)
	}
	if err != nil {
		unix.Close(pfd)
		return "", -1, err
	}
	return name, pfd, nil
}

// openRegular opens the regular file with handle fh as the gateway, for
// reading (unix.O_RDONLY) or reading and writing (unix.O_RDWR), and
// returns the descriptor with its attributes. The file must be one resolve
// accepts (linked, under the folder); a directory is EISDIR and any other
// type EINVAL (a fifo or a device is never opened). Opening for writing
// on a read-only FS is ErrReadOnly. Permissions are not checked here: the
// caller checks them per operation as the client (see the package doc).
func (f *FS) openRegular(fh []byte, flags int) (int, *unix.Stat_t, error) {
	if flags != unix.O_RDONLY {
		if err := f.checkWrite("open", "(handle)"); err != nil {
			return -1, nil, err
		}
	}
	_, st, err := f.resolve(fh)
	if err != nil {
		return -1, nil, err
	}
	if err := regular(st); err != nil {
		return -1, nil, err
	}
	h, err := decodeHandle(fh)
	if err != nil {
		return -1, nil, err
	}
	fd, err := unix.OpenByHandleAt(f.rootFD, h.file, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		if err == unix.ESTALE || err == unix.ENOENT {
			return -1, nil, fmt.Errorf("%w: %v", ErrStale, err)
		}
		return -1, nil, fmt.Errorf("nfsgw: open_by_handle_at: %w", err)
	}
	var again unix.Stat_t
	if err := unix.Fstat(fd, &again); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("nfsgw: fstat: %w", err)
	}
	if again.Ino != st.Ino || again.Dev != st.Dev {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("%w: handle names another file now", ErrStale)
	}
	if err := regular(&again); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, &again, nil
}

// regular returns nil for a regular file, EISDIR for a directory and
// EINVAL for anything else (READ, WRITE and COMMIT are for files).
func regular(st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFDIR:
		return fmt.Errorf("nfsgw: not a file: %w", unix.EISDIR)
	}
	return fmt.Errorf("nfsgw: not a regular file: %w", unix.EINVAL)
}

// maxSearchEntries bounds searchTree.
const maxSearchEntries = 200000

// searchTree looks for the inode st in the whole folder, breadth first,
// visiting at most limit entries.
func (f *FS) searchTree(st *unix.Stat_t, limit int) (string, bool) {
	queue := []string{"."}
	for len(queue) > 0 && limit > 0 {
		dir := queue[0]
		queue = queue[1:]
		dfd, err := unix.Openat2(f.rootFD, dir, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err != nil {
			continue
		}
		d := os.NewFile(uintptr(dfd), dir)
		names, _ := d.Readdirnames(limit)
		for _, n := range names {
			limit--
			var est unix.Stat_t
			if unix.Fstatat(dfd, n, &est, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			p := path.Join(dir, n)
			if est.Ino == st.Ino && est.Dev == st.Dev {
				d.Close()
				return p, true
			}
			if est.Mode&unix.S_IFMT == unix.S_IFDIR && est.Dev == st.Dev {
				queue = append(queue, p)
			}
		}
		d.Close()
	}
	return "", false
}

// findIn looks for the inode st in the directory with kernel handle dir
// and returns its path; the lookup also reconnects the file's dentry.
func (f *FS) findIn(dir unix.FileHandle, st *unix.Stat_t) (string, bool) {
	pfd, err := f.openHandle(dir)
	if err != nil {
		return "", false
	}
	defer unix.Close(pfd)
	dp, ok := f.fdPath(pfd)
	if !ok {
		return "", false
	}
	dfd, err := unix.Openat2(f.rootFD, dp, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return "", false
	}
	d := os.NewFile(uintptr(dfd), dp)
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			var est unix.Stat_t
			if unix.Fstatat(dfd, n, &est, unix.AT_SYMLINK_NOFOLLOW) == nil && est.Ino == st.Ino && est.Dev == st.Dev {
				if dp == "." {
					return n, true
				}
				return dp + "/" + n, true
			}
		}
		if err != nil || len(names) == 0 {
			return "", false
		}
	}
}

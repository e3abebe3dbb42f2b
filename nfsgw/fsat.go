package nfsgw

import (
	"fmt"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// Calls on a name. Every FS call that acts on a name opens the name's
// directory beneath the root without following a symlink (openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, O_PATH) and makes the *at system
// call on that descriptor and the last component. A directory of the path
// that another client swapped for a symlink, between the lookup of a
// handle and the call, is thus refused (ENOTDIR) instead of followed out
// of the folder. A call that changes the directory then fsyncs that same
// descriptor, not the name looked up again: the directory may have been
// moved meanwhile, and another one put in its place.

// dirAt is a directory opened by parent, and the last component of the
// name it holds.
type dirAt struct {
	fd   int
	base string
	own  bool // fd was opened for this call (else it is the root's)
}

func (d dirAt) close() {
	if d.own {
		unix.Close(d.fd)
	}
}

// parent opens the directory holding the root-relative path r ("." for
// the root itself, whose last component is "."). A symlink where a
// directory of r should be is ENOTDIR, as a lookup that does not follow
// symlinks finds it. It runs as the calling thread is (inside f.do).
func (f *FS) parent(r string) (dirAt, error) {
	dir, base := path.Dir(r), path.Base(r)
	if dir == "." {
		return dirAt{fd: f.rootFD, base: base}, nil
	}
	fd, err := unix.Openat2(f.rootFD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err == unix.ELOOP {
		err = unix.ENOTDIR
	}
	if err != nil {
		return dirAt{}, err
	}
	return dirAt{fd: fd, base: base, own: true}, nil
}

// at runs fn, as f's identity, on name's directory and last component.
func (f *FS) at(name string, fn func(dirfd int, base string) error) error {
	return f.do(func() error { return f.atLocked(rel(name), fn) })
}

// atLocked is at for the root-relative path r, inside f.do (or as the
// gateway).
func (f *FS) atLocked(r string, fn func(dirfd int, base string) error) error {
	d, err := f.parent(r)
	if err != nil {
		return err
	}
	defer d.close()
	return fn(d.fd, d.base)
}

// change is at for a call that changes name's directory: once fn has
// succeeded, that directory is fsynced (see above).
func (f *FS) change(name string, fn func(dirfd int, base string) error) error {
	return f.change2(name, name, false, func(_ int, _ string, dirfd int, base string) error { return fn(dirfd, base) })
}

// change2 is change for two names (rename, link): fn gets a's directory
// and last component, then b's. b's directory is synced, and a's too
// (syncA) when it is another.
func (f *FS) change2(a, b string, syncA bool, fn func(adir int, abase string, bdir int, bbase string) error) error {
	var da, db dirAt
	defer func() {
		da.close()
		if a != b {
			db.close()
		}
	}()
	err := f.do(func() (err error) {
		if da, err = f.parent(rel(a)); err != nil {
			return err
		}
		if a == b {
			db = da // one descriptor, closed once
		} else if db, err = f.parent(rel(b)); err != nil {
			return err
		}
		return fn(da.fd, da.base, db.fd, db.base)
	})
	if err != nil {
		return err
	}
	if f.beforeSync != nil {
		f.beforeSync()
	}
	if syncA && path.Dir(rel(a)) != path.Dir(rel(b)) {
		if err := f.syncAt(da, a); err != nil {
			return err
		}
	}
	return f.syncAt(db, b)
}

// node runs fn, as f's identity, on name's inode, opened O_PATH without
// following a final symlink (st is its fstat), then makes the change
// durable through that same inode (syncInode), never the name looked up
// again: for chmod, chown and utimes.
func (f *FS) node(name string, fn func(pfd int, st *unix.Stat_t) error) error {
	pfd := -1
	var st unix.Stat_t
	defer func() {
		if pfd >= 0 {
			unix.Close(pfd)
		}
	}()
	err := f.do(func() error {
		return f.atLocked(rel(name), func(dfd int, base string) (err error) {
			if pfd, err = unix.Openat(dfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
				return err
			}
			if err := unix.Fstat(pfd, &st); err != nil {
				return err
			}
			return fn(pfd, &st)
		})
	})
	if err != nil {
		return err
	}
	if f.beforeSync != nil {
		f.beforeSync()
	}
	return f.syncInode(pfd, &st, name)
}

// syncInode makes a change to the inode open as pfd (O_PATH; st is its
// fstat) durable, as the gateway: an owner may chmod a file it cannot
// read, and syncing is no access to the data. A regular file or a
// directory is reopened for reading through /proc (an O_PATH descriptor
// cannot be fsynced), which names that inode; anything else is never
// opened (a fifo or a device could block or reach a driver), and the
// filesystem is synced (syncUnopened).
func (f *FS) syncInode(pfd int, st *unix.Stat_t, name string) error {
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		return f.syncUnopened(name)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("nfsgw: sync %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := f.fsyncInode(fd); err != nil {
		return fmt.Errorf("nfsgw: sync %s: %w", name, err)
	}
	return nil
}

// syncAt fsyncs the directory d that holds name, as the gateway (an O_PATH
// descriptor cannot be fsynced: it is reopened for reading through /proc,
// which names the same inode).
func (f *FS) syncAt(d dirAt, name string) error {
	fd := d.fd
	if d.own {
		rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(d.fd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("nfsgw: sync dir %s: %w", path.Dir(rel(name)), err)
		}
		defer unix.Close(rfd)
		fd = rfd
	}
	if err := f.fsyncDir(fd); err != nil {
		return fmt.Errorf("nfsgw: sync dir %s: %w", path.Dir(rel(name)), err)
	}
	return nil
}

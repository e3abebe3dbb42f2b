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
	var d dirAt
	defer func() { d.close() }()
	err := f.do(func() (err error) {
		if d, err = f.parent(rel(name)); err != nil {
			return err
		}
		return fn(d.fd, d.base)
	})
	if err != nil {
		return err
	}
	if f.beforeSync != nil {
		f.beforeSync()
	}
	return f.syncAt(d, name)
}

// change2 is change for two names (rename, link): fn gets a's directory
// and last component, then b's. b's directory is synced, and a's too
// (syncA) when it is another.
func (f *FS) change2(a, b string, syncA bool, fn func(adir int, abase string, bdir int, bbase string) error) error {
	var da, db dirAt
	defer func() { da.close(); db.close() }()
	err := f.do(func() (err error) {
		if da, err = f.parent(rel(a)); err != nil {
			return err
		}
		if db, err = f.parent(rel(b)); err != nil {
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

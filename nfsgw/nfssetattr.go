package nfsgw

import (
	"fmt"
	"strconv"
	"unsafe"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// time_how of sattr3's set_atime and set_mtime.
const (
	timeDontChange = 0
	timeServer     = 1
	timeClient     = 2
)

// setattrArgs are SETATTR3args. A time's Nsec is unix.UTIME_OMIT (leave
// it) or unix.UTIME_NOW (the server's time) unless the client gave one.
type setattrArgs struct {
	File           []byte
	Mode, UID, GID *uint32
	Size           *uint64
	Atime, Mtime   unix.Timespec
	Guard          *nfs.FileTime // the ctime the client expects, if any
}

func (r *xdrReader) setTime() unix.Timespec {
	switch how := r.u32(); how {
	case timeDontChange:
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	case timeServer:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case timeClient:
		sec, nsec := r.u32(), r.u32()
		if nsec >= 1e9 && r.err == nil {
			r.err = fmt.Errorf("%w: nfstime3 with %d nanoseconds", ErrGarbage, nsec)
		}
		return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
	default:
		if r.err == nil {
			r.err = fmt.Errorf("%w: time_how %d", ErrGarbage, how)
		}
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
}

func decodeSetattrArgs(b []byte) (setattrArgs, error) {
	r := &xdrReader{b: b}
	a := setattrArgs{File: r.opaque(nfsHandleMaxLen)}
	if r.u32() != 0 {
		m := r.u32()
		a.Mode = &m
	}
	if r.u32() != 0 {
		u := r.u32()
		a.UID = &u
	}
	if r.u32() != 0 {
		g := r.u32()
		a.GID = &g
	}
	if r.u32() != 0 {
		n := r.u64()
		a.Size = &n
	}
	a.Atime = r.setTime()
	a.Mtime = r.setTime()
	if r.u32() != 0 {
		a.Guard = &nfs.FileTime{Seconds: r.u32(), Nseconds: r.u32()}
	}
	return a, r.err
}

// nfsSetattr answers SETATTR on the file the handle names (go-nfs v0.0.4
// resolved the handle to a path and then changed whatever had that name,
// so a rename in between could truncate another file; it also dropped
// the setuid, setgid and sticky bits of a mode, and sent "the server's
// time" as an explicit time, which only the owner may set). Regular
// files and directories are changed through a descriptor of that very
// inode, as the caller (ftruncate, fchown, fchmod, futimens, in that
// order; a writer who is not the owner may set the times to now), and
// fsynced; a symlink or special file, which cannot be opened, through
// its O_PATH descriptor (setattrUnopened). The handle must name a file under the folder, as for
// every other call (FS.resolve).
func (s *Server) nfsSetattr(fs *FS, args []byte) []byte {
	a, err := decodeSetattrArgs(args)
	if err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	if err := s.fs.checkWrite("setattr", "(handle)"); err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	// resolve refuses a file the kernel cannot name under the folder (a
	// forged handle, a file moved out) or one deleted; the descriptor
	// opened next must be that same inode.
	name, st, err := s.fs.resolve(a.File)
	if err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	h, err := decodeHandle(a.File)
	if err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	pfd, err := s.fs.openHandle(h.file)
	if err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	defer unix.Close(pfd)
	pre, err := fstatInfo(pfd)
	if err == nil && (pre.st.Ino != st.Ino || pre.st.Dev != st.Dev || pre.st.Nlink == 0) {
		err = fmt.Errorf("%w: the handle names another file now", ErrStale)
	}
	if err != nil {
		return nfsFailure(nfsProcSetattr, nfsStatus(err))
	}
	switch {
	case a.Guard != nil && *a.Guard != nfs.ToFileAttribute(pre, "").Ctime:
		err = ErrNotSync
	case pre.st.Mode&unix.S_IFMT == unix.S_IFREG || pre.st.Mode&unix.S_IFMT == unix.S_IFDIR:
		err = s.setattrOpen(fs, pfd, (*unix.Stat_t)(unsafe.Pointer(&pre.st)), a)
	default:
		err = setattrUnopened(fs, pfd, name, (*unix.Stat_t)(unsafe.Pointer(&pre.st)), a)
	}
	post, _ := fstatInfo(pfd)
	w := &xdrWriter{}
	w.u32(uint32(nfsStatus(err)))
	appendWcc(w, pre, post)
	return w.b
}

// setattrOpen applies a to the regular file or directory open as pfd
// (O_PATH), through a descriptor of that inode opened as the gateway, the
// changes made as fs's identity, and fsyncs it.
func (s *Server) setattrOpen(fs *FS, pfd int, st *unix.Stat_t, a setattrArgs) error {
	flags := unix.O_RDONLY
	if a.Size != nil {
		if err := regular(st); err != nil {
			return err
		}
		flags = unix.O_WRONLY
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), flags|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("nfsgw: setattr: reopen: %w", err)
	}
	defer unix.Close(fd)
	timesSet := a.Atime.Nsec != unix.UTIME_OMIT || a.Mtime.Nsec != unix.UTIME_OMIT
	touch := timesSet && nowOrOmit(a.Atime) && nowOrOmit(a.Mtime)
	err = fs.do(func() error {
		// Write permission (or ownership) first, so that nothing changes
		// without it: for a size, and for times set to now, which any
		// writer may set (Linux's nfsd, ATTR_TOUCH).
		if a.Size != nil || touch {
			if err := fs.checkAccessLocked(fd, true); err != nil {
				return err
			}
		}
		// The size first: a truncate by a caller without CAP_FSETID clears
		// setuid and setgid, and so does a chown; a mode given with them
		// sets them again.
		if a.Size != nil {
			if *a.Size > 1<<63-1 {
				return fmt.Errorf("nfsgw: truncate to %d: %w", *a.Size, unix.EFBIG)
			}
			if err := unix.Ftruncate(fd, int64(*a.Size)); err != nil {
				return fmt.Errorf("nfsgw: truncate: %w", err)
			}
		}
		if a.UID != nil || a.GID != nil {
			if err := unix.Fchown(fd, idOrKeep(a.UID), idOrKeep(a.GID)); err != nil {
				return fmt.Errorf("nfsgw: chown: %w", err)
			}
		}
		if a.Mode != nil {
			if err := unix.Fchmod(fd, *a.Mode&0o7777); err != nil {
				return fmt.Errorf("nfsgw: chmod: %w", err)
			}
		}
		if timesSet && !touch { // times the client gave: the owner's (the kernel checks)
			if err := futimens(fd, a.Atime, a.Mtime); err != nil {
				return fmt.Errorf("nfsgw: utimes: %w", err)
			}
		}
		return nil
	})
	if err == nil && touch {
		// Allowed above; as the gateway, because the kernel lets only the
		// owner set one time to now and leave the other (what Linux sends
		// with a truncate).
		if err = futimens(fd, a.Atime, a.Mtime); err != nil {
			err = fmt.Errorf("nfsgw: utimes: %w", err)
		}
	}
	if err != nil {
		return err
	}
	if err := fs.fsyncInode(fd); err != nil {
		return fmt.Errorf("nfsgw: setattr: sync: %w", err)
	}
	return nil
}

// setattrUnopened applies a to a symlink or special file, which cannot be
// opened, through pfd, its O_PATH descriptor, as fs's identity:
// fchownat with AT_EMPTY_PATH, and fchmodat and utimensat on
// /proc/self/fd/N, which names the inode itself, never a path another
// client could swap (a symlink's mode is not used: nfsd ignores it too).
// The change is then synced (FS.syncUnopened: the whole filesystem); name
// is for errors.
func setattrUnopened(fs *FS, pfd int, name string, st *unix.Stat_t, a setattrArgs) error {
	if a.Size != nil {
		return fmt.Errorf("nfsgw: truncate: %w", unix.EINVAL)
	}
	self := "/proc/self/fd/" + strconv.Itoa(pfd)
	err := fs.do(func() error {
		if a.UID != nil || a.GID != nil {
			if err := unix.Fchownat(pfd, "", idOrKeep(a.UID), idOrKeep(a.GID), unix.AT_EMPTY_PATH); err != nil {
				return fmt.Errorf("nfsgw: chown: %w", err)
			}
		}
		if a.Mode != nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if err := unix.Fchmodat(unix.AT_FDCWD, self, *a.Mode&0o7777, 0); err != nil {
				return fmt.Errorf("nfsgw: chmod: %w", err)
			}
		}
		if a.Atime.Nsec != unix.UTIME_OMIT || a.Mtime.Nsec != unix.UTIME_OMIT {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, self, []unix.Timespec{a.Atime, a.Mtime}, 0); err != nil {
				return fmt.Errorf("nfsgw: utimes: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fs.syncUnopened(name)
}

// nowOrOmit reports whether t is "now" or "leave it", not a given time.
func nowOrOmit(t unix.Timespec) bool { return t.Nsec == unix.UTIME_NOW || t.Nsec == unix.UTIME_OMIT }

// idOrKeep is an owner or group for fchown: -1 keeps it.
func idOrKeep(id *uint32) int {
	if id == nil {
		return -1
	}
	return int(*id)
}

// futimens sets the times of the file open as fd (utimensat with a NULL
// path; x/sys has no futimens). UTIME_NOW and UTIME_OMIT apply.
func futimens(fd int, atime, mtime unix.Timespec) error {
	ts := [2]unix.Timespec{atime, mtime}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

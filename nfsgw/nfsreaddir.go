package nfsgw

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"path"
	"unsafe"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// maxReaddirReply bounds a READDIR or READDIRPLUS reply whatever count the
// client asks for (Linux asks for at most a page or its rsize).
const maxReaddirReply = 1 << 20

// readdirArgs are READDIR3args and READDIRPLUS3args. MaxCount bounds the
// reply (READDIR's count); READDIRPLUS's dircount is ignored, as Linux's
// nfsd does (Linux clients send an eighth of maxcount).
type readdirArgs struct {
	Dir      []byte
	Cookie   uint64
	Verf     uint64 // ours is always 0: cookies stay valid
	MaxCount uint32
}

func decodeReaddirArgs(b []byte, plus bool) (readdirArgs, error) {
	r := &xdrReader{b: b}
	a := readdirArgs{Dir: r.opaque(nfsHandleMaxLen), Cookie: r.u64(), Verf: r.u64()}
	a.MaxCount = r.u32()
	if plus {
		a.MaxCount = r.u32() // after dircount
	}
	return a, r.err
}

// dirent is one entry of a directory listing: its inode, the cookie that
// resumes the listing after it (the kernel's d_off), and its name.
type dirent struct {
	ino    uint64
	cookie uint64
	name   string
}

// readDir lists the directory name from cookie (0: the start, else one
// an earlier listing returned) as f's identity, passing the open
// directory and each entry to fn until fn returns false. eof reports that
// the listing reached the end. The cookies are the kernel's directory
// offsets, which stay valid while entries come and go (ext4 and xfs hash
// or index them), as Linux's nfsd uses them.
func (f *FS) readDir(name string, cookie uint64, fn func(dirfd int, e dirent) bool) (eof bool, err error) {
	err = f.do(func() error {
		fd, err := unix.Openat2(f.rootFD, rel(name), &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if cookie != 0 {
			if _, err := unix.Seek(fd, int64(cookie), io.SeekStart); err != nil {
				return err
			}
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				eof = true
				return nil
			}
			for off := 0; off < n; {
				e, reclen, ok := parseDirent(buf[off:n])
				if !ok {
					return fmt.Errorf("%w: bad directory entry from the kernel", unix.EIO)
				}
				if !fn(fd, e) {
					return nil
				}
				off += reclen
			}
		}
	})
	if err != nil {
		return false, pathErr("readdir", name, err)
	}
	return eof, nil
}

// parseDirent decodes one struct linux_dirent64 at the start of b.
func parseDirent(b []byte) (e dirent, reclen int, ok bool) {
	const head = 19 // d_ino, d_off, d_reclen, d_type
	if len(b) < head {
		return e, 0, false
	}
	reclen = int(binary.NativeEndian.Uint16(b[16:]))
	if reclen < head || reclen > len(b) {
		return e, 0, false
	}
	name := b[head:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	e = dirent{ino: binary.NativeEndian.Uint64(b), cookie: binary.NativeEndian.Uint64(b[8:]), name: string(name)}
	return e, reclen, true
}

// nfsReaddir answers READDIR and READDIRPLUS (plus) from the kernel's own
// directory offsets, with a cookie verifier of 0. go-nfs v0.0.4 used an
// entry's index in a sorted listing as its cookie and a hash of every
// name as the verifier: any change between two pages failed the
// continuation (BAD_COOKIE), and the client's restart from the beginning
// skipped or repeated entries that existed all along, and every page
// listed and sorted the whole directory again.
func (s *Server) nfsReaddir(fs *FS, args []byte, plus bool) []byte {
	a, err := decodeReaddirArgs(args, plus)
	if err != nil {
		return readdirFailure(err)
	}
	if a.Cookie > math.MaxInt64 || (a.Cookie != 0 && a.Verf != 0) {
		// Not a directory offset; or a cookie from before the gateway
		// listed by offsets (go-nfs's index, with a verifier of its own):
		// the client starts the listing again.
		return readdirFailure(fmt.Errorf("%w: %d (verifier %x)", ErrBadCookie, a.Cookie, a.Verf))
	}
	dir, err := s.fs.pathOf(a.Dir)
	if err != nil {
		return readdirFailure(err)
	}
	maxCount := min(a.MaxCount, maxReaddirReply)
	// status, dir attributes, cookie verifier; then the end of the list
	// and eof.
	const head, tail = 4 + 4 + fattr3Len + 8, 4 + 4
	entries := &xdrWriter{}
	full := false
	eof, err := fs.readDir(dir, a.Cookie, func(dirfd int, e dirent) bool {
		mark := len(entries.b)
		entries.u32(1)
		entries.u64(e.ino)
		entries.str(e.name)
		entries.u64(e.cookie)
		if plus {
			s.appendEntryPlus(entries, dirfd, dir, e.name)
		}
		if head+len(entries.b)+tail > int(maxCount) {
			entries.b, full = entries.b[:mark], true
			return false
		}
		return true
	})
	if err != nil {
		return readdirFailure(err)
	}
	if full && len(entries.b) == 0 {
		return readdirFailure(fmt.Errorf("%w: count %d holds no entry", ErrTooSmall, maxCount))
	}
	w := &xdrWriter{b: make([]byte, 0, head+len(entries.b)+tail)}
	w.u32(uint32(nfs.NFSStatusOk))
	fi, _ := s.fs.Lstat(dir)
	dirAttr, _ := fi.(*statInfo)
	appendPostOp(w, dirAttr)
	w.u64(0) // cookie verifier
	w.b = append(w.b, entries.b...)
	w.u32(0)
	w.bool(eof && !full)
	return w.b
}

// appendEntryPlus appends READDIRPLUS's name_attributes and name_handle
// of the entry name of the directory dir (open as dirfd). "." and ".."
// get neither (the protocol allows it; ".." of the export's root is
// outside it); an entry gone since the listing gets neither.
func (s *Server) appendEntryPlus(w *xdrWriter, dirfd int, dir, name string) {
	if name == "." || name == ".." {
		w.u32(0)
		w.u32(0)
		return
	}
	fi := &statInfo{name: name}
	if err := unix.Fstatat(dirfd, name, (*unix.Stat_t)(unsafe.Pointer(&fi.st)), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		w.u32(0)
		w.u32(0)
		return
	}
	appendPostOp(w, fi)
	fh, err := s.fs.handleOf(path.Join(dir, name))
	if err != nil {
		w.u32(0)
		return
	}
	w.u32(1)
	w.opaque(fh)
}

// readdirFailure is READDIR3resfail (and READDIRPLUS's): a status and no
// directory attributes.
func readdirFailure(err error) []byte {
	w := &xdrWriter{}
	w.u32(uint32(nfsStatus(err)))
	w.u32(0)
	return w.b
}

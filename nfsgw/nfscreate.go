package nfsgw

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// CREATE3's createmode3.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

// createArgs are CREATE3args.
type createArgs struct {
	Where dirOpArgs
	Mode  uint32
	Attrs *nfs.SetFileAttributes // UNCHECKED and GUARDED
	Verf  [2]uint32              // EXCLUSIVE
}

func decodeCreateArgs(b []byte) (createArgs, error) {
	r := &xdrReader{b: b}
	a := createArgs{Where: r.dirOp(), Mode: r.u32()}
	if r.err != nil {
		return a, r.err
	}
	switch a.Mode {
	case createUnchecked, createGuarded:
		attrs, err := nfs.ReadSetFileAttributes(r)
		if err != nil {
			return a, fmt.Errorf("%w: sattr3: %v", ErrGarbage, err)
		}
		a.Attrs = attrs
	case createExclusive:
		a.Verf = [2]uint32{r.u32(), r.u32()}
	default:
		return a, fmt.Errorf("%w: createmode3 %d", ErrGarbage, a.Mode)
	}
	return a, r.err
}

// decodeMkdirArgs decodes MKDIR3args: where, and the new directory's
// attributes.
func decodeMkdirArgs(b []byte) (dirOpArgs, *nfs.SetFileAttributes, error) {
	r := &xdrReader{b: b}
	where := r.dirOp()
	if r.err != nil {
		return where, nil, r.err
	}
	attrs, err := nfs.ReadSetFileAttributes(r)
	if err != nil {
		return where, nil, fmt.Errorf("%w: sattr3: %v", ErrGarbage, err)
	}
	return where, attrs, nil
}

// exclusiveTimes are the access and modification times (seconds) that
// an EXCLUSIVE create stores its verifier in, as Linux's nfsd does, so
// that a retransmitted create finds its own file.
func exclusiveTimes(v [2]uint32) (atime, mtime time.Time) {
	return time.Unix(int64(v[1]&0x7fffffff), 0), time.Unix(int64(v[0]&0x7fffffff), 0)
}

// nfsCreate answers CREATE (RFC 1813 3.3.8), which go-nfs v0.0.4 gets
// wrong in a way that loses data: it truncated an existing file on an
// UNCHECKED create (what Linux sends for open(O_CREAT) over a cached
// negative entry), made GUARDED a check-then-create race, and refused
// EXCLUSIVE. Here:
//   - UNCHECKED creates the file if it is missing; an existing regular
//     file keeps its data, and only a size in the attributes is applied
//     (as Linux's nfsd does); anything else by that name is EXIST;
//   - GUARDED creates the file or answers EXIST, atomically (mknod);
//   - EXCLUSIVE creates the file atomically with the client's verifier in
//     its times; a retransmission that finds that same empty file is OK.
func (s *Server) nfsCreate(fs *FS, args []byte) []byte {
	a, err := decodeCreateArgs(args)
	if err != nil {
		return nfsFailure(nfsProcCreate, nfsStatus(err))
	}
	dir, name, err := s.entryOf(a.Where)
	if err != nil {
		return nfsFailure(nfsProcCreate, nfsStatus(err))
	}
	perm := uint32(0o666)
	if a.Attrs != nil && a.Attrs.SetMode != nil {
		perm = *a.Attrs.SetMode & 0o7777
	}
	created := true
	if err := fs.Mknod(name, unix.S_IFREG|perm, 0, 0); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nfsFailure(nfsProcCreate, nfsStatus(err))
		}
		created = false
	}
	switch {
	case created && a.Mode == createExclusive:
		atime, mtime := exclusiveTimes(a.Verf)
		err = fs.Chtimes(name, atime, mtime)
	case created:
		// The mode again, past the gateway's umask; then owner, size, times.
		err = a.Attrs.Apply(fs, fs, name)
	case a.Mode == createUnchecked:
		err = s.reuseForCreate(fs, name, a.Attrs)
	case a.Mode == createExclusive:
		err = s.sameExclusive(name, a.Verf)
	default:
		err = fmt.Errorf("%w: %s", os.ErrExist, name)
	}
	if err != nil {
		return nfsFailure(nfsProcCreate, nfsStatus(err))
	}
	return s.createdReply(name, dir)
}

// reuseForCreate is an UNCHECKED create of an existing name: a regular
// file is kept as it is, but for a size in attrs; anything else is EXIST.
func (s *Server) reuseForCreate(fs *FS, name string, attrs *nfs.SetFileAttributes) error {
	fi, err := s.fs.Lstat(name)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", os.ErrExist, name)
	}
	if attrs == nil || attrs.SetSize == nil {
		return nil
	}
	return (&nfs.SetFileAttributes{SetSize: attrs.SetSize}).Apply(fs, fs, name)
}

// sameExclusive is an EXCLUSIVE create of an existing name: OK only if it
// is the empty regular file that this verifier created.
func (s *Server) sameExclusive(name string, v [2]uint32) error {
	fi, err := s.fs.Lstat(name)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	atime, mtime := exclusiveTimes(v)
	if !fi.Mode().IsRegular() || st.Size != 0 || st.Atim.Sec != atime.Unix() || st.Mtim.Sec != mtime.Unix() {
		return fmt.Errorf("%w: %s", os.ErrExist, name)
	}
	return nil
}

// nfsMkdir answers MKDIR with one mkdir: an existing name, of any type,
// is EXIST (go-nfs v0.0.4 answered OK when two clients made the same
// directory, which breaks mkdir as a lock, and ACCES over a file).
func (s *Server) nfsMkdir(fs *FS, args []byte) []byte {
	where, attrs, err := decodeMkdirArgs(args)
	if err != nil {
		return nfsFailure(nfsProcMkdir, nfsStatus(err))
	}
	dir, name, err := s.entryOf(where)
	if err != nil {
		return nfsFailure(nfsProcMkdir, nfsStatus(err))
	}
	perm := uint32(0o755)
	if attrs.SetMode != nil {
		perm = *attrs.SetMode & 0o7777
	}
	if err := fs.Mkdir(name, perm); err != nil {
		return nfsFailure(nfsProcMkdir, nfsStatus(err))
	}
	if err := attrs.Apply(fs, fs, name); err != nil {
		return nfsFailure(nfsProcMkdir, nfsStatus(err))
	}
	return s.createdReply(name, dir)
}

// symlinkArgs are SYMLINK3args: where, then symlinkdata3 (the link's
// attributes and its target).
type symlinkArgs struct {
	Where  dirOpArgs
	Attrs  *nfs.SetFileAttributes
	Target string
}

func decodeSymlinkArgs(b []byte) (symlinkArgs, error) {
	r := &xdrReader{b: b}
	a := symlinkArgs{Where: r.dirOp()}
	if r.err != nil {
		return a, r.err
	}
	attrs, err := nfs.ReadSetFileAttributes(r)
	if err != nil {
		return a, fmt.Errorf("%w: sattr3: %v", ErrGarbage, err)
	}
	a.Attrs = attrs
	a.Target = string(r.opaque(maxSymlinkTarget))
	return a, r.err
}

// maxSymlinkTarget bounds a SYMLINK's target as read (nfsSymlink refuses
// one longer than the kernel takes with NAMETOOLONG, not as garbage).
const maxSymlinkTarget = 64 << 10

// nfsSymlink answers SYMLINK here rather than in go-nfs, so that its
// errors are the kernel's (go-nfs answered ACCESS to most) and a
// retransmission is answered from the reply cache (a second run answered
// EXIST). The target is stored as given; the attributes' mode is
// ignored, as symlinks have none.
func (s *Server) nfsSymlink(fs *FS, args []byte) []byte {
	a, err := decodeSymlinkArgs(args)
	if err != nil {
		return nfsFailure(nfsProcSymlink, nfsStatus(err))
	}
	dir, name, err := s.entryOf(a.Where)
	if err != nil {
		return nfsFailure(nfsProcSymlink, nfsStatus(err))
	}
	switch {
	case a.Target == "": // as nfsd: symlink(2) would say ENOENT
		return nfsFailure(nfsProcSymlink, nfsStatus(unix.EINVAL))
	case len(a.Target) >= unix.PathMax:
		return nfsFailure(nfsProcSymlink, nfsStatus(unix.ENAMETOOLONG))
	}
	if err := fs.Symlink(a.Target, name); err != nil {
		return nfsFailure(nfsProcSymlink, nfsStatus(err))
	}
	if err := a.Attrs.Apply(fs, fs, name); err != nil {
		return nfsFailure(nfsProcSymlink, nfsStatus(err))
	}
	return s.createdReply(name, dir)
}

// createdReply encodes the success of CREATE, MKDIR and the like: the new
// handle, its attributes, and the directory's.
func (s *Server) createdReply(name, dir string) []byte {
	fh, err := s.fs.handleOf(name)
	if err != nil {
		return nfsFailure(nfsProcCreate, nfsStatus(err))
	}
	w := &xdrWriter{}
	w.u32(uint32(nfs.NFSStatusOk))
	w.u32(1)
	w.opaque(fh)
	_ = nfs.WritePostOpAttrs(w, s.attrOf(name))
	_ = nfs.WriteWcc(w, nil, s.attrOf(dir))
	return w.b
}

package nfsgw

import (
	"fmt"

	"path"
	"strings"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// NFS version 3 (RFC 1813).
const (
	progNFS = 100003
	nfsVers = 3

	nfsProcNull     = 0
	nfsProcSetattr  = 2
	nfsProcAccess   = 4
	nfsProcRead     = 6
	nfsProcWrite    = 7
	nfsProcCreate   = 8
	nfsProcMkdir    = 9
	nfsProcSymlink  = 10
	nfsProcMknod    = 11
	nfsProcRemove   = 12
	nfsProcRmdir    = 13
	nfsProcRename   = 14
	nfsProcLink     = 15
	nfsProcReaddir  = 16
	nfsProcReaddirP = 17
	nfsProcFSInfo   = 19
	nfsProcCommit   = 21
	nfsProcMax      = 21
	nfsNameMax      = 255
	nfsHandleMaxLen = 64

	ftypeBLK  = 3
	ftypeCHR  = 4
	ftypeSOCK = 6
	ftypeFIFO = 7
)

// changeProcWords returns, for each NFS procedure that changes the
// filesystem, the number of XDR words after the status in its failure
// reply (an empty wcc_data is two words: no pre_op_attr, no post_op_attr),
// and -1 for procedures that change nothing.
func changeProcWords(proc uint32) int {
	switch proc {
	case nfsProcSetattr, nfsProcWrite, nfsProcCreate, nfsProcMkdir, nfsProcSymlink,
		nfsProcMknod, nfsProcRemove, nfsProcRmdir, nfsProcCommit:
		return 2
	case nfsProcLink:
		return 3
	case nfsProcRename:
		return 4
	}
	return -1
}

// nfsFailure encodes the failure result of a changing procedure.
func nfsFailure(proc uint32, status nfs.NFSStatus) []byte {
	w := &xdrWriter{}
	w.u32(uint32(status))
	for i := 0; i < changeProcWords(proc); i++ {
		w.u32(0)
	}
	return w.b
}

// dirOpArgs is a diropargs3: a directory handle and a name in it.
type dirOpArgs struct {
	Dir  []byte
	Name string
}

func (r *xdrReader) dirOp() dirOpArgs {
	d := dirOpArgs{Dir: r.opaque(nfsHandleMaxLen)}
	d.Name = string(r.opaque(nfsNameMax))
	return d
}

// linkArgs are LINK3args: the existing file, then where to link it.
type linkArgs struct {
	File []byte
	Link dirOpArgs
}

func decodeLinkArgs(b []byte) (linkArgs, error) {
	r := &xdrReader{b: b}
	a := linkArgs{File: r.opaque(nfsHandleMaxLen)}
	a.Link = r.dirOp()
	return a, r.err
}

// mknodArgs are MKNOD3args.
type mknodArgs struct {
	Where        dirOpArgs
	Type         uint32
	Attrs        *nfs.SetFileAttributes
	Major, Minor uint32
}

func decodeMknodArgs(b []byte) (mknodArgs, error) {
	r := &xdrReader{b: b}
	a := mknodArgs{Where: r.dirOp(), Type: r.u32()}
	if r.err != nil {
		return a, r.err
	}
	switch a.Type {
	case ftypeCHR, ftypeBLK, ftypeSOCK, ftypeFIFO:
		attrs, err := nfs.ReadSetFileAttributes(r)
		if err != nil {
			return a, fmt.Errorf("%w: sattr3: %v", ErrGarbage, err)
		}
		a.Attrs = attrs
		if a.Type == ftypeCHR || a.Type == ftypeBLK {
			a.Major, a.Minor = r.u32(), r.u32()
		}
	}
	return a, r.err
}

// validName refuses names a client must not send.
func validName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("%w: name %q", ErrAccess, n)
	}
	return nil
}

// entryOf resolves a diropargs3: the directory's path and the entry's,
// refusing a name a client must not send.
func (s *Server) entryOf(d dirOpArgs) (dir, name string, err error) {
	dir, err = s.fs.pathOf(d.Dir)
	if err != nil {
		return "", "", err
	}
	if err := validName(d.Name); err != nil {
		return "", "", err
	}
	return dir, path.Join(dir, d.Name), nil
}

// attrOf returns go-nfs's attributes of name, or nil.
func (s *Server) attrOf(name string) *nfs.FileAttribute {
	fi, err := s.fs.Lstat(name)
	if err != nil {
		return nil
	}
	return nfs.ToFileAttribute(fi, name)
}

// nfsLink answers LINK. go-nfs v0.0.4 decodes LINK3args in the wrong order
// (diropargs first), so every hard link fails there.
func (s *Server) nfsLink(fs *FS, args []byte) []byte {
	a, err := decodeLinkArgs(args)
	if err != nil {
		return nfsFailure(nfsProcLink, nfsStatus(err))
	}
	file, pfd, err := s.fs.openResolved(a.File)
	if err != nil {
		return nfsFailure(nfsProcLink, nfsStatus(err))
	}
	defer unix.Close(pfd)
	dir, link, err := s.entryOf(a.Link)
	if err != nil {
		return nfsFailure(nfsProcLink, nfsStatus(err))
	}
	// Linked through the handle's inode, not file's path: another client
	// may rename something else to that path meanwhile.
	if err := fs.linkInode(pfd, link); err != nil {
		return nfsFailure(nfsProcLink, nfsStatus(err))
	}
	w := &xdrWriter{}
	w.u32(uint32(nfs.NFSStatusOk))
	_ = nfs.WritePostOpAttrs(w, s.attrOf(file))
	_ = nfs.WriteWcc(w, nil, s.attrOf(dir))
	return w.b
}

// nfsMknod answers MKNOD. go-nfs v0.0.4 answers OK to a character device
// and creates nothing.
func (s *Server) nfsMknod(fs *FS, args []byte) []byte {
	a, err := decodeMknodArgs(args)
	if err != nil {
		return nfsFailure(nfsProcMknod, nfsStatus(err))
	}
	dir, name, err := s.entryOf(a.Where)
	if err != nil {
		return nfsFailure(nfsProcMknod, nfsStatus(err))
	}
	perm := uint32(0o644)
	if a.Attrs != nil && a.Attrs.SetMode != nil {
		perm = *a.Attrs.SetMode & 0o7777
	}
	switch a.Type {
	case ftypeCHR:
		err = fs.Mknod(name, unix.S_IFCHR|perm, a.Major, a.Minor)
	case ftypeBLK:
		err = fs.Mknod(name, unix.S_IFBLK|perm, a.Major, a.Minor)
	case ftypeFIFO:
		err = fs.Mknod(name, unix.S_IFIFO|perm, 0, 0)
	case ftypeSOCK:
		err = fs.Mknod(name, unix.S_IFSOCK|perm, 0, 0)
	default:
		return nfsFailure(nfsProcMknod, nfs.NFSStatusBadType)
	}
	if err != nil {
		return nfsFailure(nfsProcMknod, nfsStatus(err))
	}
	if a.Attrs != nil {
		a.Attrs.SetMode = nil // already applied, with the type bits
		if err := a.Attrs.Apply(fs, fs, name); err != nil {
			return nfsFailure(nfsProcMknod, nfsStatus(err))
		}
	}
	return s.createdReply(name, dir)
}

// ACCESS3 bits.
const (
	access3Read    = 0x01
	access3Lookup  = 0x02
	access3Modify  = 0x04
	access3Extend  = 0x08
	access3Delete  = 0x10
	access3Execute = 0x20
)

// decodeAccessArgs decodes ACCESS3args.
func decodeAccessArgs(b []byte) ([]byte, uint32, error) {
	r := &xdrReader{b: b}
	fh := r.opaque(nfsHandleMaxLen)
	mask := r.u32()
	return fh, mask, r.err
}

// nfsAccess answers ACCESS with what the kernel allows fs's identity
// (faccessat2 with AT_EACCESS checks the fsuid, fsgid and groups set by
// FS.As). go-nfs v0.0.4 grants every bit to everyone.
func (s *Server) nfsAccess(fs *FS, readOnly bool, args []byte) []byte {
	fh, mask, err := decodeAccessArgs(args)
	if err != nil {
		return []byte{0, 0, 0, byte(nfs.NFSStatusInval), 0, 0, 0, 0}
	}
	name, err := s.fs.pathOf(fh)
	if err != nil {
		w := &xdrWriter{}
		w.u32(uint32(nfsStatus(err)))
		w.u32(0)
		return w.b
	}
	attr := s.attrOf(name)
	isDir := attr != nil && attr.Type == nfs.FileTypeDirectory
	granted := uint32(0)
	check := func(bits uint32, mode uint32) {
		if mask&bits == 0 {
			return
		}
		if fs.access(name, mode) == nil {
			granted |= mask & bits
		}
	}
	check(access3Read, unix.R_OK)
	if isDir {
		check(access3Lookup, unix.X_OK)
		check(access3Delete, unix.W_OK|unix.X_OK)
		check(access3Modify|access3Extend, unix.W_OK|unix.X_OK)
	} else {
		check(access3Execute, unix.X_OK)
		check(access3Modify|access3Extend, unix.W_OK)
	}
	if readOnly {
		granted &^= access3Modify | access3Extend | access3Delete
	}
	w := &xdrWriter{}
	w.u32(uint32(nfs.NFSStatusOk))
	_ = nfs.WritePostOpAttrs(w, attr)
	w.u32(granted)
	return w.b
}

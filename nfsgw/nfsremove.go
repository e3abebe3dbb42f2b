package nfsgw

import (
	"path"
	"syscall"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// decodeDirOpArgs decodes a diropargs3 (REMOVE3args, RMDIR3args).
func decodeDirOpArgs(b []byte) (dirOpArgs, error) {
	r := &xdrReader{b: b}
	d := r.dirOp()
	return d, r.err
}

// renameArgs are RENAME3args.
type renameArgs struct {
	From, To dirOpArgs
}

func decodeRenameArgs(b []byte) (renameArgs, error) {
	r := &xdrReader{b: b}
	a := renameArgs{From: r.dirOp()}
	a.To = r.dirOp()
	return a, r.err
}

// writeDirWcc appends a wcc_data with pre-op attributes pre (may be nil)
// and the directory's attributes now.
func (s *Server) writeDirWcc(w *xdrWriter, pre *nfs.FileAttribute, dir string) {
	var pc *nfs.FileCacheAttribute
	if pre != nil {
		pc = pre.AsCache()
	}
	_ = nfs.WriteWcc(w, pc, s.attrOf(dir))
}

// inodeOf returns the attributes of name (not following a symlink), or
// nil, so that a REMOVE or RENAME that unlinks it can drop its cached
// descriptors (openFiles.forgetInode).
func (s *Server) inodeOf(name string) *syscall.Stat_t {
	fi, err := s.fs.Lstat(name)
	if err != nil {
		return nil
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st
}

// nfsRemove answers REMOVE (rmdir=false) and RMDIR (rmdir=true). go-nfs
// v0.0.4 answers NFS3ERR_IO for every failure other than ENOENT and
// EACCES (a non-empty directory, a directory given to REMOVE, ...), and
// removes directories with REMOVE.
func (s *Server) nfsRemove(fs *FS, args []byte, rmdir bool) []byte {
	proc := uint32(nfsProcRemove)
	if rmdir {
		proc = nfsProcRmdir
	}
	a, err := decodeDirOpArgs(args)
	if err != nil {
		return nfsFailure(proc, nfsStatus(err))
	}
	dir, name, err := s.entryOf(a)
	if err != nil {
		return nfsFailure(proc, nfsStatus(err))
	}
	pre := s.attrOf(dir)
	victim := s.inodeOf(name)
	if rmdir {
		err = fs.Rmdir(name)
	} else {
		err = fs.Unlink(name)
	}
	if err == nil && victim != nil {
		s.files.forgetInode(victim.Dev, victim.Ino)
	}
	w := &xdrWriter{}
	w.u32(uint32(nfsStatus(err)))
	s.writeDirWcc(w, pre, dir)
	return w.b
}

// nfsRename answers RENAME with rename(2)'s own result. go-nfs v0.0.4
// answers NFS3ERR_IO for ENOTEMPTY, EISDIR, ENOTDIR, EXDEV, EINVAL.
func (s *Server) nfsRename(fs *FS, args []byte) []byte {
	a, err := decodeRenameArgs(args)
	if err != nil {
		return nfsFailure(nfsProcRename, nfsStatus(err))
	}
	from, err := s.fs.pathOf(a.From.Dir)
	if err != nil {
		return nfsFailure(nfsProcRename, nfsStatus(err))
	}
	to, err := s.fs.pathOf(a.To.Dir)
	if err != nil {
		return nfsFailure(nfsProcRename, nfsStatus(err))
	}
	if err := validName(a.From.Name); err != nil {
		return nfsFailure(nfsProcRename, nfsStatus(err))
	}
	if err := validName(a.To.Name); err != nil {
		return nfsFailure(nfsProcRename, nfsStatus(err))
	}
	preFrom, preTo := s.attrOf(from), s.attrOf(to)
	victim := s.inodeOf(path.Join(to, a.To.Name))
	err = fs.Rename(path.Join(from, a.From.Name), path.Join(to, a.To.Name))
	if err == nil && victim != nil {
		s.files.forgetInode(victim.Dev, victim.Ino)
	}
	w := &xdrWriter{}
	w.u32(uint32(nfsStatus(err)))
	s.writeDirWcc(w, preFrom, from)
	s.writeDirWcc(w, preTo, to)
	return w.b
}

// Unlink removes a non-directory (unlink(2): a directory is EISDIR).
func (f *FS) Unlink(name string) error {
	if err := f.checkWrite("remove", name); err != nil {
		return err
	}
	if err := f.change(name, func(dfd int, base string) error { return unix.Unlinkat(dfd, base, 0) }); err != nil {
		return pathErr("remove", name, err)
	}
	return nil
}

// Rmdir removes an empty directory (rmdir(2)).
func (f *FS) Rmdir(name string) error {
	if err := f.checkWrite("rmdir", name); err != nil {
		return err
	}
	if rel(name) == "." {
		return pathErr("rmdir", name, unix.EBUSY)
	}
	if err := f.change(name, func(dfd int, base string) error { return unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR) }); err != nil {
		return pathErr("rmdir", name, err)
	}
	return nil
}

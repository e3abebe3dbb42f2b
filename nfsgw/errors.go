package nfsgw

import (
	"errors"
	"io/fs"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// Sentinel errors. Callers classify with errors.Is; nfsStatus maps them
// (and the errno values they wrap) to NFS status codes.
var (
	// ErrStale: a file handle names a file that no longer exists, or one
	// outside the exported folder, or is not one of ours.
	ErrStale = errors.New("nfsgw: stale file handle")
	// ErrBadHandle: a file handle is malformed (wrong length or version).
	ErrBadHandle = errors.New("nfsgw: malformed file handle")
	// ErrOutsideRoot: a path escapes the exported folder.
	ErrOutsideRoot = errors.New("nfsgw: path outside the exported folder")
	// ErrReadOnly: a change was asked of a read-only export.
	ErrReadOnly = errors.New("nfsgw: read-only export")
	// ErrGarbage: an RPC message or its arguments could not be decoded.
	ErrGarbage = errors.New("nfsgw: undecodable RPC message")
	// ErrConfig: a Config or export rule is invalid.
	ErrConfig = errors.New("nfsgw: invalid config")
	// ErrAccess: the client is not allowed to use the export.
	ErrAccess = errors.New("nfsgw: access denied")
	// ErrNotSupported: the operation is not supported (e.g. a socket
	// special file).
	ErrNotSupported = errors.New("nfsgw: operation not supported")
	// ErrTooSmall: a READDIR's count cannot hold even one entry.
	ErrTooSmall = errors.New("nfsgw: reply size too small")
	// ErrBadCookie: a READDIR cookie is not one the gateway gives.
	ErrBadCookie = errors.New("nfsgw: bad READDIR cookie")
	// ErrNotSync: a SETATTR's guard (the ctime the client expects) does
	// not match the file's.
	ErrNotSync = errors.New("nfsgw: the file's ctime is not the guard's")
)

// nfsStatus is the one place that turns an error into an NFSv3 status.
func nfsStatus(err error) nfs.NFSStatus {
	var errno unix.Errno
	switch {
	case err == nil:
		return nfs.NFSStatusOk
	case errors.Is(err, ErrStale), errors.Is(err, unix.ESTALE):
		return nfs.NFSStatusStale
	case errors.Is(err, ErrBadHandle):
		return nfs.NFSStatusBadHandle
	case errors.Is(err, ErrReadOnly), errors.Is(err, unix.EROFS):
		return nfs.NFSStatusROFS
	case errors.Is(err, ErrAccess), errors.Is(err, ErrOutsideRoot):
		return nfs.NFSStatusAccess
	case errors.Is(err, ErrGarbage):
		return nfs.NFSStatusInval
	case errors.Is(err, ErrNotSupported):
		return nfs.NFSStatusNotSupp
	case errors.Is(err, ErrTooSmall):
		return nfs.NFSStatusTooSmall
	case errors.Is(err, ErrBadCookie):
		return nfs.NFSStatusBadCookie
	case errors.Is(err, ErrNotSync):
		return nfs.NFSStatusNotSync
	case errors.As(err, &errno):
		switch errno {
		case unix.EPERM:
			return nfs.NFSStatusPerm
		case unix.ENOENT:
			return nfs.NFSStatusNoEnt
		case unix.EACCES:
			return nfs.NFSStatusAccess
		case unix.EEXIST:
			return nfs.NFSStatusExist
		case unix.EXDEV:
			return nfs.NFSStatusXDev
		case unix.ENOTDIR:
			return nfs.NFSStatusNotDir
		case unix.EISDIR:
			return nfs.NFSStatusIsDir
		case unix.EINVAL:
			return nfs.NFSStatusInval
		case unix.EFBIG:
			return nfs.NFSStatusFBig
		case unix.ENOSPC:
			return nfs.NFSStatusNoSPC
		case unix.EMLINK:
			return nfs.NFSStatusMlink
		case unix.ENAMETOOLONG:
			return nfs.NFSStatusNameTooLong
		case unix.ENOTEMPTY:
			return nfs.NFSStatusNotEmpty
		case unix.EDQUOT:
			return nfs.NFSStatusDQuot
		case unix.EOPNOTSUPP:
			return nfs.NFSStatusNotSupp
		case unix.ELOOP:
			// The last component is a symlink where a file or directory
			// is needed (a directory of the path that is one answers
			// NOTDIR, fsat.go): nfsd's v3 answer for a handle of the
			// wrong type.
			return nfs.NFSStatusInval
		case unix.EAGAIN:
			// An open that would wait for a lease to be broken (the
			// gateway's non-blocking opens): nfsd asks the client to
			// retry later, as here.
			return nfs.NFSStatusJukebox
		}
		return nfs.NFSStatusIO
	case errors.Is(err, fs.ErrNotExist):
		return nfs.NFSStatusNoEnt
	case errors.Is(err, fs.ErrExist):
		return nfs.NFSStatusExist
	case errors.Is(err, fs.ErrPermission):
		return nfs.NFSStatusAccess
	}
	return nfs.NFSStatusIO
}

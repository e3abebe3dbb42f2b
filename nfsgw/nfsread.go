package nfsgw

import (
	"fmt"
	"math"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// maxData is the largest READ and WRITE the gateway serves, advertised as
// rtmax and wtmax by FSINFO: what the Linux client (NFS_MAX_FILE_IO_SIZE)
// and libnfs use at most, and well inside maxRecord.
const maxData = 1 << 20

// readArgs are READ3args.
type readArgs struct {
	File   []byte
	Offset uint64
	Count  uint32
}

func decodeReadArgs(b []byte) (readArgs, error) {
	r := &xdrReader{b: b}
	a := readArgs{File: r.opaque(nfsHandleMaxLen), Offset: r.u64(), Count: r.u32()}
	return a, r.err
}

// readHeadroom is where the data starts in a READ reply's buffer: room for
// the record mark, the RPC reply header, status, post_op_attr, count, eof
// and the data's length (132 bytes), so that the reply is written as one
// piece without copying the data.
const readHeadroom = 160

// nfsRead answers READ from the open-file cache: up to maxData bytes with
// pread, post-op attributes from an fstat after the read, eof when the
// read reached the file's size. The caller must be allowed to read the
// file (or to execute it, or own it: see checkAccessLocked). It returns
// the framed reply and the pooled buffer that holds it.
func (s *Server) nfsRead(xid uint32, fs *FS, args []byte) ([]byte, *[]byte) {
	a, err := decodeReadArgs(args)
	if err != nil {
		return readFailure(xid, err, nil), nil
	}
	f, err := s.files.acquire(a.File, unix.O_RDONLY)
	if err != nil {
		return readFailure(xid, err, nil), nil
	}
	defer s.files.release(f)
	if err := fs.do(func() error { return fs.checkAccessLocked(f.fd, false) }); err != nil {
		fi, _ := fstatInfo(f.fd)
		return readFailure(xid, err, fi), nil
	}
	count := int(min(a.Count, maxData))
	if a.Offset > math.MaxInt64-maxData {
		count = 0 // beyond any file: an empty read at EOF
	}
	bp := s.getBuf()
	buf := (*bp)[:cap(*bp)]
	data := buf[readHeadroom : readHeadroom+count]
	n := 0
	for n < count {
		m, err := unix.Pread(f.fd, data[n:], int64(a.Offset)+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.putBuf(bp)
			fi, _ := fstatInfo(f.fd)
			return readFailure(xid, fmt.Errorf("nfsgw: read: %w", err), fi), nil
		}
		if m == 0 {
			break
		}
		n += m
	}
	post, err := s.files.stat(f)
	if err != nil {
		s.putBuf(bp)
		return readFailure(xid, err, post), nil
	}
	eof := a.Offset+uint64(n) >= uint64(post.st.Size)

	var hb [readHeadroom]byte
	w := &xdrWriter{b: hb[:4]}
	w.acceptedHeader(xid, acceptSuccess)
	w.u32(uint32(nfs.NFSStatusOk))
	appendPostOp(w, post)
	w.u32(uint32(n))
	w.bool(eof)
	w.u32(uint32(n))
	start := readHeadroom - len(w.b)
	copy(buf[start:], w.b)
	end := readHeadroom + pad4(n)
	clear(buf[readHeadroom+n : end])
	return buf[start:end], bp
}

// readFailure is a framed READ3resfail: status and post-op attributes.
func readFailure(xid uint32, err error, fi *statInfo) []byte {
	w := &xdrWriter{b: make([]byte, 4, 128)}
	w.acceptedHeader(xid, acceptSuccess)
	w.u32(uint32(nfsStatus(err)))
	appendPostOp(w, fi)
	return w.b
}

// checkAccessLocked checks that f's identity, which the calling thread
// has taken (call it inside FS.do), may read (write=false) or write the
// open file fd, the way knfsd checks READ, WRITE and COMMIT:
//
//   - faccessat2(fd, "", R_OK or W_OK, AT_EACCESS|AT_EMPTY_PATH): the
//     kernel's own check for the thread's fsuid, fsgid and groups (mode
//     bits, ACLs, a read-only mount, no capabilities for a non-zero uid),
//     i.e. the check open(2) would make for that identity, made on every
//     call instead of once at open time, because NFSv3 has no open: the
//     descriptor is the gateway's and is shared by all callers.
//   - Reading is also allowed to who may execute the file (a client runs
//     a mode 0711 binary by reading it).
//   - The file's owner may read and write it whatever its mode: a client
//     that created a file with mode 0444 and writes it through the
//     descriptor it got from open(O_CREAT) (git does this for its
//     objects) sends WRITEs the mode would refuse; the owner could chmod
//     the file anyway. This is knfsd's owner override. It does not cover
//     EPERM (an immutable file) or EROFS.
//
// The gateway itself (nil Cred: unsquashed root) is not checked.
func (f *FS) checkAccessLocked(fd int, write bool) error {
	if f.cred == nil {
		return nil
	}
	mode := uint32(unix.R_OK)
	if write {
		mode = unix.W_OK
	}
	const flags = unix.AT_EACCESS | unix.AT_EMPTY_PATH
	err := unix.Faccessat2(fd, "", mode, flags)
	if err != unix.EACCES {
		return err
	}
	if !write && unix.Faccessat2(fd, "", unix.X_OK, flags) == nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Uid == f.cred.UID {
		return nil
	}
	op := "read"
	if write {
		op = "write"
	}
	return fmt.Errorf("nfsgw: uid %d may not %s the file: %w", f.cred.UID, op, err)
}

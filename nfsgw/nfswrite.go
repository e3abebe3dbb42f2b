package nfsgw

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	nfs "github.com/willscott/go-nfs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// stable_how (RFC 1813, WRITE3args.stable and WRITE3resok.committed).
const (
	stableUnstable = 0
	stableDataSync = 1
	stableFileSync = 2
)

// writeArgs are WRITE3args.
type writeArgs struct {
	File   []byte
	Offset uint64
	Count  uint32
	Stable uint32
	Data   []byte
}

// decodeWriteArgs decodes WRITE3args. The data must be count bytes (the
// XDR carries both) and stable one of the three levels; otherwise the
// error wraps ErrGarbage (NFS3ERR_INVAL).
func decodeWriteArgs(b []byte) (writeArgs, error) {
	r := &xdrReader{b: b}
	a := writeArgs{File: r.opaque(nfsHandleMaxLen), Offset: r.u64(), Count: r.u32(), Stable: r.u32()}
	a.Data = r.opaque(maxRecord)
	switch {
	case r.err != nil:
		return a, r.err
	case uint32(len(a.Data)) != a.Count:
		return a, fmt.Errorf("%w: WRITE count %d with %d bytes of data", ErrGarbage, a.Count, len(a.Data))
	case a.Stable > stableFileSync:
		return a, fmt.Errorf("%w: WRITE stable_how %d", ErrGarbage, a.Stable)
	}
	return a, nil
}

// commitArgs are COMMIT3args.
type commitArgs struct {
	File   []byte
	Offset uint64
	Count  uint32
}

func decodeCommitArgs(b []byte) (commitArgs, error) {
	r := &xdrReader{b: b}
	a := commitArgs{File: r.opaque(nfsHandleMaxLen), Offset: r.u64(), Count: r.u32()}
	return a, r.err
}

// nfsWrite answers WRITE: pwrite at the offset through the open-file
// cache, as the caller (checkAccessLocked; the kernel clears setuid and
// setgid bits as for any writer without CAP_FSETID), then, for DATA_SYNC
// fdatasync and for FILE_SYNC fsync (every WRITE unless the export allows
// UnstableWrites), and the reply says what was done: UNSTABLE, DATA_SYNC or
// FILE_SYNC, never more. A sync error fails the
// WRITE and changes the write verifier (see resetVerifier).
func (s *Server) nfsWrite(xid uint32, fs *FS, args []byte, syncAll bool) []byte {
	a, err := decodeWriteArgs(args)
	if err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	if syncAll {
		a.Stable = stableFileSync // the export does not allow UnstableWrites
	}
	if a.Offset > math.MaxInt64-uint64(len(a.Data)) {
		return writeFailure(xid, fmt.Errorf("nfsgw: write at %d: %w", a.Offset, unix.EFBIG), nil, nil)
	}
	if err := s.fs.checkWrite("write", "(handle)"); err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	f, err := s.files.acquire(a.File, unix.O_RDWR)
	if err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	defer s.files.release(f)
	pre, err := s.files.stat(f)
	if err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	// Both before the data is written: a failed sync of this descriptor
	// from here on may have dropped it (filesync.go).
	failures, verf := f.failures.Load(), s.writeVerifier()
	n := 0
	werr := fs.do(func() error {
		if err := fs.checkAccessLocked(f.fd, true); err != nil {
			return err
		}
		for n < len(a.Data) {
			m, err := unix.Pwrite(f.fd, a.Data[n:], int64(a.Offset)+int64(n))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("nfsgw: write: %w", err)
			}
			if m == 0 {
				return fmt.Errorf("nfsgw: write: %w", io.ErrShortWrite)
			}
			n += m
		}
		return nil
	})
	if werr != nil && n == 0 {
		post, _ := fstatInfo(f.fd)
		return writeFailure(xid, werr, pre, post)
	}
	// A short write (an error after some bytes) answers the count written;
	// the client sends the rest again and gets the error then.
	committed := a.Stable
	if committed == stableUnstable {
		f.unsynced.Store(true)
	} else {
		if err := s.files.sync(f, committed == stableDataSync); err != nil {
			return s.syncFailed(xid, "sync", f.fd, err, pre)
		}
		if f.syncFailures() != failures {
			err := fmt.Errorf("nfsgw: write: a sync of this file failed meanwhile and may have dropped this write: %w", unix.EIO)
			return s.syncFailed(xid, "sync", f.fd, err, pre)
		}
	}
	post, _ := fstatInfo(f.fd)
	w := &xdrWriter{b: make([]byte, 4, 256)}
	w.acceptedHeader(xid, acceptSuccess)
	w.u32(uint32(nfs.NFSStatusOk))
	appendWcc(w, pre, post)
	w.u32(uint32(n))
	w.u32(committed)
	w.b = append(w.b, verf[:]...)
	return w.b
}

// syncFailed answers a WRITE or COMMIT whose sync failed (the failure
// changed the verifier already, in openFiles.sync, so clients resend what
// they had not committed): the call fails with the sync's error.
func (s *Server) syncFailed(xid uint32, what string, fd int, err error, pre *statInfo) []byte {
	post, _ := fstatInfo(fd)
	return writeFailure(xid, fmt.Errorf("nfsgw: %s: %w", what, err), pre, post)
}

// writeFailure is a framed WRITE3resfail or COMMIT3resfail: status and
// wcc_data.
func writeFailure(xid uint32, err error, pre, post *statInfo) []byte {
	w := &xdrWriter{b: make([]byte, 4, 160)}
	w.acceptedHeader(xid, acceptSuccess)
	w.u32(uint32(nfsStatus(err)))
	appendWcc(w, pre, post)
	return w.b
}

// nfsCommit answers COMMIT: fsync of the file through the open-file cache
// (the descriptor the WRITEs used, if still open; fsync reports a
// writeback error to every descriptor open before it happened, and to the
// next opener if nobody saw it), and the write verifier. The caller must
// be allowed to write the file (or own it). An fsync error fails the
// COMMIT and changes the verifier, so that the client sends its
// uncommitted WRITEs again.
func (s *Server) nfsCommit(xid uint32, fs *FS, args []byte) []byte {
	a, err := decodeCommitArgs(args)
	if err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	f, err := s.files.acquire(a.File, unix.O_RDONLY)
	if err != nil {
		return writeFailure(xid, err, nil, nil)
	}
	defer s.files.release(f)
	pre, err := s.files.stat(f)
	if err == nil {
		err = fs.do(func() error { return fs.checkAccessLocked(f.fd, true) })
	}
	if err != nil {
		return writeFailure(xid, err, nil, pre)
	}
	if err := s.files.sync(f, false); err != nil {
		return s.syncFailed(xid, "commit", f.fd, err, pre)
	}
	// The verifier once the syncs beside this one have counted their
	// failures: one of them may have been told of an error about data
	// this COMMIT covers, and changed the verifier.
	f.syncFailures()
	post, _ := fstatInfo(f.fd)
	verf := s.writeVerifier()
	w := &xdrWriter{b: make([]byte, 4, 160)}
	w.acceptedHeader(xid, acceptSuccess)
	w.u32(uint32(nfs.NFSStatusOk))
	appendWcc(w, pre, post)
	w.b = append(w.b, verf[:]...)
	return w.b
}

// writeVerifier returns the current write verifier.
func (s *Server) writeVerifier() [8]byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], s.verf.Load())
	return v
}

// resetVerifier gives the gateway a new write verifier after a failed
// fsync (cause). The kernel may have dropped dirty pages of UNSTABLE
// writes already acknowledged, and reports the error once per descriptor:
// a later COMMIT could succeed without them. With a new verifier every
// client sees, at its next WRITE or COMMIT reply, that its uncommitted
// writes must be sent again (knfsd does the same).
func (s *Server) resetVerifier(cause error) {
	old := s.verf.Load()
	v := old + 1 // if the random source fails: still a different value
	var b [8]byte
	if _, err := rand.Read(b[:]); err == nil && binary.BigEndian.Uint64(b[:]) != old {
		v = binary.BigEndian.Uint64(b[:])
	}
	s.verf.Store(v)
	s.log.Warn("fsync failed: new write verifier, clients resend uncommitted writes", zap.Error(cause))
}

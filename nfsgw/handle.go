package nfsgw

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// A file handle holds the kernel's own handle for the inode
// (name_to_handle_at: inode and generation on ext4 and xfs), so it
// survives renames of any parent and a restart of the gateway, and, for a
// non-directory, the kernel handle of the directory it was in when the
// handle was made. The kernel reconnects a directory handle to its path
// by itself, but a file whose dentry left the cache comes back from
// open_by_handle_at disconnected (no path); the parent lets the gateway
// find its name again (see FS.pathOf). Layout, big endian:
//
//	byte 0      handleVersion
//	byte 1      length of the file's kernel handle (n, 1-255)
//	byte 2      length of the parent's kernel handle (m, 0 if none)
//	byte 3      zero
//	bytes 4-5   the file's kernel handle type
//	bytes 6-7   the parent's kernel handle type (zero if none)
//	bytes 8-    the file's kernel handle, zero padded to a multiple of 4,
//	            then the parent's, likewise
//
// The whole is a multiple of 4 bytes and at most maxHandleLen (NFSv3 allows
// 64); a parent that does not fit is left out.
const (
	handleVersion   = 2
	handleHeaderLen = 8
	maxHandleLen    = 64
)

// fileHandle is a decoded file handle.
type fileHandle struct {
	file      unix.FileHandle
	parent    unix.FileHandle
	hasParent bool
}

func pad4(n int) int { return (n + 3) &^ 3 }

// encodeHandle packs a kernel handle, and its parent's if hasParent, into
// an NFS file handle.
func encodeHandle(h fileHandle) ([]byte, error) {
	fb := h.file.Bytes()
	if len(fb) == 0 || handleHeaderLen+pad4(len(fb)) > maxHandleLen || h.file.Type() < 0 || h.file.Type() > 0xffff {
		return nil, fmt.Errorf("%w: kernel handle of %d bytes, type %d", ErrBadHandle, len(fb), h.file.Type())
	}
	var pb []byte
	if h.hasParent {
		pb = h.parent.Bytes()
		if len(pb) == 0 || handleHeaderLen+pad4(len(fb))+pad4(len(pb)) > maxHandleLen || h.parent.Type() < 0 || h.parent.Type() > 0xffff {
			pb = nil
		}
	}
	out := make([]byte, handleHeaderLen+pad4(len(fb))+pad4(len(pb)))
	out[0] = handleVersion
	out[1] = byte(len(fb))
	out[2] = byte(len(pb))
	binary.BigEndian.PutUint16(out[4:6], uint16(h.file.Type()))
	if pb != nil {
		binary.BigEndian.PutUint16(out[6:8], uint16(h.parent.Type()))
	}
	copy(out[handleHeaderLen:], fb)
	copy(out[handleHeaderLen+pad4(len(fb)):], pb)
	return out, nil
}

// decodeHandle unpacks an NFS file handle. It returns ErrBadHandle for
// anything encodeHandle could not have produced.
func decodeHandle(fh []byte) (fileHandle, error) {
	bad := func(why string) (fileHandle, error) {
		return fileHandle{}, fmt.Errorf("%w: %s (%d bytes)", ErrBadHandle, why, len(fh))
	}
	if len(fh) < handleHeaderLen || len(fh) > maxHandleLen || len(fh)%4 != 0 || fh[0] != handleVersion || fh[3] != 0 {
		return bad("header")
	}
	n, m := int(fh[1]), int(fh[2])
	if n == 0 || handleHeaderLen+pad4(n)+pad4(m) != len(fh) {
		return bad("lengths")
	}
	if m == 0 && (fh[6] != 0 || fh[7] != 0) {
		return bad("parent type without a parent")
	}
	fileEnd := handleHeaderLen + pad4(n)
	for i := handleHeaderLen + n; i < fileEnd; i++ {
		if fh[i] != 0 {
			return bad("padding")
		}
	}
	for i := fileEnd + m; i < len(fh); i++ {
		if fh[i] != 0 {
			return bad("padding")
		}
	}
	h := fileHandle{
		file: unix.NewFileHandle(int32(binary.BigEndian.Uint16(fh[4:6])), append([]byte(nil), fh[handleHeaderLen:handleHeaderLen+n]...)),
	}
	if m > 0 {
		h.hasParent = true
		h.parent = unix.NewFileHandle(int32(binary.BigEndian.Uint16(fh[6:8])), append([]byte(nil), fh[fileEnd:fileEnd+m]...))
	}
	return h, nil
}

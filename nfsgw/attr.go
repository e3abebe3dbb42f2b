package nfsgw

import (
	"time"
	"unsafe"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// Attributes of the procedures the front answers on the data path (READ,
// WRITE, COMMIT, FSINFO), encoded without reflection.
//
// They are exactly what go-nfs sends for the same file (nfs.ToFileAttribute
// over our statInfo; attr_test.go checks the bytes): the Linux client keeps
// one attribute cache per file fed by both (GETATTR and LOOKUP come from
// go-nfs), and it compares mtime and ctime across replies to decide whether
// its cached data is still valid, so two encodings of the same inode must
// agree. That includes go-nfs's simplifications: atime and ctime are sent
// as the mtime, the mode word is Go's os.FileMode bits (statInfo.Mode adds
// the POSIX setuid, setgid and sticky bits, which clients read), fsid is 0.

// fattr3Len is the size of an encoded fattr3.
const fattr3Len = 84

// fstatInfo fstats an open descriptor into a statInfo.
func fstatInfo(fd int) (*statInfo, error) {
	fi := &statInfo{}
	if err := unix.Fstat(fd, (*unix.Stat_t)(unsafe.Pointer(&fi.st))); err != nil {
		return nil, err
	}
	return fi, nil
}

// appendFattr3 appends fi's fattr3, as go-nfs encodes it.
func appendFattr3(w *xdrWriter, fi *statInfo) {
	a := nfs.ToFileAttribute(fi, "")
	w.u32(uint32(a.Type))
	w.u32(a.FileMode)
	w.u32(a.Nlink)
	w.u32(a.UID)
	w.u32(a.GID)
	w.u64(a.Filesize)
	w.u64(a.Used)
	w.u32(a.SpecData[0])
	w.u32(a.SpecData[1])
	w.u64(a.FSID)
	w.u64(a.Fileid)
	appendTime(w, a.Atime)
	appendTime(w, a.Mtime)
	appendTime(w, a.Ctime)
}

func appendTime(w *xdrWriter, t nfs.FileTime) {
	w.u32(t.Seconds)
	w.u32(t.Nseconds)
}

// appendPostOp appends a post_op_attr: fi's attributes, or none if nil.
func appendPostOp(w *xdrWriter, fi *statInfo) {
	if fi == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	appendFattr3(w, fi)
}

// appendWcc appends a wcc_data: pre-op size, mtime and ctime from pre and
// post-op attributes from post (either may be nil).
func appendWcc(w *xdrWriter, pre, post *statInfo) {
	if pre == nil {
		w.u32(0)
	} else {
		mt := nfs.ToNFSTime(time.Unix(pre.st.Mtim.Sec, pre.st.Mtim.Nsec))
		w.u32(1)
		w.u64(uint64(pre.st.Size))
		appendTime(w, mt) // mtime
		appendTime(w, mt) // ctime, as go-nfs sends it
	}
	appendPostOp(w, post)
}

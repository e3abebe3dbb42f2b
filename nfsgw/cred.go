package nfsgw

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cred is the identity an operation runs as: the caller's AUTH_SYS
// credentials, after root squashing.
type Cred struct {
	UID    uint32
	GID    uint32
	Groups []uint32
}

// credKey is a comparable form of a Cred (a map key).
type credKey struct {
	uid, gid uint32
	groups   string
}

func (c Cred) key() credKey {
	b := make([]byte, 0, 4*len(c.Groups))
	for _, g := range c.Groups {
		b = append(b, byte(g>>24), byte(g>>16), byte(g>>8), byte(g))
	}
	return credKey{c.UID, c.GID, string(b)}
}

// As returns a view of f whose operations run as c: the kernel checks
// permissions for c's uid, gid and groups (setfsuid, setfsgid and setgroups
// on a locked OS thread, which also drops the filesystem capabilities for a
// non-zero uid), and new files belong to c. The view shares f's descriptor.
func (f *FS) As(c Cred) *FS {
	v := *f
	v.cred = &c
	return &v
}

// do runs fn as f's Cred, if any. The thread is locked for the call; if
// the identity cannot be restored afterwards the thread stays locked, so
// the runtime retires it with the goroutine.
func (f *FS) do(fn func() error) error {
	if f.cred == nil {
		return fn()
	}
	runtime.LockOSThread()
	if err := setThreadCred(f.cred.UID, f.cred.GID, f.cred.Groups); err != nil {
		if rerr := setThreadCred(0, 0, f.rootGroups); rerr == nil {
			runtime.UnlockOSThread()
		}
		return fmt.Errorf("nfsgw: become uid %d: %w", f.cred.UID, err)
	}
	err := fn()
	if rerr := setThreadCred(0, 0, f.rootGroups); rerr != nil {
		return fmt.Errorf("nfsgw: restore identity: %w", rerr)
	}
	runtime.UnlockOSThread()
	return err
}

// setThreadCred sets the calling thread's (only) supplementary groups,
// fsgid and fsuid. Raw syscalls: Go's syscall.Setgroups changes every
// thread of the process.
func setThreadCred(uid, gid uint32, groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return e
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	// setfsuid reports no error: read the values back.
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); uint32(got) != uid {
		return fmt.Errorf("fsuid is %d, not %d", got, uid)
	}
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); uint32(got) != gid {
		return fmt.Errorf("fsgid is %d, not %d", got, gid)
	}
	return nil
}

// processGroups returns the gateway's own supplementary groups.
func processGroups() []uint32 {
	gs, err := unix.Getgroups()
	if err != nil {
		return nil
	}
	out := make([]uint32, len(gs))
	for i, g := range gs {
		out[i] = uint32(g)
	}
	return out
}

// statInfo is an os.FileInfo made from a stat taken relative to the root
// descriptor. Sys returns *syscall.Stat_t, as os.Lstat's does (go-nfs reads
// uid, gid, nlink, rdev and inode from it).
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }

func (s *statInfo) Mode() os.FileMode {
	m := os.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= os.ModeDir
	case syscall.S_IFLNK:
		m |= os.ModeSymlink
	case syscall.S_IFIFO:
		m |= os.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= os.ModeSocket
	case syscall.S_IFCHR:
		m |= os.ModeDevice | os.ModeCharDevice
	case syscall.S_IFBLK:
		m |= os.ModeDevice
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	// The POSIX bits too: go-nfs sends this word as the mode, and a client
	// reads only its low 12 bits (Go's ModeSetuid and the like are higher).
	return m | os.FileMode(s.st.Mode&0o7000)
}

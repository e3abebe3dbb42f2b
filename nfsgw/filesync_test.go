package nfsgw

import (
	"sync/atomic"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"
)

// dataServer returns a Server without sockets over a new folder, for
// calling its data procedures directly.
func dataServer(t *testing.T) (*Server, *FS) {
	t.Helper()
	fs, _ := newTestFS(t)
	s := &Server{cfg: Config{FS: fs, Exports: allowAll("/data")}, fs: fs}
	s.cfg = s.cfg.withDefaults()
	s.log = s.cfg.Logger
	s.files = newOpenFiles(fs, s.resetVerifier)
	t.Cleanup(s.files.closeAll)
	return s, fs
}

// replyStatus returns the NFS status of a framed reply from nfsWrite or
// nfsCommit.
func replyStatus(t *testing.T, reply []byte) nfs.NFSStatus {
	t.Helper()
	x := &xdrReader{b: reply[4:]}
	x.u32() // xid
	x.u32() // REPLY
	x.u32() // MSG_ACCEPTED
	x.u32() // verifier flavour
	x.opaque(maxAuthBody)
	if st := x.u32(); st != acceptSuccess || x.err != nil {
		t.Fatalf("accept_stat %d, %v", st, x.err)
	}
	return nfs.NFSStatus(x.u32())
}

// TestFileSyncFailureFailsEveryWrite: two FILE_SYNC WRITEs share the
// cached descriptor; the kernel tells the first one's fsync of a
// writeback error (possibly about the second's data, which it drops) and
// the second one's fsync then succeeds. The second must not be answered
// OK: its data may be gone.
func TestFileSyncFailureFailsEveryWrite(t *testing.T) {
	s, fs := dataServer(t)
	writeFile(t, fs, "f", "")
	fh, err := fs.handleOf("f")
	if err != nil {
		t.Fatal(err)
	}
	firstIn, secondDone := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	s.files.fsync = func(fd int, dataOnly bool) error {
		switch calls.Add(1) {
		case 1:
			close(firstIn)
			<-secondDone
			return unix.EIO
		case 2:
			close(secondDone)
		}
		return nil
	}
	first := make(chan nfs.NFSStatus)
	go func() {
		first <- replyStatus(t, s.nfsWrite(1, fs, writeArgsXDR(fh, 0, stableFileSync, []byte("aaaa")), false))
	}()
	<-firstIn
	verf := s.writeVerifier()
	if st := replyStatus(t, s.nfsWrite(2, fs, writeArgsXDR(fh, 4, stableFileSync, []byte("bbbb")), false)); st == nfs.NFSStatusOk {
		t.Error("a FILE_SYNC WRITE was answered OK although a sync beside it failed")
	}
	if st := <-first; st != nfs.NFSStatusIO {
		t.Errorf("the WRITE whose fsync failed: status %d, want EIO", st)
	}
	if s.writeVerifier() == verf {
		t.Error("the verifier did not change after a failed sync")
	}
}

// TestUnsyncedDescriptorSyncedAtClose: a descriptor with UNSTABLE writes
// and no COMMIT yet is synced before the cache closes it; a failure then
// changes the verifier, so that the client's COMMIT (on a new descriptor,
// which the kernel may never tell of the error) makes it resend.
func TestUnsyncedDescriptorSyncedAtClose(t *testing.T) {
	s, fs := dataServer(t)
	writeFile(t, fs, "f", "")
	fh, err := fs.handleOf("f")
	if err != nil {
		t.Fatal(err)
	}
	var syncs atomic.Int32
	s.files.fsync = func(int, bool) error { syncs.Add(1); return unix.EIO }
	if st := replyStatus(t, s.nfsWrite(1, fs, writeArgsXDR(fh, 0, stableUnstable, []byte("aaaa")), false)); st != nfs.NFSStatusOk {
		t.Fatalf("UNSTABLE WRITE: status %d", st)
	}
	verf := s.writeVerifier()
	s.files.closeAll()
	if syncs.Load() != 1 {
		t.Fatalf("%d syncs at close, want 1", syncs.Load())
	}
	if s.writeVerifier() == verf {
		t.Error("a failed sync at close left the verifier as it was")
	}
}

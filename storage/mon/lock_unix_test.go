//go:build unix

package mon

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A plain etcd holds bbolt's flock on member/snap/db but not our lock file.
func TestLockDataDirForeignEtcd(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "member", "snap", "db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("lockDataDir = %v, want ErrDataDirInUse", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lockDataDir after unlock = %v", err)
	}
	unlock()
}

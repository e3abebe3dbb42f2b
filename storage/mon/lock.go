package mon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
)

// lockFileName is the lock every mon takes in its data directory before it
// starts etcd. etcd's own database lock makes a second opener wait forever
// instead of failing, so we take ours first and fail at once.
const lockFileName = "tsumiki-mon.lock"

// lockDataDir creates dir if needed and locks it for this mon. The returned
// function releases the lock.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mon: create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	lf, err := fileutil.TryLockFile(path, os.O_WRONLY|os.O_CREATE, fileutil.PrivateFileMode)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("%w: %s is locked by another mon on this host; stop it or pass a different --data directory", ErrDataDirInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("mon: lock data directory %s: %w", dir, err)
	}
	// A plain etcd (not a mon) using the directory holds the database lock
	// without ours; detect it rather than block inside etcd.
	db := filepath.Join(dir, "member", "snap", "db")
	if err := probeDBLock(db); err != nil {
		lf.Close()
		if errors.Is(err, errDBLocked) {
			return nil, fmt.Errorf("%w: etcd's database %s is locked by another process (an etcd or mon); stop it or pass a different --data directory", ErrDataDirInUse, db)
		}
		return nil, fmt.Errorf("mon: check lock on %s: %w", db, err)
	}
	return func() { lf.Close() }, nil
}

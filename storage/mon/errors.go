package mon

import "errors"

var (
	// ErrInvalidConfig is returned by New and Config.Validate when a setting
	// is missing or malformed. The wrapped message names the setting.
	ErrInvalidConfig = errors.New("mon: invalid configuration")

	// ErrDataDirInUse is returned by Run when another mon (or a plain etcd)
	// holds the lock on the data directory.
	ErrDataDirInUse = errors.New("mon: data directory is in use")

	// ErrNotReady is returned by Run when the member did not become ready
	// (joined a cluster with a leader) within Config.ReadyTimeout.
	ErrNotReady = errors.New("mon: etcd member not ready")

	// ErrStopped is returned by Run when etcd stopped or failed on its own,
	// before the caller cancelled the context.
	ErrStopped = errors.New("mon: etcd member stopped unexpectedly")

	// errDBLocked reports that probeDBLock found etcd's database locked.
	errDBLocked = errors.New("mon: database locked")
)

package clustermap

import (
	"errors"
	"fmt"
)

var (
	// ErrExists: the pool (or other named thing) already exists.
	ErrExists = errors.New("clustermap: already exists")
	// ErrNotFound: no such pool or OSD in the current map.
	ErrNotFound = errors.New("clustermap: not found")
	// ErrInvalid: a value was refused (bad name, size, weight, unknown flag,
	// or a pool the current OSDs cannot place).
	ErrInvalid = errors.New("clustermap: invalid value")
	// ErrUnsupported: a valid request this version cannot carry out yet.
	ErrUnsupported = errors.New("clustermap: not supported yet")
	// ErrConflict: the map kept changing under a mutation; it gave up after
	// its bounded compare-and-swap retries.
	ErrConflict = errors.New("clustermap: too many concurrent map changes")
	// ErrCorrupt: the map stored in etcd cannot be decoded.
	ErrCorrupt = errors.New("clustermap: stored map is corrupt")
	// ErrUnreachable: Dial could not reach the control plane.
	ErrUnreachable = errors.New("clustermap: cannot reach the control plane")

	// errLeaseLost ends one lease's life in KeepAlive.
	errLeaseLost = errors.New("clustermap: liveness lease expired")

	// errWatchClosed: a watch channel closed while ctx is still live.
	errWatchClosed = errors.New("clustermap: watch closed by the client")
)

// errorf builds an error classified under kind (one of the sentinels):
// "<kind text>: <op>: <details>". Any %w in format stays wrapped as well.
func errorf(kind error, op, format string, args ...any) error {
	return fmt.Errorf("%w: %s: "+format, append([]any{kind, op}, args...)...)
}

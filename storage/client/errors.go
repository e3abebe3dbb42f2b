package client

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("client: object not found")
	// ErrNoPool: no pool of that name in the cluster map.
	ErrNoPool = errors.New("client: no such pool")
	// ErrCorrupt: every replica's copy failed its checksum.
	ErrCorrupt = errors.New("client: data corrupt on every replica")
	// ErrTooLarge: beyond the 32 MiB object size limit.
	ErrTooLarge = errors.New("client: beyond the 32 MiB object limit")
	// ErrInvalid: the request was refused as malformed.
	ErrInvalid = errors.New("client: invalid request")
	// ErrUnavailable: the PG could not serve the request before the deadline.
	ErrUnavailable = errors.New("client: placement group unavailable")
	// ErrMapBehind: an OSD has seen a newer cluster map than the control
	// plane holds (its epoch went back: restored from a backup).
	ErrMapBehind = errors.New("client: the control plane's cluster map is behind the OSDs'")
	// ErrNoSpace: an OSD of the cluster is full, so writes are refused. It
	// matches syscall.ENOSPC too, so block protocols answer "no space".
	ErrNoSpace = fmt.Errorf("client: no space left in the cluster: %w", syscall.ENOSPC)
)

// statusError is an OSD's answer that ends a request.
type statusError struct {
	status wire.Status
	msg    string
}

func (e *statusError) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("osd answered %s: %s", e.status, e.msg)
	}
	return "osd answered " + e.status.String()
}

func (e *statusError) Unwrap() error {
	switch e.status {
	case wire.StatusNotFound:
		return ErrNotFound
	case wire.StatusCorrupt:
		return ErrCorrupt
	case wire.StatusTooLarge:
		return ErrTooLarge
	case wire.StatusInvalid:
		return ErrInvalid
	case wire.StatusNoSpace:
		return ErrNoSpace
	}
	return nil
}

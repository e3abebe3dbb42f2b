package image

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: no image of that name in that pool.
	ErrNotFound = errors.New("image: not found")
	// ErrExists: an image of that name already exists in the pool.
	ErrExists = errors.New("image: already exists")
	// ErrLocked: another holder has the image's exclusive lock; the error
	// is a *LockedError that names it.
	ErrLocked = errors.New("image: locked by another holder")
	// ErrNotLocked: BreakLock found no lock to break.
	ErrNotLocked = errors.New("image: not locked")
	// ErrFenced: this holder lost the image's lock (broken, or its lease
	// may have expired) and refuses further IO; reopen the image.
	ErrFenced = errors.New("image: lock lost, IO refused (fenced)")
	// ErrShrink: a resize would make the image smaller and discard data,
	// and ResizeOptions.AllowShrink was not set.
	ErrShrink = errors.New("image: shrinking discards data and was not allowed")
	// ErrInvalidSize: an image size that is zero, negative, not a multiple
	// of 512 or above MaxSize.
	ErrInvalidSize = errors.New("image: invalid size")
	// ErrInvalid: a bad name, layout, option or configuration.
	ErrInvalid = errors.New("image: invalid argument")
	// ErrOutOfRange: an IO reaches past the end of the image.
	ErrOutOfRange = errors.New("image: IO beyond the end of the image")
	// ErrReadOnly: a write to an image opened read-only.
	ErrReadOnly = errors.New("image: opened read-only")
	// ErrClosed: the Image was closed.
	ErrClosed = errors.New("image: closed")
	// ErrCorrupt: a header or lock record in etcd cannot be decoded.
	ErrCorrupt = errors.New("image: stored record is corrupt")
)

// LockedError is ErrLocked with the holder that has the lock.
type LockedError struct {
	Pool, Name string
	Holder     Holder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v: %s/%s is held by %v", ErrLocked, e.Pool, e.Name, e.Holder)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

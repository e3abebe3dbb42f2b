package chunkstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps at most one of
// them (a *CorruptError matches ErrCorrupt, and ErrDamagedEntry too when it
// says so); classify with errors.Is.
var (
	// ErrNotFound: the object, raft entry or other key does not exist.
	ErrNotFound = errors.New("chunkstore: not found")
	// ErrCorrupt: stored bytes failed verification or could not be read back.
	// The error is a *CorruptError that says where.
	ErrCorrupt = errors.New("chunkstore: corrupt data")
	// ErrDamagedEntry: the data of a placed raft entry (a large write kept
	// in its object's slots, Place) failed its checksum, or was found so
	// before and dropped. The entry's head is intact (EntryHeads), the
	// other replicas hold the data, and ApplyPlaced still applies it. The
	// error is a *CorruptError: it matches ErrCorrupt as well.
	ErrDamagedEntry = errors.New("chunkstore: damaged raft entry data")
	// ErrLocked: another Store (in this or another process) has the directory open.
	ErrLocked = errors.New("chunkstore: directory locked")
	// ErrConfig: the configuration is invalid or does not match the store on disk.
	ErrConfig = errors.New("chunkstore: invalid config")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("chunkstore: store closed")
	// ErrTooLarge: a write, object or value exceeds a size limit.
	ErrTooLarge = errors.New("chunkstore: too large")
	// ErrInvalid: an argument is invalid (negative offset, bad object name,
	// a gap in the raft log, a batch used after Commit).
	ErrInvalid = errors.New("chunkstore: invalid argument")
)

// CorruptError describes damaged data. It matches ErrCorrupt with errors.Is
// and unwraps to the underlying badger error, if any. The OSD uses PG and
// Object to repair the replica from its peers.
type CorruptError struct {
	Op     string // operation that found the damage: "read", "digest", "entries", "open", ...
	PG     PG
	Object string // object name; empty when the damage is not in an object
	Block  int64  // block index; -1 when the damage is not in an object block
	Detail string // what is wrong
	Err    error  // badger's error, when badger reported it
}

func (e *CorruptError) Error() string {
	where := e.Op
	if e.Op != "open" {
		where += " pg " + e.PG.String()
	}
	if e.Object != "" {
		where += fmt.Sprintf(" object %q", e.Object)
	}
	if e.Block >= 0 {
		where += fmt.Sprintf(" block %d", e.Block)
	}
	msg := fmt.Sprintf("%v: %s: %s", ErrCorrupt, where, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying badger error, if any.
func (e *CorruptError) Unwrap() error { return e.Err }

// loc names what an operation touches, for error messages.
type loc struct {
	op     string
	pg     PG
	object string
	block  int64
}

func (l loc) corrupt(detail string, err error) error {
	return &CorruptError{Op: l.op, PG: l.pg, Object: l.object, Block: l.block, Detail: detail, Err: err}
}

func (l loc) wrap(err error) error {
	if l.object != "" {
		return fmt.Errorf("chunkstore: %s pg %s object %q: %w", l.op, l.pg, l.object, err)
	}
	return fmt.Errorf("chunkstore: %s pg %s: %w", l.op, l.pg, err)
}

func (l loc) withBlock(b int64) loc { l.block = b; return l }

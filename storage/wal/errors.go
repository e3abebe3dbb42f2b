package wal

import "errors"

var (
	// ErrCorrupt: a record or entry failed its checksum.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrNotFound: the entry is not in the log (compacted or never written).
	ErrNotFound = errors.New("wal: entry not in the log")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("wal: closed")
	// ErrInvalid: a call broke the log's rules (e.g. a gap in the indexes).
	ErrInvalid = errors.New("wal: invalid use")
)

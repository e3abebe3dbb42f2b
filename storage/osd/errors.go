package osd

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader: this replica is not the PG's leader; retry at the leader.
	ErrNotLeader = errors.New("osd: not the pg leader")
	// ErrNoPG: this OSD holds no replica of the PG.
	ErrNoPG = errors.New("osd: no such pg on this osd")
	// ErrDegraded: fewer than min_size replicas are reachable; writes wait.
	ErrDegraded = errors.New("osd: pg degraded below min_size")
	// ErrTimeout: the operation did not finish in time; its outcome is unknown.
	ErrTimeout = errors.New("osd: operation timed out")
	// ErrTooLate: a mutation was not proposed because its client may have
	// given up on it (wire.Request.Sent); nothing was changed.
	ErrTooLate = fmt.Errorf("%w: not proposed, its client may have given up on it", ErrTimeout)
	// ErrClosing: the OSD is shutting down.
	ErrClosing = errors.New("osd: shutting down")
	// ErrBadEntry: a raft entry does not decode (a bug or corruption).
	ErrBadEntry = errors.New("osd: undecodable raft entry")
	// ErrLocked: another daemon uses the data directory.
	ErrLocked = errors.New("osd: data directory in use")
	// ErrFull: an OSD of the cluster reports its device full; writes are
	// refused until it is not (deletes and discards, which free space, go on).
	ErrFull = errors.New("osd: cluster full")
	// ErrInstalling: this replica is installing a snapshot, or has not
	// caught up past its copy yet (snapshot.go); read another replica, or
	// retry.
	ErrInstalling = errors.New("osd: pg replica is installing a snapshot")
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("osd: invalid config")
)

package osd

import "github.com/tsumiki-storage/tsumiki/storage/chunkstore"

// PG names a placement group (pool id, pg number).
type PG = chunkstore.PG

// Store is what an OSD needs from its device: the raft log and state of each
// PG it hosts and the objects. *chunkstore.Store provides it (through
// ChunkStore); tests may use an in-memory implementation.
type Store interface {
	LoadRaft(pg PG) (chunkstore.RaftState, error)
	Entries(pg PG, lo, hi, maxBytes uint64) ([][]byte, error)
	// EntryHeads is Entries without the data of placed entries, which
	// does not fail when that data is damaged (damaged.go).
	EntryHeads(pg PG, lo, hi uint64) ([]chunkstore.EntryHead, error)
	ListPGs() ([]PG, error)
	NewBatch() Batch
	Read(pg PG, object string, off int64, p []byte) error
	// ReadSkippingDamage reads a whole object past its damaged blocks,
	// which read as zeros, and says where they are (CopyOut).
	ReadSkippingDamage(pg PG, object string, p []byte) ([]chunkstore.Range, error)
	Stat(pg PG, object string) (chunkstore.ObjectInfo, error)
	List(pg PG, prefix, after string, limit int) ([]chunkstore.ObjectInfo, error)
	Digest(pg PG) (apply []byte, sum [32]byte, objects int, err error)
	// Recover says that pg's entries up to through are about to be
	// re-applied after a restart (see chunkstore.Store.Recover).
	Recover(pg PG, through uint64)
	// BeginInstall and EndInstall install a snapshot of pg (snapshot.go;
	// chunkstore.Store.BeginInstall): the first empties pg but for its
	// hard state, the second gives it applyState and a log restarting at
	// first, durably; AbortInstall gives an install up, leaving the hard
	// state alone.
	BeginInstall(pg PG) error
	EndInstall(pg PG, applyState []byte, first uint64) error
	AbortInstall(pg PG) error
	// DropPG removes pg and everything of it, durably (a replica that
	// moved away: move.go), but keeps tomb, the seat floor of a later copy
	// (seat.go), which LoadRaft gives as Tomb from then on;
	// chunkstore.ErrBusy while data placed ahead for it is in flight.
	DropPG(pg PG, tomb uint64) error
}

// Batch is one cycle's store changes. When Commit returns nil the raft
// records (entries, hard state) are durable and the object changes are
// applied; the apply state becomes durable later, with the object changes
// it covers, and after a crash the OSD re-applies the log from there.
// Byte slices passed in may be reused by the caller once Commit or Discard
// has returned, not before.
type Batch interface {
	AppendEntries(pg PG, first uint64, ents [][]byte) error
	// AppendPlaced is AppendEntries naming the large writes in ents, which
	// the store may keep once, in the object files (chunkstore.Place).
	AppendPlaced(pg PG, first uint64, ents [][]byte, places []chunkstore.Place) error
	SetHardState(pg PG, hs []byte) error
	SetApplyState(pg PG, st []byte) error
	CompactLog(pg PG, upTo uint64) error
	Write(pg PG, object string, off int64, data []byte, version uint64) error
	// ApplyPlaced applies the placed write logged at version without its
	// data, which is damaged here (damaged.go).
	ApplyPlaced(pg PG, object string, off, n int64, version uint64) error
	Truncate(pg PG, object string, size int64, version uint64) error
	Zero(pg PG, object string, off, length int64, version uint64) error
	Delete(pg PG, object string) error
	// MarkDamaged marks an object's blocks damaged, as a copy from a
	// damaged replica leaves them (snapshot.go).
	MarkDamaged(pg PG, object string, off, length int64, version uint64) error
	Commit() error
	Discard()
}

// ChunkStore adapts *chunkstore.Store to Store.
type ChunkStore struct{ *chunkstore.Store }

// NewBatch implements Store.
func (c ChunkStore) NewBatch() Batch { return c.Store.NewBatch() }

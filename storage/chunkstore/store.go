package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/y"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/wal"
)

// formatVersion is the on-disk layout version stored under storeMetaKey.
// Version 1 kept object blocks and the raft log in badger, in Dir itself.
const formatVersion = 2

// Store is one device's chunk store. Its methods are safe for concurrent use;
// see the package doc for the single-writer-per-PG rule.
type Store struct {
	cfg       Config
	log       *zap.Logger
	db        *badger.DB    // meta/: object index and durable apply states
	wal       *wal.Log      // wal/: raft entries and hard states of every PG
	files     *fileCache    // objects/: one file per object
	syncer    *objectSyncer // makes objects/ durable at checkpoints
	lock      *os.File      // our own flock on the directory: a clean ErrLocked for a second Store
	table     int64         // tableSize(BlockSize)
	zeroBlock []byte        // BlockSize zeros, read only

	locks   [256]sync.RWMutex // per object stripe: exclusive while an operation changes it, shared to read
	metas   *metaCache        // recently used object metas; see metacache.go
	backlog *metaBacklog      // metas applied but not yet in badger; see metabacklog.go

	closeMu sync.RWMutex // held shared by every operation, exclusively by Close; guards closed
	closed  bool

	applyMu sync.RWMutex // held by Commit while it applies and publishes; shared by Digest

	placeMu    sync.Mutex                   // guards the following; see placement.go
	claims     *claims                      // slots that logged placements hold
	placements map[PG]map[uint64]*placement // placed entries in the log, by index
	inflight   map[objKey][]*placement      // placements of batches not yet committed; see reclaim.go
	pre        prePlacing                   // placements made ahead of their batch (preplace.go)

	directBufs  *directBufs          // aligned buffers for direct slot writes (direct.go)
	dropStop    func(step int) error // tests: stop DropPG there, as a crash would (droppg.go)
	installStop func(step int) error // tests: stop an install there, as a crash would (install.go)
	noDirect    atomic.Bool          // the file system refused O_DIRECT: slot writes go through the page cache
	stats       placeStats           // counters of the placement paths
	orphans     OrphanCounts         // what Open removed (orphans.go)

	ckptMu  sync.Mutex    // serializes checkpoints and guards reserve
	reserve staleReserve  // stale slots kept allocated for reuse (reclaim.go)
	kick    chan struct{} // asks RunCheckpoints for an early checkpoint

	mu       sync.Mutex // guards the following
	spareWAL *wal.Batch // a reset WAL batch whose buffer the next Batch reuses
	pending  map[PG]pendingState
	since    int64         // object bytes applied since the last checkpoint
	recovery map[PG]uint64 // see Recover
	applied  map[PG]uint64 // highest operation version applied per PG since open
	durable  map[PG][]byte // apply states as of the last checkpoint (also in meta)
}

// Open opens (creating if needed) the store in cfg.Dir.
//
// Errors: ErrConfig (invalid config, or BlockSize differs from the one the
// store was created with), ErrLocked (another Store, in this process or
// another, or any other badger user has the directory open),
// ErrCorrupt (an LSM table fails its checksum, unless cfg.SkipVerifyOnOpen),
// or badger's error wrapped with the directory.
func Open(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("chunkstore: open %q: %w", cfg.Dir, err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "MANIFEST")); err == nil {
		_ = unlockDir(lock)
		return nil, fmt.Errorf("%w: %q holds a store of format 1 (object data in badger), which this build does not read; "+
			"move the data to a new OSD (or remove the directory if it holds nothing you need)", ErrConfig, cfg.Dir)
	}
	metaDir := filepath.Join(cfg.Dir, "meta")
	db, err := badger.Open(badgerOptions(cfg, metaDir))
	if err != nil {
		_ = unlockDir(lock)
		if badgerLockHeld(metaDir) {
			return nil, fmt.Errorf("%w: another process uses directory %q: %w", ErrLocked, cfg.Dir, err)
		}
		if isBadgerChecksumErr(err) {
			return nil, &CorruptError{Op: "open", Block: -1, Detail: "badger could not open " + metaDir, Err: err}
		}
		return nil, fmt.Errorf("chunkstore: open %q: %w", metaDir, err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, db: db, lock: lock,
		files: newFileCache(filepath.Join(cfg.Dir, "objects"), cfg.OpenFiles),
		table: tableSize(int64(cfg.BlockSize)), zeroBlock: make([]byte, cfg.BlockSize),
		kick: make(chan struct{}, 1), pending: map[PG]pendingState{}, recovery: map[PG]uint64{}, applied: map[PG]uint64{},
		metas: newMetaCache(defaultMetaCacheEntries), backlog: newMetaBacklog(),
		claims: newClaims(), placements: map[PG]map[uint64]*placement{}, directBufs: newDirectBufs()}
	s.pre = newPrePlacing(&s.placeMu)
	if err := s.openChecks(); err != nil {
		_ = db.Close()
		_ = unlockDir(lock)
		return nil, err
	}
	if err := os.MkdirAll(s.files.root, 0o750); err != nil {
		_ = db.Close()
		_ = unlockDir(lock)
		return nil, fmt.Errorf("chunkstore: open %q: %w", cfg.Dir, err)
	}
	if s.syncer, err = openObjectSyncer(s.files.root); err != nil {
		_ = db.Close()
		_ = unlockDir(lock)
		return nil, fmt.Errorf("chunkstore: open %q: %w", cfg.Dir, err)
	}
	s.wal, err = wal.Open(wal.Config{Dir: filepath.Join(cfg.Dir, "wal"), SegmentSize: cfg.WALSegmentSize, Logger: cfg.Logger})
	if err != nil {
		_ = s.syncer.close()
		_ = db.Close()
		_ = unlockDir(lock)
		return nil, walErr("open", PG{}, err)
	}
	if err = s.finishDrops(); err == nil {
		err = s.finishInstalls()
	}
	if err == nil {
		err = s.loadPlacements()
	}
	if err == nil {
		s.durable, err = s.loadApplyStates()
	}
	if err == nil {
		err = s.removeOrphans()
	}
	if err != nil {
		_ = s.wal.Close()
		_ = s.syncer.close()
		_ = db.Close()
		_ = unlockDir(lock)
		return nil, err
	}
	return s, nil
}

// badgerOptions: the meta DB does not sync each write; the raft log (WAL)
// is the durable record and checkpoints sync the meta (checkpoint.go).
func badgerOptions(cfg Config, dir string) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{cfg.Logger.Sugar()}).
		// Every badger write is a checkpoint's (metas written behind, apply
		// states) or a scan's flush: about one commit per second, each
		// synced. Acknowledged data is durable in the WAL before that.
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		WithCompression(options.None).
		WithDetectConflicts(false). // one writer per PG, see package doc
		WithMetricsEnabled(false).  // badger's metrics are process-global expvars
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithBlockCacheSize(cfg.BlockCacheSize).
		WithIndexCacheSize(cfg.IndexCacheSize).
		WithValueThreshold(cfg.ValueThreshold).
		WithValueLogFileSize(cfg.ValueLogFileSize).
		WithVerifyValueChecksum(true).
		WithChecksumVerificationMode(options.OnBlockRead)
}

// openChecks verifies the LSM tables and the stored format.
func (s *Store) openChecks() error {
	if !s.cfg.SkipVerifyOnOpen {
		// Any failure of this call is a table that does not verify; badger
		// flattens its error chain (y.Wrapf without %w), so there is nothing
		// finer to classify.
		if err := verifyTables(s.db); err != nil {
			return &CorruptError{Op: "open", Block: -1, Detail: "LSM table checksum verification failed", Err: err}
		}
	}
	l := loc{op: "open", block: -1}
	want := make([]byte, 8)
	binary.BigEndian.PutUint32(want, formatVersion)
	binary.BigEndian.PutUint32(want[4:], uint32(s.cfg.BlockSize))
	return s.db.Update(func(txn *badger.Txn) error {
		got, found, err := get(txn, storeMetaKey, l)
		switch {
		case err != nil:
			return err
		case !found:
			return txn.Set(storeMetaKey, seal(storeMetaKey, want))
		case len(got) != 8:
			return l.corrupt("malformed store meta", nil)
		case binary.BigEndian.Uint32(got) != formatVersion:
			return fmt.Errorf("%w: %q has format version %d, this build reads %d",
				ErrConfig, s.cfg.Dir, binary.BigEndian.Uint32(got), formatVersion)
		case binary.BigEndian.Uint32(got[4:]) != uint32(s.cfg.BlockSize):
			return fmt.Errorf("%w: %q was created with BlockSize %d, config says %d",
				ErrConfig, s.cfg.Dir, binary.BigEndian.Uint32(got[4:]), s.cfg.BlockSize)
		}
		return nil
	})
}

// verifyTables checks the checksum of every LSM table block.
func verifyTables(db *badger.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// Badger v4.9.6 Table.VerifyChecksum formats its error with the
			// block it failed to get, which is nil (table/table.go:711), when
			// blocks are verified on read (our ChecksumVerificationMode): a
			// damaged block panics there instead of returning an error. No
			// lock is held at that point; a table reference leaks, which does
			// not matter as Open closes the DB next.
			err = fmt.Errorf("badger panicked verifying a table block: %v", r)
		}
	}()
	return db.VerifyChecksum()
}

// Close takes a last checkpoint and closes the store; it waits for running
// operations. Later calls return nil. A Batch not yet committed is lost.
func (s *Store) Close() error {
	cerr := s.Checkpoint()
	if errors.Is(cerr, ErrClosed) {
		cerr = nil
	}
	// Give back the space of the reserve: the next process cannot know
	// these slots are stale until their blocks are written again.
	s.ckptMu.Lock()
	if s.enter() == nil {
		s.punchReserve()
		s.leave()
	}
	s.ckptMu.Unlock()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.files.closeAll()
	err := s.wal.Close()
	if serr := s.syncer.close(); err == nil {
		err = serr
	}
	if derr := s.db.Close(); err == nil {
		err = derr
	}
	if uerr := unlockDir(s.lock); err == nil {
		err = uerr
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chunkstore: close %q: %w", s.cfg.Dir, err)
	}
	return nil
}

// BlockSize returns the object block size in bytes.
func (s *Store) BlockSize() int { return s.cfg.BlockSize }

// UsedBytes returns the space the store occupies on disk (meta, raft log
// and object files), counting allocated blocks so that sparse and
// preallocated files do not count at their apparent size.
func (s *Store) UsedBytes() int64 {
	var n int64
	_ = filepath.WalkDir(s.cfg.Dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			n += allocatedBytes(fi)
		}
		return nil
	})
	return n
}

// enter starts an operation: it fails with ErrClosed after Close, and holds
// Close off until leave.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.closeMu.RUnlock() }

// get reads key in txn and verifies its seal. It returns found=false if the
// key does not exist. A value that badger cannot produce or that fails its
// seal is a *CorruptError at l.
//
// Badger v4.9.6 does not report value-log read failures from Item.ValueCopy:
// it logs them and returns an empty value (iterator.go, yieldItemValue), so
// the seal is what catches them (see errUnreadable). Any error ValueCopy does
// return for a key badger says exists also means this device's copy cannot
// be read, so it counts as corruption too, except a closed database.
func get(txn *badger.Txn, key []byte, l loc) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, l.wrap(badgerErr(err))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		if errors.Is(err, badger.ErrDBClosed) {
			return nil, false, l.wrap(ErrClosed)
		}
		return nil, true, l.corrupt("value unreadable", err)
	}
	p, err := unseal(key, v)
	if err != nil {
		return nil, true, l.corrupt(err.Error(), nil)
	}
	return p, true, nil
}

// isBadgerChecksumErr reports whether err is badger's checksum mismatch.
//
// This is the one place that looks at error text, because nothing else
// works: badger wraps y.ErrChecksumMismatch with y.Wrapf, which in non-debug
// builds formats the cause with %+v instead of wrapping it, so errors.Is
// fails (badger v4.9.6, y/error.go). Badger.Open reports a damaged table this
// way (it reads each table's last block). The errors.Is test is kept for a
// badger that wraps properly.
func isBadgerChecksumErr(err error) bool {
	return errors.Is(err, y.ErrChecksumMismatch) ||
		strings.Contains(err.Error(), y.ErrChecksumMismatch.Error())
}

// badgerErr maps badger's closed error to ErrClosed and keeps others.
func badgerErr(err error) error {
	if errors.Is(err, badger.ErrDBClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// badgerLogger routes badger's log into zap: errors and warnings only.
type badgerLogger struct{ l *zap.SugaredLogger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Errorf("badger: "+trimNL(f), a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warnf("badger: "+trimNL(f), a...) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

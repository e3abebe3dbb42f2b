package chunkstore

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Config configures a Store. Zero fields take the defaults listed; Logger is
// required.
type Config struct {
	// Dir is the data directory. Required. It holds meta/ (badger: object
	// index and apply checkpoints), wal/ (the raft log) and objects/ (one
	// file per object).
	Dir string
	// BlockSize is the object block size in bytes: a power of two from 4 KiB
	// to 1 MiB, default 4 KiB (a 4 KiB write is then a whole-block write). It is persisted at the first Open; a later
	// Open with a different value fails with ErrConfig.
	BlockSize int
	// MemTableSize is badger's memtable size; default 8 MiB. Badger keeps two
	// memtables, and one transaction may hold about 15% of it in keys and
	// small values (larger batches are split, see Batch).
	MemTableSize int64
	// BlockCacheSize bounds badger's table block cache; default 16 MiB.
	BlockCacheSize int64
	// IndexCacheSize bounds badger's table index and bloom filter cache;
	// default 8 MiB.
	IndexCacheSize int64
	// ValueThreshold: badger values of at least this many bytes go to its
	// value log; default 2 KiB, so every object meta (at most 1044 bytes with
	// 4 KiB blocks) stays in the LSM tree.
	ValueThreshold int64
	// ValueLogFileSize is the size of one badger value-log file; default
	// 16 MiB, range [1 MiB, 2 GiB).
	ValueLogFileSize int64
	// WALSegmentSize is the size at which the raft log starts a new
	// segment; default 64 MiB.
	WALSegmentSize int64
	// CheckpointInterval is how often RunCheckpoints makes applied object
	// changes durable (fsync of the touched object files and the meta) and
	// records the apply states that lets the raft log be trimmed; default 1s.
	// Between checkpoints, a crash is repaired by re-applying the log.
	CheckpointInterval time.Duration
	// CheckpointBytes starts a checkpoint early once this many object bytes
	// were applied since the last one; default 128 MiB. It bounds the raft
	// log kept for replay and the work of a restart.
	CheckpointBytes int64
	// OpenFiles bounds the object files kept open; default 1024 (a 4 GiB
	// image of 4 MiB objects: opening and closing files on every random
	// IO cost an OSD a twentieth of its CPU with 256).
	OpenFiles int
	// GCInterval is the value-log GC schedule of RunGC; default 1m.
	GCInterval time.Duration
	// GCDiscardRatio: a value-log file is rewritten when at least this
	// fraction of it is garbage; default 0.5, range (0, 1).
	GCDiscardRatio float64
	// SkipVerifyOnOpen skips checking every LSM table block's checksum at
	// Open. Badger drops a table block that fails its checksum on the read
	// path silently (the key looks absent), so the check at Open is on by
	// default; it reads the LSM (keys and small values, not the value log).
	SkipVerifyOnOpen bool
	// Logger receives the store's and badger's warnings and errors. Required
	// (use zap.NewNop in tests).
	Logger *zap.Logger

	// LogLargeWrites keeps the large writes AppendPlaced names whole in the
	// raft log, as AppendEntries does, so their bytes reach the device twice
	// (log, then object file). By default (false) they are placed: written
	// once, into the object file's free slots, with the log keeping where
	// they went (placement.go, docs/design-big-writes.md). A store that
	// holds placed entries is read correctly either way.
	LogLargeWrites bool

	// StaleReserve bounds the bytes of stale slots (the copies large writes
	// leave behind, see reclaim.go) kept allocated for later large writes
	// to overwrite instead of punched at once; default 8 GiB, and never
	// more than a sixteenth of the file system's free space, so a filling
	// disk gets its space back. Negative: punch every stale slot at once.
	// A clean Close punches the reserve; after a crash its slots stay
	// allocated until their blocks are written again.
	StaleReserve int64
}

// placeWrites reports whether AppendPlaced places large writes.
func (c *Config) placeWrites() bool { return !c.LogLargeWrites }

// Defaults.
const (
	DefaultBlockSize        = 4 << 10
	DefaultMemTableSize     = 8 << 20
	DefaultBlockCacheSize   = 16 << 20
	DefaultIndexCacheSize   = 8 << 20
	DefaultValueThreshold   = 2 << 10
	DefaultValueLogFileSize = 16 << 20
	DefaultWALSegmentSize   = 64 << 20
	DefaultCheckpointEvery  = time.Second
	DefaultCheckpointBytes  = 128 << 20
	DefaultOpenFiles        = 1024
	DefaultGCInterval       = time.Minute
	DefaultGCDiscardRatio   = 0.5
	DefaultStaleReserve     = 8 << 30

	minBlockSize = 4 << 10
	maxBlockSize = 1 << 20
)

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = DefaultMemTableSize
	}
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = DefaultBlockCacheSize
	}
	if c.IndexCacheSize == 0 {
		c.IndexCacheSize = DefaultIndexCacheSize
	}
	if c.ValueThreshold == 0 {
		c.ValueThreshold = DefaultValueThreshold
	}
	if c.ValueLogFileSize == 0 {
		c.ValueLogFileSize = DefaultValueLogFileSize
	}
	if c.GCInterval == 0 {
		c.GCInterval = DefaultGCInterval
	}
	if c.WALSegmentSize == 0 {
		c.WALSegmentSize = DefaultWALSegmentSize
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointEvery
	}
	if c.CheckpointBytes == 0 {
		c.CheckpointBytes = DefaultCheckpointBytes
	}
	if c.StaleReserve == 0 {
		c.StaleReserve = DefaultStaleReserve
	}
	if c.OpenFiles == 0 {
		c.OpenFiles = DefaultOpenFiles
	}
	if c.GCDiscardRatio == 0 {
		c.GCDiscardRatio = DefaultGCDiscardRatio
	}
	return c
}

// Validate reports every broken rule of c (after defaults), each wrapping
// ErrConfig. Open calls it on c.withDefaults().
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Dir == "" {
		bad("Dir is required")
	}
	if c.Logger == nil {
		bad("Logger is required")
	}
	if c.BlockSize < minBlockSize || c.BlockSize > maxBlockSize || c.BlockSize&(c.BlockSize-1) != 0 {
		bad("BlockSize %d must be a power of two from %d to %d", c.BlockSize, minBlockSize, maxBlockSize)
	}
	if c.MemTableSize < 1<<20 {
		bad("MemTableSize %d must be at least 1 MiB", c.MemTableSize)
	}
	if c.BlockCacheSize < 0 {
		bad("BlockCacheSize %d must not be negative", c.BlockCacheSize)
	}
	if c.IndexCacheSize < 0 {
		bad("IndexCacheSize %d must not be negative", c.IndexCacheSize)
	}
	// Badger refuses a threshold above 1 MiB or above one transaction's
	// size (15% of the memtable).
	if maxThr := min(int64(1<<20), c.MemTableSize*15/100); c.ValueThreshold < 1 || c.ValueThreshold > maxThr {
		bad("ValueThreshold %d must be in [1, %d]", c.ValueThreshold, maxThr)
	}
	if c.ValueLogFileSize < 1<<20 || c.ValueLogFileSize >= 2<<30 {
		bad("ValueLogFileSize %d must be in [1 MiB, 2 GiB)", c.ValueLogFileSize)
	}
	if c.WALSegmentSize < 1<<20 {
		bad("WALSegmentSize %d must be at least 1 MiB", c.WALSegmentSize)
	}
	if c.CheckpointInterval < 0 {
		bad("CheckpointInterval %v must not be negative", c.CheckpointInterval)
	}
	if c.CheckpointBytes < 1<<20 {
		bad("CheckpointBytes %d must be at least 1 MiB", c.CheckpointBytes)
	}
	if c.OpenFiles < 8 {
		bad("OpenFiles %d must be at least 8", c.OpenFiles)
	}
	if c.GCInterval < 0 {
		bad("GCInterval %v must not be negative", c.GCInterval)
	}
	if !(c.GCDiscardRatio > 0 && c.GCDiscardRatio < 1) {
		bad("GCDiscardRatio %v must be in (0, 1)", c.GCDiscardRatio)
	}
	return errors.Join(errs...)
}

package chunkstore

import (
	"bytes"
	"errors"
	"testing"

	"go.uber.org/zap"
)

// testConfig is a small-block config in a fresh directory.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	return Config{Dir: tb.TempDir(), BlockSize: 4 << 10, Logger: zap.NewNop()}
}

// openStore opens cfg and closes the store at the end of the test.
func openStore(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open(%s): %v", cfg.Dir, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens its directory again.
func reopen(tb testing.TB, s *Store) *Store {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return openStore(tb, s.cfg)
}

// commit runs ops in one batch and commits it.
func commit(tb testing.TB, s *Store, ops func(b *Batch) error) {
	tb.Helper()
	b := s.NewBatch()
	defer b.Discard()
	if err := ops(b); err != nil {
		tb.Fatalf("batch op: %v", err)
	}
	if err := b.Commit(); err != nil {
		tb.Fatalf("Commit: %v", err)
	}
}

func mustRead(tb testing.TB, s *Store, pg PG, obj string, off int64, n int) []byte {
	tb.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = 0xEE // Read must overwrite every byte
	}
	if err := s.Read(pg, obj, off, p); err != nil {
		tb.Fatalf("Read(%s, %q, %d, %d): %v", pg, obj, off, n, err)
	}
	return p
}

// pattern returns n bytes, none zero, that differ per seed.
func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7+int(seed)*31)%251 + 1
	}
	return p
}

func zeros(n int) []byte { return make([]byte, n) }

func cat(ps ...[]byte) []byte { return bytes.Join(ps, nil) }

// checkObject asserts obj's size, version and full content (plus some zeros
// past the end).
func checkObject(tb testing.TB, s *Store, pg PG, obj string, want []byte, version uint64) {
	tb.Helper()
	info, err := s.Stat(pg, obj)
	if err != nil {
		tb.Fatalf("Stat(%s, %q): %v", pg, obj, err)
	}
	if info.Size != int64(len(want)) || info.Version != version {
		tb.Fatalf("Stat(%s, %q) = size %d version %d, want %d %d", pg, obj, info.Size, info.Version, len(want), version)
	}
	got := mustRead(tb, s, pg, obj, 0, len(want)+5000)
	if !bytes.Equal(got, cat(want, zeros(5000))) {
		tb.Fatalf("content of %s %q differs at byte %d", pg, obj, firstDiff(got, cat(want, zeros(5000))))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func wantErr(tb testing.TB, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("error = %v, want %v", err, target)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// killStore stops s as a killed process would: no checkpoint, so metas not
// yet written behind are lost; the files keep what was written to them
// (the page cache's writeback may well have reached the disk).
func killStore(s *Store) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closed = true
	s.files.closeAll()
	_ = s.wal.Close()
	_ = s.syncer.close()
	_ = s.db.Close()
	_ = unlockDir(s.lock)
}

// blockOff is where block i of object name of pg1 has its current bytes in
// the object's file.
func blockOff(tb testing.TB, s *Store, name string, i int64) int64 {
	tb.Helper()
	m, _, err := s.cachedMeta(loc{pg: pg1, object: name, block: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return s.blockIO(newObjID(pg1, name), nil, loc{}).dataOff(i, m.slot(i))
}

package chunkstore

import (
	"bytes"
	"fmt"
	"testing"

	"go.uber.org/zap"
)

func defaultConfig(tb testing.TB) Config {
	return Config{Dir: tb.TempDir(), Logger: zap.NewNop()}
}

func TestBigEntryAndWrite(t *testing.T) {
	s := openStore(t, defaultConfig(t))
	pg := PG{2, 2}
	entry, data := pattern(3, 1<<20+64), pattern(4, 1<<20)
	commit(t, s, func(b *Batch) error {
		if err := b.AppendEntries(pg, 1, [][]byte{entry}); err != nil {
			return err
		}
		return b.Write(pg, "big", 12345, data, 1)
	})
	for pass := range 2 {
		got, err := s.Entries(pg, 1, 2, 0)
		if err != nil || len(got) != 1 || !bytes.Equal(got[0], entry) {
			t.Fatalf("Entries = %d entries, %v", len(got), err)
		}
		checkObject(t, s, pg, "big", cat(zeros(12345), data), 1)
		if pass == 0 {
			s = reopen(t, s)
		}
	}
}

// TestFortyMiBBatch: 40 ops of 1 MiB in one batch with the default config.
// TestFortyMiBBatch commits 40 MiB in one batch with small value-log files:
// badger writes a transaction's values into the current file's mapping
// (twice ValueLogFileSize) and fails with EFAULT past it, so the batch must
// split by bytes, not only when badger says the transaction is full.
func TestFortyMiBBatch(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.ValueLogFileSize = 4 << 20
	s := openStore(t, cfg)
	pg := PG{3, 1}
	commit(t, s, func(b *Batch) error {
		for i := range 20 {
			if err := b.Write(pg, fmt.Sprint("o", i), 0, pattern(byte(i), 1<<20), uint64(i)); err != nil {
				return err
			}
			if err := b.AppendEntries(pg, uint64(i+1), [][]byte{pattern(byte(100+i), 1<<20)}); err != nil {
				return err
			}
		}
		return nil
	})
	for pass := range 2 {
		for i := range 20 {
			checkObject(t, s, pg, fmt.Sprint("o", i), pattern(byte(i), 1<<20), uint64(i))
		}
		got, err := s.Entries(pg, 1, 21, 1<<40)
		if err != nil || len(got) != 20 {
			t.Fatalf("Entries = %d, %v", len(got), err)
		}
		for i, e := range got {
			if !bytes.Equal(e, pattern(byte(100+i), 1<<20)) {
				t.Fatalf("entry %d differs", i+1)
			}
		}
		if pass == 0 {
			s = reopen(t, s)
		}
	}
}

// TestBatchSplit makes a batch's meta changes outgrow one badger
// transaction (many small objects) and a long log, and checks that ops stay
// in order and all land.
func TestBatchSplit(t *testing.T) {
	s := openStore(t, defaultConfig(t))
	pg := PG{4, 4}
	const n = 30000
	commit(t, s, func(b *Batch) error {
		if err := b.Write(pg, "o", 0, []byte("first"), 1); err != nil {
			return err
		}
		for i := uint64(1); i <= n; i += 1000 {
			if err := b.AppendEntries(pg, i, ents("x", i, 1000)); err != nil {
				return err
			}
		}
		if err := b.AppendEntries(pg, n-10, ents("y", n-10, 5)); err != nil { // drops the last 6
			return err
		}
		for i := range 20000 {
			if err := b.Write(pg, fmt.Sprint("small-", i), 0, []byte{1}, 3); err != nil {
				return err
			}
		}
		if err := b.SetApplyState(pg, []byte("applied")); err != nil {
			return err
		}
		if err := b.CompactLog(pg, 100); err != nil {
			return err
		}
		return b.Write(pg, "o", 0, []byte("second"), 2)
	})
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	for i := uint64(100); i < n-10; i++ {
		want[i] = fmt.Sprintf("x-%d", i)
	}
	for i := uint64(n - 10); i < n-5; i++ {
		want[i] = fmt.Sprintf("y-%d", i)
	}
	for pass := range 2 {
		checkLog(t, s, pg, 100, n-6, want)
		checkObject(t, s, pg, "o", []byte("second"), 2)
		if infos, err := s.List(pg, "small-", "", 0); err != nil || len(infos) != 20000 {
			t.Fatalf("List = %d objects, %v", len(infos), err)
		}
		if pass == 0 {
			s = reopen(t, s)
		}
	}
}

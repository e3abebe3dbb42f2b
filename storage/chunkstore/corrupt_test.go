package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flipOnDisk finds needle in dir's files with one of exts and inverts those
// bytes. It returns the inverted bytes (what a reader must never see).
func flipOnDisk(tb testing.TB, dir string, needle []byte, exts ...string) []byte {
	tb.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	flipped := 0
	for _, f := range files {
		ok := false
		for _, ext := range exts {
			ok = ok || strings.HasSuffix(f.Name(), ext)
		}
		if !ok {
			continue
		}
		path := filepath.Join(dir, f.Name())
		content, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		changed := false
		for i := bytes.Index(content, needle); i >= 0; i = bytes.Index(content, needle) {
			for j := range needle {
				content[i+j] ^= 0xff
			}
			changed = true
			flipped++
			tb.Logf("flipped %d bytes at %s:%d", len(needle), f.Name(), i)
		}
		if changed {
			if err := os.WriteFile(path, content, f.Type().Perm()|0o600); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if flipped == 0 {
		tb.Fatalf("pattern not found in %v files of %s", exts, dir)
	}
	bad := bytes.Clone(needle)
	for j := range bad {
		bad[j] ^= 0xff
	}
	return bad
}

func randomBytes(seed int64, n int) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(p)
	return p
}

type corruptCase struct {
	name        string
	data        []byte // the victim object's content
	fillers     bool   // write 200 small objects first, so the LSM has many blocks
	extraReopen bool   // open and close once more before flipping
	exts        []string
	skipVerify  bool
	needle      []byte
	openErr     bool  // Open itself must fail with ErrCorrupt
	iterBlind   bool  // Digest may miss the damage but must differ
	badBlock    int64 // victim block that must read as corrupt
	goodBlock   int64 // victim block that must still read fine; -1: none
}

func TestCorruption(t *testing.T) {
	const bs = 4 << 10
	big := randomBytes(42, 4*bs)
	small := append(randomBytes(43, 300), make([]byte, bs-300)...) // trimmed to 300 bytes: stays in the LSM
	tests := []corruptCase{
		// Badger truncates the newest value-log file at the first bad record
		// when it opens, dropping every later record too (a transaction's
		// records are in map order, so which blocks survive varies);
		// reading a value past the cut returns no bytes.
		{name: "newest vlog", data: big, exts: []string{".vlog"}, needle: big[bs+100 : bs+164], badBlock: 1, goodBlock: -1},
		// An older value-log file is not scanned at open: badger's value
		// checksum fails at read, and again badger returns no bytes.
		{name: "older vlog", data: big, extraReopen: true, exts: []string{".vlog"}, needle: big[2*bs+100 : 2*bs+164], badBlock: 2, goodBlock: 0},
		// A small value in the LSM table's last block: badger.Open reads
		// that block and fails.
		{name: "sst last block", data: small, exts: []string{".sst"}, needle: small[100:164], openErr: true},
		// A table block in the middle: our VerifyChecksum at Open finds it.
		{name: "sst verified at open", data: small, fillers: true, exts: []string{".sst"}, needle: small[100:164], openErr: true},
		// Without that check badger skips the bad table block on reads as if
		// its keys did not exist; the victim's meta (in another block) still
		// marks the block stored, so the read is corrupt, not a hole.
		{name: "sst not verified", data: small, fillers: true, skipVerify: true, exts: []string{".sst"}, needle: small[100:164], badBlock: 0, goodBlock: -1, iterBlind: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runCorruptCase(t, tc) })
	}
}

func runCorruptCase(t *testing.T, tc corruptCase) {
	const victim = "m050" // sorts after the fillers "a000".."a199"
	cfg := testConfig(t)
	cfg.SkipVerifyOnOpen = tc.skipVerify
	s := openStore(t, cfg)
	bs := int64(s.BlockSize())
	if tc.fillers {
		for i := range 200 {
			commit(t, s, func(b *Batch) error {
				return b.Write(pg1, fmt.Sprintf("a%03d", i), 0, randomBytes(int64(1000+i), 300), 1)
			})
		}
	}
	commit(t, s, func(b *Batch) error {
		if err := b.Write(pg1, victim, 0, tc.data, 1); err != nil {
			return err
		}
		return b.SetApplyState(pg1, []byte("applied"))
	})
	_, goodSum, _, err := s.Digest(pg1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if tc.extraReopen {
		s = openStore(t, cfg)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	bad := flipOnDisk(t, cfg.Dir, tc.needle, tc.exts...)

	s, err = Open(cfg)
	if tc.openErr {
		if !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
		t.Logf("Open: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	p := make([]byte, len(tc.data))
	err = s.Read(pg1, victim, 0, p)
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("Read = %v, want ErrCorrupt", err)
	}
	t.Logf("Read: %v", err)
	if ce.PG != pg1 || ce.Object != victim || ce.Block < 0 || ce.Block > tc.badBlock {
		t.Errorf("CorruptError names %s %q block %d, want %s %s block <= %d", ce.PG, ce.Object, ce.Block, pg1, victim, tc.badBlock)
	}
	if bytes.Contains(p, bad) {
		t.Error("Read returned the flipped bytes")
	}
	q := make([]byte, bs)
	err = s.Read(pg1, victim, tc.badBlock*bs, q)
	if !errors.As(err, &ce) || ce.Block != tc.badBlock {
		t.Errorf("Read of block %d = %v, want CorruptError naming it", tc.badBlock, err)
	}
	if bytes.Contains(q, bad) {
		t.Error("Read of the block returned the flipped bytes")
	}
	if tc.goodBlock >= 0 { // only the damaged block fails
		if got := mustRead(t, s, pg1, victim, tc.goodBlock*bs, int(bs)); !bytes.Equal(got, tc.data[tc.goodBlock*bs:][:bs]) {
			t.Error("undamaged block reads wrong")
		}
	}
	_, sum, n, err := s.Digest(pg1)
	switch {
	case errors.Is(err, ErrCorrupt):
		t.Logf("Digest: %v", err)
	case err == nil && tc.iterBlind && sum != goodSum:
		// Badger iterators stop silently at a table block that fails its
		// checksum, so the scan misses objects; the sum differs from the
		// replicas' and scrub finds it.
		t.Logf("Digest saw %d objects and a different sum", n)
	default:
		t.Fatalf("Digest = %d objects, %v; want ErrCorrupt", n, err)
	}
}

// TestCorruptionMisdirected: a block stored under another block's key (a
// misdirected write) fails the seal, which covers the key.
func TestCorruptionMisdirected(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.BlockSize())
	data := pattern(5, int(2*bs))
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, data, 1) })
	// Copy block 0's stored value (seal included) over block 1's key.
	commit(t, s, func(b *Batch) error {
		return b.apply(func() error {
			k0 := blockKey(blockPrefix(pg1, "o"), 0)
			item, err := b.txn.Get(k0)
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			return b.set(blockKey(blockPrefix(pg1, "o"), 1), v)
		})
	})
	err := s.Read(pg1, "o", bs, make([]byte, bs))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Block != 1 {
		t.Fatalf("Read = %v, want CorruptError at block 1", err)
	}
	// A partial overwrite of the damaged block (read-modify-write) fails
	// before changing anything, so the batch stays usable.
	b := s.NewBatch()
	defer b.Discard()
	wantErr(t, b.Write(pg1, "o", bs+10, []byte("x"), 2), ErrCorrupt)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(pg1, "o"); err != nil || info.Version != 1 {
		t.Fatalf("Stat = %+v, %v; want version 1", info, err)
	}
	// A whole-block overwrite repairs it.
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", bs, data[bs:], 3) })
	checkObject(t, s, pg1, "o", data, 3)
}

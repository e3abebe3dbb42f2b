package chunkstore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestMetaBacklog: metas are written to badger behind (at a checkpoint or
// before a scan), and until then reads, stats and later operations see the
// applied metas even when the cache has evicted them; a listing and a
// digest see them too.
func TestMetaBacklog(t *testing.T) {
	s := openStore(t, testConfig(t))
	s.metas = newMetaCache(1) // evicts all but the last meta used
	bs := s.BlockSize()
	commit(t, s, func(b *Batch) error {
		for i := range 10 {
			if err := b.Write(pg1, fmt.Sprint("o", i), 0, pattern(byte(i), 2*bs), uint64(i+1)); err != nil {
				return err
			}
		}
		return nil
	})
	inBadger := func(name string) bool {
		t.Helper()
		var found bool
		if err := s.db.View(func(txn *badger.Txn) error {
			var err error
			_, found, err = readMeta(txn, loc{pg: pg1, object: name, block: -1}, int64(bs))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return found
	}
	if inBadger("o1") {
		t.Fatal("o1's meta is in badger before any checkpoint: not written behind")
	}
	// A second batch builds on metas only the backlog holds.
	commit(t, s, func(b *Batch) error {
		if err := b.Delete(pg1, "o3"); err != nil {
			return err
		}
		if err := b.Truncate(pg1, "o5", int64(bs), 20); err != nil {
			return err
		}
		return b.Write(pg1, "o7", int64(2*bs), pattern(70, bs), 21)
	})
	for i := range 10 {
		name := fmt.Sprint("o", i)
		info, err := s.Stat(pg1, name)
		switch i {
		case 3:
			if err == nil {
				t.Fatalf("Stat(o3) after delete = %+v", info)
			}
			continue
		case 5:
			if err != nil || info.Size != int64(bs) || info.Version != 20 {
				t.Fatalf("Stat(o5) = %+v, %v", info, err)
			}
		case 7:
			if err != nil || info.Size != int64(3*bs) || info.Version != 21 {
				t.Fatalf("Stat(o7) = %+v, %v", info, err)
			}
			if got := mustRead(t, s, pg1, name, int64(2*bs), bs); !bytes.Equal(got, pattern(70, bs)) {
				t.Fatal("o7's appended block reads wrong")
			}
		default:
			if err != nil || info.Size != int64(2*bs) || info.Version != uint64(i+1) {
				t.Fatalf("Stat(%s) = %+v, %v", name, info, err)
			}
		}
		if got := mustRead(t, s, pg1, name, 0, bs); !bytes.Equal(got, pattern(byte(i), 2*bs)[:bs]) {
			t.Fatalf("%s reads wrong", name)
		}
	}
	infos, err := s.List(pg1, "", "", 0)
	if err != nil || len(infos) != 9 {
		t.Fatalf("List = %d objects, %v; want 9", len(infos), err)
	}
	if !inBadger("o1") || inBadger("o3") {
		t.Fatal("after a listing, badger should hold o1 and not o3")
	}
	if _, _, n, err := s.Digest(pg1); err != nil || n != 9 {
		t.Fatalf("Digest: %d objects, %v", n, err)
	}
	if !s.backlog.empty() {
		t.Fatal("backlog not empty after a listing with no writes since")
	}
}

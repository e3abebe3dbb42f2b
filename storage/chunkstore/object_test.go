package chunkstore

import (
	"github.com/dgraph-io/badger/v4"

	"fmt"
	"reflect"
	"testing"
)

var pg1 = PG{Pool: 1, Seq: 1}

type objOp func(b *Batch, obj string) error

func wr(off int64, data []byte, v uint64) objOp {
	return func(b *Batch, obj string) error { return b.Write(pg1, obj, off, data, v) }
}

func tr(size int64, v uint64) objOp {
	return func(b *Batch, obj string) error { return b.Truncate(pg1, obj, size, v) }
}

func zr(off, n int64, v uint64) objOp {
	return func(b *Batch, obj string) error { return b.Zero(pg1, obj, off, n, v) }
}

func del() objOp { return func(b *Batch, obj string) error { return b.Delete(pg1, obj) } }

func TestObjectOps(t *testing.T) {
	const bs = 4 << 10
	a, b := pattern(1, 3*bs), pattern(2, 3*bs)
	tests := []struct {
		name    string
		ops     []objOp
		want    []byte // nil: object must not exist
		version uint64
	}{
		{"small write", []objOp{wr(0, []byte("hello"), 1)}, []byte("hello"), 1},
		{"empty write creates", []objOp{wr(100, nil, 1)}, zeros(100), 1},
		{"across boundary", []objOp{wr(bs-6, a[:100], 2)}, cat(zeros(bs-6), a[:100]), 2},
		{"partial both ends", []objOp{wr(1000, a[:2*bs], 3)}, cat(zeros(1000), a[:2*bs]), 3},
		{"overwrite middle", []objOp{wr(0, a, 1), wr(bs-50, b[:100], 2)},
			cat(a[:bs-50], b[:100], a[bs+50:]), 2},
		{"leading holes", []objOp{wr(3*bs+10, a[:10], 1)}, cat(zeros(3*bs+10), a[:10]), 1},
		{"write zeros over data", []objOp{wr(0, a, 1), wr(bs, zeros(bs), 2)},
			cat(a[:bs], zeros(bs), a[2*bs:]), 2},
		{"truncate shrink", []objOp{wr(0, a, 1), tr(bs+123, 2)}, a[:bs+123], 2},
		{"truncate shrink then grow reads zeros", []objOp{wr(0, a, 1), tr(bs+123, 2), tr(3*bs, 3)},
			cat(a[:bs+123], zeros(2*bs-123)), 3},
		{"truncate to block edge", []objOp{wr(0, a, 1), tr(bs, 2), tr(2*bs, 3)}, cat(a[:bs], zeros(bs)), 3},
		{"truncate to zero", []objOp{wr(0, a, 1), tr(0, 2)}, []byte{}, 2},
		{"truncate creates", []objOp{tr(5000, 7)}, zeros(5000), 7},
		{"zero middle", []objOp{wr(0, a, 1), zr(1000, 2*bs, 2)}, cat(a[:1000], zeros(2*bs), a[2*bs+1000:]), 2},
		{"zero whole block", []objOp{wr(0, a, 1), zr(bs, bs, 2)}, cat(a[:bs], zeros(bs), a[2*bs:]), 2},
		{"zero extends", []objOp{wr(0, a[:10], 1), zr(bs, 2*bs, 2)}, cat(a[:10], zeros(3*bs-10)), 2},
		{"zero past size", []objOp{wr(0, a[:10], 1), zr(100, 50, 2)}, cat(a[:10], zeros(140)), 2},
		{"zero creates", []objOp{zr(100, 5000, 4)}, zeros(5100), 4},
		{"delete", []objOp{wr(0, a, 1), del()}, nil, 0},
		{"delete missing", []objOp{del()}, nil, 0},
		{"delete then write", []objOp{wr(0, a, 1), del(), wr(10, b[:10], 5)}, cat(zeros(10), b[:10]), 5},
	}
	for _, tc := range tests {
		for _, oneBatch := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/oneBatch=%v", tc.name, oneBatch), func(t *testing.T) {
				s := openStore(t, testConfig(t))
				if oneBatch {
					commit(t, s, func(bt *Batch) error {
						for _, op := range tc.ops {
							if err := op(bt, "obj"); err != nil {
								return err
							}
						}
						return nil
					})
				} else {
					for _, op := range tc.ops {
						commit(t, s, func(bt *Batch) error { return op(bt, "obj") })
					}
				}
				for pass := range 2 {
					if tc.want == nil {
						_, err := s.Stat(pg1, "obj")
						wantErr(t, err, ErrNotFound)
						wantErr(t, s.Read(pg1, "obj", 0, make([]byte, 10)), ErrNotFound)
					} else {
						checkObject(t, s, pg1, "obj", tc.want, tc.version)
					}
					if pass == 0 {
						s = reopen(t, s)
					}
				}
			})
		}
	}
}

func TestReadAtOffsets(t *testing.T) {
	s := openStore(t, testConfig(t))
	data := pattern(9, 10000)
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 5000, data, 1) })
	full := cat(zeros(5000), data)
	for _, tc := range []struct{ off, n int }{
		{0, 1}, {4095, 2}, {4096, 4096}, {4999, 3}, {5000, 10000}, {14999, 1}, {14999, 100}, {15000, 10}, {100000, 10}, {0, 0},
	} {
		got := mustRead(t, s, pg1, "o", int64(tc.off), tc.n)
		want := make([]byte, tc.n)
		if tc.off < len(full) {
			copy(want, full[tc.off:])
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Read(%d, %d) differs at %d", tc.off, tc.n, firstDiff(got, want))
		}
	}
}

func TestHolesAreNotStored(t *testing.T) {
	s := openStore(t, testConfig(t))
	bs := int64(s.BlockSize())
	commit(t, s, func(b *Batch) error {
		if err := b.Write(pg1, "o", 0, pattern(1, int(4*bs)), 1); err != nil {
			return err
		}
		if err := b.Write(pg1, "o", bs, zeros(int(bs)), 2); err != nil {
			return err
		}
		return b.Zero(pg1, "o", 2*bs, bs, 3)
	})
	if err := s.Checkpoint(); err != nil { // metas reach badger behind (metabacklog.go)
		t.Fatal(err)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		m, _, err := readMeta(txn, loc{pg: pg1, object: "o", block: -1}, bs)
		if err != nil {
			return err
		}
		for i, want := range []bool{true, false, false, true} {
			if m.has(int64(i)) != want {
				t.Errorf("block %d stored = %v, want %v", i, m.has(int64(i)), want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestStatAndList(t *testing.T) {
	s := openStore(t, testConfig(t))
	names := []string{"c", "b/2", "a", "b/1", "b/3", "bb"}
	commit(t, s, func(b *Batch) error {
		for i, n := range names {
			if err := b.Write(pg1, n, 0, pattern(byte(i), i+1), uint64(10+i)); err != nil {
				return err
			}
		}
		return b.Write(PG{1, 2}, "b/0", 0, []byte("x"), 1) // other PG: never listed
	})
	info, err := s.Stat(pg1, "b/1")
	if err != nil || info != (ObjectInfo{Name: "b/1", Size: 4, Version: 13}) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	list := func(prefix, after string, limit int) []string {
		t.Helper()
		infos, err := s.List(pg1, prefix, after, limit)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var out []string
		for _, in := range infos {
			out = append(out, in.Name)
		}
		return out
	}
	for _, tc := range []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"", "", 0, []string{"a", "b/1", "b/2", "b/3", "bb", "c"}},
		{"b/", "", 0, []string{"b/1", "b/2", "b/3"}},
		{"b/", "b/1", 0, []string{"b/2", "b/3"}},
		{"b/", "b/1", 1, []string{"b/2"}},
		{"b/", "a", 2, []string{"b/1", "b/2"}},
		{"b/", "b/3", 0, nil},
		{"b/", "z", 0, nil},
		{"", "b", 0, []string{"b/1", "b/2", "b/3", "bb", "c"}},
		{"", "bb", 0, []string{"c"}},
		{"x", "", 0, nil},
	} {
		if got := list(tc.prefix, tc.after, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("List(%q, %q, %d) = %q, want %q", tc.prefix, tc.after, tc.limit, got, tc.want)
		}
	}
}

func TestPGsAreSeparate(t *testing.T) {
	s := openStore(t, testConfig(t))
	pgs := []PG{{1, 1}, {1, 2}, {2, 1}, {0xffffffff, 0xffffffff}}
	commit(t, s, func(b *Batch) error {
		for i, pg := range pgs {
			if err := b.Write(pg, "o", 0, pattern(byte(i), 5000), uint64(i)); err != nil {
				return err
			}
			if err := b.AppendEntries(pg, 1, [][]byte{[]byte(pg.String())}); err != nil {
				return err
			}
		}
		return b.SetHardState(PG{3, 3}, []byte("hs")) // raft state only
	})
	got, err := s.ListPGs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []PG{{1, 1}, {1, 2}, {2, 1}, {3, 3}, {0xffffffff, 0xffffffff}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListPGs = %v, want %v", got, want)
	}
	for i, pg := range pgs {
		checkObject(t, s, pg, "o", pattern(byte(i), 5000), uint64(i))
	}
}

func TestArgumentErrors(t *testing.T) {
	s := openStore(t, testConfig(t))
	b := s.NewBatch()
	defer b.Discard()
	long := string(make([]byte, MaxNameLen+1))
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"empty name", b.Write(pg1, "", 0, []byte("x"), 1), ErrInvalid},
		{"long name", b.Write(pg1, long, 0, []byte("x"), 1), ErrInvalid},
		{"negative offset", b.Write(pg1, "o", -1, []byte("x"), 1), ErrInvalid},
		{"write past limit", b.Write(pg1, "o", MaxObjectSize-1, []byte("xx"), 1), ErrTooLarge},
		{"write too big", b.Write(pg1, "o", 0, make([]byte, MaxObjectSize+1), 1), ErrTooLarge},
		{"truncate past limit", b.Truncate(pg1, "o", MaxObjectSize+1, 1), ErrTooLarge},
		{"zero past limit", b.Zero(pg1, "o", 1, MaxObjectSize, 1), ErrTooLarge},
		{"zero negative", b.Zero(pg1, "o", 0, -1, 1), ErrInvalid},
		{"entry index 0", b.AppendEntries(pg1, 0, [][]byte{{1}}), ErrInvalid},
		{"log start", b.AppendEntries(pg1, 1, [][]byte{{1}}), nil},
		{"log gap after", b.AppendEntries(pg1, 3, [][]byte{{1}}), ErrInvalid},
		{"empty log gap", b.AppendEntries(PG{8, 8}, 5, [][]byte{{1}}), ErrInvalid},
		{"read negative", s.Read(pg1, "o", -1, make([]byte, 1)), ErrInvalid},
	} {
		if tc.want == nil {
			if tc.err != nil {
				t.Errorf("%s: %v", tc.name, tc.err)
			}
			continue
		}
		if !errorsIs(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// The argument errors did not poison the batch.
	if err := b.Write(pg1, "o", MaxObjectSize-1, []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Commit(), ErrInvalid)
	wantErr(t, b.Write(pg1, "o", 0, nil, 1), ErrInvalid)
	info, err := s.Stat(pg1, "o")
	if err != nil || info.Size != MaxObjectSize {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

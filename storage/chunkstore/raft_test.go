package chunkstore

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// ents returns n entries tagged for indexes first.. .
func ents(tag string, first uint64, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, "%s-%d", tag, first+uint64(i)))
	}
	return out
}

// checkLog asserts pg's bounds and that [first, last] hold want[i-first].
func checkLog(tb testing.TB, s *Store, pg PG, first, last uint64, want map[uint64]string) {
	tb.Helper()
	st, err := s.LoadRaft(pg)
	if err != nil {
		tb.Fatalf("LoadRaft: %v", err)
	}
	if st.FirstIndex != first || st.LastIndex != last {
		tb.Fatalf("bounds = [%d, %d], want [%d, %d]", st.FirstIndex, st.LastIndex, first, last)
	}
	if last >= first && first > 0 {
		got, err := s.Entries(pg, first, last+1, 1<<30)
		if err != nil {
			tb.Fatalf("Entries(%d, %d): %v", first, last+1, err)
		}
		for i, e := range got {
			if w := want[first+uint64(i)]; string(e) != w {
				tb.Fatalf("entry %d = %q, want %q", first+uint64(i), e, w)
			}
		}
	}
	if first > 1 {
		_, err := s.Entries(pg, first-1, first, 1<<30)
		wantErr(tb, err, ErrNotFound)
	}
	_, err = s.Entries(pg, last+1, last+2, 1<<30)
	wantErr(tb, err, ErrNotFound)
}

func TestRaftLog(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{7, 3}
	want := map[uint64]string{}
	app := func(tag string, first uint64, n int) func(b *Batch) error {
		return func(b *Batch) error {
			es := ents(tag, first, n)
			for i, e := range es {
				want[first+uint64(i)] = string(e)
			}
			return b.AppendEntries(pg, first, es)
		}
	}
	compact := func(upTo uint64) func(b *Batch) error {
		return func(b *Batch) error { return b.CompactLog(pg, upTo) }
	}
	steps := []struct {
		name        string
		op          func(b *Batch) error
		first, last uint64
	}{
		{"empty", func(*Batch) error { return nil }, 0, 0},
		{"append 1..10", app("t1", 1, 10), 1, 10},
		{"append 11..12", app("t1", 11, 2), 1, 12},
		{"conflict at 6 truncates suffix", app("t2", 6, 2), 1, 7},
		{"overwrite inside", app("t3", 3, 1), 1, 3},
		{"append again", app("t3", 4, 5), 1, 8},
		{"compact to 4", compact(4), 4, 8},
		{"compact backwards is a no-op", compact(2), 4, 8},
		{"compact past last", compact(20), 20, 19},
		{"append after compaction", app("t5", 20, 3), 20, 22},
		{"compact to last+1", compact(23), 23, 22},
		{"append at first", app("t6", 23, 1), 23, 23},
	}
	for _, st := range steps {
		commit(t, s, st.op)
		if err := s.Checkpoint(); err != nil { // compaction happens at checkpoints
			t.Fatal(err)
		}
		checkLog(t, s, pg, st.first, st.last, want)
		s = reopen(t, s) // bounds rebuilt from disk
		checkLog(t, s, pg, st.first, st.last, want)
		if t.Failed() {
			t.Fatalf("after %q", st.name)
		}
	}
	b := s.NewBatch()
	defer b.Discard()
	wantErr(t, b.AppendEntries(pg, 25, ents("gap", 25, 1)), ErrInvalid)
}

func TestRaftBatchVisibility(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{1, 9}
	commit(t, s, func(b *Batch) error { return b.AppendEntries(pg, 1, ents("a", 1, 5)) })

	// Ops in one batch see each other; LoadRaft sees only committed state.
	b := s.NewBatch()
	for _, err := range []error{
		b.AppendEntries(pg, 6, ents("a", 6, 5)), // 1..10
		b.CompactLog(pg, 3),                     // 3..10
		b.AppendEntries(pg, 8, ents("b", 8, 1)), // 3..8
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkLog(t, s, pg, 1, 5, map[uint64]string{1: "a-1", 2: "a-2", 3: "a-3", 4: "a-4", 5: "a-5"})
	b.Discard()
	checkLog(t, s, pg, 1, 5, map[uint64]string{1: "a-1", 2: "a-2", 3: "a-3", 4: "a-4", 5: "a-5"})

	b = s.NewBatch()
	for _, err := range []error{
		b.AppendEntries(pg, 6, ents("a", 6, 5)),
		b.CompactLog(pg, 3),
		b.AppendEntries(pg, 8, ents("b", 8, 1)),
		b.SetHardState(pg, []byte("hs")),
		b.SetApplyState(pg, []byte("as")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{3: "a-3", 4: "a-4", 5: "a-5", 6: "a-6", 7: "a-7", 8: "b-8"}
	checkLog(t, s, pg, 3, 8, want)
	s = reopen(t, s)
	checkLog(t, s, pg, 3, 8, want)
	st, err := s.LoadRaft(pg)
	if err != nil || string(st.HardState) != "hs" || string(st.ApplyState) != "as" {
		t.Fatalf("LoadRaft = %+v, %v", st, err)
	}
	if st, err := s.LoadRaft(PG{5, 5}); err != nil || !reflect.DeepEqual(st, RaftState{}) {
		t.Fatalf("LoadRaft of unknown PG = %+v, %v", st, err)
	}
}

func TestEntriesMaxBytes(t *testing.T) {
	s := openStore(t, testConfig(t))
	pg := PG{1, 1}
	es := [][]byte{bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 10), bytes.Repeat([]byte{3}, 10), bytes.Repeat([]byte{4}, 10)}
	commit(t, s, func(b *Batch) error { return b.AppendEntries(pg, 1, es) })
	for _, tc := range []struct {
		lo, hi, max uint64
		want        int
	}{
		{1, 5, 0, 1}, {1, 5, 9, 1}, {1, 5, 10, 1}, {1, 5, 19, 1}, {1, 5, 20, 2},
		{1, 5, 25, 2}, {1, 5, 40, 4}, {1, 5, 1 << 40, 4}, {2, 4, 1 << 40, 2}, {3, 3, 100, 0},
	} {
		got, err := s.Entries(pg, tc.lo, tc.hi, tc.max)
		if err != nil {
			t.Fatalf("Entries(%d, %d, %d): %v", tc.lo, tc.hi, tc.max, err)
		}
		if !reflect.DeepEqual(got, es[tc.lo-1:tc.lo-1+uint64(tc.want)]) && !(tc.want == 0 && len(got) == 0) {
			t.Errorf("Entries(%d, %d, %d) = %d entries, want %d", tc.lo, tc.hi, tc.max, len(got), tc.want)
		}
	}
	_, err := s.Entries(pg, 3, 6, 1<<40)
	wantErr(t, err, ErrNotFound)
}

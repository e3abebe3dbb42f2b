package osd

import (
	"bytes"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
)

func entry(i, term uint64, size int) *pb.Entry {
	return &pb.Entry{Index: new(i), Term: new(term), Type: pb.EntryNormal.Enum(), Data: bytes.Repeat([]byte{byte(i)}, size)}
}

// TestRaftLogLazyTerms: after a restart only the end of a long log is read
// back; older terms come from the store on demand, and compaction and a
// conflicting append below the loaded window still work.
func TestRaftLogLazyTerms(t *testing.T) {
	st := memStore{storagetest.NewMemStore()}
	pg := PG{Pool: 1, Seq: 1}
	l, err := loadRaftLog(st, pg)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(1); i <= 500; i++ {
		ents = append(ents, entry(i, 1+i/100, 10))
	}
	b := st.NewBatch()
	if err := l.stageAppend(b, ents, new([]byte), false, nil); err != nil {
		t.Fatal(err)
	}
	l.applied, l.appliedTerm = 480, 5
	if err := b.SetApplyState(pg, l.applyStateBytes(nil, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	l, err = loadRaftLog(st, pg) // restart
	if err != nil {
		t.Fatal(err)
	}
	if l.termBase != 481-loadWindow || l.last != 500 {
		t.Fatalf("loaded window [%d, %d], want [%d, 500]", l.termBase, l.last, 481-loadWindow)
	}
	for _, i := range []uint64{1, 150, 416, 417, 500} {
		if got, err := l.Term(i); err != nil || got != 1+i/100 {
			t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, 1+i/100)
		}
	}
	// Compact below the window, as the node does: the term of the new
	// first-1 is read from the store before the entries go.
	t199, err := l.Term(199)
	if err != nil {
		t.Fatal(err)
	}
	b = st.NewBatch()
	if err := b.SetApplyState(pg, l.applyStateBytes(nil, 200, t199)); err != nil {
		t.Fatal(err)
	}
	if err := b.CompactLog(pg, 200); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	l.compact(200, t199)
	if t199, _ := l.Term(199); l.first != 200 || t199 != 2 {
		t.Fatalf("after compaction: first %d, Term(199) %d", l.first, t199)
	}
	// A conflicting append below the window replaces everything after it.
	b = st.NewBatch()
	repl := []*pb.Entry{entry(300, 9, 10), entry(301, 9, 10)}
	if err := l.stageAppend(b, repl, new([]byte), false, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	l.commitAppend(repl)
	if l.last != 301 || l.termBase != 300 || l.heldBytes != 20 {
		t.Fatalf("after conflicting append: last %d termBase %d held %d", l.last, l.termBase, l.heldBytes)
	}
	if got, _ := l.Term(301); got != 9 {
		t.Fatalf("Term(301) = %d", got)
	}
	if got, _ := l.Term(250); got != 3 {
		t.Fatalf("Term(250) = %d, want 3 (from the store)", got)
	}
	got, err := l.Entries(298, 302, 1<<20)
	if err != nil || len(got) != 4 || got[2].GetTerm() != 9 || got[1].GetTerm() != 3 {
		t.Fatalf("Entries across the window: %v %v", got, err)
	}
}

// recoverStore records the Recover call loadRaftLog makes.
type recoverStore struct {
	memStore
	through uint64
}

func (s *recoverStore) Recover(_ PG, through uint64) { s.through = through }

// TestRaftLogCommitBehindApplied: commit-only hard states are not written,
// so after a restart the stored commit index may be below the applied
// index; the log then starts at the applied index (raft refuses applied >
// commit) and the whole log is replayed leniently (any of it may have been
// applied before the crash).
func TestRaftLogCommitBehindApplied(t *testing.T) {
	st := &recoverStore{memStore: memStore{storagetest.NewMemStore()}}
	pg := PG{Pool: 1, Seq: 2}
	l, err := loadRaftLog(st, pg)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, entry(i, 1, 10))
	}
	b := st.NewBatch()
	if err := l.stageAppend(b, ents, new([]byte), false, nil); err != nil {
		t.Fatal(err)
	}
	hs, err := proto.Marshal(&pb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(3))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetHardState(pg, hs); err != nil {
		t.Fatal(err)
	}
	l.applied, l.appliedTerm = 8, 1
	if err := b.SetApplyState(pg, l.applyStateBytes(nil, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(); err != nil {
		t.Fatal(err)
	}

	l, err = loadRaftLog(st, pg) // restart
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCommit() != 8 || got.GetTerm() != 1 || got.GetVote() != 1 {
		t.Fatalf("hard state after restart: %v, want commit 8 (the applied index), term 1, vote 1", got)
	}
	if st.through != 10 {
		t.Fatalf("Recover through %d, want 10 (the last log index)", st.through)
	}
}

// TestPlacedDataLayout: the OSD hands the store an entry without its data
// (appendEntryCut) and the op's data beside it, for writes of the placing
// size only, and the two together are the bytes proto.Marshal gives.
func TestPlacedDataLayout(t *testing.T) {
	// appendEntryCut writes these four fields and no others.
	if f := (&pb.Entry{}).ProtoReflect().Descriptor().Fields(); f.Len() != 4 {
		t.Fatalf("raftpb.Entry has %d fields; appendEntryCut encodes Type, Term, Index and Data only", f.Len())
	}
	data := make([]byte, placeMinBytes+4096)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	for _, tc := range []struct {
		e    *pb.Entry
		o    op
		want bool
	}{
		{&pb.Entry{Term: new(uint64(3)), Index: new(uint64(1 << 40)), Type: pb.EntryNormal.Enum()},
			op{Kind: opWrite, ReqID: 9, Object: "img.0001", Offset: 1 << 20, Data: data}, true},
		{&pb.Entry{Index: new(uint64(7))}, op{Kind: opWrite, Object: "no-term-no-type", Data: data}, true},
		{&pb.Entry{Term: new(uint64(1)), Index: new(uint64(2)), Type: pb.EntryNormal.Enum()},
			op{Kind: opWrite, Object: "x", Data: data[:placeMinBytes-1]}, false},
		{&pb.Entry{Term: new(uint64(1)), Index: new(uint64(2)), Type: pb.EntryNormal.Enum()},
			op{Kind: opZero, Object: "x", Length: 1 << 20}, false},
		{&pb.Entry{Term: new(uint64(1)), Index: new(uint64(2)), Type: pb.EntryConfChange.Enum()},
			op{Kind: opWrite, Object: "x", Data: data}, false},
	} {
		e := tc.e
		e.Data = encodeOp(&tc.o)
		raw, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := placedData(e)
		if ok != tc.want {
			t.Fatalf("%v %q: placed %v, want %v", tc.o.Kind, tc.o.Object, ok, tc.want)
		}
		if !ok {
			continue
		}
		if d.object != tc.o.Object || d.offset != tc.o.Offset || !bytes.Equal(d.b, tc.o.Data) {
			t.Fatalf("placed data %q@%d does not name the op's data", d.object, d.offset)
		}
		cut := appendEntryCut([]byte("arena"), e, len(d.b))
		if got := append(cut[len("arena"):], d.b...); !bytes.Equal(got, raw) {
			t.Fatalf("%q: cut entry + data is not the marshalled entry:\n got %x...\nwant %x...", tc.o.Object, got[:40], raw[:40])
		}
	}
}

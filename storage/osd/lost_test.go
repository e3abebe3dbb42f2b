package osd

import (
	"errors"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
)

// TestRaftLogHideFrom: hiding a log's end drops it from memory (terms,
// sizes, the cached tail, the damaged marks from there on), leaves the
// store's copy alone, and an append at the hidden index then replaces the
// store's; after a restart before that append the store gives the whole
// log back.
func TestRaftLogHideFrom(t *testing.T) {
	st := memStore{storagetest.NewMemStore()}
	pg := PG{Pool: 1, Seq: 1}
	l, err := loadRaftLog(st, pg)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(1); i <= 20; i++ {
		ents = append(ents, entry(i, 1+i/10, 10))
	}
	commitEntries(t, st, l, ents)
	l.damaged = map[uint64]int{5: 1, 16: 1}
	held := l.heldBytes

	l.hideFrom(14)
	if l.last != 13 || len(l.terms) != int(13-l.termBase+1) || l.heldBytes != held-7*10 {
		t.Fatalf("after hiding from 14: last %d, %d terms from %d, %d bytes held", l.last, len(l.terms), l.termBase, l.heldBytes)
	}
	if _, ok := l.damaged[16]; ok || len(l.damaged) != 1 {
		t.Fatalf("damaged marks after hiding from 14: %v, want entry 5's alone", l.damaged)
	}
	if _, err := l.Term(14); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(14) after hiding: %v, want ErrUnavailable", err)
	}
	if got, err := l.Entries(10, 14, 1<<20); err != nil || len(got) != 4 || got[3].GetIndex() != 13 {
		t.Fatalf("Entries(10, 14) after hiding: %d entries, %v", len(got), err)
	}
	if back, err := loadRaftLog(st, pg); err != nil || back.last != 20 {
		t.Fatalf("a restart before any append: last %d (%v), want the store's 20", back.last, err)
	}

	commitEntries(t, st, l, []*pb.Entry{entry(14, 9, 10)})
	back, err := loadRaftLog(st, pg)
	if err != nil || back.last != 14 {
		t.Fatalf("after an append at 14: the store's last is %d (%v), want 14", back.last, err)
	}
	if got, err := back.Term(14); err != nil || got != 9 {
		t.Fatalf("the store's entry 14 has term %d (%v), want 9", got, err)
	}
}

// commitEntries appends ents to l and st in one batch, as a cycle does.
func commitEntries(t *testing.T, st memStore, l *raftLog, ents []*pb.Entry) {
	t.Helper()
	b := st.NewBatch()
	if err := l.stageAppend(b, ents, new([]byte), false, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	l.commitAppend(ents)
}

// TestLostProof: an entry counts as never committed only when every other
// voter (joint configurations: of both sets; and of the configuration
// before, which must be known) answered that it lacks it, all in one term
// after the entry's.
func TestLostProof(t *testing.T) {
	three := []uint64{raftID(0), raftID(1), raftID(2)}
	r := &replica{id: raftID(0), log: &raftLog{cs: &pb.ConfState{Voters: three}, prev: three, prevKnown: true}}
	joint := &raftLog{cs: &pb.ConfState{Voters: three, VotersOutgoing: []uint64{raftID(0), raftID(1), raftID(3)}}, prevKnown: true}
	after := &raftLog{cs: &pb.ConfState{Voters: three}, prev: []uint64{raftID(0), raftID(1), raftID(4)}, prevKnown: true}
	installed := &raftLog{cs: &pb.ConfState{Voters: three}}
	for _, c := range []struct {
		name  string
		log   *raftLog
		lacks map[int32]uint64
		want  bool
	}{
		{"none answered", r.log, map[int32]uint64{}, false},
		{"one of two", r.log, map[int32]uint64{1: 7}, false},
		{"both, one term", r.log, map[int32]uint64{1: 7, 2: 7}, true},
		{"both, two terms", r.log, map[int32]uint64{1: 7, 2: 8}, false},
		{"in the entry's own term", r.log, map[int32]uint64{1: 5, 2: 5}, false},
		{"joint, the incoming set", joint, map[int32]uint64{1: 7, 2: 7}, false},
		{"joint, both sets", joint, map[int32]uint64{1: 7, 2: 7, 3: 7}, true},
		{"after a change, the voters now", after, map[int32]uint64{1: 7, 2: 7}, false},
		{"after a change, and the one it removed", after, map[int32]uint64{1: 7, 2: 7, 4: 7}, true},
		{"the configuration before unknown", installed, map[int32]uint64{1: 7, 2: 7}, false},
	} {
		q := &replica{id: r.id, log: c.log}
		p := &lostProof{index: 10, term: 5, lacks: c.lacks}
		if u, ok := p.proven(q); ok != c.want || (ok && u != 7) {
			t.Errorf("%s: proven = %d, %v; want %v", c.name, u, ok, c.want)
		}
	}
}

// TestPrevVotersField: the voters of the configuration before travel with
// the configuration's record, which raft decodes as the ConfState alone;
// none stored reads as unknown, an empty list as known.
func TestPrevVotersField(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{raftID(0), raftID(1)}, Learners: []uint64{seatID(3, 2)}}
	for _, c := range []struct {
		prev  []uint64
		known bool
	}{{nil, false}, {[]uint64{}, true}, {[]uint64{raftID(0), seatID(9, 5), seatID(1<<30, 7)}, true}} {
		var back pb.ConfState
		if err := proto.Unmarshal(encodeConf(cs, c.prev, c.known), &back); err != nil {
			t.Fatal(err)
		}
		prev, known, err := takePrevVoters(&back)
		if err != nil || known != c.known || !slices.Equal(prev, c.prev) && len(prev)+len(c.prev) > 0 {
			t.Fatalf("stored %v (known %v): read %v (known %v), %v", c.prev, c.known, prev, known, err)
		}
		if !proto.Equal(&back, cs) {
			t.Fatalf("the configuration read back is %v, want %v", &back, cs)
		}
	}
}

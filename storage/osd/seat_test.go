package osd

import (
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
)

// TestSeatIDs: a seat id splits back into its OSD and generation, for
// the extreme OSD ids and generations, and generation 0 is the OSD id + 1.
func TestSeatIDs(t *testing.T) {
	for _, osd := range []int32{0, 1, 7, MaxOSDID} {
		for _, gen := range []uint64{0, 1, 1 << 30, unseatedGen} {
			id := seatID(gen, osd)
			if osdID(id) != osd || seatGen(id) != gen {
				t.Fatalf("seatID(%d, %d) = %#x splits into osd %d, generation %d", gen, osd, id, osdID(id), seatGen(id))
			}
		}
		if raftID(osd) != uint64(osd)+1 {
			t.Fatalf("raftID(%d) = %d: generation 0 must keep the ids on disk", osd, raftID(osd))
		}
	}
	if err := (NodeConfig{ID: MaxOSDID + 1}).Validate(); err == nil {
		t.Fatal("an osd id past MaxOSDID is accepted")
	}
}

// TestLoadedSeat: the seat a replica starts under.
func TestLoadedSeat(t *testing.T) {
	const self = 2
	seat := seatID(40, self)
	tests := []struct {
		name  string
		cs    *pb.ConfState
		floor uint64
		boot  bool
		want  uint64
	}{
		{"bootstrap", &pb.ConfState{}, 0, true, raftID(self)},
		{"a voter", &pb.ConfState{Voters: []uint64{raftID(0), seat, raftID(5)}}, 9, false, seat},
		{"leaving, joint", &pb.ConfState{Voters: []uint64{raftID(0)}, VotersOutgoing: []uint64{seat}}, 0, false, seat},
		{"a learner", &pb.ConfState{Voters: []uint64{raftID(0)}, Learners: []uint64{seat}}, 0, false, seat},
		{"nothing applied, no drop here", &pb.ConfState{}, 0, false, raftID(self)},
		{"nothing applied, a copy dropped here", &pb.ConfState{}, 41, false, seatID(unseatedGen, self)},
		{"left", &pb.ConfState{Voters: []uint64{raftID(0), raftID(1), raftID(3)}}, 0, false, seatID(unseatedGen, self)},
	}
	for _, tt := range tests {
		if got := loadedSeat(&raftLog{cs: tt.cs, floor: tt.floor}, self, tt.boot); got != tt.want {
			t.Errorf("%s: seat %#x, want %#x", tt.name, got, tt.want)
		}
	}
	// The seat stored with the hard state (seatField) wins when newer.
	stored := []struct {
		name        string
		cs          *pb.ConfState
		seat, floor uint64
		want        uint64
	}{
		{"taken after the checkpoint's configuration", &pb.ConfState{Voters: []uint64{raftID(0), seat}}, seatID(70, self), 0, seatID(70, self)},
		{"an install cut short emptied it", &pb.ConfState{}, seatID(70, self), 41, seatID(70, self)},
		{"older than the configuration's", &pb.ConfState{Learners: []uint64{seat}}, seatID(30, self), 0, seat},
		{"another osd's (never written so)", &pb.ConfState{}, seatID(70, self+1), 41, seatID(unseatedGen, self)},
	}
	for _, tt := range stored {
		if got := loadedSeat(&raftLog{cs: tt.cs, seat: tt.seat, floor: tt.floor}, self, false); got != tt.want {
			t.Errorf("%s: seat %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

// TestHardStateSeat: the seat rides in the hard state's record, raft's
// fields unchanged; a record without it (written before seats, or by a
// replica with no seat) has none.
func TestHardStateSeat(t *testing.T) {
	hs := &pb.HardState{Term: proto.Uint64(7), Vote: proto.Uint64(seatID(3, 1)), Commit: proto.Uint64(99)}
	for _, seat := range []uint64{raftID(2), seatID(1<<40, MaxOSDID), seatID(unseatedGen, 2)} {
		b, err := encodeHardState(hs, seat)
		if err != nil {
			t.Fatal(err)
		}
		got := &pb.HardState{}
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		s, err := takeSeatField(got)
		want := seat
		if seatGen(seat) == unseatedGen {
			want = 0
		}
		if err != nil || s != want || !proto.Equal(got, hs) {
			t.Fatalf("seat %#x: read back %#x (%v), hard state %v, want %v", seat, s, err, got, hs)
		}
	}
}

// TestDropFloor: a dropped copy's floor is above its seat, its last entry
// and the floor it had.
func TestDropFloor(t *testing.T) {
	tests := []struct {
		id          uint64
		last, floor uint64
		want        uint64
	}{
		{raftID(1), 0, 0, 1},
		{raftID(1), 30, 0, 31},
		{seatID(50, 1), 30, 0, 51},
		{seatID(50, 1), 30, 90, 90},
		{seatID(unseatedGen, 1), 30, 12, 31},
	}
	for _, tt := range tests {
		r := &replica{id: tt.id, log: &raftLog{last: tt.last, floor: tt.floor}}
		if got := r.dropFloor(); got != tt.want {
			t.Errorf("seat %#x, last %d, floor %d: drop floor %d, want %d", tt.id, tt.last, tt.floor, got, tt.want)
		}
	}
}

// TestNoBootstrapOverAFloor: an OSD that dropped a copy of a PG does not
// start a new group for it when it is named among the PG's first members
// again (a map from before the move).
func TestNoBootstrapOverAFloor(t *testing.T) {
	st := storagetest.NewMemStore()
	pg := PG{Pool: 1, Seq: 4}
	if err := st.DropPG(pg, 12); err != nil {
		t.Fatal(err)
	}
	l, err := loadRaftLog(memStore{st}, pg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newReplica(1, l, []int32{0, 1, 2}, 2, raftLogger{zap.NewNop().Sugar()}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "not starting a second group") {
		t.Fatalf("bootstrap over a floor: %v", err)
	}
	l, _ = loadRaftLog(memStore{storagetest.NewMemStore()}, pg)
	if _, err := newReplica(1, l, []int32{0, 1, 2}, 2, raftLogger{zap.NewNop().Sugar()}); err != nil {
		t.Fatalf("bootstrap with no floor: %v", err)
	}
}

package acklog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func unit(w int, u int64, seq uint64) []byte {
	p := make([]byte, UnitSize)
	EncodeUnit(p, w, u, seq)
	return p
}

func TestUnitRoundTrip(t *testing.T) {
	h, zero, err := DecodeUnit(unit(3, 77, 12345))
	if err != nil || zero || h != (Header{Writer: 3, Unit: 77, Seq: 12345}) {
		t.Fatalf("got %+v zero=%v err=%v", h, zero, err)
	}
	if _, zero, err := DecodeUnit(make([]byte, UnitSize)); !zero || err != nil {
		t.Fatalf("zeros: zero=%v err=%v", zero, err)
	}
	// A torn unit: the first half of one write, the second of another.
	torn := append(unit(0, 5, 1)[:UnitSize/2:UnitSize/2], unit(0, 5, 2)[UnitSize/2:]...)
	if _, _, err := DecodeUnit(torn); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn unit: %v", err)
	}
	flipped := unit(1, 9, 4)
	flipped[100] ^= 1
	if _, _, err := DecodeUnit(flipped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
}

func TestLayout(t *testing.T) {
	l := Layout{Units: 1003, Writers: 4}
	next := int64(0)
	for w := range l.Writers {
		lo, hi := l.Region(w)
		if lo != next || hi <= lo {
			t.Fatalf("writer %d: [%d, %d) after %d", w, lo, hi, next)
		}
		if l.Owner(lo) != w || l.Owner(hi-1) != w {
			t.Fatalf("owner of writer %d's region", w)
		}
		next = hi
	}
	if next != l.Units {
		t.Fatalf("regions end at %d, want %d", next, l.Units)
	}
}

// logOf runs writes through a Log: each entry is {writer, seq, lo, n,
// acked}.
func logOf(t *testing.T, writes [][5]int64) string {
	var b bytes.Buffer
	l := NewLog(&b)
	for _, w := range writes {
		if err := l.Issue(int(w[0]), uint64(w[1]), w[2], w[3]); err != nil {
			t.Fatal(err)
		}
		if w[4] == 1 {
			if err := l.Ack(int(w[0]), uint64(w[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}

func TestReplayAndCheck(t *testing.T) {
	l := Layout{Units: 40, Writers: 2} // writer 0: [0, 20), writer 1: [20, 40)
	log := logOf(t, [][5]int64{
		{0, 1, 0, 4, 1},  // units 0-3 = 1
		{1, 1, 20, 2, 1}, // units 20-21 = 1
		{0, 2, 2, 4, 1},  // units 2-5 = 2
		{1, 2, 21, 3, 0}, // in flight: units 21-23 may be 2
	})
	e, st, err := Replay(strings.NewReader(log+"A 0 9"), nil, l) // a torn last line
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Issued: 4, Acked: 3, InFlight: 1}) {
		t.Fatalf("stats %+v", st)
	}
	for _, tc := range []struct {
		u    int64
		p    []byte
		want uint64
		err  error
	}{
		{0, unit(0, 0, 1), 1, nil},
		{2, unit(0, 2, 2), 2, nil},
		{2, unit(0, 2, 1), 0, ErrLost},          // the older write: acknowledged write 2 lost
		{4, make([]byte, UnitSize), 0, ErrLost}, // zeros where write 2 was acknowledged
		{6, make([]byte, UnitSize), 0, nil},     // never written
		{21, unit(1, 21, 1), 1, nil},            // the in-flight write did not land
		{21, unit(1, 21, 2), 2, nil},            // or did
		{23, make([]byte, UnitSize), 0, nil},    // in flight, not landed, never written
		{23, unit(1, 23, 2), 2, nil},
		{22, unit(1, 23, 2), 0, ErrLost}, // another unit's bytes
		{3, unit(1, 3, 1), 0, ErrLost},   // another writer's bytes
		{7, unit(0, 7, 3), 0, ErrLost},   // a write never issued
		{0, append(unit(0, 0, 1)[:10:10], make([]byte, UnitSize-10)...), 0, ErrCorrupt},
	} {
		got, err := e.Check(tc.u, tc.p)
		if !errors.Is(err, tc.err) || (err == nil && got != tc.want) {
			t.Errorf("unit %d: got %d, %v; want %d, %v", tc.u, got, err, tc.want, tc.err)
		}
	}
	if !e.InFlightLanded(21, 2) || e.InFlightLanded(21, 1) || e.InFlightLanded(0, 1) {
		t.Error("InFlightLanded")
	}

	// The state found is the next cycle's base.
	base := make(State, l.Units)
	base[0], base[21] = 1, 2
	enc, _ := base.MarshalBinary()
	back, err := UnmarshalState(enc, l.Units)
	if err != nil || back[0] != 1 || back[21] != 2 {
		t.Fatalf("state round trip: %v %v", back, err)
	}
	e2, _, err := Replay(strings.NewReader(logOf(t, [][5]int64{{0, 10, 1, 1, 1}})), back, l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Check(21, unit(1, 21, 2)); err != nil {
		t.Errorf("base unit 21: %v", err)
	}
	if _, err := e2.Check(0, unit(0, 0, 1)); err != nil {
		t.Errorf("base unit 0: %v", err)
	}
	if _, err := e2.Check(1, make([]byte, UnitSize)); !errors.Is(err, ErrLost) {
		t.Errorf("unit 1 after acknowledged write 10: %v", err)
	}
	// A later cycle must not use the seqs of the base again.
	if _, _, err := Replay(strings.NewReader(logOf(t, [][5]int64{{1, 2, 20, 1, 1}})), back, l); !errors.Is(err, ErrLog) {
		t.Errorf("seq 2 again over a base holding write 2: %v", err)
	}
}

func TestReplayRefusesBadLogs(t *testing.T) {
	l := Layout{Units: 40, Writers: 2}
	for name, log := range map[string]string{
		"outside region":   "I 0 1 18 4\n",
		"unknown writer":   "I 2 1 0 1\n",
		"two in flight":    "I 0 1 0 1\nI 0 2 0 1\n",
		"seq going back":   "I 0 2 0 1\nA 0 2\nI 0 1 0 1\n",
		"ack not issued":   "A 0 1\n",
		"ack of other seq": "I 0 1 0 1\nA 0 2\n",
		"garbage":          "hello\n",
	} {
		if _, _, err := Replay(strings.NewReader(log), nil, l); !errors.Is(err, ErrLog) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReplayAcked(t *testing.T) {
	l := Layout{Units: 40, Writers: 2}
	// The whole run's log: the device state checked is from when writer 0
	// had write 2 acknowledged and writer 1 nothing.
	log := logOf(t, [][5]int64{
		{0, 1, 0, 4, 1},
		{1, 1, 20, 2, 1},
		{0, 2, 2, 4, 1},
		{0, 3, 0, 2, 1},
		{1, 2, 21, 3, 1},
	})
	e, st, err := ReplayAcked(strings.NewReader(log), nil, l, []uint64{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Issued: 5, Acked: 2, InFlight: 2, Later: 1}) {
		t.Fatalf("stats %+v", st)
	}
	for _, tc := range []struct {
		u   int64
		p   []byte
		err error
	}{
		{0, unit(0, 0, 1), nil},              // write 1, not overwritten by 2
		{0, unit(0, 0, 3), nil},              // write 3 was in flight
		{2, unit(0, 2, 2), nil},              // acknowledged write 2
		{2, unit(0, 2, 1), ErrLost},          // write 2 lost
		{20, make([]byte, UnitSize), nil},    // writer 1's write 1 in flight, not landed
		{20, unit(1, 20, 1), nil},            // or landed
		{21, unit(1, 21, 2), ErrLost},        // write 2 came after: not in this state
		{5, make([]byte, UnitSize), ErrLost}, // acknowledged write 2 lost
	} {
		if _, err := e.Check(tc.u, tc.p); !errors.Is(err, tc.err) {
			t.Errorf("unit %d: %v, want %v", tc.u, err, tc.err)
		}
	}
	if _, _, err := ReplayAcked(strings.NewReader(log), nil, l, []uint64{7, 0}); !errors.Is(err, ErrLog) {
		t.Errorf("an acknowledged write the log never issued: %v", err)
	}
}

func TestAckRecord(t *testing.T) {
	p := make([]byte, AckRecordSize)
	if seq, err := DecodeAck(p, 3); seq != 0 || err != nil {
		t.Fatalf("zeros: %d %v", seq, err)
	}
	EncodeAck(p, 3, 1<<40+5)
	if seq, err := DecodeAck(p, 3); seq != 1<<40+5 || err != nil {
		t.Fatalf("round trip: %d %v", seq, err)
	}
	if _, err := DecodeAck(p, 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("another writer's record: %v", err)
	}
	p[13] ^= 1
	if _, err := DecodeAck(p, 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
}

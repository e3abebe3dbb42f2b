package acklog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ErrLog is a log that cannot come from a writer of this package: a
// malformed line, a write outside its writer's region, an acknowledgement
// of a write not in flight.
var ErrLog = errors.New("acklog: bad log")

// ErrLost is a unit that does not hold what the log allows: an
// acknowledged write is missing, or the unit holds something no write put
// there.
var ErrLost = errors.New("acklog: acknowledged write lost")

// Log appends the records of writes. Each record is one Write call on the
// underlying writer, made before Issue or Ack returns, so a record is
// there (whole, or torn as the last line) once the call returned. Safe for
// concurrent use.
type Log struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

// NewLog returns a Log appending to w (a file opened O_APPEND on storage
// the crash does not reach).
func NewLog(w io.Writer) *Log { return &Log{w: w} }

// Issue records that writer w is about to write units [lo, lo+n) as write
// seq. Call it before issuing the write.
func (l *Log) Issue(w int, seq uint64, lo, n int64) error {
	return l.put(fmt.Sprintf("I %d %d %d %d\n", w, seq, lo, n))
}

// Ack records that the device acknowledged writer w's write seq. Call it
// after the write returned without error.
func (l *Log) Ack(w int, seq uint64) error { return l.put(fmt.Sprintf("A %d %d\n", w, seq)) }

func (l *Log) put(rec string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := io.WriteString(l.w, rec)
	return err
}

// State is what each unit of a device holds: the seq of the write it
// holds, 0 for a unit never written.
type State []uint64

// MarshalBinary encodes s as one big-endian uint64 per unit.
func (s State) MarshalBinary() ([]byte, error) {
	b := make([]byte, 8*len(s))
	for i, v := range s {
		binary.BigEndian.PutUint64(b[8*i:], v)
	}
	return b, nil
}

// UnmarshalState decodes what State.MarshalBinary wrote for units units.
func UnmarshalState(b []byte, units int64) (State, error) {
	if int64(len(b)) != 8*units {
		return nil, fmt.Errorf("acklog: state of %d bytes for %d units", len(b), units)
	}
	s := make(State, units)
	for i := range s {
		s[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return s, nil
}

// Expect is what each unit may hold after a crash: the last acknowledged
// write, or the write that was in flight.
type Expect struct {
	layout Layout
	acked  State
	maybe  map[int64]uint64 // unit -> seq of its writer's write in flight
}

// Stats counts a log's writes: issued, acknowledged, in flight at the
// crash, and issued after that (ReplayAcked of a run that went on past the
// state checked: none of those can be on the device).
type Stats struct {
	Issued, Acked, InFlight, Later int
}

type issue struct {
	seq   uint64
	lo, n int64
}

// history is a log's writes, per writer in order, and each writer's last
// acknowledged write.
type history struct {
	issued [][]issue
	acked  []uint64
}

// Replay reads a log over base (the state before the log's writes; nil for
// a device never written) and returns what each unit may hold now: each
// writer's writes up to its last acknowledged one, and the one after it
// maybe. A torn last line is ignored: its write was never issued, or never
// acknowledged.
func Replay(r io.Reader, base State, l Layout) (*Expect, Stats, error) {
	h, err := parseLog(r, l)
	if err != nil {
		return nil, Stats{}, err
	}
	return h.expect(base, l, h.acked)
}

// ReplayAcked is Replay with the acknowledgements known elsewhere: acked[w]
// is writer w's last acknowledged write (0: none), as recorded on the
// device itself (ack records, see ackrec.go); the log's own
// acknowledgements are not used.
func ReplayAcked(r io.Reader, base State, l Layout, acked []uint64) (*Expect, Stats, error) {
	if len(acked) != l.Writers {
		return nil, Stats{}, fmt.Errorf("acklog: %d acknowledgements for %d writers", len(acked), l.Writers)
	}
	h, err := parseLog(r, l)
	if err != nil {
		return nil, Stats{}, err
	}
	return h.expect(base, l, acked)
}

func parseLog(r io.Reader, l Layout) (*history, error) {
	h := &history{issued: make([][]issue, l.Writers), acked: make([]uint64, l.Writers)}
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return h, nil // a torn last line, or none
		}
		if err != nil {
			return nil, err
		}
		if err := h.apply(bytes.TrimSuffix(line, []byte("\n")), l); err != nil {
			return nil, fmt.Errorf("%w: line %d %q: %v", ErrLog, n, line, err)
		}
	}
}

func (h *history) apply(line []byte, l Layout) error {
	var w int
	var seq uint64
	switch {
	case bytes.HasPrefix(line, []byte("I ")):
		var lo, n int64
		if _, err := fmt.Sscanf(string(line), "I %d %d %d %d", &w, &seq, &lo, &n); err != nil {
			return err
		}
		if w < 0 || w >= l.Writers {
			return fmt.Errorf("no writer %d", w)
		}
		if rlo, rhi := l.Region(w); n <= 0 || lo < rlo || lo+n > rhi {
			return fmt.Errorf("units [%d, %d) outside writer %d's region [%d, %d)", lo, lo+n, w, rlo, rhi)
		}
		is := h.issued[w]
		if k := len(is); k > 0 {
			if last := is[k-1].seq; last != h.acked[w] {
				return fmt.Errorf("writer %d issued write %d with write %d in flight", w, seq, last)
			} else if seq <= last {
				return fmt.Errorf("writer %d: write %d after %d", w, seq, last)
			}
		}
		h.issued[w] = append(is, issue{seq: seq, lo: lo, n: n})
	case bytes.HasPrefix(line, []byte("A ")):
		if _, err := fmt.Sscanf(string(line), "A %d %d", &w, &seq); err != nil {
			return err
		}
		if w < 0 || w >= l.Writers {
			return fmt.Errorf("no writer %d", w)
		}
		is := h.issued[w]
		if len(is) == 0 || is[len(is)-1].seq != seq || h.acked[w] == seq {
			return fmt.Errorf("acknowledges a write not in flight")
		}
		h.acked[w] = seq
	default:
		return errors.New("unknown record")
	}
	return nil
}

// expect applies each writer's writes up to acked[w] over base; the first
// write after it is in flight.
func (h *history) expect(base State, l Layout, acked []uint64) (*Expect, Stats, error) {
	var st Stats
	e := &Expect{layout: l, acked: make(State, l.Units), maybe: map[int64]uint64{}}
	if base != nil {
		if int64(len(base)) != l.Units {
			return nil, st, fmt.Errorf("%w: base state has %d units, the device %d", ErrLog, len(base), l.Units)
		}
		copy(e.acked, base)
	}
	for w, is := range h.issued {
		if lo, hi := l.Region(w); base != nil && len(is) > 0 {
			// A seq used again would write the very bytes of an older
			// write, and hide its loss.
			if top := slices.Max(base[lo:hi]); is[0].seq <= top {
				return nil, st, fmt.Errorf("%w: writer %d's write %d is not after the base state's %d", ErrLog, w, is[0].seq, top)
			}
		}
		st.Issued += len(is)
		k := 0
		for ; k < len(is) && is[k].seq <= acked[w]; k++ {
			for u := is[k].lo; u < is[k].lo+is[k].n; u++ {
				e.acked[u] = is[k].seq
			}
			st.Acked++
		}
		if acked[w] != 0 && (k == 0 || is[k-1].seq != acked[w]) {
			return nil, st, fmt.Errorf("%w: writer %d's write %d is acknowledged but not in the log", ErrLog, w, acked[w])
		}
		if k < len(is) {
			st.InFlight++
			st.Later += len(is) - k - 1
			for u := is[k].lo; u < is[k].lo+is[k].n; u++ {
				e.maybe[u] = is[k].seq
			}
		}
	}
	return e, st, nil
}

// Check checks unit u as read from the device (p: UnitSize bytes) and
// returns the seq it holds (0: never written). The error matches ErrLost
// or ErrCorrupt.
func (e *Expect) Check(u int64, p []byte) (uint64, error) {
	h, zero, err := DecodeUnit(p)
	if err != nil {
		return 0, fmt.Errorf("unit %d (last acknowledged write %d): %w", u, e.acked[u], err)
	}
	if zero {
		if e.acked[u] != 0 {
			return 0, fmt.Errorf("%w: unit %d reads as zeros; acknowledged write %d", ErrLost, u, e.acked[u])
		}
		return 0, nil
	}
	if h.Unit != u || h.Writer != e.layout.Owner(u) {
		return 0, fmt.Errorf("%w: unit %d holds unit %d of writer %d (write %d)", ErrLost, u, h.Unit, h.Writer, h.Seq)
	}
	if h.Seq == e.acked[u] || (e.maybe[u] != 0 && h.Seq == e.maybe[u]) {
		return h.Seq, nil
	}
	return 0, fmt.Errorf("%w: unit %d holds write %d; acknowledged write %d (in flight: %d)", ErrLost, u, h.Seq, e.acked[u], e.maybe[u])
}

// InFlightLanded reports whether unit u holding seq means its in-flight
// write landed.
func (e *Expect) InFlightLanded(u int64, seq uint64) bool {
	return seq != 0 && seq == e.maybe[u] && seq != e.acked[u]
}

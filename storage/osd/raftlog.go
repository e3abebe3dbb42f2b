package osd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// raftLog implements raft.Storage for one PG over the Store. Entries live on
// disk. The terms and sizes of the entries appended since start-up (and of
// a short window before) are kept in memory (12 bytes each, bounded by log
// compaction); older terms are read from the store when raft asks, so a
// start-up does not read a long log back. It is used only from the node
// loop goroutine.
type raftLog struct {
	pg    PG
	store Store

	hs          *pb.HardState
	cs          *pb.ConfState
	first, last uint64   // first available index; last index (first-1 when empty)
	compactTerm uint64   // term of entry first-1
	termBase    uint64   // first <= termBase <= last+1
	terms       []uint64 // terms[i] is the term of entry termBase+i
	sizes       []uint32 // sizes[i] is the payload size of entry termBase+i
	heldBytes   uint64   // payload bytes of the entries in terms

	applied, appliedTerm uint64
	snapshots            bool     // Snapshot gives one (snapshot.go)
	floor                uint64   // the lowest seat generation this OSD may take in the PG (seat.go)
	seat                 uint64   // the seat stored with the hard state (seat.go: seatField), 0 if none
	prev                 []uint64 // the seats that voted in the configuration before cs (prevconf.go)
	prevKnown            bool     // prev is known: not since a snapshot install

	// damaged maps the entries read back as stand-ins (damaged.go) to
	// the data bytes they lack.
	damaged map[uint64]int

	// tail caches the newest entries [last+1-len(tail), last]: raft reads
	// them back soon after appending, to apply them once committed and to
	// send them to followers. Bounded by tailMaxEntries and tailMaxBytes.
	tail      []*pb.Entry
	tailBytes int
}

// loadWindow is how many entries before the end start-up reads back.
const loadWindow = 64

const (
	tailMaxEntries = 64
	tailMaxBytes   = 256 << 10 // per PG: an OSD holds hundreds of PGs
	// tailMaxPending bounds the cached entries not applied yet; past it
	// the oldest are read back from the log when raft asks for them.
	tailMaxPending = 16 << 20
)

// applyState is persisted atomically with every applied batch.
type applyState struct {
	Applied, AppliedTerm uint64
	CompactIndex         uint64 // == first-1
	CompactTerm          uint64
	Conf                 []byte // pb.ConfState
}

func (a applyState) encode() []byte {
	b := make([]byte, 0, 32+len(a.Conf))
	b = binary.BigEndian.AppendUint64(b, a.Applied)
	b = binary.BigEndian.AppendUint64(b, a.AppliedTerm)
	b = binary.BigEndian.AppendUint64(b, a.CompactIndex)
	b = binary.BigEndian.AppendUint64(b, a.CompactTerm)
	return append(b, a.Conf...)
}

func decodeApplyState(b []byte) (applyState, error) {
	if len(b) < 32 {
		return applyState{}, fmt.Errorf("%w: apply state of %d bytes", ErrBadEntry, len(b))
	}
	return applyState{
		Applied:      binary.BigEndian.Uint64(b),
		AppliedTerm:  binary.BigEndian.Uint64(b[8:]),
		CompactIndex: binary.BigEndian.Uint64(b[16:]),
		CompactTerm:  binary.BigEndian.Uint64(b[24:]),
		Conf:         b[32:],
	}, nil
}

// loadRaftLog reads a PG's raft state from the store.
func loadRaftLog(store Store, pg PG) (*raftLog, error) {
	st, err := store.LoadRaft(pg)
	if err != nil {
		return nil, fmt.Errorf("load raft state of pg %d.%d: %w", pg.Pool, pg.Seq, err)
	}
	l := &raftLog{pg: pg, store: store, hs: &pb.HardState{}, cs: &pb.ConfState{}, first: 1, floor: st.Tomb}
	if st.HardState != nil {
		if err := proto.Unmarshal(st.HardState, l.hs); err != nil {
			return nil, fmt.Errorf("%w: hard state of pg %d.%d: %v", ErrBadEntry, pg.Pool, pg.Seq, err)
		}
		if l.seat, err = takeSeatField(l.hs); err != nil {
			return nil, fmt.Errorf("%w: hard state of pg %d.%d: %v", ErrBadEntry, pg.Pool, pg.Seq, err)
		}
	}
	if st.ApplyState != nil {
		as, err := decodeApplyState(st.ApplyState)
		if err != nil {
			return nil, err
		}
		if err := proto.Unmarshal(as.Conf, l.cs); err != nil {
			return nil, fmt.Errorf("%w: conf state of pg %d.%d: %v", ErrBadEntry, pg.Pool, pg.Seq, err)
		}
		if l.prev, l.prevKnown, err = takePrevVoters(l.cs); err != nil {
			return nil, fmt.Errorf("%w: conf state of pg %d.%d: %v", ErrBadEntry, pg.Pool, pg.Seq, err)
		}
		l.applied, l.appliedTerm = as.Applied, as.AppliedTerm
		l.first, l.compactTerm = as.CompactIndex+1, as.CompactTerm
	}
	// Commit-only hard states are not written (Node.stage), so the stored
	// commit index may be behind what was applied: entries up to the
	// applied index were committed, and raft needs applied <= commit.
	if l.hs.GetCommit() < l.applied {
		l.hs.Commit = proto.Uint64(l.applied)
	}
	// The store's apply state is its last checkpoint: entries after it are
	// re-applied, over object changes that may be partly on disk. Any entry
	// in the log may have been applied before the crash (the commit index
	// on disk no longer bounds that), so the whole log is replayed leniently.
	store.Recover(pg, max(l.hs.GetCommit(), st.LastIndex))
	if st.FirstIndex > l.first {
		l.first = st.FirstIndex
	}
	l.last = l.first - 1
	l.termBase = l.first
	if st.LastIndex >= l.first {
		// Read back the entries not applied yet (replayed next) and a
		// short window before; older terms are read when needed.
		from := min(l.applied+1, st.LastIndex+1)
		if from > l.first+loadWindow {
			from -= loadWindow
		} else {
			from = l.first
		}
		// Heads only: the data of a large write stays in its object,
		// unread (and a damaged one does not stop the start-up).
		hs, err := l.heads(from, st.LastIndex+1)
		if err != nil {
			return nil, err
		}
		if uint64(len(hs)) != st.LastIndex-from+1 {
			return nil, fmt.Errorf("%w: pg %d.%d log [%d,%d] holds %d entries", ErrBadEntry, pg.Pool, pg.Seq, from, st.LastIndex, len(hs))
		}
		l.termBase = from
		for _, h := range hs {
			l.terms = append(l.terms, h.term)
			l.sizes = append(l.sizes, uint32(h.size))
			l.heldBytes += uint64(h.size)
		}
		l.last = st.LastIndex
	}
	// A replica whose snapshot install a crash cut short keeps its hard
	// state and nothing else (snapshot.go): its commit index is past its
	// empty log, which raft refuses. The commit index is learned again
	// from the leader; the term and vote, which raft's safety needs, stay.
	if l.hs.GetCommit() > l.last {
		l.hs.Commit = proto.Uint64(l.last)
	}
	return l, nil
}

// read returns entries [lo, hi) with raft's size bound; a damaged entry
// comes back as its stand-in (damaged.go).
func (l *raftLog) read(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if !l.damagedIn(lo, hi) {
		ents, err := l.readStrict(lo, hi, maxSize)
		if !errors.Is(err, chunkstore.ErrDamagedEntry) {
			return ents, err
		}
	}
	return l.readDamaged(lo, hi, maxSize)
}

// readStrict is read that fails on a damaged entry.
func (l *raftLog) readStrict(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	raw, err := l.store.Entries(l.pg, lo, hi, maxSize)
	if err != nil {
		return nil, fmt.Errorf("read raft log [%d,%d) of pg %d.%d: %w", lo, hi, l.pg.Pool, l.pg.Seq, err)
	}
	ents := make([]*pb.Entry, len(raw))
	for i, b := range raw {
		e := &pb.Entry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, fmt.Errorf("%w: entry %d of pg %d.%d: %v", ErrBadEntry, lo+uint64(i), l.pg.Pool, l.pg.Seq, err)
		}
		ents[i] = e
	}
	return ents, nil
}

// InitialState implements raft.Storage.
func (l *raftLog) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.CloneOf(l.hs), proto.CloneOf(l.cs), nil
}

// Entries implements raft.Storage.
func (l *raftLog) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo < l.first {
		return nil, raft.ErrCompacted
	}
	if hi > l.last+1 {
		return nil, raft.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	if ents, ok := l.fromTail(lo, hi, maxSize); ok {
		return ents, nil
	}
	return l.read(lo, hi, maxSize)
}

// Term implements raft.Storage.
func (l *raftLog) Term(i uint64) (uint64, error) {
	switch {
	case i == l.first-1:
		return l.compactTerm, nil
	case i < l.first:
		return 0, raft.ErrCompacted
	case i > l.last:
		return 0, raft.ErrUnavailable
	case i >= l.termBase:
		return l.terms[i-l.termBase], nil
	}
	hs, err := l.heads(i, i+1)
	if err != nil {
		return 0, err
	}
	return hs[0].term, nil
}

// LastIndex implements raft.Storage.
func (l *raftLog) LastIndex() (uint64, error) { return l.last, nil }

// FirstIndex implements raft.Storage.
func (l *raftLog) FirstIndex() (uint64, error) { return l.first, nil }

// stageAppend persists entries into b; commitAppend updates memory once b
// committed. The entries are marshalled into *arena, which the caller
// reuses only after b is committed or discarded (b may keep the bytes
// until then): one buffer per cycle instead of a new, zeroed one per entry,
// which cost 4 % of an OSD's CPU under 1 MiB writes. The data of a large
// write is not copied there at all: it goes to the store beside its entry
// (chunkstore.Place.Data), another 4 %. direct asks the store
// to write large writes past the page cache (a replica that serves no
// reads). pre holds data placed ahead for some of the entries
// (placeahead.go), by index: those handed to b are deleted from it.
func (l *raftLog) stageAppend(b Batch, ents []*pb.Entry, arena *[]byte, direct bool, pre map[uint64]*chunkstore.Preplaced) error {
	if len(ents) == 0 {
		return nil
	}
	// A crash in the middle of a compaction of the whole log can keep the
	// apply state that records it but not the end of CompactLog (see stage),
	// leaving the store's log ending below first-1. Finishing the compaction
	// keeps the append contiguous; otherwise it is a no-op.
	if ents[0].GetIndex() == l.first && l.last < l.first && l.first > 1 {
		if err := b.CompactLog(l.pg, l.first); err != nil {
			return err
		}
	}
	need := 0
	datas := make([]writeData, len(ents))
	for i, e := range ents {
		need += proto.Size(e)
		if d, ok := placedData(e); ok {
			datas[i] = d
			need -= len(d.b) // not copied: see below
		}
	}
	if a := *arena; cap(a)-len(a) < need {
		// Earlier entries of this cycle keep the old buffer alive.
		*arena = make([]byte, 0, max(2*cap(a), need))
	}
	raw := make([][]byte, len(ents))
	var places []chunkstore.Place
	for i, e := range ents {
		start := len(*arena)
		// A large write's data stays where it is (Place.Data): the arena
		// gets the entry without it, which the store keeps with the
		// record of where the data went.
		if data := datas[i]; data.b != nil {
			*arena = appendEntryCut(*arena, e, len(data.b))
			raw[i] = (*arena)[start:len(*arena):len(*arena)]
			places = append(places, chunkstore.Place{Entry: i, Object: data.object, Offset: data.offset,
				Lo: len(raw[i]), Hi: len(raw[i]) + len(data.b), Data: data.b, Direct: direct, Pre: pre[e.GetIndex()]})
			continue
		}
		// The sizes were just computed (and cached in e) by proto.Size.
		out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(*arena, e)
		if err != nil {
			return err
		}
		*arena = out
		raw[i] = out[start:len(out):len(out)]
	}
	// AppendPlaced logs or releases the data placed ahead it is given;
	// until then (an error above) it stays in pre, which the cycle
	// releases.
	for _, p := range places {
		if p.Pre != nil {
			delete(pre, ents[p.Entry].GetIndex())
		}
	}
	return b.AppendPlaced(l.pg, ents[0].GetIndex(), raw, places)
}

// writeData is the data of a large write and where it goes.
type writeData struct {
	object string
	offset int64
	b      []byte
}

// placedData returns the data of e's write when e is a write of at least
// placeMinBytes, which the store may place. The op's data is the end of
// e's data (encodeOp), which protobuf writes last (TestPlacedDataLayout).
func placedData(e *pb.Entry) (writeData, bool) {
	if e.GetType() != pb.EntryNormal || len(e.GetData()) < placeMinBytes || len(e.ProtoReflect().GetUnknown()) > 0 {
		return writeData{}, false
	}
	o, err := decodeOp(e.GetData())
	if err != nil || o.Kind != opWrite || len(o.Data) < placeMinBytes {
		return writeData{}, false
	}
	return writeData{o.Object, o.Offset, o.Data}, true
}

// appendEntryCut appends e's protobuf encoding without the last cut bytes
// of its data: the bytes proto.Marshal gives, less those (fields in number
// order, the data last; TestPlacedDataLayout, which also fails if raftpb
// gains a field this would drop).
func appendEntryCut(dst []byte, e *pb.Entry, cut int) []byte {
	if e.Type != nil {
		dst = protowire.AppendTag(dst, 1, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(*e.Type))
	}
	if e.Term != nil {
		dst = protowire.AppendTag(dst, 2, protowire.VarintType)
		dst = protowire.AppendVarint(dst, *e.Term)
	}
	if e.Index != nil {
		dst = protowire.AppendTag(dst, 3, protowire.VarintType)
		dst = protowire.AppendVarint(dst, *e.Index)
	}
	dst = protowire.AppendTag(dst, 4, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(e.Data)))
	return append(dst, e.Data[:len(e.Data)-cut]...)
}

// placeMinBytes is the smallest write whose entry names its data to the
// store for placing (docs/design-big-writes.md): below it the store's
// extra sync costs more than writing the data twice.
const placeMinBytes = 64 << 10

func (l *raftLog) commitAppend(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
	i0 := ents[0].GetIndex()
	if i0 < l.first {
		panic(fmt.Sprintf("osd: append at %d below first index %d of pg %d.%d", i0, l.first, l.pg.Pool, l.pg.Seq))
	}
	l.truncateFrom(i0)
	for _, e := range ents {
		l.terms = append(l.terms, e.GetTerm())
		l.sizes = append(l.sizes, uint32(len(e.GetData())))
		l.heldBytes += uint64(len(e.GetData()))
		l.tail = append(l.tail, e)
		l.tailBytes += len(e.GetData())
	}
	l.last = l.termBase + uint64(len(l.terms)) - 1
	l.trimTail(0)
}

// truncateFrom drops entries from i on (first <= i <= last+1) from
// memory: terms, sizes, the cached tail and damaged marks. An append at i
// then continues the log (commitAppend); hideFrom stops there (lost.go).
func (l *raftLog) truncateFrom(i uint64) {
	if len(l.damaged) > 0 {
		l.forgetDamaged(l.first, i)
	}
	if i < l.termBase {
		l.termBase, l.terms, l.sizes, l.heldBytes = i, nil, nil, 0
	}
	for _, n := range l.sizes[i-l.termBase:] {
		l.heldBytes -= uint64(n)
	}
	l.terms, l.sizes = l.terms[:i-l.termBase], l.sizes[:i-l.termBase]
	if tailStart := l.last + 1 - uint64(len(l.tail)); len(l.tail) > 0 && i >= tailStart {
		for _, e := range l.tail[i-tailStart:] {
			l.tailBytes -= len(e.GetData())
		}
		l.tail = l.tail[:i-tailStart]
	} else {
		l.tail, l.tailBytes = nil, 0
	}
	l.last = i - 1
}

// trimTail drops cached entries below keepFrom, and applied entries beyond
// the bounds. Entries not applied yet stay: raft hands them back as
// committed entries soon, and reading them from the log would cost a disk
// read each (the log is written with direct IO). They are bounded by the
// writes in flight and by tailMaxPending.
func (l *raftLog) trimTail(keepFrom uint64) {
	drop := 0
	start := l.last + 1 - uint64(len(l.tail))
	over := func() bool { return len(l.tail)-drop > tailMaxEntries || l.tailBytes > tailMaxBytes }
	// The newest entry stays unless it is applied and alone passes the
	// bounds: a follower's large entry is a slice of the frame it came in
	// (decodeRaftMsg), and keeping it would keep the frame.
	for drop < len(l.tail) && (drop < len(l.tail)-1 || over()) &&
		((start+uint64(drop) <= l.applied && over()) || start+uint64(drop) < keepFrom || l.tailBytes > tailMaxPending) {
		l.tailBytes -= len(l.tail[drop].GetData())
		drop++
	}
	if drop > 0 {
		l.tail = append([]*pb.Entry(nil), l.tail[drop:]...)
	}
}

// fromTail serves [lo, hi) from the cache if it holds lo; like Storage,
// it returns at least one entry and stops once maxSize would be passed.
func (l *raftLog) fromTail(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	start := l.last + 1 - uint64(len(l.tail))
	if len(l.tail) == 0 || lo < start {
		return nil, false
	}
	var out []*pb.Entry
	size := uint64(0)
	for _, e := range l.tail[lo-start : hi-start] {
		size += uint64(len(e.GetData())) + 16
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, true
}

// compact drops entries below upTo from memory (after CompactLog
// committed); term is the term of entry upTo-1, read before the entries
// were deleted.
func (l *raftLog) compact(upTo, term uint64) {
	if upTo <= l.first || upTo > l.last+1 {
		return
	}
	l.compactTerm = term
	if upTo > l.termBase {
		for _, n := range l.sizes[:upTo-l.termBase] {
			l.heldBytes -= uint64(n)
		}
		l.terms = append([]uint64(nil), l.terms[upTo-l.termBase:]...)
		l.sizes = append([]uint32(nil), l.sizes[upTo-l.termBase:]...)
		l.termBase = upTo
	}
	l.first = upTo
	l.trimTail(upTo)
	if len(l.damaged) > 0 {
		l.forgetDamaged(upTo, math.MaxUint64)
	}
}

// applyStateBytes encodes the apply state, with the compaction point
// compactTo (0: unchanged) whose entry compactTo-1 has term compactTerm.
func (l *raftLog) applyStateBytes(conf []byte, compactTo, compactTerm uint64) []byte {
	as := applyState{Applied: l.applied, AppliedTerm: l.appliedTerm, CompactIndex: l.first - 1, CompactTerm: l.compactTerm, Conf: conf}
	if compactTo > l.first && compactTo <= l.last+1 {
		as.CompactIndex, as.CompactTerm = compactTo-1, compactTerm
	}
	return as.encode()
}

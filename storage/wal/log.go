package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Config configures a Log.
type Config struct {
	Dir         string      // required; created if missing
	SegmentSize int64       // rotate segments at this size; default 64 MiB
	Logger      *zap.Logger // required
}

// DefaultSegmentSize is the default segment size.
const DefaultSegmentSize = 64 << 20

// Log is one device's raft log for all its PGs. Its methods are safe for
// concurrent use, though the OSD calls them from its node loop only.
type Log struct {
	cfg Config
	log *zap.Logger

	mu      sync.Mutex // guards the following
	pgs     map[PG]*pgLog
	segs    map[uint64]*os.File
	active  uint64   // sequence of the segment written to
	off     int64    // write offset in the active segment, a multiple of blockAlign
	zeroed  int64    // the active segment's blocks are written (data or zeros) up to here
	direct  *os.File // the active segment opened O_DIRECT|O_DSYNC; nil: buffered writes
	scratch []byte   // aligned buffer for direct writes
	closed  bool
	// needCkpt: the next commit starts with a checkpoint. Set for a new
	// segment and at Open, cleared by a successful write: a rotation whose
	// first write failed or was lost in a crash leaves a segment that has
	// none, and Open cannot tell whether the last segment's records include
	// a whole one. Older segments are deleted only while it is clear.
	needCkpt bool
	seen     map[PG]span // checkLocked's, reused
	// remove deletes a segment file (os.Remove; tests make it fail).
	remove func(name string) error
	stuck  uint64 // the segment dropOldSegments last failed to delete (warned once)
}

func segName(seq uint64) string { return fmt.Sprintf("%016x.log", seq) }

// Open opens (or creates) the log in cfg.Dir and rebuilds its index.
func Open(cfg Config) (*Log, error) {
	if cfg.Dir == "" || cfg.Logger == nil {
		return nil, fmt.Errorf("%w: wal needs a directory and a logger", ErrInvalid)
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, log: cfg.Logger, pgs: map[PG]*pgLog{}, segs: map[uint64]*os.File{}, remove: os.Remove}
	seqs, err := listSegments(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for i, seq := range seqs {
		f, err := os.OpenFile(filepath.Join(cfg.Dir, segName(seq)), os.O_RDWR, 0)
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		l.segs[seq] = f
		last := i == len(seqs)-1
		end, err := l.replay(f, seq, last)
		if err == nil && last {
			// Past the end there may be pages of a commit whose first
			// page a crash lost. A later commit ending on a block
			// boundary would put them right after its last record, where
			// replay reads them: as a corrupt record once this segment is
			// no longer the last, or as a record never acknowledged.
			err = l.cutTail(f, end)
		}
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		l.active, l.off = seq, alignUp(end)
		l.zeroed = l.off
	}
	if len(seqs) > 0 {
		l.direct = openDirect(filepath.Join(cfg.Dir, segName(l.active)))
		l.needCkpt = true
	}
	if len(seqs) == 0 {
		if err := l.newSegment(1); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func (l *Log) newSegment(seq uint64) error {
	path := filepath.Join(l.cfg.Dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// Preallocate so appends do not grow the file; not every filesystem
	// can, and that is fine.
	_ = unix.Fallocate(int(f.Fd()), 0, 0, l.cfg.SegmentSize)
	if err := syncDir(l.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	l.segs[seq] = f
	l.active, l.off, l.zeroed = seq, 0, 0
	l.needCkpt = true
	if l.direct != nil {
		l.direct.Close()
	}
	l.direct = openDirect(path)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// replay applies every record of segment f to the index and returns the
// offset where the next record goes. A record that fails its checksum is
// the end of the last segment (a crash during a write; Open cuts it off)
// and ErrCorrupt in any other: a segment is rotated away from only after
// its last commit, and Open leaves nothing past the end of the last one,
// so an older segment holds whole commits up to its end (a zero length at
// a block boundary) and a bad record in it is damage to one of them.
func (l *Log) replay(f *os.File, seq uint64, last bool) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return 0, err
	}
	off := int64(0)
	for off+recHeader <= int64(len(data)) {
		n := int64(binary.BigEndian.Uint32(data[off:]))
		if n == 0 {
			if off%blockAlign != 0 {
				off = paddedLen(off) // the padding after a commit (commits start aligned)
				continue
			}
			break // preallocated zeros: the end
		}
		sum := binary.BigEndian.Uint32(data[off+4:])
		if !recordOK(data, off, n, sum) {
			if last {
				l.log.Warn("cutting a torn record at the end of the raft log (crash during a write)",
					zap.String("segment", segName(seq)), zap.Int64("offset", off))
				return off, nil
			}
			return 0, fmt.Errorf("%w: segment %s, record at offset %d", ErrCorrupt, segName(seq), off)
		}
		if err := l.applyRecord(data[off+recHeader:off+recHeader+n], seq, off+recHeader, true); err != nil {
			return 0, fmt.Errorf("%w: segment %s, record at offset %d: %v", ErrCorrupt, segName(seq), off, err)
		}
		off += recHeader + n
	}
	return off, nil
}

// recordOK checks the record of body length n at off in data.
func recordOK(data []byte, off, n int64, sum uint32) bool {
	if n < bodyHeader || off+recHeader+n > int64(len(data)) {
		return false
	}
	got, err := recordSum(data[off+recHeader:off+recHeader+n], true)
	return err == nil && got == sum
}

// cutTail discards everything from off on, so a later record can never be
// followed by the remains of a torn or lost commit.
func (l *Log) cutTail(f *os.File, off int64) error {
	if err := f.Truncate(off); err != nil {
		return err
	}
	_ = unix.Fallocate(int(f.Fd()), 0, 0, l.cfg.SegmentSize)
	return f.Sync()
}

// applyRecord updates the index for one record body found at segment
// offset base.
func (l *Log) applyRecord(body []byte, seq uint64, base int64, replay bool) error {
	typ := body[0]
	pg := PG{Pool: binary.BigEndian.Uint32(body[1:]), Seq: binary.BigEndian.Uint32(body[5:])}
	rest := body[bodyHeader:]
	switch typ {
	case recEntries:
		if len(rest) < 12 {
			return errors.New("short entries record")
		}
		first := binary.BigEndian.Uint64(rest)
		count := int(binary.BigEndian.Uint32(rest[8:]))
		pos := int64(bodyHeader + 12)
		locs := make([]loc, 0, count)
		for i := 0; i < count; i++ {
			if pos+entryHeader > int64(len(body)) {
				return errors.New("short entry")
			}
			h := binary.BigEndian.Uint32(body[pos:])
			n := h &^ markBit
			if pos+entryHeader+int64(n) > int64(len(body)) {
				return errors.New("short entry")
			}
			locs = append(locs, loc{seg: seq, off: base + pos, n: n, marked: h&markBit != 0})
			pos += entryHeader + int64(n)
		}
		return l.pg(pg).append(first, locs, replay)
	case recRewrite:
		if len(rest) < 8+entryHeader {
			return errors.New("short rewrite record")
		}
		h := binary.BigEndian.Uint32(rest[8:])
		n := h &^ markBit
		if int64(8+entryHeader)+int64(n) != int64(len(rest)) {
			return errors.New("malformed rewrite record")
		}
		l.pg(pg).rewrite(binary.BigEndian.Uint64(rest), loc{seg: seq, off: base + bodyHeader + 8, n: n, marked: h&markBit != 0})
	case recHardState:
		l.pg(pg).hs = append([]byte(nil), rest...)
	case recCompact:
		if len(rest) < 8 {
			return errors.New("short compact record")
		}
		l.pg(pg).compact(binary.BigEndian.Uint64(rest))
	case recDrop:
		delete(l.pgs, pg)
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

func (l *Log) pg(pg PG) *pgLog {
	p := l.pgs[pg]
	if p == nil {
		p = &pgLog{first: 1}
		l.pgs[pg] = p
	}
	return p
}

// Commit writes b durably (one fdatasync) and then applies it to the index.
func (l *Log) Commit(b *Batch) error {
	if b.Empty() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.checkLocked(b); err != nil {
		return err
	}
	buf := b.buf
	var ckpt []byte
	if l.off > 0 && l.off+paddedLen(int64(len(buf))) > l.cfg.SegmentSize {
		if err := l.newSegment(l.active + 1); err != nil {
			return fmt.Errorf("wal: new segment: %w", err)
		}
	}
	if l.needCkpt {
		ckpt = l.checkpoint()
		buf = append(ckpt, buf...)
	}
	if err := l.write(buf); err != nil {
		return err
	}
	l.needCkpt = false
	base := l.off + int64(len(ckpt))
	l.off += paddedLen(int64(len(buf)))
	for _, op := range b.ops {
		switch op.typ {
		case recEntries:
			locs := make([]loc, len(op.offs))
			for i := range op.offs {
				locs[i] = loc{seg: l.active, off: base + op.offs[i], n: op.lens[i], marked: op.marks != nil && op.marks[i]}
			}
			if err := l.pg(op.pg).append(op.first, locs, false); err != nil {
				return err
			}
		case recRewrite:
			l.pg(op.pg).rewrite(op.upTo, loc{seg: l.active, off: base + op.offs[0], n: op.lens[0], marked: op.marks != nil})
		case recHardState:
			l.pg(op.pg).hs = op.hs
		case recCompact:
			l.pg(op.pg).compact(op.upTo)
		case recDrop:
			delete(l.pgs, op.pg)
		}
	}
	l.dropOldSegments()
	return nil
}

// checkLocked refuses a batch whose entries would leave a gap in a PG's
// log or start below its first index, before anything is written: written
// and read back, such a record would restart the PG's log there (replay
// takes a gap for history in segments since deleted), so a batch the
// caller was told failed would change the log after a restart.
func (l *Log) checkLocked(b *Batch) error {
	if l.seen == nil {
		l.seen = map[PG]span{}
	}
	seen := l.seen // the PGs changed earlier in b, as b leaves them
	clear(seen)
	for _, op := range b.ops {
		if op.typ != recEntries && op.typ != recCompact && op.typ != recDrop {
			continue
		}
		s, ok := seen[op.pg]
		if !ok {
			s = span{first: 1}
			if p := l.pgs[op.pg]; p != nil {
				s.first, s.last = p.first, p.last()
			}
		}
		switch op.typ {
		case recEntries:
			if op.first > s.last+1 || op.first < s.first {
				return fmt.Errorf("%w: pg %s: append at %d outside [%d, %d]", ErrInvalid, op.pg, op.first, s.first, s.last+1)
			}
			s.last = op.first + uint64(len(op.lens)) - 1
		case recCompact:
			if op.upTo > s.last {
				s.first, s.last = op.upTo, op.upTo-1
			} else if op.upTo > s.first {
				s.first = op.upTo
			}
		case recDrop:
			s.first, s.last = 1, 0
		}
		seen[op.pg] = s
	}
	return nil
}

// span is a PG log's first and last index (checkLocked).
type span struct{ first, last uint64 }

// write makes buf durable at l.off: one direct, synchronous write of buf
// padded with zeros to a whole number of blocks, or a buffered write and
// fdatasync where direct IO is not available. When the write reaches past
// l.zeroed and buf is small it also writes zeros up to the next zeroStep
// boundary (see zeroStep).
func (l *Log) write(buf []byte) error {
	n := paddedLen(int64(len(buf)))
	total := n
	if end := l.off + n; end > l.zeroed && n < zeroBelow {
		if z := min(alignTo(end, zeroStep), l.cfg.SegmentSize&^(blockAlign-1)); z > end {
			total = z - l.off
		}
	}
	if err := l.writeAt(buf, int(total)); err != nil {
		return err
	}
	l.zeroed = max(l.zeroed, l.off+total)
	return nil
}

// writeAt writes buf followed by zeros, total bytes, at l.off and makes
// them durable.
func (l *Log) writeAt(buf []byte, total int) error {
	if l.direct != nil {
		var p []byte
		if cap(buf) >= total && aligned(buf) {
			p = buf[:total] // the batch kept room (Batch.reserve): no copy
			clear(p[len(buf):])
		} else {
			p = scratch(&l.scratch, total)
			clear(p[copy(p, buf):])
		}
		_, err := l.direct.WriteAt(p, l.off)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("wal: write segment %s: %w", segName(l.active), err)
		}
		l.log.Warn("direct IO refused; writing the raft log through the page cache", zap.Error(err))
		l.direct.Close()
		l.direct = nil
	}
	f := l.segs[l.active]
	p := make([]byte, total)
	copy(p, buf)
	if _, err := f.WriteAt(p, l.off); err != nil {
		return fmt.Errorf("wal: write segment %s: %w", segName(l.active), err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("wal: sync segment %s: %w", segName(l.active), err)
	}
	return nil
}

// checkpoint encodes every PG's hard state and first index, written at the
// start of each new segment and with the first commit after Open.
func (l *Log) checkpoint() []byte {
	var b Batch
	for pg, p := range l.pgs {
		if p.hs != nil {
			b.HardState(pg, p.hs)
		}
		b.Compact(pg, p.first)
	}
	return b.buf
}

// dropOldSegments deletes segments no PG has entries in any more. The
// hard states and first indexes in them are in the active segment's
// checkpoint, so it deletes nothing while that is not written.
//
// It deletes the oldest first and stops at a segment it cannot delete, so
// that the segments left (after a crash or a failure) are always every
// one from some point on: replay must never see a record without the
// later ones that undo it, such as a PG's entries without the segment
// that drops the PG (Open would bring the PG back), which deleting in any
// other order could leave.
func (l *Log) dropOldSegments() {
	if l.needCkpt {
		return
	}
	oldest := l.active
	for _, p := range l.pgs {
		if seg, ok := p.oldestSeg(); ok && seg < oldest {
			oldest = seg
		}
	}
	var old []uint64
	for seq := range l.segs {
		if seq < oldest {
			old = append(old, seq)
		}
	}
	slices.Sort(old)
	for _, seq := range old {
		if err := l.remove(filepath.Join(l.cfg.Dir, segName(seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
			if l.stuck != seq {
				l.stuck = seq
				l.log.Warn("cannot delete an old raft log segment; the later ones are kept too, and it is tried again after every commit", zap.Error(err))
			}
			return
		}
		l.segs[seq].Close()
		delete(l.segs, seq)
		// Each removal durable before the next: a crash must not keep an
		// older segment whose newer neighbour's removal reached the disk.
		if err := syncDir(l.cfg.Dir); err != nil {
			l.log.Warn("cannot sync the raft log's directory; old segments are deleted again after the next commit", zap.Error(err))
			return
		}
	}
}

// State returns pg's hard state and log bounds (first 1, last 0 for a PG
// never written).
func (l *Log) State(pg PG) (hs []byte, first, last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pgs[pg]
	if p == nil {
		return nil, 1, 0
	}
	return p.hs, p.first, p.last()
}

// PGs lists the PGs the log knows.
func (l *Log) PGs() []PG {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]PG, 0, len(l.pgs))
	for pg := range l.pgs {
		out = append(out, pg)
	}
	return out
}

// Entries returns pg's entries [lo, hi), stopping before the entry that
// would take the total past maxBytes (but returning at least one). Marked
// entries come back like the others; a caller that marks entries uses
// EntriesMarked.
func (l *Log) Entries(pg PG, lo, hi, maxBytes uint64) ([][]byte, error) {
	ents, _, err := l.EntriesMarked(pg, lo, hi, maxBytes)
	return ents, err
}

// EntriesMarked is Entries that also says which entries are marked.
func (l *Log) EntriesMarked(pg PG, lo, hi, maxBytes uint64) ([][]byte, []bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, ErrClosed
	}
	p := l.pgs[pg]
	if p == nil || lo < p.first || hi > p.last()+1 {
		return nil, nil, fmt.Errorf("%w: pg %s [%d,%d)", ErrNotFound, pg, lo, hi)
	}
	var out [][]byte
	var marks []bool
	total := uint64(0)
	for i := lo; i < hi; i++ {
		lc := p.locs[i-p.first]
		if len(out) > 0 && total+uint64(lc.n) > maxBytes {
			break
		}
		buf := make([]byte, entryHeader+int(lc.n))
		if _, err := l.segs[lc.seg].ReadAt(buf, lc.off); err != nil {
			return nil, nil, fmt.Errorf("wal: read entry %d of pg %s: %w", i, pg, err)
		}
		h := binary.BigEndian.Uint32(buf)
		if h&^markBit != lc.n || (h&markBit != 0) != lc.marked || crc32.Checksum(buf[entryHeader:], castagnoli) != binary.BigEndian.Uint32(buf[4:]) {
			return nil, nil, fmt.Errorf("%w: entry %d of pg %s in segment %s", ErrCorrupt, i, pg, segName(lc.seg))
		}
		out = append(out, buf[entryHeader:])
		marks = append(marks, lc.marked)
		total += uint64(lc.n)
	}
	return out, marks, nil
}

// Marked lists the indexes of pg's stored entries that are marked, in
// order (what a store rebuilds its bookkeeping from at open).
func (l *Log) Marked(pg PG) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pgs[pg]
	if p == nil {
		return nil
	}
	var out []uint64
	for i, lc := range p.locs {
		if lc.marked {
			out = append(out, p.first+uint64(i))
		}
	}
	return out
}

// Close closes the segment files.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var first error
	if l.direct != nil {
		l.direct.Close()
		l.direct = nil
	}
	for _, f := range l.segs {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

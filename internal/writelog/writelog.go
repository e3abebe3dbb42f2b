// Package writelog reads the write log of QEMU's blklogwrites block driver
// (the on-disk format of Linux's dm-log-writes: every write, discard and
// flush a disk completed, in order, with the written data) and replays a
// prefix of it onto an image. A prefix that ends at a flush is a state the
// disk could be left in had the power gone right after that flush
// completed: everything before it is there, nothing after. The power-loss
// test boots a cluster from such states to check what it acknowledged.
//
// A test helper: only tests (cmd/tsumiki) import it.
package writelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Entry flags (dm-log-writes).
const (
	FlagFlush   = 1 << 0
	FlagFUA     = 1 << 1
	FlagDiscard = 1 << 2
	FlagMark    = 1 << 3
)

const (
	logMagic   = 0x6a736677736872
	logVersion = 1
	superSize  = 8 + 8 + 8 + 4
	entrySize  = 8 + 8 + 8 + 8
)

// ErrFormat is a file that is not a write log this package reads.
var ErrFormat = errors.New("writelog: not a write log")

// Entry is one logged operation: Sectors sectors (of the log's sector
// size) at Sector, written (their data follows in the log), discarded
// (FlagDiscard: no data) or a flush (FlagFlush, no sectors).
type Entry struct {
	Sector, Sectors uint64
	Flags           uint64
	data            int64 // offset of the data in the log file
}

// Log is an opened write log. Not safe for concurrent use.
type Log struct {
	f          *os.File
	SectorSize int64
	Entries    []Entry // every whole entry: those the super block counts, and any whole ones after
	// TornAt is the index of an entry the super block counts whose header
	// is all zeros: QEMU counted it while its log write was still in
	// flight (QEMU was killed), so where the entries after it start is
	// unknown and they are dropped. -1 if none.
	TornAt int
}

// Open reads the log at path: its super block and every entry it counts.
func Open(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l, err := read(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func read(f *os.File) (*Log, error) {
	var sb [superSize]byte
	if _, err := f.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("%w: super block: %v", ErrFormat, err)
	}
	le := binary.LittleEndian
	if le.Uint64(sb[0:]) != logMagic || le.Uint64(sb[8:]) != logVersion {
		return nil, fmt.Errorf("%w: bad magic or version", ErrFormat)
	}
	n, ss := le.Uint64(sb[16:]), int64(le.Uint32(sb[24:]))
	if ss < entrySize || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("%w: sector size %d", ErrFormat, ss)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := &Log{f: f, SectorSize: ss, Entries: make([]Entry, 0, n), TornAt: -1}
	pos := ss // entries start at sector 1
	for i := uint64(0); ; i++ {
		e, next, err := readEntry(f, pos, ss, st.Size())
		zero := err == nil && e == (Entry{data: e.data}) // no entry is all zeros
		if i >= n && (err != nil || zero) {
			// Past the count: QEMU rewrites the super block at flushes
			// and every few thousand entries, so entries after it are
			// read while they are whole; zeros (a new file) end them.
			break
		}
		if zero {
			l.TornAt = int(i)
			break
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		l.Entries = append(l.Entries, e)
		pos = next
	}
	return l, nil
}

// readEntry reads the entry at pos and returns it and where the next one
// starts.
func readEntry(f *os.File, pos, ss, size int64) (Entry, int64, error) {
	var b [entrySize]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		return Entry{}, 0, fmt.Errorf("%w: at %d: %v", ErrFormat, pos, err)
	}
	le := binary.LittleEndian
	e := Entry{Sector: le.Uint64(b[0:]), Sectors: le.Uint64(b[8:]), Flags: le.Uint64(b[16:]), data: pos + ss}
	if e.Flags&^(FlagFlush|FlagFUA|FlagDiscard|FlagMark) != 0 {
		return e, 0, fmt.Errorf("%w: at %d: flags %#x", ErrFormat, pos, e.Flags)
	}
	if dl := le.Uint64(b[24:]); dl > uint64(ss-entrySize) {
		return e, 0, fmt.Errorf("%w: at %d: %d bytes of entry data", ErrFormat, pos, dl)
	}
	next := pos + ss
	if e.Flags&FlagDiscard == 0 {
		if e.Sectors > uint64(size/ss) {
			return e, 0, fmt.Errorf("%w: at %d: %d sectors", ErrFormat, pos, e.Sectors)
		}
		next += int64(e.Sectors) * ss
	}
	if next > size {
		return e, 0, fmt.Errorf("%w: entry at %d ends at %d, past the file's %d bytes", ErrFormat, pos, next, size)
	}
	return e, next, nil
}

// Close closes the log file.
func (l *Log) Close() error { return l.f.Close() }

// Flushes returns the indexes of the flush entries, in order.
func (l *Log) Flushes() []int {
	var out []int
	for i, e := range l.Entries {
		if e.Flags&FlagFlush != 0 {
			out = append(out, i)
		}
	}
	return out
}

// FirstWriteAt returns the index of the first entry that writes any of
// bytes [off, off+n) of the disk, or -1.
func (l *Log) FirstWriteAt(off, n int64) int {
	for i, e := range l.Entries {
		lo, hi := int64(e.Sector)*l.SectorSize, int64(e.Sector+e.Sectors)*l.SectorSize
		if e.Flags&(FlagDiscard|FlagFlush) == 0 && lo < off+n && off < hi {
			return i
		}
	}
	return -1
}

// ApplyWithin applies to dst the writes among entries [lo, hi) that lie
// wholly inside bytes [off, off+n) of the disk, and returns how many. With
// a Replay through a flush and lo just after it, this builds a crash state
// in which, of the writes the disk completed after that flush, only those
// in the range reached the media (a disk with a volatile cache may keep
// any of them). A nil dst only counts them.
func (l *Log) ApplyWithin(dst *os.File, lo, hi int, off, n int64) (int, error) {
	applied := 0
	for i := lo; i < hi && i < len(l.Entries); i++ {
		e := l.Entries[i]
		eo, en := int64(e.Sector)*l.SectorSize, int64(e.Sectors)*l.SectorSize
		if e.Flags&(FlagDiscard|FlagFlush) != 0 || en == 0 || eo < off || eo+en > off+n {
			continue
		}
		if dst == nil {
			applied++
			continue
		}
		if _, err := io.Copy(io.NewOffsetWriter(dst, eo), io.NewSectionReader(l.f, e.data, en)); err != nil {
			return applied, fmt.Errorf("writelog: entry %d: %w", i, err)
		}
		applied++
	}
	return applied, nil
}

// Replay applies entries [0, through] to dst, an image of the disk as it
// was when the log began (for a log begun on a new disk: a sparse file of
// zeros of the disk's size). Discarded ranges become holes.
func (l *Log) Replay(dst *os.File, through int) error {
	if through >= len(l.Entries) {
		return fmt.Errorf("writelog: replay through entry %d of %d", through, len(l.Entries))
	}
	buf := make([]byte, 1<<20)
	for i := 0; i <= through; i++ {
		if err := l.apply(dst, i, buf); err != nil {
			return err
		}
	}
	return nil
}

// Apply applies entry i alone to dst: its write, or its discard as a hole;
// a flush changes nothing. Replaying through the last flush and then
// applying some of the entries after it, in order, builds a state a disk
// with a volatile write cache may be left in at a power cut: of the
// writes it completed after its last flush, any subset reached the media.
func (l *Log) Apply(dst *os.File, i int) error {
	if i < 0 || i >= len(l.Entries) {
		return fmt.Errorf("writelog: apply entry %d of %d", i, len(l.Entries))
	}
	return l.apply(dst, i, make([]byte, 1<<20))
}

func (l *Log) apply(dst *os.File, i int, buf []byte) error {
	e := l.Entries[i]
	if n := int64(e.Sectors) * l.SectorSize; n > 0 {
		if err := l.applyRange(dst, e, int64(e.Sector)*l.SectorSize, n, buf); err != nil {
			return fmt.Errorf("writelog: entry %d: %w", i, err)
		}
	}
	return nil
}

// ApplyTorn applies entry i as a power cut may leave a write or discard
// the disk completed but had not flushed, torn: cut into pages of page
// bytes (aligned to the disk's offsets), each of which reached the media
// or did not, as keep says, page by page in order. Disks promise no more
// than that a sector is written whole (file systems and databases count
// on 4 KiB pages being whole, so page is normally 4096). It returns how
// many pages there were and how many were kept; a flush has none.
func (l *Log) ApplyTorn(dst *os.File, i int, page int64, keep func() bool) (kept, pages int, err error) {
	if i < 0 || i >= len(l.Entries) {
		return 0, 0, fmt.Errorf("writelog: apply entry %d of %d", i, len(l.Entries))
	}
	if page <= 0 || page%l.SectorSize != 0 {
		return 0, 0, fmt.Errorf("writelog: page of %d bytes: want whole sectors of %d", page, l.SectorSize)
	}
	e := l.Entries[i]
	off, end := int64(e.Sector)*l.SectorSize, int64(e.Sector+e.Sectors)*l.SectorSize
	buf := make([]byte, page)
	for lo := off; lo < end; {
		hi := min(end, (lo/page+1)*page)
		pages++
		if keep() {
			kept++
			if err := l.applyRange(dst, e, lo, hi-lo, buf); err != nil {
				return kept, pages, fmt.Errorf("writelog: entry %d: %w", i, err)
			}
		}
		lo = hi
	}
	return kept, pages, nil
}

// applyRange applies bytes [off, off+n) of the disk that entry e covers.
func (l *Log) applyRange(dst *os.File, e Entry, off, n int64, buf []byte) error {
	if e.Flags&FlagDiscard != 0 {
		return unix.Fallocate(int(dst.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	src := io.NewSectionReader(l.f, e.data+off-int64(e.Sector)*l.SectorSize, n)
	_, err := io.CopyBuffer(io.NewOffsetWriter(dst, off), src, buf)
	return err
}

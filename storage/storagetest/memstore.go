package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// PG names a placement group.
type PG = chunkstore.PG

// ErrCrash is what Commit returns when a commit fault crashed it: a prefix
// of the batch may be durable, the rest is lost, as after a power cut in the
// middle of a chunkstore batch that was split into several transactions.
var ErrCrash = errors.New("storagetest: injected crash during commit")

// MemStore is an in-memory store with the semantics of *chunkstore.Store for
// everything an OSD uses: a raft log, hard state and apply state per PG, and
// objects read as flat byte arrays. As in chunkstore, the raft log and hard
// state are durable at Commit; object changes and apply states become
// durable at a Checkpoint (explicit, or every n commits with
// SetCheckpointEvery), which also performs the log compactions asked for
// before it. Clone copies what a restarted OSD finds after a power cut: the
// log, the last checkpoint's apply states, and for each object either its
// checkpointed or its current content (SetCrashMix chooses).
//
// Its methods are safe for concurrent use. A Batch belongs to one goroutine.
type MemStore struct {
	mu          sync.Mutex // guards the following
	pgs         map[PG]*pgData
	commitFault func(ops int) (keep int, crash bool)
	loseWrite   func(pg PG, object string) bool
	crashMix    func(pg PG, object string) bool
	ckptEvery   int // checkpoint after every ckptEvery commits; 0: only when asked
	commits     int
	damaged     func(pg PG, index uint64) bool
	tombs       map[PG]uint64 // kept across drops (DropPG), durable at once
}

type pgData struct {
	hard, apply []byte            // nil if never set; apply is the latest, not yet durable
	compact     uint64            // compaction point as of the last checkpoint; 0 if never
	ents        map[uint64][]byte // raft log entries by index
	placed      map[uint64]placed // which of them came with a place (AppendPlaced)
	objs        map[string]*object

	ckApply     []byte             // apply state of the last checkpoint (what LoadRaft returns)
	ckObjs      map[string]*object // objects as of the last checkpoint
	pendCompact uint64             // compaction asked for since the last checkpoint
	installing  bool               // between BeginInstall and EndInstall (install.go)
}

// placed is where the data of a placed entry is, and where it goes.
type placed struct {
	object string
	offset int64
	lo, hi int // the data is the entry's bytes [lo, hi)
}

// object is an object's logical content: len(data) is its size, holes are
// stored zeros.
type object struct {
	data    []byte
	version uint64
	bad     map[int64]bool // damaged blocks (damage.go)
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{pgs: map[PG]*pgData{}} }

// SetCommitFault makes every later Commit ask f what to do with its batch of
// ops primitive changes (see Batch for what one change is): the first keep
// are applied, the rest are lost; crash makes Commit return ErrCrash (the
// caller must then behave as a crashed process), otherwise Commit reports
// success (a disk that lies). keep is clamped to [0, ops]. f runs under the
// store's lock and must not call the store. nil removes the fault.
func (s *MemStore) SetCommitFault(f func(ops int) (keep int, crash bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitFault = f
}

// SetLoseWrites makes later Commits silently drop every object change
// (Write, Truncate, Zero, Delete) for which f returns true, while reporting
// success: a disk that loses acknowledged data. It applies before the commit
// fault. f runs under the store's lock. nil removes the fault.
func (s *MemStore) SetLoseWrites(f func(pg PG, object string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseWrite = f
}

// SetDamaged makes Entries fail with chunkstore.ErrDamagedEntry for each
// entry stored with a place (AppendPlaced) for which f returns true, as
// chunkstore does when the slots holding its data are damaged; EntryHeads
// still gives its head and ApplyPlaced applies it. f runs under the store's
// lock and should give the same answer for an entry every time. nil
// removes the fault.
func (s *MemStore) SetDamaged(f func(pg PG, index uint64) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.damaged = f
}

// Clone returns what a restarted OSD finds after a power cut (see
// MemStore), without the faults.
func (s *MemStore) Clone() *MemStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := NewMemStore()
	c.ckptEvery = s.ckptEvery
	c.tombs = maps.Clone(s.tombs)
	for _, pg := range slices.SortedFunc(maps.Keys(s.pgs), cmpPG) {
		d := s.pgs[pg]
		if d.installing { // what chunkstore's Open leaves of a cut install
			c.pgs[pg] = &pgData{hard: bytes.Clone(d.hard), ents: map[uint64][]byte{}, objs: map[string]*object{}, ckObjs: map[string]*object{}}
			continue
		}
		nd := &pgData{hard: bytes.Clone(d.hard), apply: bytes.Clone(d.ckApply), ckApply: bytes.Clone(d.ckApply),
			compact: d.compact, ents: make(map[uint64][]byte, len(d.ents)), objs: map[string]*object{}}
		for i, e := range d.ents {
			nd.ents[i] = bytes.Clone(e)
		}
		nd.placed = maps.Clone(d.placed)
		names := slices.Collect(maps.Keys(d.objs))
		for n := range d.ckObjs {
			if d.objs[n] == nil {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			o := d.ckObjs[n]
			if s.crashMix != nil && s.crashMix(pg, n) {
				o = d.objs[n]
			}
			if o != nil {
				nd.objs[n] = o.clone()
			}
		}
		nd.ckObjs = cloneObjs(nd.objs)
		c.pgs[pg] = nd
	}
	return c
}

// SetCrashMix makes Clone keep an object's current content (not yet
// checkpointed) when f returns true, as a power cut after the kernel wrote
// back some files but not others. f is called in a deterministic order.
func (s *MemStore) SetCrashMix(f func(pg PG, object string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashMix = f
}

// SetCheckpointEvery makes every n-th Commit take a checkpoint (0: never).
func (s *MemStore) SetCheckpointEvery(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ckptEvery = n
}

// Checkpoint makes the current objects and apply states durable and
// performs the log compactions asked for since the last one.
func (s *MemStore) Checkpoint() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkpointLocked()
	return nil
}

func (s *MemStore) checkpointLocked() {
	for _, d := range s.pgs {
		d.ckApply = bytes.Clone(d.apply)
		d.ckObjs = cloneObjs(d.objs)
		if d.pendCompact > max(d.compact, 1) {
			for i := range d.ents {
				if i < d.pendCompact {
					delete(d.ents, i)
					delete(d.placed, i)
				}
			}
			d.compact = d.pendCompact
		}
		d.pendCompact = 0
	}
}

func (o *object) clone() *object {
	return &object{data: bytes.Clone(o.data), version: o.version, bad: o.cloneBad()}
}

func cloneObjs(m map[string]*object) map[string]*object {
	out := make(map[string]*object, len(m))
	for n, o := range m {
		out[n] = o.clone()
	}
	return out
}

func cmpPG(a, b PG) int {
	if a.Pool != b.Pool {
		return cmpU32(a.Pool, b.Pool)
	}
	return cmpU32(a.Seq, b.Seq)
}

// pgLocked returns pg's data, creating it.
func (s *MemStore) pgLocked(pg PG) *pgData {
	d := s.pgs[pg]
	if d == nil {
		d = &pgData{ents: map[uint64][]byte{}, objs: map[string]*object{}}
		s.pgs[pg] = d
	}
	return d
}

// bounds is a PG's log bounds as chunkstore reports them: first == 0 when
// the log is empty and was never compacted; last == first-1 when empty.
type bounds struct{ first, last uint64 }

// boundsLocked derives pg's log bounds from its entries and compaction point
// the way chunkstore does from disk.
func (s *MemStore) boundsLocked(pg PG) bounds {
	d := s.pgs[pg]
	if d == nil {
		return bounds{}
	}
	var lo, hi uint64
	found := false
	for i := range d.ents {
		if i >= max(d.compact, 1) && (!found || i < lo) {
			lo, found = i, true
		}
		hi = max(hi, i)
	}
	switch {
	case found && hi >= lo:
		return bounds{lo, hi}
	case d.compact > 0:
		return bounds{d.compact, d.compact - 1}
	}
	return bounds{}
}

// LoadRaft returns pg's raft state; a PG without any is a zero RaftState.
func (s *MemStore) LoadRaft(pg PG) (chunkstore.RaftState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bd := s.boundsLocked(pg)
	st := chunkstore.RaftState{FirstIndex: bd.first, LastIndex: bd.last}
	if d := s.pgs[pg]; d != nil {
		st.HardState, st.ApplyState = bytes.Clone(d.hard), bytes.Clone(d.ckApply)
	}
	st.Tomb = s.tombs[pg]
	return st, nil
}

// Entries returns log entries [lo, hi) of pg, stopping before the one that
// would take the total past maxBytes but returning at least one. A missing
// entry is an error wrapping chunkstore.ErrNotFound.
func (s *MemStore) Entries(pg PG, lo, hi, maxBytes uint64) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	var total uint64
	for i := lo; i < hi; i++ {
		var e []byte
		ok := false
		if d := s.pgs[pg]; d != nil {
			e, ok = d.ents[i]
		}
		if !ok {
			return nil, fmt.Errorf("storagetest: entries pg %s index %d: %w", pg, i, chunkstore.ErrNotFound)
		}
		if _, ok := s.pgs[pg].placed[i]; ok && s.damaged != nil && s.damaged(pg, i) {
			return nil, &chunkstore.CorruptError{Op: "entries", PG: pg, Block: -1,
				Detail: fmt.Sprintf("placed entry %d (injected damage)", i), Err: chunkstore.ErrDamagedEntry}
		}
		total += uint64(len(e))
		if len(out) > 0 && total > maxBytes {
			break
		}
		out = append(out, bytes.Clone(e))
	}
	return out, nil
}

// EntryHeads returns the heads of log entries [lo, hi) of pg: an entry
// stored with a place (AppendPlaced) without its data, as chunkstore keeps
// it; the others whole. A missing entry is an error wrapping
// chunkstore.ErrNotFound.
func (s *MemStore) EntryHeads(pg PG, lo, hi uint64) ([]chunkstore.EntryHead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chunkstore.EntryHead
	for i := lo; i < hi; i++ {
		d := s.pgs[pg]
		if d == nil || d.ents[i] == nil {
			return nil, fmt.Errorf("storagetest: entry heads pg %s index %d: %w", pg, i, chunkstore.ErrNotFound)
		}
		e := d.ents[i]
		p, ok := d.placed[i]
		if !ok {
			out = append(out, chunkstore.EntryHead{Rest: bytes.Clone(e)})
			continue
		}
		out = append(out, chunkstore.EntryHead{Rest: slices.Concat(e[:p.lo], e[p.hi:]), Cut: p.lo, Data: p.hi - p.lo})
	}
	return out, nil
}

// ListPGs returns the PGs with durable raft state or objects, sorted (an
// apply state not checkpointed yet does not count, as in chunkstore).
func (s *MemStore) ListPGs() ([]PG, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PG
	for pg, d := range s.pgs {
		if d.hard != nil || d.ckApply != nil || d.compact > 0 || len(d.ents) > 0 || len(d.objs) > 0 {
			out = append(out, pg)
		}
	}
	slices.SortFunc(out, func(a, b PG) int {
		if a.Pool != b.Pool {
			return cmpU32(a.Pool, b.Pool)
		}
		return cmpU32(a.Seq, b.Seq)
	})
	return out, nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func validName(name string) error {
	if name == "" || len(name) > chunkstore.MaxNameLen {
		return fmt.Errorf("storagetest: object name length %d: %w", len(name), chunkstore.ErrInvalid)
	}
	return nil
}

func checkRange(name string, off, n int64) error {
	if err := validName(name); err != nil {
		return err
	}
	if off < 0 || n < 0 {
		return fmt.Errorf("storagetest: object %q range (%d, %d): %w", name, off, n, chunkstore.ErrInvalid)
	}
	if n > chunkstore.MaxObjectSize || off > chunkstore.MaxObjectSize-n {
		return fmt.Errorf("storagetest: object %q range (%d, %d): %w", name, off, n, chunkstore.ErrTooLarge)
	}
	return nil
}

// Read fills p with object's bytes at off; past the size it reads zeros.
// Errors wrap chunkstore.ErrNotFound (no such object) or ErrInvalid.
func (s *MemStore) Read(pg PG, name string, off int64, p []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("storagetest: read %q at %d: %w", name, off, chunkstore.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objectLocked(pg, name)
	if o == nil {
		return fmt.Errorf("storagetest: read pg %s object %q: %w", pg, name, chunkstore.ErrNotFound)
	}
	if i := o.damagedIn(off, off+int64(len(p))); i >= 0 {
		return corrupt("read", pg, name, i)
	}
	n := 0
	if off < int64(len(o.data)) {
		n = copy(p, o.data[off:])
	}
	clear(p[n:])
	return nil
}

func (s *MemStore) objectLocked(pg PG, name string) *object {
	if d := s.pgs[pg]; d != nil {
		return d.objs[name]
	}
	return nil
}

// Stat returns object's size and version; errors as Read.
func (s *MemStore) Stat(pg PG, name string) (chunkstore.ObjectInfo, error) {
	if err := validName(name); err != nil {
		return chunkstore.ObjectInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objectLocked(pg, name)
	if o == nil {
		return chunkstore.ObjectInfo{}, fmt.Errorf("storagetest: stat pg %s object %q: %w", pg, name, chunkstore.ErrNotFound)
	}
	return chunkstore.ObjectInfo{Name: name, Size: int64(len(o.data)), Version: o.version}, nil
}

// List returns pg's objects named prefix... and sorting after after, in
// name order, at most limit (<= 0: all).
func (s *MemStore) List(pg PG, prefix, after string, limit int) ([]chunkstore.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chunkstore.ObjectInfo
	if d := s.pgs[pg]; d != nil {
		for _, name := range slices.Sorted(maps.Keys(d.objs)) {
			if name <= after || !strings.HasPrefix(name, prefix) {
				continue
			}
			o := d.objs[name]
			out = append(out, chunkstore.ObjectInfo{Name: name, Size: int64(len(o.data)), Version: o.version})
			if limit > 0 && len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

// Digest hashes every object's name, size, version and content (not the
// apply state, which it returns), in name order, with the same layout as chunkstore's Digest (so
// equal logical content gives equal sums in both, whatever the history). It
// returns the apply state (nil if never set) and the number of objects.
func (s *MemStore) Digest(pg PG) (apply []byte, sum [32]byte, objects int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := sha256.New()
	d := s.pgs[pg]
	if d != nil {
		apply = bytes.Clone(d.apply)
	}
	h.Write([]byte("chunkstore-digest-v2"))
	if d != nil {
		for _, name := range slices.Sorted(maps.Keys(d.objs)) {
			o := d.objs[name]
			if i := o.damagedIn(0, int64(len(o.data))); i >= 0 {
				return nil, [32]byte{}, 0, corrupt("digest", pg, name, i)
			}
			var hdr []byte
			hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(name)))
			hdr = append(hdr, name...)
			hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(o.data)))
			hdr = binary.BigEndian.AppendUint64(hdr, o.version)
			h.Write(hdr)
			h.Write(o.data)
			objects++
		}
	}
	copy(sum[:], h.Sum(nil))
	return apply, sum, objects, nil
}

// NewBatch returns an empty batch.
func (s *MemStore) NewBatch() *Batch { return &Batch{s: s, logs: map[PG]bounds{}} }

// Recover implements the OSD's Store. A MemStore's objects are never torn
// inside (Clone keeps whole objects), so there is nothing to tolerate.
func (s *MemStore) Recover(PG, uint64) {}

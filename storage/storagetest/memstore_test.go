package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// store and batch are what both *chunkstore.Store and *MemStore provide.
type store interface {
	LoadRaft(pg PG) (chunkstore.RaftState, error)
	Entries(pg PG, lo, hi, maxBytes uint64) ([][]byte, error)
	ListPGs() ([]PG, error)
	Read(pg PG, object string, off int64, p []byte) error
	ReadSkippingDamage(pg PG, object string, p []byte) ([]chunkstore.Range, error)
	Stat(pg PG, object string) (chunkstore.ObjectInfo, error)
	List(pg PG, prefix, after string, limit int) ([]chunkstore.ObjectInfo, error)
	Digest(pg PG) (apply []byte, sum [32]byte, objects int, err error)
}

// installer is what both give for replica moves.
type installer interface {
	BeginInstall(pg PG) error
	EndInstall(pg PG, applyState []byte, first uint64) error
	AbortInstall(pg PG) error
	DropPG(pg PG, tomb uint64) error
}

type batch interface {
	AppendEntries(pg PG, first uint64, ents [][]byte) error
	SetHardState(pg PG, hs []byte) error
	SetApplyState(pg PG, st []byte) error
	CompactLog(pg PG, upTo uint64) error
	Write(pg PG, object string, off int64, data []byte, version uint64) error
	Truncate(pg PG, object string, size int64, version uint64) error
	Zero(pg PG, object string, off, length int64, version uint64) error
	Delete(pg PG, object string) error
	MarkDamaged(pg PG, object string, off, length int64, version uint64) error
	Commit() error
}

// TestMatchesChunkstore runs the same random batches against a real
// chunkstore and a MemStore and compares everything observable after each
// commit (the fake checked against the real thing).
func TestMatchesChunkstore(t *testing.T) {
	steps := 400
	if testing.Short() {
		steps = 100
	}
	real, err := chunkstore.Open(chunkstore.Config{Dir: t.TempDir(), BlockSize: 4 << 10, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	mem := NewMemStore()
	rng := rand.New(rand.NewPCG(1, 2))
	pgs := []PG{{Pool: 1, Seq: 0}, {Pool: 1, Seq: 1}, {Pool: 2, Seq: 0}}
	names := []string{"a", "b", "c/d"}
	payload := func() []byte {
		p := make([]byte, rng.IntN(10<<10))
		for i := range p {
			if rng.IntN(4) > 0 {
				p[i] = byte(rng.IntN(256))
			}
		}
		return p
	}
	for step := range steps {
		rb, mb := real.NewBatch(), mem.NewBatch()
		for range 1 + rng.IntN(4) {
			pg := pgs[rng.IntN(len(pgs))]
			name := names[rng.IntN(len(names))]
			var op func(b batch) error
			var desc string
			switch rng.IntN(9) {
			case 0:
				st, _ := mem.LoadRaft(pg)
				first := max(st.FirstIndex, 1) + uint64(rng.IntN(int(st.LastIndex-max(st.FirstIndex, 1)+3)))
				if rng.IntN(5) == 0 {
					first = max(1, first-uint64(rng.IntN(5)))
				}
				var ents [][]byte
				for range 1 + rng.IntN(4) {
					ents = append(ents, []byte(fmt.Sprint("entry ", step, rng.IntN(1000))))
				}
				desc = fmt.Sprintf("append %s at %d (%d)", pg, first, len(ents))
				op = func(b batch) error { return b.AppendEntries(pg, first, ents) }
			case 1:
				st, _ := mem.LoadRaft(pg)
				upTo := st.FirstIndex + uint64(rng.IntN(int(st.LastIndex-st.FirstIndex+3)))
				desc = fmt.Sprintf("compact %s to %d", pg, upTo)
				op = func(b batch) error { return b.CompactLog(pg, upTo) }
			case 2:
				v := []byte(fmt.Sprint("hs", step))
				desc, op = "hard state", func(b batch) error { return b.SetHardState(pg, v) }
			case 3:
				v := []byte(fmt.Sprint("as", step))
				desc, op = "apply state", func(b batch) error { return b.SetApplyState(pg, v) }
			case 4, 5:
				off, data := int64(rng.IntN(12<<10)), payload()
				desc = fmt.Sprintf("write %s %q at %d (%d)", pg, name, off, len(data))
				op = func(b batch) error { return b.Write(pg, name, off, data, uint64(step)) }
			case 6:
				size := int64(rng.IntN(16 << 10))
				if rng.IntN(3) == 0 {
					desc = fmt.Sprintf("truncate %s %q to %d", pg, name, size)
					op = func(b batch) error { return b.Truncate(pg, name, size, uint64(step)) }
				} else {
					off := int64(rng.IntN(12 << 10))
					desc = fmt.Sprintf("zero %s %q at %d (%d)", pg, name, off, size)
					op = func(b batch) error { return b.Zero(pg, name, off, size, uint64(step)) }
				}
			case 7:
				desc, op = fmt.Sprintf("delete %s %q", pg, name), func(b batch) error { return b.Delete(pg, name) }
			case 8:
				off, n := int64(rng.IntN(12<<10)), int64(1+rng.IntN(9<<10))
				desc = fmt.Sprintf("mark damaged %s %q at %d (%d)", pg, name, off, n)
				op = func(b batch) error { return b.MarkDamaged(pg, name, off, n, uint64(step)) }
			}
			rerr, merr := op(rb), op(mb)
			if (rerr == nil) != (merr == nil) || !sameClass(rerr, merr) {
				t.Fatalf("step %d %s: chunkstore says %v, MemStore says %v", step, desc, rerr, merr)
			}
		}
		if err := rb.Commit(); err != nil {
			t.Fatalf("step %d: chunkstore commit: %v", step, err)
		}
		if err := mb.Commit(); err != nil {
			t.Fatalf("step %d: MemStore commit: %v", step, err)
		}
		switch pg := pgs[rng.IntN(len(pgs))]; rng.IntN(20) {
		case 0: // an install: a copied object, then the snapshot's state
			first := uint64(1 + rng.IntN(50))
			data, apply := payload(), []byte(fmt.Sprint("installed", step))
			for _, st := range []installer{real, mem} {
				if err := st.BeginInstall(pg); err != nil {
					t.Fatalf("step %d: BeginInstall: %v", step, err)
				}
			}
			for _, b := range []batch{real.NewBatch(), mem.NewBatch()} {
				if err := b.Write(pg, "a", 100, data, first+3); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			for _, st := range []installer{real, mem} {
				var err error
				if first%4 == 0 {
					err = st.AbortInstall(pg)
				} else {
					err = st.EndInstall(pg, apply, first)
				}
				if err != nil {
					t.Fatalf("step %d: EndInstall at %d (or abort): %v", step, first, err)
				}
			}
		case 1:
			for _, st := range []installer{real, mem} {
				if err := st.DropPG(pg, uint64(step%7)); err != nil { // a tomb, lower at times
					t.Fatalf("step %d: DropPG: %v", step, err)
				}
			}
		}
		if rng.IntN(3) == 0 {
			if err := real.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if err := mem.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		compareStores(t, fmt.Sprint("step ", step), real, mem, pgs, append(names, "missing"))
	}
}

func sameClass(a, b error) bool {
	for _, c := range []error{chunkstore.ErrInvalid, chunkstore.ErrNotFound, chunkstore.ErrTooLarge, chunkstore.ErrCorrupt} {
		if errors.Is(a, c) != errors.Is(b, c) {
			return false
		}
	}
	return true
}

// compareStores fails t if want and got differ in anything observable.
func compareStores(t *testing.T, at string, want, got store, pgs []PG, names []string) {
	t.Helper()
	wp, _ := want.ListPGs()
	gp, _ := got.ListPGs()
	if !reflect.DeepEqual(wp, gp) {
		t.Fatalf("%s: ListPGs = %v, want %v", at, gp, wp)
	}
	for _, pg := range pgs {
		ws, werr := want.LoadRaft(pg)
		gs, gerr := got.LoadRaft(pg)
		if werr != nil || gerr != nil || !reflect.DeepEqual(ws, gs) {
			t.Fatalf("%s: LoadRaft(%s) = %+v, %v; want %+v, %v", at, pg, gs, gerr, ws, werr)
		}
		if ws.LastIndex >= ws.FirstIndex && ws.FirstIndex > 0 {
			we, werr := want.Entries(pg, ws.FirstIndex, ws.LastIndex+1, 40)
			ge, gerr := got.Entries(pg, ws.FirstIndex, ws.LastIndex+1, 40)
			if werr != nil || gerr != nil || !reflect.DeepEqual(we, ge) {
				t.Fatalf("%s: Entries(%s) = %q, %v; want %q, %v", at, pg, ge, gerr, we, werr)
			}
		}
		_, werr = want.Entries(pg, ws.LastIndex+1, ws.LastIndex+2, 0)
		_, gerr = got.Entries(pg, ws.LastIndex+1, ws.LastIndex+2, 0)
		if !errors.Is(werr, chunkstore.ErrNotFound) || !errors.Is(gerr, chunkstore.ErrNotFound) {
			t.Fatalf("%s: Entries past the end of %s: %v, want %v", at, pg, gerr, werr)
		}
		for _, name := range names {
			wi, werr := want.Stat(pg, name)
			gi, gerr := got.Stat(pg, name)
			if wi != gi || !sameClass(werr, gerr) || (werr == nil) != (gerr == nil) {
				t.Fatalf("%s: Stat(%s, %q) = %+v, %v; want %+v, %v", at, pg, name, gi, gerr, wi, werr)
			}
			wb, gb := make([]byte, 30<<10), make([]byte, 30<<10)
			werr, gerr = want.Read(pg, name, 100, wb), got.Read(pg, name, 100, gb)
			if !sameClass(werr, gerr) || (werr == nil) != (gerr == nil) || (werr == nil && !bytes.Equal(wb, gb)) {
				t.Fatalf("%s: Read(%s, %q) differs (errors %v, %v)", at, pg, name, gerr, werr)
			}
			wb, gb = make([]byte, wi.Size), make([]byte, gi.Size)
			wr, werr := want.ReadSkippingDamage(pg, name, wb)
			gr, gerr := got.ReadSkippingDamage(pg, name, gb)
			if !sameClass(werr, gerr) || (werr == nil) != (gerr == nil) || !reflect.DeepEqual(wr, gr) || !bytes.Equal(wb, gb) {
				t.Fatalf("%s: ReadSkippingDamage(%s, %q) = %v, %v; want %v, %v (bytes equal: %v)", at, pg, name, gr, gerr, wr, werr, bytes.Equal(wb, gb))
			}
		}
		wl, _ := want.List(pg, "", "a", 2)
		gl, _ := got.List(pg, "", "a", 2)
		if !reflect.DeepEqual(wl, gl) {
			t.Fatalf("%s: List(%s) = %v, want %v", at, pg, gl, wl)
		}
		wa, wsum, wn, werr := want.Digest(pg)
		ga, gsum, gn, gerr := got.Digest(pg)
		if !sameClass(werr, gerr) || (werr == nil) != (gerr == nil) || (werr == nil && (!bytes.Equal(wa, ga) || wsum != gsum || wn != gn)) {
			t.Fatalf("%s: Digest(%s) = %q %x %d %v; want %q %x %d %v", at, pg, ga, gsum, gn, gerr, wa, wsum, wn, werr)
		}
	}
}

var pgA = PG{Pool: 1, Seq: 0}

// commitAll stages three entries, a hard state, a write, a compaction and an
// apply state (seven primitive changes) and commits.
func commitAll(s *MemStore) error {
	b := s.NewBatch()
	_ = b.AppendEntries(pgA, 1, [][]byte{[]byte("e1"), []byte("e2"), []byte("e3")})
	_ = b.SetHardState(pgA, []byte("hs"))
	_ = b.Write(pgA, "obj", 0, []byte("data"), 3)
	_ = b.CompactLog(pgA, 2)
	_ = b.SetApplyState(pgA, []byte("as"))
	return b.Commit()
}

func TestCommitFault(t *testing.T) {
	tests := []struct {
		keep      int
		crash     bool
		wantErr   error
		first     uint64
		last      uint64
		hard, app string
		object    bool
	}{
		{keep: 0, crash: true, wantErr: ErrCrash},
		{keep: 2, crash: true, wantErr: ErrCrash, first: 1, last: 2},
		{keep: 4, crash: false, first: 1, last: 3, hard: "hs"},
		{keep: 5, crash: true, wantErr: ErrCrash, first: 1, last: 3, hard: "hs", object: true},
		{keep: 6, crash: true, wantErr: ErrCrash, first: 1, last: 3, hard: "hs", object: true}, // compaction waits for a checkpoint
		{keep: 99, crash: true, wantErr: ErrCrash, first: 1, last: 3, hard: "hs", object: true},
		{keep: 7, crash: false, first: 1, last: 3, hard: "hs", object: true}, // apply state waits for a checkpoint
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("keep=%d,crash=%v", tt.keep, tt.crash), func(t *testing.T) {
			s := NewMemStore()
			var saw int
			s.SetCommitFault(func(ops int) (int, bool) { saw = ops; return tt.keep, tt.crash })
			if err := commitAll(s); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Commit = %v, want %v", err, tt.wantErr)
			}
			if saw != 7 {
				t.Fatalf("fault saw %d changes, want 7", saw)
			}
			st, _ := s.LoadRaft(pgA)
			if st.FirstIndex != tt.first || st.LastIndex != tt.last || string(st.HardState) != tt.hard || string(st.ApplyState) != tt.app {
				t.Fatalf("raft state %+v, want first %d last %d hard %q apply %q", st, tt.first, tt.last, tt.hard, tt.app)
			}
			_, err := s.Stat(pgA, "obj")
			if (err == nil) != tt.object {
				t.Fatalf("Stat(obj) = %v, want object present: %v", err, tt.object)
			}
		})
	}
}

// TestCheckpointAndCrash: a checkpoint makes the apply state durable and
// compacts; a crash (Clone) keeps the log, the checkpointed apply state and,
// per object, the checkpointed or the current content as SetCrashMix says.
func TestCheckpointAndCrash(t *testing.T) {
	s := NewMemStore()
	if err := commitAll(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.LoadRaft(pgA)
	if st.FirstIndex != 2 || st.LastIndex != 3 || string(st.ApplyState) != "as" {
		t.Fatalf("after checkpoint: %+v", st)
	}
	b := s.NewBatch()
	_ = b.Write(pgA, "obj", 0, []byte("new!"), 4)
	_ = b.Write(pgA, "other", 0, []byte("x"), 4)
	_ = b.SetApplyState(pgA, []byte("as2"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, keepNew := range []bool{false, true} {
		s.SetCrashMix(func(pg PG, object string) bool { return keepNew && object == "obj" })
		c := s.Clone()
		st, _ := c.LoadRaft(pgA)
		if string(st.ApplyState) != "as" || st.FirstIndex != 2 {
			t.Fatalf("clone raft state %+v", st)
		}
		p := make([]byte, 4)
		if err := c.Read(pgA, "obj", 0, p); err != nil || (string(p) == "new!") != keepNew {
			t.Fatalf("keepNew=%v: obj = %q, %v", keepNew, p, err)
		}
		if _, err := c.Stat(pgA, "other"); !errors.Is(err, chunkstore.ErrNotFound) {
			t.Fatalf("object created after the checkpoint survived: %v", err)
		}
	}
}

func TestLoseWritesAndClone(t *testing.T) {
	s := NewMemStore()
	s.SetLoseWrites(func(pg PG, object string) bool { return object == "obj" })
	var saw int
	s.SetCommitFault(func(ops int) (int, bool) { saw = ops; return ops, false })
	if err := commitAll(s); err != nil {
		t.Fatal(err)
	}
	if saw != 6 {
		t.Fatalf("commit fault saw %d changes after the lost write, want 6", saw)
	}
	if _, err := s.Stat(pgA, "obj"); !errors.Is(err, chunkstore.ErrNotFound) {
		t.Fatalf("lost write is visible: %v", err)
	}
	c := s.Clone()
	s.SetLoseWrites(nil)
	b := s.NewBatch()
	_ = b.Write(pgA, "obj", 0, []byte("x"), 9)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(pgA, "obj"); !errors.Is(err, chunkstore.ErrNotFound) {
		t.Fatalf("clone sees a later write: %v", err)
	}
	_, s1, _, _ := s.Digest(pgA)
	_, s2, _, _ := c.Digest(pgA)
	if s1 == s2 {
		t.Fatal("digests of different contents are equal")
	}
	if err := b.Commit(); !errors.Is(err, chunkstore.ErrInvalid) {
		t.Fatalf("second Commit = %v, want ErrInvalid", err)
	}
}

// TestCloneMidInstall: a power cut between BeginInstall and EndInstall
// leaves the PG with its hard state alone, as chunkstore's Open does.
func TestCloneMidInstall(t *testing.T) {
	s := NewMemStore()
	if err := commitAll(s); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginInstall(pgA); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	if err := b.Write(pgA, "x", 0, []byte("copied"), 40); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	hard, _ := s.LoadRaft(pgA)
	c := s.Clone()
	st, err := c.LoadRaft(pgA)
	if err != nil || st.FirstIndex != 0 || st.LastIndex != 0 || st.ApplyState != nil || !bytes.Equal(st.HardState, hard.HardState) || st.HardState == nil {
		t.Fatalf("after a cut install: %+v (%v), want the hard state %q alone", st, err, hard.HardState)
	}
	if objs, _ := c.List(pgA, "", "", 0); len(objs) != 0 {
		t.Fatalf("after a cut install the pg lists %v", objs)
	}
	if err := s.EndInstall(pgA, []byte("as"), 30); err != nil {
		t.Fatal(err)
	}
	st, err = s.Clone().LoadRaft(pgA)
	if err != nil || st.FirstIndex != 30 || st.LastIndex != 29 || string(st.ApplyState) != "as" {
		t.Fatalf("after the install: %+v (%v)", st, err)
	}
}

package osd

import (
	"cmp"
	"slices"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
)

// memStore adapts *storagetest.MemStore to Store the way ChunkStore adapts
// *chunkstore.Store: Go has no covariant results, and storagetest may not
// import osd to name its Batch type.
type memStore struct{ *storagetest.MemStore }

// NewBatch implements Store.
func (m memStore) NewBatch() Batch { return m.MemStore.NewBatch() }

var (
	_ Store = memStore{}
	_ Store = simStore{}
)

// simStore is the store of a simulated OSD. Its batches replay their
// operations into the MemStore grouped by PG (stable, so each PG's order is
// kept) when they commit. The node builds a batch in the iteration order of
// its replica map, which Go randomises; grouping makes what a torn commit
// leaves depend on the seed only. Any state a grouped prefix leaves is also
// one a real crash can leave: PGs touch disjoint keys, and the map could
// have produced that order. Operation errors surface at Commit.
type simStore struct {
	memStore
	// onCommit, if set, sees the kinds of the operations of every batch
	// ("append", "hardstate", "apply", "compact", "write", ...) before it
	// commits: tests use it to aim a fault at one kind of commit.
	onCommit func(kinds []string)
}

// NewBatch implements Store.
func (s simStore) NewBatch() Batch {
	return &groupedBatch{mem: s.MemStore, onCommit: s.onCommit}
}

type groupedBatch struct {
	mem      *storagetest.MemStore
	onCommit func(kinds []string)
	ops      []pgOp
}

type pgOp struct {
	pg   PG
	kind string
	do   func(b Batch) error
}

func (g *groupedBatch) add(pg PG, kind string, do func(b Batch) error) error {
	g.ops = append(g.ops, pgOp{pg, kind, do})
	return nil
}

func (g *groupedBatch) AppendEntries(pg PG, first uint64, ents [][]byte) error {
	return g.add(pg, "append", func(b Batch) error { return b.AppendEntries(pg, first, ents) })
}
func (g *groupedBatch) AppendPlaced(pg PG, first uint64, ents [][]byte, places []chunkstore.Place) error {
	return g.add(pg, "append", func(b Batch) error { return b.AppendPlaced(pg, first, ents, places) })
}
func (g *groupedBatch) SetHardState(pg PG, hs []byte) error {
	return g.add(pg, "hardstate", func(b Batch) error { return b.SetHardState(pg, hs) })
}
func (g *groupedBatch) SetApplyState(pg PG, st []byte) error {
	return g.add(pg, "apply", func(b Batch) error { return b.SetApplyState(pg, st) })
}
func (g *groupedBatch) CompactLog(pg PG, upTo uint64) error {
	return g.add(pg, "compact", func(b Batch) error { return b.CompactLog(pg, upTo) })
}
func (g *groupedBatch) Write(pg PG, object string, off int64, data []byte, version uint64) error {
	return g.add(pg, "write", func(b Batch) error { return b.Write(pg, object, off, data, version) })
}
func (g *groupedBatch) ApplyPlaced(pg PG, object string, off, n int64, version uint64) error {
	return g.add(pg, "write", func(b Batch) error { return b.ApplyPlaced(pg, object, off, n, version) })
}
func (g *groupedBatch) Truncate(pg PG, object string, size int64, version uint64) error {
	return g.add(pg, "truncate", func(b Batch) error { return b.Truncate(pg, object, size, version) })
}
func (g *groupedBatch) Zero(pg PG, object string, off, length int64, version uint64) error {
	return g.add(pg, "zero", func(b Batch) error { return b.Zero(pg, object, off, length, version) })
}
func (g *groupedBatch) MarkDamaged(pg PG, object string, off, length int64, version uint64) error {
	return g.add(pg, "damage", func(b Batch) error { return b.MarkDamaged(pg, object, off, length, version) })
}
func (g *groupedBatch) Delete(pg PG, object string) error {
	return g.add(pg, "delete", func(b Batch) error { return b.Delete(pg, object) })
}
func (g *groupedBatch) Discard() { g.ops = nil }

func (g *groupedBatch) Commit() error {
	slices.SortStableFunc(g.ops, func(a, b pgOp) int {
		return cmp.Or(cmp.Compare(a.pg.Pool, b.pg.Pool), cmp.Compare(a.pg.Seq, b.pg.Seq))
	})
	if g.onCommit != nil {
		kinds := make([]string, len(g.ops))
		for i, op := range g.ops {
			kinds[i] = op.kind
		}
		g.onCommit(kinds)
	}
	b := g.mem.NewBatch()
	for _, op := range g.ops {
		if err := op.do(b); err != nil {
			b.Discard()
			return err
		}
	}
	return b.Commit()
}

package chunkstore

import (
	"fmt"
	"math/rand"
	"testing"

	"go.uber.org/zap"
)

// BenchmarkOverwrite4K: the OSD's steady state for small random writes: one
// batch with a 4 KiB object write and its raft entry, committed (fsync).
func BenchmarkOverwrite4K(b *testing.B) {
	for _, bs := range []int{4 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("block=%dK", bs>>10), func(b *testing.B) {
			s := openStore(b, Config{Dir: b.TempDir(), BlockSize: bs, Logger: zap.NewNop()})
			pg := PG{1, 1}
			const objSize = 4 << 20
			commit(b, s, func(bt *Batch) error { return bt.Write(pg, "o", 0, pattern(1, objSize), 1) })
			rng := rand.New(rand.NewSource(1))
			data := pattern(2, 4<<10)
			entry := pattern(3, 4<<10+100)
			b.SetBytes(4 << 10)
			b.ResetTimer()
			for i := range b.N {
				bt := s.NewBatch()
				off := int64(rng.Intn(objSize/(4<<10))) * 4 << 10
				if err := bt.Write(pg, "o", off, data, uint64(i+2)); err != nil {
					b.Fatal(err)
				}
				if err := bt.AppendEntries(pg, uint64(i+1), [][]byte{entry}); err != nil {
					b.Fatal(err)
				}
				if err := bt.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite4M: a 4 MiB object write as the OSD applies it: four 1 MiB
// raft entries and the write in one batch.
func BenchmarkWrite4M(b *testing.B) {
	s := openStore(b, Config{Dir: b.TempDir(), Logger: zap.NewNop()})
	pg := PG{1, 1}
	data := pattern(2, 4<<20)
	ents := [][]byte{pattern(3, 1<<20), pattern(4, 1<<20), pattern(5, 1<<20), pattern(6, 1<<20)}
	b.SetBytes(4 << 20)
	b.ResetTimer()
	for i := range b.N {
		bt := s.NewBatch()
		if err := bt.AppendEntries(pg, uint64(4*i+1), ents); err != nil {
			b.Fatal(err)
		}
		if err := bt.Write(pg, fmt.Sprint("o", i%64), 0, data, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		if err := bt.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

package chunkstore

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"
)

var modelSeed = flag.Int64("chunkstore.seed", 0, "run the model test with this seed only")

// model is the naive version of the object store: one []byte per object.
type model map[PG]map[string]*modelObj

type modelObj struct {
	data    []byte
	version uint64
}

func (m model) obj(pg PG, name string) *modelObj {
	if m[pg] == nil {
		m[pg] = map[string]*modelObj{}
	}
	o := m[pg][name]
	if o == nil {
		o = &modelObj{}
		m[pg][name] = o
	}
	return o
}

func (m model) clone() model {
	c := model{}
	for pg, objs := range m {
		c[pg] = map[string]*modelObj{}
		for n, o := range objs {
			c[pg][n] = &modelObj{data: bytes.Clone(o.data), version: o.version}
		}
	}
	return c
}

func (o *modelObj) grow(n int) {
	if n > len(o.data) {
		o.data = append(o.data, make([]byte, n-len(o.data))...)
	}
}

func TestModel(t *testing.T) {
	seeds := []int64{1, 2, 3, 4}
	if *modelSeed != 0 {
		seeds = []int64{*modelSeed}
	}
	steps := 300
	if testing.Short() {
		steps = 80
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runModel(t, seed, steps) })
	}
}

func runModel(t *testing.T, seed int64, steps int) {
	rng := rand.New(rand.NewSource(seed))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with -chunkstore.seed=%d): %s", seed, seed, fmt.Sprintf(format, args...))
	}
	s := openStore(t, testConfig(t))
	const span = 12 << 10 // offsets and lengths up to 12 KiB: 3 blocks of 4 KiB
	pgs := []PG{{1, 0}, {1, 1}}
	names := []string{"a", "b", "c", "dd"}
	m := model{}

	check := func(pg PG, name string) {
		t.Helper()
		o := m[pg][name]
		info, err := s.Stat(pg, name)
		if o == nil {
			if !errorsIs(err, ErrNotFound) {
				fail("Stat(%s, %q) = %+v, %v; want ErrNotFound", pg, name, info, err)
			}
			return
		}
		if err != nil || info.Size != int64(len(o.data)) || info.Version != o.version {
			fail("Stat(%s, %q) = %+v, %v; want size %d version %d", pg, name, info, err, len(o.data), o.version)
		}
		off := rng.Intn(len(o.data) + 1)
		n := rng.Intn(len(o.data) + 2*span + 1)
		got := make([]byte, n)
		if err := s.Read(pg, name, int64(off), got); err != nil {
			fail("Read(%s, %q, %d, %d): %v", pg, name, off, n, err)
		}
		want := make([]byte, n)
		copy(want, o.data[off:])
		if !bytes.Equal(got, want) {
			fail("Read(%s, %q, %d, %d) differs at %d", pg, name, off, n, firstDiff(got, want))
		}
	}
	checkAll := func() {
		t.Helper()
		for _, pg := range pgs {
			for _, n := range names {
				check(pg, n)
			}
			infos, err := s.List(pg, "", "", 0)
			if err != nil {
				fail("List: %v", err)
			}
			var got []string
			for _, in := range infos {
				got = append(got, in.Name)
			}
			want := slices.Sorted(maps.Keys(m[pg]))
			if !slices.Equal(got, want) {
				fail("List(%s) = %q, want %q", pg, got, want)
			}
		}
	}

	for step := range steps {
		before := m.clone()
		b := s.NewBatch()
		nops := 1 + rng.Intn(6)
		var trace []string
		for range nops {
			pg, name := pgs[rng.Intn(len(pgs))], names[rng.Intn(len(names))]
			v := uint64(rng.Int63())
			off, n := int64(rng.Intn(3*span)), int64(rng.Intn(span))
			var err error
			switch r := rng.Intn(10); {
			case r < 5:
				data := make([]byte, n)
				rng.Read(data)
				if rng.Intn(4) == 0 { // runs of zeros make holes and trimmed blocks
					clear(data[rng.Intn(len(data)+1):])
				}
				err = b.Write(pg, name, off, data, v)
				o := m.obj(pg, name)
				o.grow(int(off + n))
				copy(o.data[off:], data)
				o.version = v
				trace = append(trace, fmt.Sprintf("write %s %q %d+%d", pg, name, off, n))
			case r < 7:
				err = b.Truncate(pg, name, off, v)
				o := m.obj(pg, name)
				if int(off) < len(o.data) {
					o.data = o.data[:off]
				}
				o.grow(int(off))
				o.version = v
				trace = append(trace, fmt.Sprintf("truncate %s %q %d", pg, name, off))
			case r < 9:
				err = b.Zero(pg, name, off, n, v)
				o := m.obj(pg, name)
				o.grow(int(off + n))
				clear(o.data[off : off+n])
				o.version = v
				trace = append(trace, fmt.Sprintf("zero %s %q %d+%d", pg, name, off, n))
			default:
				err = b.Delete(pg, name)
				delete(m[pg], name)
				trace = append(trace, fmt.Sprintf("delete %s %q", pg, name))
			}
			if err != nil {
				fail("step %d %s: %v", step, trace[len(trace)-1], err)
			}
		}
		if rng.Intn(8) == 0 {
			b.Discard()
			m = before
		} else if err := b.Commit(); err != nil {
			fail("step %d commit %q: %v", step, trace, err)
		}
		for _, pg := range pgs {
			check(pg, names[rng.Intn(len(names))])
		}
		if step%25 == 0 {
			checkAll()
		}
		if step%60 == 59 {
			s = reopen(t, s)
			checkAll()
		}
	}
	checkAll()
	s = reopen(t, s)
	checkAll()
}

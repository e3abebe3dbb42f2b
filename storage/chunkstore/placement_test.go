package chunkstore

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

var placeSeeds = flag.Int("chunkstore.placeseeds", 0, "number of seeds TestPlacedLog runs (0: its default)")
var noPlace = flag.Bool("chunkstore.noplace", false, "debug: run TestPlacedLog without placing")
var traceLen = flag.Int("chunkstore.tracelen", 12, "steps TestPlacedLog prints on failure")

// testOp is an object operation carried by a raft entry of the placed-log
// test: a header, then the data of a write (last, so a place can cut it).
type testOp struct {
	kind opKind
	name string
	off  int64
	n    int64 // zero: length; truncate: unused (off is the size)
	data []byte
}

func (o testOp) encode() []byte {
	b := []byte{byte(o.kind)}
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.name)))
	b = append(b, o.name...)
	b = binary.BigEndian.AppendUint64(b, uint64(o.off))
	b = binary.BigEndian.AppendUint64(b, uint64(o.n))
	return append(b, o.data...)
}

func decodeTestOp(b []byte) testOp {
	n := int(binary.BigEndian.Uint16(b[1:]))
	h := 3 + n + 16
	return testOp{kind: opKind(b[0]), name: string(b[3 : 3+n]), off: int64(binary.BigEndian.Uint64(b[3+n:])),
		n: int64(binary.BigEndian.Uint64(b[11+n:])), data: b[h:]}
}

func (o testOp) headerLen() int { return 3 + len(o.name) + 16 }

// applyTo applies o to the naive model.
func (o testOp) applyTo(m model, pg PG, version uint64) {
	switch o.kind {
	case opDelete:
		delete(m[pg], o.name)
		return
	case opWrite:
		ob := m.obj(pg, o.name)
		ob.grow(int(o.off) + len(o.data))
		copy(ob.data[o.off:], o.data)
	case opZero:
		ob := m.obj(pg, o.name)
		ob.grow(int(o.off + o.n))
		clear(ob.data[o.off : o.off+o.n])
	case opTruncate:
		ob := m.obj(pg, o.name)
		if int(o.off) < len(ob.data) {
			ob.data = ob.data[:o.off]
		}
		ob.grow(int(o.off))
	}
	m[pg][o.name].version = version
}

// addTo queues o on b as the application of entry version.
func (o testOp) addTo(b *Batch, pg PG, version uint64) error {
	switch o.kind {
	case opWrite:
		return b.Write(pg, o.name, o.off, o.data, version)
	case opZero:
		return b.Zero(pg, o.name, o.off, o.n, version)
	case opTruncate:
		return b.Truncate(pg, o.name, o.off, version)
	}
	return b.Delete(pg, o.name)
}

// placedDriver plays the OSD for TestPlacedLog: one raft log per PG
// (appends, replaced suffixes, commits, applies, compactions), the store's
// crashes and restarts, and a naive model of what must be read back.
type placedDriver struct {
	t     *testing.T
	rng   *rand.Rand
	s     *Store
	bs    int64
	pgs   []PG
	names []string
	logs  map[PG]*driverLog
	model model // the objects as of each PG's applied index
	trace []string
	ahead map[PG]*aheadWrite // a large write placed ahead for the next append
}

// aheadWrite is a write whose data the driver places ahead (Preplace)
// while a batch commits, as a follower's connection does while its loop
// commits, for the entry at idx of the next append.
type aheadWrite struct {
	idx  uint64
	op   testOp
	pp   *Preplaced
	done chan struct{} // closed once Preplace returned
}

// placeAhead starts placing ahead a random large write for pg's next
// entry, on another goroutine or (sync) at once.
func (d *placedDriver) placeAhead(pg PG, sync bool) {
	op, placeable := d.randomOp()
	if !placeable {
		return
	}
	e, lo := op.encode(), op.headerLen()
	a := &aheadWrite{idx: d.logs[pg].last + 1, op: op, done: make(chan struct{})}
	p := Place{Object: op.name, Offset: op.off, Lo: lo, Hi: len(e), Data: e[lo:], Direct: d.rng.IntN(2) == 0}
	s := d.s
	run := func() {
		a.pp = s.Preplace(pg, a.idx, e[:lo:lo], p)
		close(a.done)
	}
	if sync {
		run()
	} else {
		go run()
	}
	d.ahead[pg] = a
	d.trace = append(d.trace, fmt.Sprintf("place ahead %s %d %q %d+%d (sync %v)", pg, a.idx, op.name, op.off, len(op.data), sync))
}

// takeAhead waits for pg's write placed ahead, if any, and hands it over.
func (d *placedDriver) takeAhead(pg PG) *aheadWrite {
	a := d.ahead[pg]
	if a != nil {
		<-a.done
		delete(d.ahead, pg)
	}
	return a
}

// dropAhead releases the writes placed ahead (keep: the store still runs).
func (d *placedDriver) dropAhead(keep bool) {
	for _, pg := range d.pgs {
		if a := d.takeAhead(pg); a != nil && keep {
			d.s.Unplace(a.pp)
		}
	}
}

type driverLog struct {
	first, last uint64
	ents        map[uint64][]byte // what the store's log must hold
	commit      uint64            // entries up to here never change
	applied     uint64            // applied to the store
	applyState  uint64            // applied as of the last SetApplyState
	durable     uint64            // applyState as of the last checkpoint
	floor       uint64            // raft reads no entry below (CompactLog)
	history     map[uint64]testOp // every committed op, for rebuilding the model
}

func (d *placedDriver) fail(format string, args ...any) {
	d.t.Helper()
	tail := d.trace[max(0, len(d.trace)-*traceLen):]
	d.t.Fatalf("%s\nlast steps:\n  %s", fmt.Sprintf(format, args...), bytesJoin(tail))
}

func bytesJoin(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// randomOp is a random operation; about half are placeable writes (aligned
// whole blocks, some all zeros).
func (d *placedDriver) randomOp() (testOp, bool) {
	name := d.names[d.rng.IntN(len(d.names))]
	const blocks = 8
	switch r := d.rng.IntN(20); {
	case r < 10:
		i, n := d.rng.Int64N(blocks), 1+d.rng.Int64N(4)
		data := make([]byte, n*d.bs)
		for k := range n {
			if d.rng.IntN(4) != 0 {
				fill(d.rng, data[k*d.bs:(k+1)*d.bs])
			}
		}
		return testOp{kind: opWrite, name: name, off: i * d.bs, data: data}, true
	case r < 15:
		off, n := d.rng.Int64N(blocks*d.bs), 1+d.rng.Int64N(2*d.bs)
		data := make([]byte, n)
		fill(d.rng, data)
		return testOp{kind: opWrite, name: name, off: off, data: data}, false
	case r < 17:
		return testOp{kind: opZero, name: name, off: d.rng.Int64N(blocks * d.bs), n: d.rng.Int64N(3 * d.bs)}, false
	case r < 19:
		return testOp{kind: opTruncate, name: name, off: d.rng.Int64N(blocks * d.bs)}, false
	}
	return testOp{kind: opDelete, name: name}, false
}

func fill(rng *rand.Rand, p []byte) {
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
}

// batch builds and commits (or discards) one cycle: appends to some PGs,
// possibly replacing an uncommitted suffix, then applies what is committed.
func (d *placedDriver) batch() {
	saved := d.clone()
	b := d.s.NewBatch()
	type newEnt struct {
		pg  PG
		idx uint64
	}
	fresh := map[newEnt][]byte{}
	for _, pg := range d.pgs {
		l := d.logs[pg]
		a := d.takeAhead(pg)
		if d.rng.IntN(3) == 0 {
			if a != nil {
				d.s.Unplace(a.pp)
			}
			continue
		}
		first := l.last + 1
		if l.last > l.commit && d.rng.IntN(4) == 0 {
			first = l.commit + 1 + d.rng.Uint64N(l.last-l.commit) // raft replaces a suffix
		}
		var ents, given [][]byte // the model's entries; what the store is given
		var places []Place
		for k := range 1 + d.rng.IntN(3) {
			if k == 0 && a != nil && d.rng.IntN(4) != 0 {
				// The write placed ahead, at the index it was made for
				// unless raft replaces a suffix here.
				e, lo := a.op.encode(), a.op.headerLen()
				places = append(places, Place{Entry: k, Object: a.op.name, Offset: a.op.off, Lo: lo, Hi: len(e), Data: e[lo:], Pre: a.pp})
				ents, given = append(ents, e), append(given, e[:lo:lo])
				a = nil
				continue
			}
			op, placeable := d.randomOp()
			e := op.encode()
			g := e
			if placeable && d.rng.IntN(5) != 0 {
				p := Place{Entry: k, Object: op.name, Offset: op.off, Lo: op.headerLen(), Hi: len(e), Direct: d.rng.IntN(2) == 0}
				if d.rng.IntN(2) == 0 { // the entry in two parts, as the OSD gives it
					g, p.Data = e[:p.Lo:p.Lo], e[p.Lo:]
				}
				places = append(places, p)
			}
			ents, given = append(ents, e), append(given, g)
		}
		if a != nil {
			d.s.Unplace(a.pp)
		}
		if err := b.AppendPlaced(pg, first, given, places); err != nil {
			d.fail("AppendPlaced(%s, %d): %v", pg, first, err)
		}
		d.trace = append(d.trace, fmt.Sprintf("append %s [%d, %d] places %d", pg, first, first+uint64(len(ents))-1, len(places)))
		for i := first; i <= l.last; i++ {
			delete(l.ents, i)
		}
		for k, e := range ents {
			l.ents[first+uint64(k)] = e
			fresh[newEnt{pg, first + uint64(k)}] = e
		}
		l.last = first + uint64(len(ents)) - 1
	}
	type applied struct {
		pg  PG
		idx uint64
		op  testOp
	}
	var done []applied
	for _, pg := range d.pgs {
		l := d.logs[pg]
		if l.last > l.commit && d.rng.IntN(2) == 0 {
			l.commit += 1 + d.rng.Uint64N(l.last-l.commit)
		}
		if l.applied == l.commit {
			continue
		}
		upTo := l.applied + 1 + d.rng.Uint64N(l.commit-l.applied)
		// Entries the store holds already are read back through Entries
		// (rebuilding placed ones); this batch's come from the caller.
		end := upTo + 1 // first index appended by this batch, or past upTo
		for i := l.applied + 1; i <= upTo; i++ {
			if _, ok := fresh[newEnt{pg, i}]; ok {
				end = i
				break
			}
		}
		var stored [][]byte
		if end > l.applied+1 {
			var err error
			stored, err = d.s.Entries(pg, l.applied+1, end, 1<<30)
			if err != nil {
				d.fail("Entries(%s, %d, %d) to apply: %v", pg, l.applied+1, end, err)
			}
		}
		for idx := l.applied + 1; idx <= upTo; idx++ {
			e, ok := fresh[newEnt{pg, idx}]
			if !ok {
				if int(idx-l.applied-1) >= len(stored) {
					break // Entries stopped early; apply the rest later
				}
				e = stored[idx-l.applied-1]
				if !bytes.Equal(e, l.ents[idx]) {
					d.fail("Entries(%s) returned a different entry %d", pg, idx)
				}
			}
			op := decodeTestOp(e)
			if err := op.addTo(b, pg, idx); err != nil {
				d.fail("apply %s %d: %v", pg, idx, err)
			}
			done = append(done, applied{pg, idx, op})
		}
		if len(done) > 0 {
			if err := b.SetApplyState(pg, binary.BigEndian.AppendUint64(nil, done[len(done)-1].idx)); err != nil {
				d.fail("SetApplyState: %v", err)
			}
		}
	}
	if d.rng.IntN(10) == 0 {
		b.Discard()
		d.trace = append(d.trace, "discard")
		for pg, l := range saved {
			*d.logs[pg] = l
		}
		return
	}
	// Writes for the next appends are placed ahead while this batch
	// commits (or just before: its operations may spoil them).
	for _, pg := range d.pgs {
		if d.ahead[pg] == nil && d.rng.IntN(3) == 0 {
			d.placeAhead(pg, d.rng.IntN(2) == 0)
		}
	}
	if err := b.Commit(); err != nil {
		d.fail("Commit: %v", err)
	}
	for _, a := range done {
		l := d.logs[a.pg]
		l.history[a.idx] = a.op
		a.op.applyTo(d.model, a.pg, a.idx)
		l.applied, l.applyState = a.idx, a.idx
		d.trace = append(d.trace, fmt.Sprintf("apply %s %d %s %q %d+%d", a.pg, a.idx, a.op.kind, a.op.name, a.op.off, max(a.op.n, int64(len(a.op.data))))+d.debugMeta(a.pg))
	}
	for _, l := range d.logs {
		for i := l.applied + 1; i <= l.commit; i++ {
			l.history[i] = decodeTestOp(l.ents[i]) // committed: never replaced
		}
	}
}

// clone copies the driver's logs (to undo a discarded batch).
func (d *placedDriver) clone() map[PG]driverLog {
	out := map[PG]driverLog{}
	for pg, l := range d.logs {
		c := *l
		c.ents = maps.Clone(l.ents)
		c.history = maps.Clone(l.history)
		out[pg] = c
	}
	return out
}

// checkpoint makes the applied state durable and compacts some of the log.
func (d *placedDriver) checkpoint() {
	b := d.s.NewBatch()
	for _, pg := range d.pgs {
		l := d.logs[pg]
		if l.applied >= l.first && d.rng.IntN(2) == 0 {
			upTo := l.first + d.rng.Uint64N(l.applied-l.first+2)
			if err := b.CompactLog(pg, upTo); err != nil {
				d.fail("CompactLog: %v", err)
			}
			l.floor = max(l.floor, upTo)
		}
	}
	if err := b.Commit(); err != nil {
		d.fail("Commit compaction: %v", err)
	}
	if err := d.s.Checkpoint(); err != nil {
		d.fail("Checkpoint: %v", err)
	}
	for _, pg := range d.pgs {
		l := d.logs[pg]
		for i := l.first; i < l.floor; i++ {
			delete(l.ents, i)
		}
		l.first = max(l.first, l.floor)
		l.durable = l.applyState
	}
	d.trace = append(d.trace, "checkpoint")
}

// checkEntries reads a random range of each log back.
func (d *placedDriver) checkEntries() {
	for _, pg := range d.pgs {
		l := d.logs[pg]
		lo := max(l.first, l.floor)
		if lo > l.last {
			continue
		}
		a := lo + d.rng.Uint64N(l.last-lo+1)
		z := a + d.rng.Uint64N(l.last-a+1) + 1
		got, err := d.s.Entries(pg, a, z, 1<<30)
		if err != nil {
			d.fail("Entries(%s, %d, %d): %v", pg, a, z, err)
		}
		if len(got) != int(z-a) {
			d.fail("Entries(%s, %d, %d) returned %d entries", pg, a, z, len(got))
		}
		for k, e := range got {
			if !bytes.Equal(e, l.ents[a+uint64(k)]) {
				d.fail("Entries(%s): entry %d differs", pg, a+uint64(k))
			}
		}
	}
}

// checkObjects reads every object back and compares it with the model.
func (d *placedDriver) checkObjects() {
	for _, pg := range d.pgs {
		for _, name := range d.names {
			o := d.model[pg][name]
			info, err := d.s.Stat(pg, name)
			if o == nil {
				if !errorsIs(err, ErrNotFound) {
					d.fail("Stat(%s, %q) = %+v, %v; want not found", pg, name, info, err)
				}
				continue
			}
			if err != nil || info.Size != int64(len(o.data)) || info.Version != o.version {
				d.fail("Stat(%s, %q) = %+v, %v; want size %d version %d", pg, name, info, err, len(o.data), o.version)
			}
			got := make([]byte, len(o.data))
			if err := d.s.Read(pg, name, 0, got); err != nil {
				d.fail("Read(%s, %q): %v", pg, name, err)
			}
			if !bytes.Equal(got, o.data) {
				d.fail("Read(%s, %q) differs at byte %d", pg, name, firstDiff(got, o.data))
			}
		}
	}
}

// crash stops the store as a killed process would (no checkpoint, metas not
// yet written behind are lost), reopens it and replays the log from the
// durable apply state, as the OSD does.
func (d *placedDriver) crash() {
	d.dropAhead(false) // gone with the process
	killStore(d.s)
	cfg := d.s.cfg
	cfg.LogLargeWrites = d.rng.IntN(4) == 0 || *noPlace // a store with placed entries opens either way
	var err error
	if d.s, err = Open(cfg); err != nil {
		d.fail("reopen after crash: %v", err)
	}
	d.trace = append(d.trace, fmt.Sprintf("crash (placing %v)", cfg.placeWrites()))
	d.model = model{}
	for _, pg := range d.pgs {
		l := d.logs[pg]
		st, err := d.s.LoadRaft(pg)
		if err != nil {
			d.fail("LoadRaft after crash: %v", err)
		}
		if st.LastIndex != l.last {
			d.fail("after crash %s log ends at %d, want %d", pg, st.LastIndex, l.last)
		}
		c := uint64(0)
		if len(st.ApplyState) == 8 {
			c = binary.BigEndian.Uint64(st.ApplyState)
		}
		if c != l.durable {
			d.fail("after crash %s durable apply state is %d, want %d", pg, c, l.durable)
		}
		was := l.applied
		l.applied, l.applyState = c, c
		for i := uint64(1); i <= c; i++ {
			if op, ok := l.history[i]; ok {
				op.applyTo(d.model, pg, i)
			}
		}
		d.s.Recover(pg, l.last)
		// Re-apply what was applied before the crash: until then the
		// objects may be ahead of the model (as the OSD's are until its
		// replay ends; nothing reads them meanwhile).
		if was > c {
			d.replay(pg, was)
		}
	}
}

// replay applies pg's stored entries up to target, in batches of a few.
func (d *placedDriver) replay(pg PG, target uint64) {
	l := d.logs[pg]
	for l.applied < target {
		upTo := min(target, l.applied+1+d.rng.Uint64N(3))
		got, err := d.s.Entries(pg, l.applied+1, upTo+1, 1<<30)
		if err != nil {
			d.fail("Entries(%s, %d, %d) to replay: %v", pg, l.applied+1, upTo+1, err)
		}
		b := d.s.NewBatch()
		for k, e := range got {
			idx := l.applied + 1 + uint64(k)
			if !bytes.Equal(e, l.ents[idx]) {
				d.fail("replay: Entries(%s) returned a different entry %d", pg, idx)
			}
			if err := decodeTestOp(e).addTo(b, pg, idx); err != nil {
				d.fail("replay %s %d: %v", pg, idx, err)
			}
		}
		if err := b.SetApplyState(pg, binary.BigEndian.AppendUint64(nil, upTo)); err != nil {
			d.fail("SetApplyState: %v", err)
		}
		if err := b.Commit(); err != nil {
			d.fail("replay commit: %v", err)
		}
		for idx := l.applied + 1; idx <= upTo; idx++ {
			l.history[idx].applyTo(d.model, pg, idx)
		}
		l.applied, l.applyState = upTo, upTo
		d.trace = append(d.trace, fmt.Sprintf("replay %s through %d%s", pg, upTo, d.debugMeta(pg)))
	}
}

// TestPlacedLog drives a store that places large writes through appends,
// replaced suffixes, commits, applies, compactions, checkpoints, discards
// and crashes, and checks the log's entries and the objects against a
// naive model after each step.
func TestPlacedLog(t *testing.T) {
	seeds := 30
	switch {
	case testing.Short() && raceEnabled:
		seeds = 4 // the first that reclaims is 4; 80 s for 8 under the detector, and unit runs the 8
	case testing.Short():
		seeds = 8
	}
	if *placeSeeds > 0 {
		seeds = *placeSeeds
	}
	var total struct {
		placed, flipped, converted, reclaimed, direct int64
		adopted, spoiled                              int64
		noDirect                                      bool
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.LogLargeWrites = *noPlace
			// Stale slots punched at once, late (a reserve of a few
			// blocks: slots written again before their turn), or never.
			cfg.StaleReserve = []int64{-1, 8 * int64(cfg.BlockSize), DefaultStaleReserve}[seed%3]
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := &placedDriver{t: t, rng: rand.New(rand.NewPCG(seed, 11)), s: s, bs: int64(cfg.BlockSize),
				pgs: []PG{{1, 0}, {1, 1}}, names: []string{"a", "b"}, logs: map[PG]*driverLog{}, model: model{},
				ahead: map[PG]*aheadWrite{}}
			for _, pg := range d.pgs {
				d.logs[pg] = &driverLog{first: 1, ents: map[uint64][]byte{}, history: map[uint64]testOp{}}
			}
			defer func() { _ = d.s.Close() }()
			for step := 0; step < 150; step++ {
				switch r := d.rng.IntN(20); {
				case r < 14:
					d.batch()
				case r < 16:
					d.checkpoint()
				case r < 17:
					d.crash()
				default:
					pg := d.pgs[d.rng.IntN(2)]
					_, _ = d.s.List(pg, "", "", 0) // writes metas behind: they may get ahead
					d.trace = append(d.trace, fmt.Sprintf("list %s", pg))
				}
				d.checkEntries()
				d.checkObjects()
			}
			for _, pg := range d.pgs {
				l := d.logs[pg]
				l.commit = l.last
			}
			for range 10 {
				d.batch()
			}
			d.dropAhead(true)
			d.checkObjects()
			if len(d.s.inflight) != 0 || len(d.s.pre.live) != 0 {
				t.Fatalf("%d placements in flight, %d live preplacements at the end", len(d.s.inflight), len(d.s.pre.live))
			}
			total.adopted += d.s.stats.ahead.Load()
			total.spoiled += d.s.pre.refused["spoiled"]
			st := &d.s.stats
			total.placed += st.placed.Load()
			total.flipped += st.flipped.Load()
			total.converted += st.converted.Load()
			total.reclaimed += st.reclaimed.Load()
			total.direct += st.direct.Load()
			total.noDirect = total.noDirect || d.s.noDirect.Load()
		})
	}
	// Each path must have run, or the test proves nothing about it.
	t.Logf("placed %d (direct %d, placed ahead %d), applied by flip %d, converted %d, blocks reclaimed %d, placed ahead and spoiled %d (last store of each seed)",
		total.placed, total.direct, total.adopted, total.flipped, total.converted, total.reclaimed, total.spoiled)
	if total.placed == 0 || total.flipped == 0 || total.converted == 0 || total.reclaimed == 0 || (total.direct == 0 && !total.noDirect) ||
		(total.adopted == 0 && !*noPlace) {
		t.Fatalf("a placement path never ran: placed %d, direct %d, placed ahead %d, flipped %d, converted %d, reclaimed %d",
			total.placed, total.direct, total.adopted, total.flipped, total.converted, total.reclaimed)
	}
}

// debugMeta describes pg's objects for the trace: size, stored blocks as
// block@slot, and placements in the log with their slot runs.
func (d *placedDriver) debugMeta(pg PG) string {
	out := ""
	for _, name := range d.names {
		m, found, _ := d.s.cachedMeta(loc{pg: pg, object: name, block: -1})
		if !found {
			continue
		}
		out += fmt.Sprintf(" [%s: size %d:", name, m.size)
		for i := range nblocks(m.size, d.bs) {
			if m.has(i) {
				out += fmt.Sprintf(" %d@%d", i, m.slot(i))
			}
		}
		d.s.placeMu.Lock()
		for idx, pl := range d.s.placements[pg] {
			if pl.rec.name == name {
				out += fmt.Sprintf(" P%d%v", idx, pl.runs)
			}
		}
		d.s.placeMu.Unlock()
		out += "]"
	}
	return out
}

// TestAppendPlacedBadPlaces: a place outside its entry, a duplicate place
// or a bad range is ErrInvalid and changes nothing, so the placements made
// before it in the batch still commit and read back.
func TestAppendPlacedBadPlaces(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	data := pattern(7, 4<<12)
	good := testOp{kind: opWrite, name: "o", off: 0, data: data}
	e1 := good.encode()
	b := s.NewBatch()
	defer b.Discard()
	if err := b.AppendPlaced(pg1, 1, [][]byte{e1}, []Place{{Entry: 0, Object: "o", Lo: good.headerLen(), Hi: len(e1)}}); err != nil {
		t.Fatal(err)
	}
	e2 := good.encode()
	for _, bad := range [][]Place{
		{{Entry: 0, Object: "o", Lo: 10, Hi: 5}},
		{{Entry: 0, Object: "o", Lo: 0, Hi: len(e2) + 1}},
		{{Entry: 1, Object: "o", Lo: 0, Hi: 1}},
		{{Entry: 0, Object: "o", Lo: good.headerLen(), Hi: len(e2)}, {Entry: 0, Object: "o", Lo: good.headerLen(), Hi: len(e2)}},
		{{Entry: 0, Object: "", Lo: good.headerLen(), Hi: len(e2)}},
		{{Entry: 0, Object: "o", Offset: -4096, Lo: good.headerLen(), Hi: len(e2)}},
		{{Entry: 0, Object: "o", Lo: good.headerLen(), Hi: len(e2), Data: data[:4096]}},     // not Hi-Lo bytes
		{{Entry: 0, Object: "o", Lo: len(e2) + 1, Hi: len(e2) + 1 + len(data), Data: data}}, // Lo past the rest
	} {
		wantErr(t, b.AppendPlaced(pg1, 2, [][]byte{e2}, bad), ErrInvalid)
	}
	if err := b.Write(pg1, "o", 0, data, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if s.stats.placed.Load() != 1 || s.stats.flipped.Load() != 1 {
		t.Fatalf("placed %d, flipped %d; want 1, 1", s.stats.placed.Load(), s.stats.flipped.Load())
	}
	got, err := s.Entries(pg1, 1, 2, 1<<20)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], e1) {
		t.Fatalf("Entries = %d entries, %v; want the placed entry rebuilt", len(got), err)
	}
	if st, _ := s.LoadRaft(pg1); st.LastIndex != 1 {
		t.Fatalf("log ends at %d, want 1: a refused append changed it", st.LastIndex)
	}
	checkObject(t, s, pg1, "o", data, 1)
}

// TestEntriesBoundPlaced: Entries counts a placed entry at its rebuilt
// size against maxBytes (raft's bound), and returns at least one.
func TestEntriesBoundPlaced(t *testing.T) {
	s := openStore(t, testConfig(t))
	var ents [][]byte
	var places []Place
	for k := range 3 {
		op := testOp{kind: opWrite, name: "o", off: int64(k) * 16 << 10, data: pattern(byte(k+1), 16<<10)}
		e := op.encode()
		ents = append(ents, e)
		places = append(places, Place{Entry: k, Object: "o", Offset: op.off, Lo: op.headerLen(), Hi: len(e)})
	}
	b := s.NewBatch()
	if err := b.AppendPlaced(pg1, 1, ents, places); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if s.stats.placed.Load() != 3 {
		t.Fatalf("placed %d entries, want 3", s.stats.placed.Load())
	}
	one := uint64(len(ents[0]))
	for _, tc := range []struct {
		max  uint64
		want int
	}{{0, 1}, {one, 1}, {one + one/2, 1}, {2 * one, 2}, {1 << 30, 3}} {
		got, err := s.Entries(pg1, 1, 4, tc.max)
		if err != nil || len(got) != tc.want {
			t.Fatalf("Entries(max %d) = %d entries, %v; want %d", tc.max, len(got), err, tc.want)
		}
		for i := range got {
			if !bytes.Equal(got[i], ents[i]) {
				t.Fatalf("Entries(max %d): entry %d rebuilt wrong", tc.max, i)
			}
		}
	}
}

// TestAppendPlacedTwoParts: an entry whose data sits between a head and a
// tail is rebuilt byte for byte, given whole or in two parts (Place.Data),
// placed or (placing off) logged whole, and again after a restart.
func TestAppendPlacedTwoParts(t *testing.T) {
	for _, off := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.LogLargeWrites = off
		s := openStore(t, cfg)
		head, tail := []byte("head of the entry"), []byte("and its tail")
		var want, given [][]byte
		var places []Place
		for k := range 2 {
			data := pattern(byte(k+3), 4<<12)
			e := slices.Concat(head, data, tail)
			p := Place{Entry: k, Object: "o", Offset: int64(k) * 4 << 12, Lo: len(head), Hi: len(head) + len(data)}
			g := e
			if k == 1 {
				g, p.Data = slices.Concat(head, tail), data
			}
			want, given, places = append(want, e), append(given, g), append(places, p)
		}
		b := s.NewBatch()
		if err := b.AppendPlaced(pg1, 1, given, places); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if placed := s.stats.placed.Load(); (placed == 2) == off {
			t.Fatalf("placing off %v: placed %d entries", off, placed)
		}
		for pass := range 2 {
			got, err := s.Entries(pg1, 1, 3, 1<<30)
			if err != nil || len(got) != 2 || !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) {
				t.Fatalf("placing off %v, pass %d: Entries = %d entries, %v; want both rebuilt exactly", off, pass, len(got), err)
			}
			s = reopen(t, s)
		}
	}
}

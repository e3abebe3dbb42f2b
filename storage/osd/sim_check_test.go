package osd

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tsumiki-storage/tsumiki/storage/storagetest"
)

// run plays the schedule, heals everything, lets the cluster settle, reads
// every object back through its leader and checks the invariants. It
// returns the first one broken (a panic is one too).
func (w *simWorld) run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	if w.opts.faults != nil {
		w.opts.faults(w)
	}
	for _, sn := range w.nodes {
		if err := w.start(sn); err != nil {
			return err
		}
	}
	for i := range w.opts.steps {
		if err := w.step(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return w.settleAndCheck()
}

// settleAndCheck ends a schedule: settle everything, then check the
// replicas and the history.
func (w *simWorld) settleAndCheck() error {
	if err := w.settleAll(); err != nil {
		return err
	}
	if err := w.checkReplicas(); err != nil {
		return err
	}
	return w.checkHistory()
}

// settleAll heals the network, restarts every node, settles, reads every
// object back through its leader, and settles again.
func (w *simWorld) settleAll() error {
	w.logf("heal and settle")
	for _, sn := range w.nodes {
		sn.cut = false
	}
	for _, sn := range w.down() {
		if err := w.start(sn); err != nil {
			return err
		}
	}
	w.ops = slices.DeleteFunc(w.ops, func(op *simOp) bool {
		if op.granted {
			w.readStore(op)
		}
		return op.granted
	})
	w.final = true
	for attempt := 0; ; attempt++ {
		if err := w.settle(500, w.converged); err != nil {
			return err
		}
		missing := 0
		for _, p := range w.pgs {
			for _, obj := range p.objs {
				if w.finalRead[simKey(p.pg, obj)] {
					continue
				}
				missing++
				if sn := w.leaderOf(p.pg); sn != nil {
					w.startOp(sn, p, obj, false)
				}
			}
		}
		if missing == 0 {
			break
		}
		if attempt == 5 {
			return fmt.Errorf("final reads: %d objects could not be read back through their leader", missing)
		}
		err := w.settle(200, func() error {
			for _, op := range w.ops {
				if op.fin {
					return fmt.Errorf("final read of %s pending", simKey(op.pg, op.obj))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, op := range w.ops {
		w.unknown(op)
	}
	w.ops = nil
	return w.settle(200, w.converged)
}

// settle runs rounds until done reports nil.
func (w *simWorld) settle(rounds int, done func() error) error {
	for i := 0; ; i++ {
		err := done()
		if err == nil {
			return nil
		}
		if i == rounds {
			return fmt.Errorf("not settled after %d rounds: %w\n%s", rounds, err, w.dump())
		}
		if err := w.round(); err != nil {
			return err
		}
	}
}

// round is one tick of a fair world: the clock moves one tick and every
// node ticks once, every node cycles, every batch in flight arrives (or is
// lost to a cut), and every node cycles again.
func (w *simWorld) round() error {
	w.now = w.now.Add(simTick)
	for _, sn := range w.live() {
		w.tickNode(sn)
	}
	for _, sn := range w.live() {
		if err := w.cycle(sn); err != nil {
			return err
		}
	}
	net := w.net
	w.net = nil
	for _, p := range net {
		w.deliver(p)
	}
	for _, sn := range w.live() {
		if err := w.cycle(sn); err != nil {
			return err
		}
	}
	return nil
}

// dump describes every replica's raft state.
func (w *simWorld) dump() string {
	var b strings.Builder
	for _, p := range w.pgs {
		for _, sn := range w.nodes {
			if sn.n == nil || sn.n.replicas[p.pg] == nil {
				fmt.Fprintf(&b, "\tpg %s osd.%d: none\n", p.pg, sn.id)
				continue
			}
			r := sn.n.replicas[p.pg]
			st := r.rn.Status()
			fmt.Fprintf(&b, "\tpg %s osd.%d: %s term %d lead %d log %d..%d terms %d/%v commit %d applied %d voters %v hint %d",
				p.pg, sn.id, st.RaftState, st.GetTerm(), osdID(st.Lead), r.log.first, r.log.last, r.log.compactTerm, r.log.terms,
				st.GetCommit(), r.log.applied, r.voters, r.compactHint)
			for id, pr := range st.Progress {
				fmt.Fprintf(&b, " [osd.%d %s]", osdID(id), &pr)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// converged reports why the cluster is not quiescent yet: every PG needs one
// leader all replicas agree on, with nothing uncommitted, every replica
// applied up to its commit index, and no replica with work pending.
func (w *simWorld) converged() error {
	for _, p := range w.pgs {
		lead := int32(-2)
		for _, sn := range w.nodes {
			if sn.n == nil {
				return fmt.Errorf("osd.%d is down", sn.id)
			}
			r := sn.n.replicas[p.pg]
			if !p.member(sn.id) {
				if _, dropping := sn.n.dropping[p.pg]; r != nil || dropping {
					return fmt.Errorf("osd.%d still holds pg %s, moved to %v", sn.id, p.pg, p.members)
				}
				continue
			}
			if r == nil {
				return fmt.Errorf("osd.%d has no replica of pg %s", sn.id, p.pg)
			}
			if got, want := ids(r.log.cs.GetVoters()), slices.Sorted(slices.Values(p.membersOf())); !slices.Equal(got, want) ||
				len(r.log.cs.GetLearners()) > 0 || len(r.log.cs.GetVotersOutgoing()) > 0 {
				return fmt.Errorf("pg %s: osd.%d has configuration %v, members are %v", p.pg, sn.id, r.log.cs, want)
			}
			if len(sn.n.events) > 0 || r.rn.HasReady() || osdID(r.rn.BasicStatus().Lead) != r.leader.Load() {
				return fmt.Errorf("pg %s: osd.%d has work pending", p.pg, sn.id)
			}
			if l := r.leader.Load(); lead == -2 {
				lead = l
			} else if l != lead {
				return fmt.Errorf("pg %s: replicas disagree on the leader (%d, %d)", p.pg, lead, l)
			}
		}
		if lead < 0 || !p.member(lead) {
			return fmt.Errorf("pg %s has no leader among its members (%d)", p.pg, lead)
		}
		lr := w.nodes[lead].n.replicas[p.pg]
		commit := lr.rn.BasicStatus().GetCommit()
		if lr.log.last != commit {
			return fmt.Errorf("pg %s: leader osd.%d has entries up to %d, committed %d", p.pg, lead, lr.log.last, commit)
		}
		for _, sn := range w.nodes {
			if !p.member(sn.id) {
				continue
			}
			if r := sn.n.replicas[p.pg]; r.log.applied != commit {
				return fmt.Errorf("pg %s: osd.%d applied %d (log %d..%d), leader osd.%d committed %d",
					p.pg, sn.id, r.log.applied, r.log.first, r.log.last, lead, commit)
			}
		}
	}
	return nil
}

// checkReplicas compares every PG's replicas on their stores: equal digest
// sums (content, versions and apply state) and equal applied index.
func (w *simWorld) checkReplicas() error {
	for _, p := range w.pgs {
		type rep struct {
			apply []byte
			sum   [32]byte
			as    applyState
		}
		var reps []rep
		var raw [][32]byte
		var on []*simNode
		for _, sn := range w.nodes {
			if !p.member(sn.id) {
				if n, err := sn.store.ListPGs(); err != nil || slices.Contains(n, p.pg) {
					return fmt.Errorf("pg %s: osd.%d left it but its store still holds it (%v)", p.pg, sn.id, err)
				}
				continue
			}
			on = append(on, sn)
			apply, sum, as, err := replicaDigest(sn.store, p.pg)
			if err != nil {
				return fmt.Errorf("pg %s: osd.%d: %w", p.pg, sn.id, err)
			}
			_, full, _, _ := sn.store.Digest(p.pg)
			raw = append(raw, full)
			if mem := sn.n.replicas[p.pg].log.applied; as.Applied != mem {
				return fmt.Errorf("pg %s: osd.%d has applied %d but its store says %d", p.pg, sn.id, mem, as.Applied)
			}
			reps = append(reps, rep{apply, sum, as})
		}
		for i, r := range reps[1:] {
			a, b := reps[0], r
			x, y := on[0], on[i+1]
			if a.as.Applied != b.as.Applied {
				return fmt.Errorf("pg %s: osd.%d applied %d, osd.%d applied %d", p.pg, x.id, a.as.Applied, y.id, b.as.Applied)
			}
			if a.sum != b.sum {
				diff := contentDiff(memStore{x.store}, memStore{y.store}, p.pg)
				if diff == "" && !bytes.Equal(a.apply, b.apply) {
					diff = fmt.Sprintf("same objects, apply states differ: %+v vs %+v", a.as, b.as)
				}
				return fmt.Errorf("pg %s: digests of osd.%d and osd.%d differ at applied %d: %s", p.pg, x.id, y.id, a.as.Applied, diff)
			}
		}
		if raw[0] != raw[1] || raw[0] != raw[2] {
			// What pg verify compares: it must not flag healthy replicas.
			return fmt.Errorf("pg %s: store digests differ between healthy replicas", p.pg)
		}
	}
	return nil
}

// replicaDigest is the store's Digest of pg with its decoded apply state.
func replicaDigest(s *storagetest.MemStore, pg PG) ([]byte, [32]byte, applyState, error) {
	apply, sum, _, err := s.Digest(pg)
	if err != nil {
		return nil, [32]byte{}, applyState{}, fmt.Errorf("digest: %w", err)
	}
	as, err := decodeApplyState(apply)
	if err != nil {
		return nil, [32]byte{}, applyState{}, err
	}
	return apply, sum, as, nil
}

// contentDiff describes the first object that differs between two stores.
func contentDiff(a, b Store, pg PG) string {
	la, _ := a.List(pg, "", "", 0)
	lb, _ := b.List(pg, "", "", 0)
	if !slices.Equal(la, lb) {
		return fmt.Sprintf("objects %v vs %v", la, lb)
	}
	for _, o := range la {
		pa, pb := make([]byte, o.Size), make([]byte, o.Size)
		ea, eb := a.Read(pg, o.Name, 0, pa), b.Read(pg, o.Name, 0, pb)
		if ea != nil || eb != nil || !bytes.Equal(pa, pb) {
			at := 0
			for at < len(pa) && pa[at] == pb[at] {
				at++
			}
			end := min(len(pa), at+32)
			return fmt.Sprintf("object %q (size %d, version %d) differs from byte %d: %x (%v) vs %x (%v)",
				o.Name, o.Size, o.Version, at, pa[at:end], ea, pb[at:end], eb)
		}
	}
	return ""
}

// simInput is a register operation: a write of val, or a read.
type simInput struct {
	write bool
	val   uint64
}

// registerModel is one object as a register holding the last value written
// (0: never written).
var registerModel = porcupine.Model{
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(simInput)
		if in.write {
			return true, in.val
		}
		return output.(uint64) == state.(uint64), state
	},
	DescribeOperation: func(input, output any) string {
		if in := input.(simInput); in.write {
			return fmt.Sprintf("write %d", in.val)
		}
		return fmt.Sprintf("read %d", output)
	},
}

// errNotLinearizable marks a history porcupine rejects.
var errNotLinearizable = errors.New("history is not linearizable")

// checkHistory checks each object's history with porcupine. Writes with an
// unknown outcome return "never" (they may take effect at any later time);
// those no read ever observed are left out, which cannot change the verdict
// (they can always be placed after everything else). Failed reads are not
// in the history at all.
func (w *simWorld) checkHistory() error {
	byKey := map[string][]simEvent{}
	for _, e := range w.hist {
		byKey[e.key] = append(byKey[e.key], e)
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		if err := checkLinearizable(key, byKey[key]); err != nil {
			return err
		}
	}
	return nil
}

func checkLinearizable(key string, evs []simEvent) error {
	seen := map[uint64]bool{}
	for _, e := range evs {
		if !e.write {
			seen[e.val] = true
		}
	}
	var ops []porcupine.Operation
	for _, e := range evs {
		if e.unknown && !seen[e.val] {
			continue
		}
		ops = append(ops, porcupine.Operation{Input: simInput{e.write, e.val}, Call: e.call, Output: e.val, Return: e.ret})
	}
	switch porcupine.CheckOperationsTimeout(registerModel, ops, 20*time.Second) {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("%s: porcupine timed out on %d operations", key, len(ops))
	}
	slices.SortFunc(evs, func(a, b simEvent) int { return int(a.call - b.call) })
	var b strings.Builder
	for _, e := range evs {
		ret := fmt.Sprint(e.ret)
		if e.unknown {
			ret = "?"
		}
		kind := "read "
		if e.write {
			kind = "write"
		}
		fmt.Fprintf(&b, "\n\t[%d, %s] %s %d", e.call, ret, kind, e.val)
	}
	return fmt.Errorf("%s: %w:%s", key, errNotLinearizable, b.String())
}

package osd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Raft snapshots: how a replica too far behind for the log catches up
// (docs/design-replica-moves.md). With NodeConfig.SnapshotBehind set, a
// leader compacts its log past a replica that far behind (compactFloor),
// so that a down OSD no longer keeps every PG's log it belongs to growing
// until it returns. Raft then sends that replica a snapshot, which
// carries no data: its index S0 and term are the leader's applied ones,
// with the configuration at S0 (raftLog.Snapshot). The replica
// (receiveSnapshot) empties its copy of the PG, copies the objects from
// the leader as they are while it reads them (PGCopier, Node.CopyOut: a
// fuzzy copy, each object at some index >= S0), and installs the
// snapshot's state with a log that restarts at S0+1
// (chunkstore.Store.BeginInstall and EndInstall). Raft then sends it the
// entries from S0+1 on, and replaying them over the fuzzy copy gives the
// leader's state exactly: every op writes absolute state, which crash
// replay relies on already.
//
// Until it has applied what the source had applied when the copy ended
// (replica.readHold), the installed replica's objects mix times: it serves
// no replica read or digest before. While it installs, its raft group is
// frozen (no step, no tick, no Ready): the store holds nothing raft could
// read. A crash mid-install leaves the PG empty but for its hard state
// (chunkstore's Open), and the leader sends a snapshot again once the
// old one times out (snapshotIdle).

// snapshotIdleTicks: a leader gives up on a snapshot it sent (raft
// ReportSnapshot, which makes it send a new one when the replica still
// needs one) once this many ticks passed since it sent it and since the
// replica last read an object of the copy from it.
const snapshotIdleTicks = 100

// maxInstalls bounds the snapshot installs an OSD runs at once: each
// copies a whole PG over the network and writes it, and after a long
// outage every PG of the OSD may want one. A snapshot that finds the slots
// taken is dropped; its leader sends it again once it times out
// (snapshotIdleTicks).
const maxInstalls = 2

// copyProgressEvery spaces the progress lines of a long copy.
const copyProgressEvery = 10 * time.Second

// Snapshot implements raft.Storage: the state at the applied index, data
// excepted (see above). Without snapshots configured (raftLog.snapshots
// false) it is "temporarily unavailable", and raft waits: the log is then
// compacted only below what every replica holds, so raft never needs one.
func (l *raftLog) Snapshot() (*pb.Snapshot, error) {
	if !l.snapshots || l.applied == 0 {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: proto.Uint64(l.applied), Term: proto.Uint64(l.appliedTerm), ConfState: proto.CloneOf(l.cs),
	}}, nil
}

// compactFloor is the lowest log index the leader r keeps for its
// replicas: what each holds (Match), but for one in StateSnapshot the
// index of its pending snapshot, after which it needs every entry. A
// replica left behind (lb) does not count: it will get a snapshot.
func (r *replica) compactFloor(lb leftBehind) uint64 {
	m := r.log.last
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		at := pr.Match
		if pr.State == tracker.StateSnapshot {
			at = max(at, pr.PendingSnapshot)
		} else if osdID(id) != r.self && lb.leaves(r, osdID(id), pr) {
			return
		}
		m = min(m, at)
	})
	return m
}

// leftBehind is when a leader stops keeping its log for a replica
// (NodeConfig.SnapshotBehind): the replica is more than entries behind
// the leader's applied index, and its OSD silent (nothing heard from it
// for an election timeout), under a leader that has led for at least two.
// A leader learns what its followers hold only from their answers: right
// after an election every Match is 0. (Raft's RecentActive would do for
// silence, but it is cleared at every quorum check, when a replica that
// is alive but behind would count as gone until its next answer.)
type leftBehind struct {
	entries uint64 // 0: never
	now     time.Time
	timeout time.Duration // an election timeout
	heard   func(osd int32) time.Time
}

func (n *Node) leftBehind() leftBehind {
	return leftBehind{entries: n.cfg.SnapshotBehind, now: n.cfg.Clock.Now(), timeout: electionTick * n.cfg.TickInterval,
		heard: func(osd int32) time.Time {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.heard[osd]
		}}
}

func (lb leftBehind) leaves(r *replica, osd int32, pr tracker.Progress) bool {
	return lb.entries > 0 && pr.Match+lb.entries < r.log.applied &&
		lb.now.Sub(r.leaderSince) >= 2*lb.timeout && lb.now.Sub(lb.heard(osd)) > lb.timeout
}

// noteSnapshotSent records that the leader r sent a snapshot to peer
// (queue), for the idle timeout.
func (r *replica) noteSnapshotSent(to int32, now time.Time) {
	if r.snapSent == nil {
		r.snapSent = map[int32]time.Time{}
	}
	r.snapSent[to] = now
}

// expireSnapshots gives up on the snapshots of leader r that no replica
// has copied from for snapshotIdleTicks (see above). On the loop.
func (n *Node) expireSnapshots(r *replica, now time.Time) {
	if len(r.snapSent) == 0 {
		return
	}
	if !r.isLeader() {
		clear(r.snapSent)
		return
	}
	idle := snapshotIdleTicks * n.cfg.TickInterval
	copied := time.Unix(0, r.copyAt.Load())
	var stale []int32
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		to := osdID(id)
		sent, ok := r.snapSent[to]
		switch {
		case !ok:
		case pr.State != tracker.StateSnapshot:
			delete(r.snapSent, to)
		case now.Sub(sent) > idle && now.Sub(copied) > idle:
			stale = append(stale, to)
		}
	})
	for _, to := range stale {
		delete(r.snapSent, to)
		n.log.Warn("a replica did not install the snapshot sent to it; raft sends another when it still needs one",
			zap.Stringer("pg", r.pg), zap.Int32("osd", to))
		r.rn.ReportSnapshot(r.seat(to), raft.SnapshotFailure)
		n.touch(r)
	}
}

// receiveSnapshot takes a snapshot m sent to r (on the loop, instead of
// stepping it): raft ignores one at or below its commit index, or one whose
// index and term its log holds (it fast-forwards), so those are stepped;
// any other would make raft replace its log with the snapshot's, which
// this store installs first (installPG).
func (n *Node) receiveSnapshot(r *replica, from int32, m *pb.Message) {
	meta := m.GetSnapshot().GetMetadata()
	idx, term := meta.GetIndex(), meta.GetTerm()
	if r.leftAt(meta.GetConfState(), idx, term) {
		// The configuration at idx has no seat for this replica, and the
		// map moved the PG away (tellLeft): no copy, it is dropped. Not a
		// matter of terms: a replica that left may have run elections of
		// its own since.
		n.drop(r)
		return
	}
	if !hasSeat(meta.GetConfState(), r.id) {
		// No seat for it at the snapshot's index, and not told that the PG
		// moved away (else leftAt): its map is behind, or a member whose
		// own configuration is behind answered its probe (tellLeft). Not
		// a leader's: a leader's snapshot is of a configuration that
		// lists the seats it sends to. Raft would refuse to restore it,
		// and must not even see it: it takes the sender of a snapshot for
		// the leader of its term and restarts its election timer, so a
		// member that kept telling it (every probe) held its vote away
		// from any candidate for good (a random simulation schedule).
		if now := n.cfg.Clock.Now(); now.Sub(r.warnedMove) >= lostWarnEvery {
			r.warnedMove = now
			n.log.Warn("ignoring a raft snapshot whose configuration does not list this osd; waiting for the cluster map",
				zap.Stringer("pg", r.pg), zap.Int32("from", from))
		}
		return
	}
	st := r.rn.BasicStatus()
	if m.GetTerm() < st.GetTerm() || idx <= st.GetCommit() {
		_ = r.rn.Step(m) // raft drops an old term's message, ignores an old snapshot
		return
	}
	t, err := r.log.Term(idx)
	if err == nil && t == term {
		_ = r.rn.Step(m)
		return
	}
	if err != nil && !errors.Is(err, raft.ErrUnavailable) && !errors.Is(err, raft.ErrCompacted) {
		// The log may hold acknowledged entries past idx: never empty it
		// on a read error. Raft sends the snapshot again.
		n.log.Warn("cannot read the raft log to take a snapshot; dropping it", zap.Stringer("pg", r.pg), zap.Error(err))
		return
	}
	if n.cfg.Copier == nil {
		n.log.Warn("dropping a raft snapshot: this osd has no way to copy a pg (PGCopier)", zap.Stringer("pg", r.pg))
		return
	}
	if !n.cfg.syncInstall && n.installsActive >= maxInstalls {
		return // see maxInstalls
	}
	r.frozen.Store(true)
	// A replica that still took itself for the leader (a newer one sent
	// this) serves nothing more: no lease reads beside the loop, and no
	// proposal or read is taken (startPropose, startRead).
	r.view.Store(nil)
	r.failAll(ErrInstalling)
	// Data placed ahead for the PG is released now, not at the end of
	// the next cycle: the store refuses to empty a PG that has some.
	for i, pp := range r.pre {
		n.unplace(pp)
		delete(r.pre, i)
	}
	n.log.Info("installing a snapshot of a pg this replica is too far behind for",
		zap.Stringer("pg", r.pg), zap.Int32("from", from), zap.Uint64("index", idx), zap.Uint64("applied", r.log.applied))
	pg, cs := r.pg, proto.CloneOf(meta.GetConfState())
	if n.cfg.syncInstall {
		through, err := n.installPG(pg, from, idx, term, cs)
		n.installed(pg, m, through, err)
		return
	}
	n.installers.Add(1)
	n.installsActive++
	go func() {
		defer n.installers.Done()
		through, err := n.installPG(pg, from, idx, term, cs)
		n.post(context.Background(), func() { n.installsActive--; n.installed(pg, m, through, err) })
	}()
}

// installPG empties this OSD's copy of pg, copies the PG from OSD from and
// installs the snapshot at index idx of term term with the configuration
// cs (see above). It returns the index the copy's source had applied when
// the copy ended. Off the loop.
func (n *Node) installPG(pg PG, from int32, idx, term uint64, cs *pb.ConfState) (uint64, error) {
	through, err := n.copyAndInstall(pg, from, idx, term, cs)
	if err == nil {
		return through, nil
	}
	// An install left marked would be emptied by the next Open, after
	// the replica appended to it again: an OSD that forgets what it
	// acknowledged breaks raft. Until the abort is durable, it stops. Data
	// placed ahead just before the freeze (placeAhead runs beside the
	// loop) is released within a cycle: the store refuses until then.
	var aerr error
	for try := 0; try < 100; try++ {
		if aerr = n.cfg.Store.AbortInstall(pg); !errors.Is(aerr, chunkstore.ErrBusy) {
			break
		}
		time.Sleep(n.cfg.TickInterval / 4)
	}
	if aerr != nil {
		return 0, fmt.Errorf("%w: %v; and giving up the install failed: %w", errAbort, err, aerr)
	}
	return 0, err
}

// errAbort: an install failed and could not be given up (installPG).
var errAbort = errors.New("cannot give up a failed snapshot install")

// copyAndInstall is installPG but for giving up a failed install.
func (n *Node) copyAndInstall(pg PG, from int32, idx, term uint64, cs *pb.ConfState) (uint64, error) {
	st := n.cfg.Store
	if err := st.BeginInstall(pg); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	objects, bytes := 0, int64(0)
	start := n.cfg.Clock.Now()
	shown := start
	through, err := n.cfg.Copier.CopyPG(ctx, from, pg, idx, func(o CopiedObject) error {
		if now := n.cfg.Clock.Now(); now.Sub(shown) >= copyProgressEvery {
			shown = now
			n.log.Info("copying a pg for its snapshot", zap.Stringer("pg", pg), zap.Int32("from", from),
				zap.Int("objects", objects), zap.Int64("MiB", bytes>>20), zap.Duration("for", now.Sub(start).Round(time.Second)))
		}
		bytes += o.Size
		b := st.NewBatch()
		defer b.Discard()
		var err error
		if len(o.Data) > 0 {
			err = b.Write(pg, o.Name, 0, o.Data, o.Version)
		}
		for _, d := range o.Damaged {
			if err == nil {
				err = b.MarkDamaged(pg, o.Name, d.Off, d.Len, o.Version)
			}
		}
		if err == nil {
			err = b.Truncate(pg, o.Name, o.Size, o.Version)
		}
		if err == nil {
			err = b.Commit()
		}
		objects++
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("copy pg %s from osd.%d: %w", pg, from, err)
	}
	conf, err := proto.Marshal(cs)
	if err != nil {
		return 0, err
	}
	as := applyState{Applied: idx, AppliedTerm: term, CompactIndex: idx, CompactTerm: term, Conf: conf}
	if err := st.EndInstall(pg, as.encode(), idx+1); err != nil {
		return 0, err
	}
	n.log.Info("installed a snapshot", zap.Stringer("pg", pg), zap.Int32("from", from), zap.Uint64("index", idx),
		zap.Int("objects", objects), zap.Int64("MiB", bytes>>20), zap.Duration("took", n.cfg.Clock.Now().Sub(start).Round(time.Millisecond)),
		zap.Uint64("source applied", through))
	return through, nil
}

// installed takes the end of installPG on the loop: the replica is loaded
// again from the store, as after a restart (installed, or emptied but for
// its hard state when the install failed), and given the snapshot m,
// which raft now ignores (its index is the commit index the load gives),
// answering the leader with that index: the leader then sends the entries
// after it.
func (n *Node) installed(pg PG, m *pb.Message, through uint64, err error) {
	old := n.replicas[pg]
	if old == nil {
		return
	}
	if errors.Is(err, errAbort) {
		n.fatal = fmt.Errorf("pg %s: %w", pg, err)
		return
	}
	if err != nil {
		n.log.Warn("cannot install a snapshot; waiting for another", zap.Stringer("pg", pg), zap.Error(err))
	}
	r, lerr := n.reloadReplica(old)
	if lerr != nil {
		// The store failed under the replica: the node stops (Run).
		n.fatal = fmt.Errorf("reload pg %s after a snapshot install: %w", pg, lerr)
		return
	}
	if err != nil {
		return
	}
	r.readHold.Store(through)
	n.installsDone.Add(1)
	n.touch(r)
	_ = r.rn.Step(m)
}

// reloadReplica replaces old with a replica loaded from the store, keeping
// what the map told old (primary, min_size). old stays frozen for good:
// the touched list or a reader may still hold it. On the loop.
func (n *Node) reloadReplica(old *replica) (*replica, error) {
	old.frozen.Store(true)
	old.failAll(ErrInstalling)
	for idx, pp := range old.pre {
		n.unplace(pp)
		delete(old.pre, idx)
	}
	l, err := loadRaftLog(n.cfg.Store, old.pg)
	if err != nil {
		return nil, err
	}
	r, err := n.addReplica(l, nil, old.minSize)
	if err != nil {
		return nil, err
	}
	r.primary, r.want = old.primary, old.want
	return r, nil
}

// readOwn runs read, a read of this OSD's own copy of pg, once the
// replica may serve it at index idx (waitApplied), and fails it with
// ErrInstalling if an install began meanwhile: the store may have been
// emptied under it. Any goroutine.
func (n *Node) readOwn(ctx context.Context, pg PG, idx uint64, read func() error) error {
	if err := n.waitApplied(ctx, pg, idx); err != nil {
		return err
	}
	r := n.lookup(pg)
	if r == nil {
		return ErrNoPG
	}
	err := read()
	if n.lookup(pg) != r || !r.readable(idx) {
		return ErrInstalling
	}
	return err
}

// readable reports whether r may serve a read of its own copy at index
// idx (replica reads, digests): not while it installs a snapshot, nor
// before it applied past its copy (see above).
func (r *replica) readable(idx uint64) bool {
	return !r.frozen.Load() && r.applied.Load() >= max(idx, r.readHold.Load())
}

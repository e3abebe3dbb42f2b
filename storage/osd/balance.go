package osd

import (
	"context"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
)

// Leadership balancing. Every PG has a primary, the first OSD the map
// places it on; placement spreads primaries evenly over the OSDs, and a PG
// led by its primary spreads the load (writes are proposed, and reads
// served, by the leader). Elections do not keep that: a PG whose primary
// was down is led by another replica from then on, so after a rolling
// restart, or an OSD's reboot, a few OSDs lead most PGs. The leader of a
// PG that is not its primary therefore hands leadership back (raft's
// TransferLeader, the same as `tsumiki pg lead`) once:
//
//   - the primary has been heard from, without a gap, for
//     NodeConfig.BalanceAfter: a flapping OSD does not pull leaderships
//     to and fro;
//   - the primary holds every committed entry and is in the replicate
//     state: the hand-over then costs about one round trip (raft stops
//     taking proposals until the primary has taken over);
//   - this replica holds no damaged entry (maybeHandOff decides then);
//   - the primary is not marked out;
//   - no transfer is under way, and the node is not held (the map's
//     `noout` flag: an operator who is taking OSDs down for maintenance
//     has moved leaderships away on purpose);
//   - at most balancePerTick transfers start per tick, so that a restart
//     does not become an election storm.
//
// Each replica waits between its hand-overs, from BalanceAfter doubling
// up to balanceMost times BalanceAfter (30 s to 10 min by default), and
// the wait starts over only once that longest wait has passed without
// one. A hand-over that does not take (the primary cannot win: it holds a
// damaged entry, or it is cut off from the others), or one that the
// primary undoes (a primary that holds a damaged entry hands leadership
// on when a follower needs that entry: maybeHandOff), is thus retried
// ever more rarely instead of every tick.
//
// Not covered: the leader cannot see the primary's links to the other
// voters. A primary it hears but that is cut off from a third voter still
// gets leadership; that voter then falls behind while the cut lasts (with
// three voters), or, with five and the primary reaching fewer than a
// majority, each try costs an election. Raft's own elections can pick
// such a replica too; the waits above bound how often the balancer
// tries. A hand-over the primary does not act on leaves lease reads off
// on this replica until the next term (endLease), as `pg lead` does.
const (
	balancePerTick = 4
	balanceMost    = 20
	// balanceAfter is the default NodeConfig.BalanceAfter.
	balanceAfter = 30 * time.Second
)

// HoldLeaders stops (hold) or resumes leadership balancing on this node;
// out lists the OSDs marked out, which are not handed leadership even
// where they are primaries (an operator marks an OSD out to stop using
// it; it stays a member of its PGs until replica moves exist).
func (n *Node) HoldLeaders(hold bool, out []int32) {
	n.post(context.Background(), func() { n.balanceHold, n.balanceOut = hold, out })
}

// maybeBalance hands r's leadership to its primary when the rules above
// allow it. It runs on the loop, once per tick of r.
func (n *Node) maybeBalance(r *replica, now time.Time) {
	p := r.primary
	if p < 0 || p == r.self || n.cfg.BalanceAfter < 0 {
		return
	}
	if !r.isLeader() || n.balanceHold || now.Before(r.balanceAt) || len(r.log.damaged) > 0 {
		return
	}
	if now != n.balanceTick {
		n.balanceTick, n.balanceLeft = now, balancePerTick
	}
	bs := r.rn.BasicStatus()
	if n.balanceLeft <= 0 || !slices.Contains(r.voters, p) || slices.Contains(n.balanceOut, p) || bs.LeadTransferee != 0 {
		return
	}
	if since, ok := n.heardSince(p); !ok || now.Sub(since) < n.cfg.BalanceAfter {
		return
	}
	caughtUp := false
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == r.seat(p) {
			caughtUp = pr.RecentActive && pr.State == tracker.StateReplicate && pr.Match >= bs.GetCommit()
		}
	})
	if !caughtUp {
		return
	}
	n.balanceLeft--
	n.balanced.Add(1)
	most := balanceMost * n.cfg.BalanceAfter
	if now.Sub(r.balanceAt) > most {
		r.balanceWait = 0
	}
	r.balanceWait = min(max(2*r.balanceWait, n.cfg.BalanceAfter), most)
	r.balanceAt = now.Add(r.balanceWait)
	n.log.Debug("handing leadership back to the primary", zap.Stringer("pg", r.pg), zap.Int32("to", p))
	r.endLease() // the primary campaigns past the followers' leases
	n.touch(r)
	r.rn.TransferLeader(r.seat(p))
}

// heardSince returns when the current unbroken run of messages from peer
// began; false if it is not heard from now.
func (n *Node) heardSince(peer int32) (time.Time, bool) {
	cut := n.cfg.Clock.Now().Add(-electionTick * n.cfg.TickInterval)
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.heard[peer].After(cut) {
		return time.Time{}, false
	}
	return n.heardFrom[peer], true
}

// noteHeardLocked records a message from peer at now; mu must be held.
func (n *Node) noteHeardLocked(peer int32, now time.Time) {
	if last, ok := n.heard[peer]; !ok || now.Sub(last) > electionTick*n.cfg.TickInterval {
		n.heardFrom[peer] = now
	}
	n.heard[peer] = now
}

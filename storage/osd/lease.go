package osd

import (
	"time"

	"go.etcd.io/raft/v3"
)

// Leader leases: reads without a heartbeat round per read.
//
// With ReadOnlySafe every read-index request costs a heartbeat round with a
// quorum. A round issued at time s and acknowledged by a quorum (raft
// answers its read state) proves more than leadership at s: every follower
// that acknowledged reset its election timer when the heartbeat arrived,
// after s, and under CheckQuorum it then refuses votes (and does not
// campaign) until electionTick of its own ticks pass without hearing from
// the leader. Ticks come from a time.Ticker, at most one per tick interval
// plus one buffered, so no new leader can be elected before s +
// (electionTick-2) ticks of real time. The leader may thus serve reads at
// its commit index until s + leaseFor(tick), measured on its own clock
// (monotonic; a stalled leader's clock still runs, unlike its ticks, which
// is why the lease is not counted in leader ticks).
//
// This is not raft's ReadOnlyLeaseBased, which rests on the leader's
// check-quorum period and served stale reads (TestSimReadAfterLeaderCut).
// What it needs in addition, and where it is enforced:
//   - the leader has committed an entry of its term, so its commit index
//     covers every earlier acknowledged write (leaseRead);
//   - no leadership transfer: a transfer makes the target campaign with
//     force, past the followers' leases, so the term in which a transfer
//     was asked never serves lease reads again (noLeaseTerm);
//   - a restarted OSD forgot when it last heard from a leader: for an
//     election timeout after start it drops vote requests and does not
//     campaign early (Node.votesAfter);
//   - a lease counts a quorum of the configuration it was granted under:
//     applying a configuration change (move.go) ends it (replica.setConf),
//     and the rounds answered after count the new configuration.
//
// Reads arriving while the lease runs are granted at once at the commit
// index (after it is applied); once half of it is gone, a renewal round
// (a read-index request with no reads) is issued, so a busy PG never waits
// for a round.
//
// Most reads do not even reach the loop: the loop publishes the lease
// (leaseView: until when, and the commit index at the round's answer) and
// a reader that finds it valid, with that index applied, reads at once
// (Node.leaseIndex). That index covers every entry of earlier terms; the
// entries of this term it may miss were not acknowledged to anyone yet
// (this leader acknowledges after applying), so the read is linearizable
// at the moment it checked the lease. The loop withdraws the view when a
// transfer is asked (before the target can campaign) and when it steps
// down; a reader that saw it just before still read while no other leader
// could exist.

// leaseFor is the lease a quorum-acknowledged round gives, from its issue.
func leaseFor(tick time.Duration) time.Duration { return (electionTick - 3) * tick }

// electionTick and heartbeatTick are the raft timeouts in ticks.
const (
	electionTick  = 10
	heartbeatTick = 1
)

// leaseRead returns the index a read may be served at now under the
// lease, or false when a read-index round is needed.
func (r *replica) leaseRead(now time.Time) (uint64, bool) {
	if r.leaseDur <= 0 || !now.Before(r.leaseUntil) {
		return 0, false
	}
	return r.leaseIndex()
}

// leaseIndex is the commit index a lease read may use, if this replica may
// hold a lease now: it leads, no transfer is under way or was asked in this
// term, and it has committed an entry of its term (so the index covers every
// write acknowledged in earlier terms).
func (r *replica) leaseIndex() (uint64, bool) {
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 || st.GetTerm() == r.noLeaseTerm {
		return 0, false
	}
	commit := st.GetCommit()
	if t, err := r.log.Term(commit); err != nil || t != st.GetTerm() {
		return 0, false
	}
	return commit, true
}

// extendLease records that a round issued at issued was acknowledged by a
// quorum, and publishes the lease for readers outside the loop.
func (r *replica) extendLease(issued time.Time) {
	commit, ok := r.leaseIndex() // raft answers read-index rounds only once the term has a commit
	if !ok {
		return
	}
	if until := issued.Add(r.leaseDur); until.After(r.leaseUntil) {
		r.leaseUntil = until
	}
	r.view.Store(&leaseView{until: r.leaseUntil, index: commit})
}

// endLease stops lease reads for the rest of the current term (a
// leadership transfer was asked).
func (r *replica) endLease() {
	r.noLeaseTerm = r.rn.BasicStatus().GetTerm()
	r.leaseUntil = time.Time{}
	r.view.Store(nil)
}

// leaseView is the lease as published to readers outside the loop: reads
// at index (once applied) are linearizable until until.
type leaseView struct {
	until time.Time
	index uint64
}

// viewRead returns the index a reader outside the loop may read at now,
// or false (then it asks the loop).
func (r *replica) viewRead(now time.Time) (uint64, bool) {
	v := r.view.Load()
	if v == nil || !now.Before(v.until) || r.applied.Load() < v.index {
		return 0, false
	}
	return v.index, true
}

// renewDue says whether a lease read at now should start a renewal round.
func (r *replica) renewDue(now time.Time) bool {
	return r.readOut == 0 && now.After(r.leaseUntil.Add(-r.leaseDur/2))
}

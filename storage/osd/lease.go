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
//   - membership stays fixed (replica moves come later and must end the
//     lease when the configuration changes).
//
// Reads arriving while the lease runs are granted at once at the commit
// index (after it is applied); once half of it is gone, a renewal round
// (a read-index request with no reads) is issued, so a busy PG never waits
// for a round.

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
// quorum.
func (r *replica) extendLease(issued time.Time) {
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 || st.GetTerm() == r.noLeaseTerm {
		return
	}
	if until := issued.Add(r.leaseDur); until.After(r.leaseUntil) {
		r.leaseUntil = until
	}
}

// endLease stops lease reads for the rest of the current term (a
// leadership transfer was asked).
func (r *replica) endLease() {
	r.noLeaseTerm = r.rn.BasicStatus().GetTerm()
	r.leaseUntil = time.Time{}
}

// renewDue says whether a lease read at now should start a renewal round.
func (r *replica) renewDue(now time.Time) bool {
	return r.readOut == 0 && now.After(r.leaseUntil.Add(-r.leaseDur/2))
}

package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
	"golang.org/x/sync/errgroup"
)

// OSDStates asks every up OSD for the raft state of its PGs. OSDs that do
// not answer are reported in the error map.
func (c *Client) OSDStates(ctx context.Context) (map[int32][]wire.PGState, map[int32]error) {
	m := c.Map()
	states := map[int32][]wire.PGState{}
	errs := map[int32]error{}
	for _, o := range m.OSDs {
		if !o.Up {
			errs[o.ID] = fmt.Errorf("osd.%d is down", o.ID)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sts, err := c.pgStates(cctx, o.ID, m.Epoch)
		cancel()
		if err != nil {
			errs[o.ID] = err
			continue
		}
		states[o.ID] = sts
	}
	return states, errs
}

// pgStates asks OSD osd for the raft state of its PGs.
func (c *Client) pgStates(ctx context.Context, osd int32, epoch uint64) ([]wire.PGState, error) {
	resp, err := c.call(ctx, osd, &wire.Request{Op: wire.OpPGStatus, Epoch: epoch}, nil)
	if err == nil && resp.Status != wire.StatusOK {
		err = &statusError{resp.Status, resp.Msg}
	}
	if err != nil {
		return nil, err
	}
	return wire.DecodePGStates(resp.Data)
}

// pgState asks OSD osd for the raft state of one PG; ok is false when the
// OSD does not answer or does not host the PG.
func (c *Client) pgState(ctx context.Context, osd int32, epoch uint64, poolID, pg uint32) (st wire.PGState, ok bool) {
	sts, err := c.pgStates(ctx, osd, epoch)
	if err != nil {
		return wire.PGState{}, false
	}
	for _, st := range sts {
		if st.Pool == poolID && st.PG == pg {
			return st, true
		}
	}
	return wire.PGState{}, false
}

// ReplicaDigest is one replica's digest of a PG, or why it has none.
type ReplicaDigest struct {
	OSD    int32
	Digest wire.Digest
	Err    error
}

// PGVerify is the outcome of comparing every replica of one PG.
type PGVerify struct {
	Pool, PG uint32
	Replicas []ReplicaDigest
	// Consistent: every replica answered, at the same applied index, with
	// the same digest.
	Consistent bool
}

// VerifyPGs verifies every PG of every pool, in pool and PG order, with
// parallel PGs verified at once (at least one; each PG's replicas are
// always asked at once). A PG's replicas are given perPG to agree.
// progress, when not nil, is called as each PG is done, with the number
// done and the total; it must be safe for concurrent use.
//
// Each digest reads a replica's whole copy of the PG, so parallel is how
// many PGs each disk reads at a time: one keeps a deep check gentle on
// the disks that serve clients meanwhile.
func (c *Client) VerifyPGs(ctx context.Context, perPG time.Duration, parallel int, progress func(done, total int64)) []PGVerify {
	type pgID struct{ pool, pg uint32 }
	var all []pgID
	for _, p := range c.Map().Pools {
		for pg := uint32(0); pg < p.PGNum; pg++ {
			all = append(all, pgID{p.ID, pg})
		}
	}
	out := make([]PGVerify, len(all))
	var done atomic.Int64
	var g errgroup.Group
	g.SetLimit(max(parallel, 1))
	for i, id := range all {
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(ctx, perPG)
			out[i] = c.VerifyPG(pctx, id.pool, id.pg)
			cancel()
			if n := done.Add(1); progress != nil {
				progress(n, int64(len(all)))
			}
			return nil
		})
	}
	_ = g.Wait() // no task fails: each PG's outcome is in out
	return out
}

// VerifyPG compares the digests of every replica of one PG. Replicas that
// are still applying are given until ctx's deadline to reach the same index.
func (c *Client) VerifyPG(ctx context.Context, poolID, pg uint32) PGVerify {
	m := c.Map()
	p, _ := m.PoolByID(poolID)
	reps := m.Replicas(p, pg)
	v := PGVerify{Pool: poolID, PG: pg}
	for {
		// A digest reads the whole PG on every replica: asking for one
		// every 100 ms while a replica catches up loaded the very disks
		// its recovery needed (a pg verify after a power cut took minutes
		// in the guest tests). The applied indexes are cheap to ask for.
		c.waitSameApplied(ctx, m.Epoch, poolID, pg, reps)
		v.Replicas = c.digests(ctx, m.Epoch, poolID, pg, reps)
		v.Consistent = len(v.Replicas) == p.Size && agree(v.Replicas)
		if v.Consistent || !sameErrFree(v.Replicas) {
			return v
		}
		select {
		case <-ctx.Done():
			return v
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// digests asks every replica in reps for its digest of the PG, all at
// once: each reads its whole copy from its own disk, and digests taken
// together are more likely to be taken at the same applied index under
// writes.
func (c *Client) digests(ctx context.Context, epoch uint64, poolID, pg uint32, reps []int32) []ReplicaDigest {
	out := make([]ReplicaDigest, len(reps))
	var wg sync.WaitGroup
	for i, id := range reps {
		wg.Go(func() {
			rd := ReplicaDigest{OSD: id}
			resp, err := c.call(ctx, id, &wire.Request{Op: wire.OpDigest, Pool: poolID, PG: pg, Epoch: epoch}, nil)
			if err == nil && resp.Status != wire.StatusOK {
				err = &statusError{resp.Status, resp.Msg}
			}
			if err == nil {
				rd.Digest, err = wire.DecodeDigest(resp.Data)
			}
			rd.Err = err
			out[i] = rd
		})
	}
	wg.Wait()
	return out
}

// waitSameApplied returns once every replica in reps reports the same
// applied index for the PG, or ctx is done, or a replica cannot tell (the
// digests that follow show why).
func (c *Client) waitSameApplied(ctx context.Context, epoch uint64, poolID, pg uint32, reps []int32) {
	for {
		same := true
		var first uint64
		for i, id := range reps {
			st, ok := c.pgState(ctx, id, epoch, poolID, pg)
			if !ok {
				return
			}
			if i == 0 {
				first = st.Applied
			}
			same = same && st.Applied == first
		}
		if same {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func agree(rs []ReplicaDigest) bool {
	for _, r := range rs {
		if r.Err != nil || r.Digest != rs[0].Digest {
			return false
		}
	}
	return true
}

// sameErrFree reports whether every replica answered but at different
// applied indexes: worth waiting for.
func sameErrFree(rs []ReplicaDigest) bool {
	for _, r := range rs {
		if r.Err != nil {
			return false
		}
	}
	for _, r := range rs {
		if r.Digest.Applied != rs[0].Digest.Applied {
			return true
		}
	}
	return false
}

// TransferLeader asks the PG's leader to hand leadership to OSD target and
// waits (until ctx is done) for target to report itself leader.
func (c *Client) TransferLeader(ctx context.Context, poolID, pg uint32, target int32) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	key := pgKey{poolID, pg}
	for {
		if _, err := c.toLeader(ctx, wire.Request{Op: wire.OpTransfer, Pool: poolID, PG: pg, Offset: int64(target)}, nil); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if st, ok := c.pgState(ctx, target, c.Map().Epoch, poolID, pg); ok && st.Leader == target {
				c.mu.Lock()
				c.leaders[key] = target
				c.mu.Unlock()
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: osd.%d did not take over pg %d.%x", ErrUnavailable, target, poolID, pg)
			case <-time.After(50 * time.Millisecond):
			}
		}
		c.forgetLeader(key, -1)
	}
}

// Locate returns the PG an object maps to and its placement (primary first).
func (c *Client) Locate(ctx context.Context, pool, object string) (poolID, pg uint32, up []int32, err error) {
	p, err := c.pool(ctx, pool)
	if err != nil {
		return 0, 0, nil, err
	}
	m := c.Map()
	pg = m.PGOf(p, object)
	return p.ID, pg, m.Replicas(p, pg), nil
}

package clustermap

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

// Override returns the replicas the operator gave PG pg of pool pool
// (Overrides), primary first, and whether it has any. The slice is the
// caller's.
func (m *Map) Override(pool, pg uint32) ([]int32, bool) {
	o, ok := m.Overrides[pool][pg]
	return slices.Clone(o), ok
}

// MovePG gives PG pg of pool poolID the replicas members, primary first
// (an override: see Map.Overrides), and returns the map stored and the
// replicas the PG had. The PG's leader then moves its raft group there,
// one replica at a time. Members must be as many as the pool's size,
// distinct, in, up, of the pool's device class, and on distinct hosts
// when the pool's failure domain is host. Giving the replicas it has
// changes nothing. Errors wrap ErrNotFound (pool, PG or OSD) or ErrInvalid.
func (s *Store) MovePG(ctx context.Context, poolID, pg uint32, members []int32) (*Map, []int32, error) {
	op := moveOp(poolID, pg)
	live, err := s.Load(ctx) // with Up, which mutations leave out
	if err != nil {
		return nil, nil, err
	}
	var old []int32
	m, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		p, err := m.checkMove(op, poolID, pg, members, live.up)
		if err != nil {
			return false, err
		}
		old = m.Replicas(p, pg)
		if slices.Equal(old, members) {
			return false, nil
		}
		m.setOverride(poolID, pg, members)
		return true, nil
	})
	return m, old, err
}

// setOverride gives PG pg of pool the replicas members, in a new inner
// map (the stored ones are read-only: Map.Overrides).
func (m *Map) setOverride(pool, pg uint32, members []int32) {
	byPG := maps.Clone(m.Overrides[pool])
	if byPG == nil {
		byPG = map[uint32][]int32{}
	}
	byPG[pg] = slices.Clone(members)
	if m.Overrides == nil {
		m.Overrides = map[uint32]map[uint32][]int32{}
	}
	m.Overrides[pool] = byPG
}

func moveOp(pool, pg uint32) string { return fmt.Sprintf("move pg %d.%x", pool, pg) }

// CheckMove reports the first reason MovePG would refuse to give PG pg of
// pool poolID the replicas members, as m (with Up, as Load gives it) sees
// the cluster: a dry run.
func (m *Map) CheckMove(poolID, pg uint32, members []int32) error {
	_, err := m.checkMove(moveOp(poolID, pg), poolID, pg, members, m.up)
	return err
}

func (m *Map) up(id int32) bool {
	o, ok := m.OSD(id)
	return ok && o.Up
}

// checkMove is CheckMove with up saying which OSDs are up; it returns the
// PG's pool.
func (m *Map) checkMove(op string, poolID, pg uint32, members []int32, up func(int32) bool) (Pool, error) {
	p, ok := m.PoolByID(poolID)
	if !ok {
		return p, errorf(ErrNotFound, op, "no pool with id %d (see `tsumiki pool ls`)", poolID)
	}
	if pg >= p.PGNum {
		return p, errorf(ErrNotFound, op, "pool %s has pgs 0 to %x only", p.Name, p.PGNum-1)
	}
	return p, m.checkMembers(op, p, members, up)
}

// checkMembers reports the first reason members cannot hold a PG of p
// (up says which OSDs are up).
func (m *Map) checkMembers(op string, p Pool, members []int32, up func(int32) bool) error {
	if len(members) != p.Size {
		return errorf(ErrInvalid, op, "pool %s keeps %d replicas; give %d OSDs, not %d", p.Name, p.Size, p.Size, len(members))
	}
	hosts := map[string]int32{}
	for i, id := range members {
		if slices.Contains(members[:i], id) {
			return errorf(ErrInvalid, op, "osd.%d is given twice", id)
		}
		o, ok := m.OSD(id)
		switch {
		case !ok:
			return errorf(ErrNotFound, op, "no osd.%d in the map (see `tsumiki osd ls`)", id)
		case !o.In:
			return errorf(ErrInvalid, op, "osd.%d is out; mark it in first (`tsumiki osd in %d`)", id, id)
		case !up(id):
			return errorf(ErrInvalid, op, "osd.%d is down: a replica moved there could not catch up; start it first", id)
		case p.Class != "" && o.Class != p.Class:
			return errorf(ErrInvalid, op, "osd.%d is of class %q; pool %s places on %q only", id, o.Class, p.Name, p.Class)
		}
		if m.Rule(p).Domain == placement.DomainHost {
			if other, dup := hosts[o.Host]; dup {
				return errorf(ErrInvalid, op, "osd.%d and osd.%d are both on host %s; pool %s keeps its replicas on distinct hosts", other, id, o.Host, p.Name)
			}
			hosts[o.Host] = id
		}
	}
	return nil
}

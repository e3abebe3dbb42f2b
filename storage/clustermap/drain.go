package clustermap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

// DrainPlan is what draining an OSD does: every PG that lists it gets one
// other OSD in its place (Moves), or says why none can take it (Stuck).
type DrainPlan struct {
	OSD   int32
	Moves []PGMove
	Stuck []StuckPG
}

// PGMove is one PG's new replicas, primary first.
type PGMove struct {
	Pool, PG uint32
	From, To []int32
}

// StuckPG is a PG whose replica on the drained OSD has nowhere to go.
type StuckPG struct {
	Pool, PG uint32
	Replicas []int32
	Why      string
}

// Targets counts the copies each OSD of the plan receives.
func (p DrainPlan) Targets() map[int32]int {
	n := map[int32]int{}
	for _, mv := range p.Moves {
		n[mv.To[len(mv.To)-1]]++
	}
	return n
}

// PlanDrain returns the moves that would take every replica off OSD id, as
// m (with Up, as Load gives it) sees the cluster: a dry run of DrainOSD.
func (m *Map) PlanDrain(id int32) (DrainPlan, error) {
	return m.planDrain(drainOp(id), id, m.up)
}

// DrainOSD marks OSD id out and moves every PG that lists it (an override
// each, as MovePG stores them), in one map change, and returns the map
// stored and the plan (PlanDrain). A PG gives up only its replica on id:
// the others stay, in their order, and the one OSD that joins comes last,
// so a drained primary hands the PG to its next replica. The joining OSD
// is the one placement ranks first for the PG among the OSDs in, up, of
// the pool's class and, under failure domain host, on a host the PG does
// not use yet. A PG for which there is none keeps id (Plan.Stuck says
// why). The OSDs then move the PGs as for `pg move`; each OSD takes in a
// bounded number of copies at a time. Errors wrap ErrNotFound.
func (s *Store) DrainOSD(ctx context.Context, id int32) (*Map, DrainPlan, error) {
	op := drainOp(id)
	live, err := s.Load(ctx) // with Up, which mutations leave out
	if err != nil {
		return nil, DrainPlan{}, err
	}
	var plan DrainPlan
	m, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		i, ok := m.osdIndex(id)
		if !ok {
			return false, errorf(ErrNotFound, op, "no osd.%d in the map (epoch %d); list OSDs with `tsumiki osd ls`", id, m.Epoch)
		}
		if plan, err = m.planDrain(op, id, live.up); err != nil {
			return false, err
		}
		changed := m.OSDs[i].In
		m.OSDs[i].In = false
		for _, mv := range plan.Moves {
			m.setOverride(mv.Pool, mv.PG, mv.To)
			changed = true
		}
		return changed, nil
	})
	return m, plan, err
}

func drainOp(id int32) string { return fmt.Sprintf("drain osd.%d", id) }

// planDrain is PlanDrain with up saying which OSDs are up.
func (m *Map) planDrain(op string, id int32, up func(int32) bool) (DrainPlan, error) {
	plan := DrainPlan{OSD: id}
	if _, ok := m.OSD(id); !ok {
		return plan, errorf(ErrNotFound, op, "no osd.%d in the map (epoch %d); list OSDs with `tsumiki osd ls`", id, m.Epoch)
	}
	for _, p := range m.Pools {
		for pg := uint32(0); pg < p.PGNum; pg++ {
			from := m.Replicas(p, pg)
			if !slices.Contains(from, id) {
				continue
			}
			// Only the joining OSD is checked (replaceIn): the replicas
			// that stay may be down, the PG moving with the others.
			to, why := m.replaceIn(p, pg, from, id, up)
			if why != "" {
				plan.Stuck = append(plan.Stuck, StuckPG{Pool: p.ID, PG: pg, Replicas: from, Why: why})
				continue
			}
			plan.Moves = append(plan.Moves, PGMove{Pool: p.ID, PG: pg, From: from, To: to})
		}
	}
	return plan, nil
}

// replaceIn returns from without id and with the OSD placement ranks
// first for PG pg of p among those that may join it, last; or why no OSD
// may.
func (m *Map) replaceIn(p Pool, pg uint32, from []int32, id int32, up func(int32) bool) ([]int32, string) {
	rest := slices.DeleteFunc(slices.Clone(from), func(o int32) bool { return o == id })
	rule := m.Rule(p)
	var used []string // hosts the remaining replicas are on
	for _, o := range rest {
		if d, ok := m.OSD(o); ok {
			used = append(used, d.Host)
		}
	}
	var devs []placement.Device
	for _, d := range m.Devices() {
		if d.ID == id || slices.Contains(rest, d.ID) || !up(d.ID) ||
			(rule.Domain == placement.DomainHost && slices.Contains(used, d.Host)) {
			continue
		}
		devs = append(devs, d)
	}
	// One replica, from what is left: placement's own ranking for this
	// PG, so the drained copies spread over the OSDs by weight.
	one := rule
	one.Size, one.Domain = 1, placement.DomainOSD
	pick := placement.Map(devs, one, pg)
	if len(pick) == 0 {
		where := "an OSD that is in and up"
		if p.Class != "" {
			where += fmt.Sprintf(", of class %q", p.Class)
		}
		if rule.Domain == placement.DomainHost && len(used) > 0 {
			slices.Sort(used)
			where += ", on a host other than " + strings.Join(used, ", ")
		}
		return nil, fmt.Sprintf("no OSD can take osd.%d's replica: it needs %s (add or start one, or mark one in)", id, where)
	}
	return append(rest, pick[0]), ""
}

// RemoveOSD deletes OSD id from the map, once nothing needs it: it must be
// down (a running OSD would register again, under a new id), out, and no
// PG may list it (drain it first: DrainOSD). Placement does not change for
// any PG: a pool's recorded placement keeps the OSD, which no PG it places
// chooses (else that PG would list it). Errors wrap ErrNotFound for an
// unknown id and ErrInvalid for a refusal, which says what to do.
func (s *Store) RemoveOSD(ctx context.Context, id int32) error {
	op := fmt.Sprintf("remove osd.%d", id)
	live, err := s.Load(ctx) // with Up, which mutations leave out
	if err != nil {
		return err
	}
	_, err = s.mutate(ctx, op, func(m *Map) (bool, error) {
		i, ok := m.osdIndex(id)
		switch {
		case !ok:
			return false, errorf(ErrNotFound, op, "no osd.%d in the map (epoch %d); list OSDs with `tsumiki osd ls`", id, m.Epoch)
		case live.up(id):
			return false, errorf(ErrInvalid, op, "osd.%d is up: stop its daemon first (running, it would register again)", id)
		case m.OSDs[i].In:
			return false, errorf(ErrInvalid, op, "osd.%d is in: drain it first (`tsumiki osd drain %d --yes --wait 30m`)", id, id)
		}
		var listing []string
		for _, p := range m.Pools {
			for pg := uint32(0); pg < p.PGNum; pg++ {
				if slices.Contains(m.Replicas(p, pg), id) {
					listing = append(listing, fmt.Sprintf("%d.%x", p.ID, pg))
				}
			}
		}
		if len(listing) > 0 {
			return false, errorf(ErrInvalid, op, "%d pgs still list osd.%d (%s): drain it first (`tsumiki osd drain %d --yes --wait 30m`)",
				len(listing), id, strings.Join(listing[:min(len(listing), 5)], ", "), id)
		}
		m.OSDs = slices.Delete(m.OSDs, i, i+1)
		return true, nil
	})
	return err
}

package clustermap

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// KnownFlags returns the cluster flags SetFlag sets, sorted: those the
// daemons act on. They keep Ceph's names, with tsumiki's meanings:
//
//	noout        maintenance: leaderships stay where they are (no hand-back
//	             to primaries), so that restarting nodes one by one does not
//	             move every leadership twice; tsumiki never marks a down OSD
//	             out by itself anyway
//	norebalance  no PG move (`pg move`, `osd drain`) starts a new copy; a
//	             move whose new replica is already copying finishes
func KnownFlags() []string { return []string{"noout", "norebalance"} }

// notActedOn are Ceph's other flags, which tsumiki does not act on yet:
// setting one is refused, so that nobody relies on one that does nothing
// (clearing one, which a map stored before may hold, is allowed).
var notActedOn = []string{"nobackfill", "nodeep-scrub", "norecover", "noscrub", "pause"}

// SetFlag sets (on) or clears a cluster flag. Setting a flag that is set, or
// clearing one that is clear, changes nothing. Errors wrap ErrInvalid for a
// flag not in KnownFlags (clearing one of Ceph's others is allowed).
func (s *Store) SetFlag(ctx context.Context, flag string, on bool) error {
	op := "unset flag " + flag
	if on {
		op = "set flag " + flag
	}
	switch {
	case on && slices.Contains(notActedOn, flag):
		return errorf(ErrInvalid, op, "tsumiki does not act on %q yet, so it is not set; flags it acts on: %s", flag, strings.Join(KnownFlags(), ", "))
	case !slices.Contains(KnownFlags(), flag) && !slices.Contains(notActedOn, flag):
		return errorf(ErrInvalid, op, "unknown flag %q; known flags: %s", flag, strings.Join(KnownFlags(), ", "))
	}
	_, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		i, set := slices.BinarySearch(m.Flags, flag)
		switch {
		case on == set:
			return false, nil
		case on:
			m.Flags = slices.Insert(m.Flags, i, flag)
		default:
			m.Flags = slices.Delete(m.Flags, i, i+1)
		}
		return true, nil
	})
	return err
}

// RaiseEpoch makes the map's epoch at least to, by one change. Daemons
// refuse requests made with a map older than their own, and they never
// take an epoch lower than one they have seen, so after the control plane
// is restored from a backup (its epoch goes back) every client is refused
// as stale until the epoch passes what the daemons saw. A map already at
// or past to is left alone.
func (s *Store) RaiseEpoch(ctx context.Context, to uint64) (*Map, error) {
	return s.mutate(ctx, fmt.Sprintf("raise epoch to %d", to), func(m *Map) (bool, error) {
		if m.Epoch >= to {
			return false, nil
		}
		m.Epoch = to - 1 // mutate adds one
		return true, nil
	})
}

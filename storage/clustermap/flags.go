package clustermap

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// KnownFlags returns the cluster flags SetFlag accepts, sorted. They keep
// Ceph's names and meanings:
//
//	noout         down OSDs are not marked out (maintenance)
//	norebalance   no data moves for rebalancing
//	nobackfill    no backfill (copying PGs to new replicas)
//	norecover     no recovery (catching up replicas from the log)
//	noscrub       no scrubbing
//	nodeep-scrub  no deep scrubbing
//	pause         client IO is paused
func KnownFlags() []string {
	return []string{"nobackfill", "nodeep-scrub", "noout", "norebalance", "norecover", "noscrub", "pause"}
}

// SetFlag sets (on) or clears a cluster flag. Setting a flag that is set, or
// clearing one that is clear, changes nothing. Errors wrap ErrInvalid for a
// flag not in KnownFlags.
func (s *Store) SetFlag(ctx context.Context, flag string, on bool) error {
	op := "unset flag " + flag
	if on {
		op = "set flag " + flag
	}
	if !slices.Contains(KnownFlags(), flag) {
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

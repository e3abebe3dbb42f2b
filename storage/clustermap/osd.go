package clustermap

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
)

// RegisterOSD adds the OSD with o.UUID to the map or updates it. A new UUID
// gets the next free id (allocated inside the compare-and-swap, so
// concurrent registrations get distinct ids) and starts in. A known UUID
// keeps its id and in/out state; its host, class, weight and addresses are
// replaced by o's, bumping the epoch only if one of them differs. o.ID,
// o.In and o.Up are ignored.
//
// It returns the OSD as stored (Up false). Errors wrap ErrInvalid for a
// missing UUID, host, class or address or a weight that is not > 0.
func (s *Store) RegisterOSD(ctx context.Context, o OSD) (OSD, error) {
	op := fmt.Sprintf("register osd %q", o.UUID)
	if err := validateOSD(op, o); err != nil {
		return OSD{}, err
	}
	var out OSD
	_, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		if i, ok := m.osdByUUID(o.UUID); ok {
			cur := &m.OSDs[i]
			next := *cur
			// The weight is the operator's (osd reweight): a restart keeps it.
			next.Host, next.Class = o.Host, o.Class
			next.PublicAddr, next.ClusterAddr = o.PublicAddr, o.ClusterAddr
			out = next
			if next == *cur {
				return false, nil
			}
			*cur = next
			return true, nil
		}
		if m.NextOSDID < 0 {
			return false, errorf(ErrInvalid, op, "the map's next OSD id is %d; the map is damaged", m.NextOSDID)
		}
		out = o
		out.ID, out.In, out.Up = m.NextOSDID, true, false
		m.NextOSDID++
		m.OSDs = append(m.OSDs, out)
		slices.SortFunc(m.OSDs, func(a, b OSD) int { return cmp.Compare(a.ID, b.ID) })
		return true, nil
	})
	if err != nil {
		return OSD{}, err
	}
	return out, nil
}

func validateOSD(op string, o OSD) error {
	switch {
	case o.UUID == "":
		return errorf(ErrInvalid, op, "the OSD has no UUID; its data directory is not initialised")
	case o.Host == "":
		return errorf(ErrInvalid, op, "no host name: pass --host NAME (the failure domain)")
	case o.Class == "":
		return errorf(ErrInvalid, op, "no device class: pass --device-class ssd|hdd")
	case !validWeight(o.Weight):
		return errorf(ErrInvalid, op, "weight %v must be a positive number (usually the capacity in TiB)", o.Weight)
	case o.PublicAddr == "" || o.ClusterAddr == "":
		return errorf(ErrInvalid, op, "public and cluster addresses are required (got %q and %q)", o.PublicAddr, o.ClusterAddr)
	}
	return nil
}

func validWeight(w float64) bool { return w > 0 && !math.IsInf(w, 0) && !math.IsNaN(w) }

// SetOSDIn marks OSD id in (part of placement) or out (its data moves
// elsewhere). Setting the current state again changes nothing. Errors wrap
// ErrNotFound for an unknown id.
func (s *Store) SetOSDIn(ctx context.Context, id int32, in bool) error {
	op := fmt.Sprintf("mark osd.%d out", id)
	if in {
		op = fmt.Sprintf("mark osd.%d in", id)
	}
	return s.changeOSD(ctx, op, id, func(o *OSD) { o.In = in })
}

// SetOSDWeight sets the placement weight of OSD id. Errors wrap ErrInvalid
// for a weight that is not > 0 (to drain an OSD, mark it out) and
// ErrNotFound for an unknown id.
func (s *Store) SetOSDWeight(ctx context.Context, id int32, w float64) error {
	op := fmt.Sprintf("reweight osd.%d", id)
	if !validWeight(w) {
		return errorf(ErrInvalid, op, "weight %v must be a positive number; to drain the OSD, mark it out instead", w)
	}
	return s.changeOSD(ctx, op, id, func(o *OSD) { o.Weight = w })
}

// changeOSD applies edit to OSD id, writing only if it changed something.
func (s *Store) changeOSD(ctx context.Context, op string, id int32, edit func(*OSD)) error {
	_, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		i, ok := m.osdIndex(id)
		if !ok {
			return false, errorf(ErrNotFound, op, "no osd.%d in the map (epoch %d); list OSDs with `tsumiki osd ls`", id, m.Epoch)
		}
		before := m.OSDs[i]
		edit(&m.OSDs[i])
		return m.OSDs[i] != before, nil
	})
	return err
}

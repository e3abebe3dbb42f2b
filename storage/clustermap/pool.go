package clustermap

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

// Pool setting limits.
const (
	MaxPGNum      = 65536
	maxPoolName   = 128
	defaultDomain = placement.DomainHost
)

// CreatePool adds pool p with the next free pool id and returns it.
//
// p.Name must be 1..128 characters of [A-Za-z0-9._-] and unused; Size >= 1;
// MinSize in 1..Size (0 means the default, Size - Size/2); PGNum in
// 1..65536; FailureDomain "host" (default when empty) or "osd"; Class ""
// (any device class) or a class name. The pool must be placeable on the OSDs
// that are in right now (placement.Check), so a pool that could never reach
// Size replicas is refused instead of running degraded.
//
// Errors wrap ErrInvalid (and placement.ErrUnplaceable when it cannot be
// placed) or ErrExists for a taken name.
func (s *Store) CreatePool(ctx context.Context, p Pool) (Pool, error) {
	op := fmt.Sprintf("create pool %q", p.Name)
	if p.MinSize == 0 && p.Size > 0 {
		p.MinSize = p.Size - p.Size/2
	}
	if p.FailureDomain == "" {
		p.FailureDomain = string(defaultDomain)
	}
	if err := validatePool(op, &p); err != nil {
		return Pool{}, err
	}
	var out Pool
	_, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		if old, ok := m.PoolByName(p.Name); ok {
			return false, errorf(ErrExists, op, "pool %q already exists (id %d); choose another name", old.Name, old.ID)
		}
		out = p
		out.ID = m.NextPoolID
		if err := checkPlaceable(op, m, out); err != nil {
			return false, err
		}
		m.NextPoolID++
		m.Pools = append(m.Pools, out)
		if m.Placements == nil {
			m.Placements = make(map[uint32][]PlacedOSD)
		}
		m.Placements[out.ID] = m.placedOSDs()
		return true, nil
	})
	if err != nil {
		return Pool{}, err
	}
	return out, nil
}

// SetPool changes one setting of the pool named name and returns the pool.
// Keys: "min_size" (1..size). "size" and "pg_num" are refused with
// ErrUnsupported for now: they would change the PGs' replicas, and replica
// moves do not exist yet (Map.Replicas). Setting the current value changes
// nothing. Errors wrap ErrNotFound, ErrInvalid or ErrUnsupported.
func (s *Store) SetPool(ctx context.Context, name, key, value string) (Pool, error) {
	op := fmt.Sprintf("set pool %q %s=%s", name, key, value)
	var edit func(p *Pool) error
	switch key {
	case "size":
		n, err := strconv.Atoi(value)
		if err != nil {
			return Pool{}, errorf(ErrInvalid, op, "size %q is not a whole number", value)
		}
		edit = func(p *Pool) error {
			if n != p.Size {
				// The PGs' raft groups keep their members: a new size
				// would make placement choose OSDs that hold nothing and
				// are no members (see Map.Replicas).
				return errorf(ErrUnsupported, op, "a pool's size is fixed once it is created, until replica moves exist (pool %q has size %d); create a pool with the size you need and copy images into it (`tsumiki image export` and `image import`)", p.Name, p.Size)
			}
			return nil
		}
	case "min_size":
		n, err := strconv.Atoi(value)
		if err != nil {
			return Pool{}, errorf(ErrInvalid, op, "min_size %q is not a whole number", value)
		}
		edit = func(p *Pool) error { p.MinSize = n; return nil }
	case "pg_num", "pgp_num":
		return Pool{}, errorf(ErrUnsupported, op, "pg_num changes (PG split) come later; create a new pool with the pg_num you need")
	default:
		return Pool{}, errorf(ErrInvalid, op, "unknown pool setting %q; settable: size, min_size", key)
	}
	var out Pool
	_, err := s.mutate(ctx, op, func(m *Map) (bool, error) {
		i, ok := m.poolIndexByName(name)
		if !ok {
			return false, errorf(ErrNotFound, op, "no pool named %q; list pools with `tsumiki pool ls`", name)
		}
		p := m.Pools[i]
		if err := edit(&p); err != nil {
			return false, err
		}
		if err := validatePool(op, &p); err != nil {
			return false, err
		}
		out = p
		if p == m.Pools[i] {
			return false, nil
		}
		m.Pools[i] = p
		return true, nil
	})
	if err != nil {
		return Pool{}, err
	}
	return out, nil
}

// validatePool checks p's own values and canonicalises FailureDomain.
func validatePool(op string, p *Pool) error {
	if err := validPoolName(p.Name); err != nil {
		return errorf(ErrInvalid, op, "%v", err)
	}
	if p.Size < 1 {
		return errorf(ErrInvalid, op, "size %d: a pool needs at least 1 replica (3 is usual)", p.Size)
	}
	if p.MinSize < 1 || p.MinSize > p.Size {
		return errorf(ErrInvalid, op, "min_size %d must be between 1 and size %d", p.MinSize, p.Size)
	}
	if p.PGNum < 1 || p.PGNum > MaxPGNum {
		return errorf(ErrInvalid, op, "pg_num %d must be between 1 and %d (a power of two such as 64 or 128 is usual)", p.PGNum, MaxPGNum)
	}
	d, err := placement.ParseDomain(p.FailureDomain)
	if err != nil {
		return errorf(ErrInvalid, op, "%w", err)
	}
	p.FailureDomain = string(d)
	if err := validClass(p.Class); err != nil {
		return errorf(ErrInvalid, op, "%v", err)
	}
	return nil
}

func validPoolName(name string) error {
	if name == "" {
		return fmt.Errorf("a pool needs a name")
	}
	if len(name) > maxPoolName {
		return fmt.Errorf("pool name is %d characters long; the limit is %d", len(name), maxPoolName)
	}
	for _, r := range name {
		if !nameChar(r) {
			return fmt.Errorf("pool name %q contains %q; use letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

func validClass(class string) error {
	for _, r := range class {
		if !nameChar(r) {
			return fmt.Errorf("device class %q contains %q; use letters, digits, '.', '_' and '-'", class, r)
		}
	}
	return nil
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// checkPlaceable refuses a pool that the OSDs currently in cannot place.
// placement.Check counts only devices that are in and names the out ones
// that would help, so it gets every device.
func checkPlaceable(op string, m *Map, p Pool) error {
	if err := placement.Check(m.Devices(), m.Rule(p)); err != nil {
		return errorf(ErrInvalid, op, "%w (map epoch %d; `tsumiki osd tree` shows the hosts, classes and in/out state of the OSDs)", err, m.Epoch)
	}
	return nil
}

package clustermap

import (
	"maps"
	"slices"
	"sort"

	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

// OSD is one storage daemon (one disk) in the map.
type OSD struct {
	ID          int32   `json:"id"`
	UUID        string  `json:"uuid"`   // stable identity of the disk, chosen by the OSD at mkfs
	Host        string  `json:"host"`   // failure domain "host"
	Class       string  `json:"class"`  // device class, e.g. "ssd", "hdd"
	Weight      float64 `json:"weight"` // relative share of data, usually TiB of capacity
	PublicAddr  string  `json:"public_addr"`
	ClusterAddr string  `json:"cluster_addr"`
	// In means the OSD is part of placement. It is versioned by the epoch.
	In bool `json:"in"`
	// Up means the OSD holds a live liveness lease. It is not stored in the
	// map value: Load and Watch fill it from the <prefix>/up/ keys, and maps
	// returned by mutations leave it false.
	Up bool `json:"-"`
	// Full means the OSD reports its device past its full ratio (in the
	// value of its liveness key); while any OSD is full, writes are refused.
	// Like Up it is not stored in the map value.
	Full bool `json:"-"`
}

// Pool is a set of objects with one replication rule.
type Pool struct {
	ID      uint32 `json:"id"`
	Name    string `json:"name"`
	Size    int    `json:"size"`     // replicas per object
	MinSize int    `json:"min_size"` // replicas needed to accept IO
	PGNum   uint32 `json:"pg_num"`
	// Class restricts placement to OSDs of this device class; "" means any.
	Class string `json:"class,omitempty"`
	// FailureDomain is a placement.Domain: "host" (default) or "osd".
	FailureDomain string `json:"failure_domain"`
}

// Map is the cluster map at one epoch.
type Map struct {
	Epoch      uint64   `json:"epoch"`
	NextOSDID  int32    `json:"next_osd_id"`
	NextPoolID uint32   `json:"next_pool_id"`
	OSDs       []OSD    `json:"osds"`  // sorted by ID
	Pools      []Pool   `json:"pools"` // sorted by ID
	Flags      []string `json:"flags"` // sorted
	// Placements holds, per pool id, the OSDs its PGs were placed on when
	// the pool was created (see Replicas). Read-only once stored: maps
	// share it with their clones.
	Placements map[uint32][]PlacedOSD `json:"placements,omitempty"`
	// Overrides holds, per pool id and PG number, the replicas the
	// operator gave a PG (`tsumiki pg move`), primary first: they replace
	// its placement (Replicas), and its leader moves the PG's raft group
	// there, one replica at a time (storage/osd/move.go). An override
	// stays until the operator gives another. Read-only once stored, as
	// Placements: a change stores a new inner map.
	Overrides map[uint32]map[uint32][]int32 `json:"overrides,omitempty"`
}

// PlacedOSD is an OSD as placement saw it when a pool was created: one
// that was in, with its host, class and weight then.
type PlacedOSD struct {
	ID     int32   `json:"id"`
	Host   string  `json:"host"`
	Class  string  `json:"class,omitempty"`
	Weight float64 `json:"weight"`
}

// OSD returns the OSD with this id.
func (m *Map) OSD(id int32) (OSD, bool) {
	i, ok := m.osdIndex(id)
	if !ok {
		return OSD{}, false
	}
	return m.OSDs[i], true
}

func (m *Map) osdIndex(id int32) (int, bool) {
	i := sort.Search(len(m.OSDs), func(i int) bool { return m.OSDs[i].ID >= id })
	return i, i < len(m.OSDs) && m.OSDs[i].ID == id
}

func (m *Map) osdByUUID(uuid string) (int, bool) {
	for i := range m.OSDs {
		if m.OSDs[i].UUID == uuid {
			return i, true
		}
	}
	return 0, false
}

// PoolByName returns the pool with this name.
func (m *Map) PoolByName(name string) (Pool, bool) {
	i, ok := m.poolIndexByName(name)
	if !ok {
		return Pool{}, false
	}
	return m.Pools[i], true
}

func (m *Map) poolIndexByName(name string) (int, bool) {
	for i := range m.Pools {
		if m.Pools[i].Name == name {
			return i, true
		}
	}
	return 0, false
}

// PoolByID returns the pool with this id.
func (m *Map) PoolByID(id uint32) (Pool, bool) {
	i := sort.Search(len(m.Pools), func(i int) bool { return m.Pools[i].ID >= id })
	if i < len(m.Pools) && m.Pools[i].ID == id {
		return m.Pools[i], true
	}
	return Pool{}, false
}

// HasFlag reports whether flag (e.g. "noout") is set.
func (m *Map) HasFlag(flag string) bool {
	_, ok := slices.BinarySearch(m.Flags, flag)
	return ok
}

// Rule returns the placement rule of pool p.
func (m *Map) Rule(p Pool) placement.Rule {
	d := placement.Domain(p.FailureDomain)
	if d == "" {
		d = placement.DomainHost
	}
	return placement.Rule{PoolID: p.ID, Size: p.Size, Class: p.Class, Domain: d}
}

// Devices returns every OSD as a placement device, in ID order. Placement
// uses In (and weight), not Up: a down OSD keeps its replicas until it is
// marked out.
func (m *Map) Devices() []placement.Device {
	devs := make([]placement.Device, len(m.OSDs))
	for i, o := range m.OSDs {
		devs[i] = placement.Device{ID: o.ID, Host: o.Host, Class: o.Class, Weight: o.Weight, In: o.In}
	}
	return devs
}

// PGOf returns the placement group of object in pool p.
func (m *Map) PGOf(p Pool, object string) uint32 {
	return placement.PGOf(object, p.PGNum)
}

// Replicas returns the ordered replica set (primary first) of PG pg of pool
// p: its override if it has one (Overrides), else its placement, which may
// be shorter than p.Size when too few OSDs were in.
//
// It is computed from the OSDs that were in when the pool was created
// (Placements), not from the OSDs now: a PG's replicas are the members
// of its raft group, and recomputing them after OSDs were added, marked
// out or reweighted made newly chosen OSDs start empty groups of their
// own for PGs that held data (two of them outvote the third). A PG moves
// only by an override, which its raft group follows by membership
// changes. A pool stored before Placements existed is placed on the
// OSDs now until the next map change records them (freezePlacements).
func (m *Map) Replicas(p Pool, pg uint32) []int32 {
	if o, ok := m.Override(p.ID, pg); ok {
		return o
	}
	placed, ok := m.Placements[p.ID]
	if !ok {
		return placement.Map(m.Devices(), m.Rule(p), pg)
	}
	devs := make([]placement.Device, len(placed))
	for i, o := range placed {
		devs[i] = placement.Device{ID: o.ID, Host: o.Host, Class: o.Class, Weight: o.Weight, In: true}
	}
	return placement.Map(devs, m.Rule(p), pg)
}

// placedOSDs returns the OSDs that are in, as a pool created now records
// them.
func (m *Map) placedOSDs() []PlacedOSD {
	var out []PlacedOSD
	for _, o := range m.OSDs {
		if o.In {
			out = append(out, PlacedOSD{ID: o.ID, Host: o.Host, Class: o.Class, Weight: o.Weight})
		}
	}
	return out
}

// freezePlacements records the OSDs now in as the placement of every pool
// that has none recorded (maps stored before Placements existed), before
// a change that could move them. It reports whether it recorded any.
func (m *Map) freezePlacements() bool {
	frozen := false
	for _, p := range m.Pools {
		if _, ok := m.Placements[p.ID]; ok {
			continue
		}
		if m.Placements == nil {
			m.Placements = make(map[uint32][]PlacedOSD)
		}
		m.Placements[p.ID] = m.placedOSDs()
		frozen = true
	}
	return frozen
}

// Clone returns a deep copy of m.
func (m *Map) Clone() *Map {
	c := *m
	c.OSDs = slices.Clone(m.OSDs)
	c.Pools = slices.Clone(m.Pools)
	c.Flags = slices.Clone(m.Flags)
	c.Placements = maps.Clone(m.Placements)
	c.Overrides = maps.Clone(m.Overrides)
	return &c
}

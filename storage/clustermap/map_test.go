package clustermap

import (
	"testing"

	"github.com/tsumiki-storage/tsumiki/storage/placement"
)

func TestMapLookupsAndClone(t *testing.T) {
	m := &Map{
		Epoch: 4,
		OSDs: []OSD{
			{ID: 0, Host: "a", Class: "hdd", Weight: 1, In: true},
			{ID: 2, Host: "b", Class: "ssd", Weight: 2, In: false},
		},
		Pools: []Pool{{ID: 1, Name: "rbd", Size: 1, MinSize: 1, PGNum: 8}, {ID: 3, Name: "x", Size: 1, PGNum: 8, FailureDomain: "osd"}},
		Flags: []string{"noout"},
	}
	if o, ok := m.OSD(2); !ok || o.Host != "b" {
		t.Fatalf("OSD(2) = %+v %v", o, ok)
	}
	if _, ok := m.OSD(1); ok {
		t.Fatal("OSD(1) found")
	}
	if _, ok := m.PoolByID(2); ok {
		t.Fatal("PoolByID(2) found")
	}
	if p, ok := m.PoolByID(3); !ok || p.Name != "x" {
		t.Fatalf("PoolByID(3) = %+v %v", p, ok)
	}
	if r := m.Rule(m.Pools[0]); r.Domain != placement.DomainHost || r.PoolID != 1 {
		t.Fatalf("Rule = %+v (empty domain must mean host)", r)
	}
	if r := m.Rule(m.Pools[1]); r.Domain != placement.DomainOSD {
		t.Fatalf("Rule = %+v", r)
	}
	devs := m.Devices()
	if len(devs) != 2 || devs[1] != (placement.Device{ID: 2, Host: "b", Class: "ssd", Weight: 2}) {
		t.Fatalf("Devices = %+v", devs)
	}
	if r := m.Replicas(m.Pools[0], 3); len(r) != 1 || r[0] != 0 {
		t.Fatalf("Replicas = %v, want [0] (osd.2 is out)", r)
	}

	c := m.Clone()
	c.OSDs[0].Weight = 9
	c.Pools[0].Size = 9
	c.Flags[0] = "pause"
	if m.OSDs[0].Weight != 1 || m.Pools[0].Size != 1 || m.Flags[0] != "noout" {
		t.Fatal("Clone shares slices with the original")
	}
}

package main

import (
	"testing"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// TestPGState: pg ls's state of a PG from its leader's report: degraded
// (a voter down), recovering (one lags), remapped (the voters are not the
// replicas the map gives it), backfilling (a learner copies the PG).
func TestPGState(t *testing.T) {
	m := &clustermap.Map{Pools: []clustermap.Pool{{ID: 0, Name: "rbd", Size: 3, PGNum: 1}},
		Overrides: map[uint32]map[uint32][]int32{0: {0: {0, 1, 3}}}}
	for id := range int32(4) {
		m.OSDs = append(m.OSDs, clustermap.OSD{ID: id, Host: string(rune('a' + id)), Weight: 1, In: true, Up: true})
	}
	for _, c := range []struct {
		name string
		st   wire.PGState
		down int32
		want string
	}{
		{"moved", wire.PGState{Voters: []int32{0, 1, 3}}, -1, "active+clean"},
		{"copying", wire.PGState{Voters: []int32{0, 1, 2}, Learners: []int32{3}}, -1, "active+clean+remapped+backfilling"},
		{"lagging", wire.PGState{Voters: []int32{0, 1, 3}, Lagging: []int32{3}}, -1, "active+recovering"},
		{"down", wire.PGState{Voters: []int32{0, 1, 2}, Learners: []int32{3}}, 2, "active+degraded+remapped+backfilling"},
	} {
		for i := range m.OSDs {
			m.OSDs[i].Up = m.OSDs[i].ID != c.down
		}
		st := c.st
		st.Leader, st.Term = 0, 3
		rows := pgRows(m, map[int32][]wire.PGState{0: {st}})
		if len(rows) != 1 || rows[0].State != c.want {
			t.Errorf("%s: %+v, want state %s", c.name, rows, c.want)
		}
	}
	if rows := pgRows(m, nil); rows[0].State != "inactive" {
		t.Errorf("no report: state %s, want inactive", rows[0].State)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// pgLsRows is `pg ls -o json`.
func pgLsRows(t *testing.T, c *cluster) []pgRow {
	t.Helper()
	var rows []pgRow
	if err := json.Unmarshal([]byte(c.mustCLI("pg", "ls", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// pgLsRow finds pg in `pg ls -o json`; "" is the first PG listed.
func pgLsRow(t *testing.T, c *cluster, pg string) pgRow {
	t.Helper()
	for _, r := range pgLsRows(t, c) {
		if r.PG == pg || pg == "" {
			return r
		}
	}
	t.Fatalf("pg ls lists no pg %q", pg)
	return pgRow{}
}

// TestClusterPGMove: on four OSDs (hosts h0-h3), one PG of a pool of size 3
// moves off one of its replicas onto the fourth OSD with `pg move`. Without
// --yes nothing changes, and a bad list is refused; with it, the PG's group
// follows while objects are written (the new primary first in the list),
// pg ls shows it active+clean on the new replicas, every object reads back,
// pg verify finds the replicas identical. Then `osd drain` moves every
// PG off the OSD that left (drainWhileWriting), `osd rm` removes it
// (removeDrained), and all of it holds after a restart of every daemon.
func TestClusterPGMove(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("object seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := newCluster(t, 4)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--min-size", "2", "--pg-num", "4", "--failure-domain", "host")
	all := putRandom(t, c, rng, "data", "a", 16)

	var before pgRow
	c.eventually(30*time.Second, "the first pg active+clean", func() error {
		if before = pgLsRow(t, c, ""); before.State != "active+clean" {
			return fmt.Errorf("pg %s is %s", before.PG, before.State)
		}
		return nil
	})
	pg := before.PG
	fourth := int32(-1)
	for id := range int32(4) {
		if !slices.Contains(before.Up, id) {
			fourth = id
		}
	}
	to := []int32{fourth, before.Up[0], before.Up[1]} // before.Up[2] leaves
	list := fmt.Sprintf("%d,%d,%d", to[0], to[1], to[2])

	if out := c.mustCLI("pg", "move", pg, list); !strings.Contains(out, "nothing changed: add --yes") ||
		!strings.Contains(out, fmt.Sprintf("joins:  osd.%d", fourth)) || !strings.Contains(out, fmt.Sprintf("leaves: osd.%d", before.Up[2])) {
		t.Fatalf("pg move without --yes:\n%s", out)
	}
	if got := pgLsRow(t, c, pg).Up; !slices.Equal(got, before.Up) {
		t.Fatalf("pg move without --yes moved pg %s to %v", pg, got)
	}
	for _, bad := range []struct{ list, want string }{
		{fmt.Sprintf("%d,%d,%d", to[0], to[0], to[1]), "is given twice"},
		{fmt.Sprintf("%d,%d", to[0], to[1]), "keeps 3 replicas; give 3 OSDs"},
		{fmt.Sprintf("%d,%d,9", to[0], to[1]), "no osd.9"},
	} {
		if _, msg, err := c.cliFull(nil, "pg", "move", pg, bad.list, "--yes"); err == nil || !strings.Contains(msg, bad.want) {
			t.Fatalf("pg move %s: %v, want a refusal saying %q:\n%s", bad.list, err, bad.want, msg)
		}
	}

	if out := c.mustCLI("pg", "move", pg, list, "--yes"); !strings.Contains(out, "stored at epoch") {
		t.Fatalf("pg move --yes:\n%s", out)
	}
	all = append(all, putRandom(t, c, rng, "data", "b", 8)...) // while it moves
	moved := func() error {
		r := pgLsRow(t, c, pg)
		if !slices.Equal(r.Up, to) || !slices.Equal(sorted(r.Acting), sorted(to)) || r.State != "active+clean" {
			return fmt.Errorf("pg %s: up %v, acting %v, %s; want up and acting %v, active+clean", pg, r.Up, r.Acting, r.State, to)
		}
		return nil
	}
	c.eventually(2*time.Minute, "the move to finish", moved)
	t.Logf("pg %s moved from %v to %v", pg, before.Up, pgLsRow(t, c, pg).Acting)
	readBack(t, c, "data", all)
	verifyEventually(c, time.Minute)

	all = append(all, drainWhileWriting(t, c, rng, before.Up[2])...)
	readBack(t, c, "data", all)
	verifyEventually(c, time.Minute)
	removeDrained(t, c, before.Up[2])

	c.stopAll()
	c.startAll()
	c.eventually(time.Minute, "the moved pg after a restart", moved)
	readBack(t, c, "data", all)
	verifyEventually(c, time.Minute)
}

// drainWhileWriting drains osd. The dry run changes nothing; with the
// norebalance flag set, `osd drain --yes` stores the moves but starts
// none while 4 objects are written; unset, `osd drain --yes --wait` (run
// again: it waits for the first one's moves) returns once every PG left
// osd, while 4 more objects are written. No PG lists osd afterwards and
// it is out. It returns the objects written.
func drainWhileWriting(t *testing.T, c *cluster, rng *rand.Rand, osd int32) []object {
	t.Helper()
	id := fmt.Sprint(osd)
	if out := c.mustCLI("osd", "drain", id); !strings.Contains(out, "nothing changed: add --yes") || !strings.Contains(out, "pgs move, 0 cannot") {
		t.Fatalf("osd drain without --yes:\n%s", out)
	}
	listing := func() (n int) {
		for _, r := range pgLsRows(t, c) {
			if slices.Contains(r.Acting, osd) {
				n++
			}
		}
		return n
	}
	before := listing()
	if before == 0 {
		t.Fatalf("no pg has osd.%d among its replicas before the drain", osd)
	}
	c.mustCLI("flags", "set", "norebalance")
	if out := c.mustCLI("osd", "drain", id, "--yes"); !strings.Contains(out, "the norebalance flag is set") {
		t.Fatalf("osd drain --yes with norebalance set:\n%s", out)
	}
	written := putRandom(t, c, rng, "data", "h", 4) // while the moves are held
	if n := listing(); n != before {
		t.Fatalf("with norebalance set, %d of %d pgs left osd.%d", before-n, before, osd)
	}
	c.mustCLI("flags", "unset", "norebalance")
	done := make(chan string, 1)
	go func() {
		out, msg, err := c.cliFull(nil, "osd", "drain", id, "--yes", "--wait", "2m")
		done <- fmt.Sprintf("%s%s%v", out, msg, err)
	}()
	written = append(written, putRandom(t, c, rng, "data", "d", 4)...) // while it drains
	if out := <-done; !strings.Contains(out, "drained: no pg the map places elsewhere has osd."+id) {
		t.Fatalf("osd drain --yes --wait:\n%s", out)
	}
	for _, r := range pgLsRows(t, c) {
		if slices.Contains(r.Up, osd) || slices.Contains(r.Acting, osd) || r.State != "active+clean" {
			t.Fatalf("after the drain pg %s: up %v, acting %v, %s", r.PG, r.Up, r.Acting, r.State)
		}
	}
	var osds []clustermap.OSD
	if err := json.Unmarshal([]byte(c.mustCLI("osd", "ls", "-o", "json")), &osds); err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(osds, func(o clustermap.OSD) bool { return o.ID == osd }); i < 0 || osds[i].In {
		t.Fatalf("osd ls after the drain does not show osd.%d out: %+v", osd, osds)
	}
	t.Logf("osd.%d drained (%d pgs)", osd, before)
	return written
}

// removeDrained removes drained osd from the map with `osd rm`: refused
// while its daemon runs, done once it is stopped. The harness forgets its
// process (the restart that follows starts the others).
func removeDrained(t *testing.T, c *cluster, osd int32) {
	t.Helper()
	id := fmt.Sprint(osd)
	if _, msg, err := c.cliFull(nil, "osd", "rm", id); err == nil || !strings.Contains(msg, "is up: stop its daemon first") {
		t.Fatalf("osd rm of a running osd: %v:\n%s", err, msg)
	}
	var osds []clustermap.OSD
	if err := json.Unmarshal([]byte(c.mustCLI("osd", "ls", "-o", "json")), &osds); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(osds, func(o clustermap.OSD) bool { return o.ID == osd })
	p := -1 // the harness's process of osd.N runs on host hP
	if i >= 0 {
		if _, err := fmt.Sscanf(osds[i].Host, "h%d", &p); err != nil {
			p = -1
		}
	}
	if p < 0 || p >= len(c.osds) {
		t.Fatalf("osd.%d's process: not found in %+v", osd, osds)
	}
	c.osds[p].stop(t)
	c.eventually(time.Minute, "the stopped osd removed", func() error {
		_, msg, err := c.cliFull(nil, "osd", "rm", id)
		if err != nil {
			return fmt.Errorf("osd rm: %v: %s", err, msg)
		}
		return nil
	})
	if out := c.mustCLI("osd", "ls"); strings.Contains(out, "osd."+id+" ") {
		t.Fatalf("osd ls after osd rm still lists osd.%d:\n%s", osd, out)
	}
	c.osds = slices.Delete(c.osds, p, p+1)
	t.Logf("osd.%d removed", osd)
}

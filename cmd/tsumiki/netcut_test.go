package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// TestClusterNetCut runs three OSDs on hosts of their own (network
// namespaces, with separate public and cluster networks) and cuts one of
// them off, as a failed switch port or cable would, while its processes
// keep running:
//
//  1. only its cluster network: it stays up in the map and reachable by
//     clients but cannot replicate. Writes go on through the other two,
//     objects are overwritten, and every read returns the new bytes (a
//     leader cut off from its peers must not serve what it had);
//  2. both networks, long enough to be marked down, while writes go on.
//     With --snapshot-behind the leaders stop keeping their log for it,
//     and once back it catches up from snapshots over the cluster network.
//
// After each heal, pg verify finds every replica identical and every
// object reads back byte-exact. The long form (make e2e) cuts for two
// minutes each time and requires snapshots; TSUMIKI_E2E=short10 for 10 s,
// which may end before the leaders compact past the cut OSD.
func TestClusterNetCut(t *testing.T) {
	cutFor, puts := 2*time.Minute, 100
	if !longE2E() {
		// 10 s cuts pass in about 63 s (-short with TSUMIKI_E2E=short10),
		// but make test's e2e stage has no time left for them.
		if os.Getenv("TSUMIKI_E2E") != "short10" {
			t.Skip("long e2e only (TSUMIKI_E2E=long, make e2e; TSUMIKI_E2E=short10 for 10 s cuts): make test's e2e stage has no time left for it")
		}
		cutFor, puts = 10*time.Second, 10
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("object seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	c, lab := newLabCluster(t, 3)
	for _, o := range c.osds {
		o.args = append(o.args, "--snapshot-behind", "8")
	}
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--min-size", "2", "--pg-num", "8", "--failure-domain", "host")
	all := putRandom(t, c, rng, "data", "a", 16)

	const victim = 1
	name := c.osdName(victim)
	t.Logf("cutting %s off the cluster network for %v", name, cutFor)
	cutAt := time.Now()
	lab.cut("h1", "cl")
	// Overwrite the first objects with new bytes and add more, for the
	// whole cut.
	overwrite(t, c, rng, all[:8])
	all = append(all, putFor(t, c, rng, "ca", cutFor, puts)...)
	readBack(t, c, "data", all)
	// It is up (its lease reaches the mon) but behind: status names it.
	c.eventually(30*time.Second, "status to name "+name+" as behind", func() error {
		if out := c.mustCLI("status"); !strings.Contains(out, name+" (host h1) is up but behind its PG leaders") {
			return fmt.Errorf("status:\n%s", out)
		}
		return nil
	})
	lab.heal("h1", "cl")
	verifyEventually(c, 3*time.Minute)
	readBack(t, c, "data", all)
	t.Logf("healed and verified after %v", time.Since(cutAt).Round(time.Second))

	t.Logf("cutting %s off both networks for %v", name, cutFor)
	cutAt = time.Now()
	before := snapshotsInstalled(t, c, victim)
	lab.cut("h1", "pub")
	lab.cut("h1", "cl")
	all = append(all, putFor(t, c, rng, "cb", cutFor, puts)...)
	readBack(t, c, "data", all)
	// Its liveness lease has lapsed by now (10 s) or soon.
	c.eventually(time.Minute, "status to report "+name+" down", func() error {
		if out := c.mustCLI("status"); !strings.Contains(out, name+" (host h1) is down") {
			return fmt.Errorf("status:\n%s", out)
		}
		return nil
	})
	lab.heal("h1", "pub")
	lab.heal("h1", "cl")
	if !c.osds[victim].running() {
		t.Fatalf("%s exited while cut off; its log:\n%s", name, tail(c.osds[victim].log))
	}
	c.waitUp(3)
	verifyEventually(c, 3*time.Minute)
	readBack(t, c, "data", all)
	t.Logf("healed and verified after %v", time.Since(cutAt).Round(time.Second))
	switch n := snapshotsInstalled(t, c, victim) - before; {
	case n == 0 && longE2E():
		t.Fatalf("%s caught up without a snapshot after the long cut; its log:\n%s", name, tail(c.osds[victim].log))
	default:
		t.Logf("%s installed %d snapshots after the cut", name, n)
	}
	if out := c.mustCLI("status"); !strings.Contains(out, "HEALTH_OK") {
		t.Fatalf("after the heal status is not HEALTH_OK:\n%s", out)
	}
}

// putFor puts max objects named prefix-NNN, paced evenly over d, and
// returns them. It stops early once d has passed.
func putFor(t *testing.T, c *cluster, rng *rand.Rand, prefix string, d time.Duration, max int) []object {
	t.Helper()
	var objs []object
	start := time.Now()
	for len(objs) < max && time.Since(start) < d {
		objs = append(objs, putRandom(t, c, rng, "data", fmt.Sprintf("%s%03d", prefix, len(objs)), 1)...)
		time.Sleep(time.Until(start.Add(d * time.Duration(len(objs)) / time.Duration(max))))
	}
	t.Logf("put %d objects in %v", len(objs), time.Since(start).Round(time.Second))
	return objs
}

// overwrite puts new random bytes, as many, over each object and rewrites
// its .in file to match.
func overwrite(t *testing.T, c *cluster, rng *rand.Rand, objs []object) {
	t.Helper()
	for _, o := range objs {
		data, err := os.ReadFile(o.path)
		if err != nil {
			t.Fatal(err)
		}
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(o.path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustCLI("object", "put", "data", o.name, o.path)
	}
}

// snapshotsInstalled counts the snapshots OSD i's log says it installed.
func snapshotsInstalled(t *testing.T, c *cluster, i int) int {
	t.Helper()
	b, err := os.ReadFile(c.osds[i].log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "installed a snapshot")
}

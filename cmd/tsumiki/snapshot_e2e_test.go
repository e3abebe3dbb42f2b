package main

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// TestClusterSnapshotCatchUp: with --snapshot-behind, the PG leaders stop
// keeping their raft log for an OSD killed with -9 while writes go on;
// restarted, it catches up from snapshots copied over the cluster network
// (its log says so), pg verify finds every replica identical, and every
// object reads back byte-exact. Long form only (make e2e): the short
// e2e stage is near its time budget.
func TestClusterSnapshotCatchUp(t *testing.T) {
	if !longE2E() {
		t.Skip("long e2e only (TSUMIKI_E2E=long, make e2e): the short stage has no time left for it")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("object seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	c := newCluster(t, 3)
	for _, o := range c.osds {
		o.args = append(o.args, "--snapshot-behind", "8")
	}
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--min-size", "2", "--pg-num", "4", "--failure-domain", "host")
	all := putRandom(t, c, rng, "data", "a", 16)
	c.osds[1].kill9(t)
	time.Sleep(3 * time.Second) // the leaders hear nothing from it for an election timeout
	all = append(all, putRandom(t, c, rng, "data", "b", 80)...)
	c.osds[1].start(t)
	c.waitUp(3)
	verifyEventually(c, 2*time.Minute)
	readBack(t, c, "data", all)
	log, err := os.ReadFile(c.osds[1].log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "installed a snapshot"); n == 0 {
		t.Fatalf("the restarted OSD caught up without a snapshot; its log:\n%s", tail(c.osds[1].log))
	} else {
		t.Logf("the restarted OSD installed %d snapshots", n)
	}
}

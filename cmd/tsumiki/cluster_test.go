package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// object is a test object kept on local disk for comparison.
type object struct {
	name string
	path string
}

// putRandom writes n objects of log-uniform random size in [4 KiB, 8 MiB].
func putRandom(t *testing.T, c *cluster, rng *rand.Rand, pool, prefix string, n int) []object {
	t.Helper()
	var objs []object
	for i := 0; i < n; i++ {
		size := int(math.Exp(math.Log(4<<10) + rng.Float64()*(math.Log(8<<20)-math.Log(4<<10))))
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		o := object{name: fmt.Sprintf("%s-%03d", prefix, i), path: filepath.Join(c.dir, fmt.Sprintf("%s-%03d.in", prefix, i))}
		if err := os.WriteFile(o.path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustCLI("object", "put", pool, o.name, o.path)
		objs = append(objs, o)
	}
	return objs
}

// readBack gets every object and compares it byte for byte.
func readBack(t *testing.T, c *cluster, pool string, objs []object) {
	t.Helper()
	for _, o := range objs {
		out := o.path + ".out"
		c.mustCLI("object", "get", pool, o.name, out)
		want, _ := os.ReadFile(o.path)
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("object %s: read back %d bytes, want %d identical bytes (err %v)", o.name, len(got), len(want), err)
		}
		os.Remove(out)
	}
}

// verifyEventually runs `pg verify` until it exits 0.
func verifyEventually(c *cluster, d time.Duration) {
	c.t.Helper()
	c.eventually(d, "pg verify to pass", func() error {
		_, err := c.cli("pg", "verify", "--timeout", "5s")
		return err
	})
}

// TestClusterKillAndRestart is the proof 2: separate mon and three
// OSD processes (hosts h0-h2, failure domain host); kill -9 one OSD while
// writing; everything reads back; the OSD catches up; replicas are
// identical; a full restart keeps everything.
func TestClusterKillAndRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	n := 64
	if testing.Short() && !longE2E() {
		n = 32
	}
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--min-size", "2", "--pg-num", "32", "--failure-domain", "host")

	first := putRandom(t, c, rng, "data", "a", n)
	c.osds[1].kill9(t)
	second := putRandom(t, c, rng, "data", "b", n)
	all := append(first, second...)
	readBack(t, c, "data", all)

	// The cluster is degraded but serving: once the killed OSD's liveness
	// lease expires, status says so (and exits 0).
	killed := c.osdName(1)
	c.eventually(30*time.Second, "status to report "+killed+" down", func() error {
		out := c.mustCLI("status")
		if !strings.Contains(out, "HEALTH_WARN") || !strings.Contains(out, killed+" (host h1) is down") || !strings.Contains(out, "degraded") {
			return fmt.Errorf("status:\n%s", out)
		}
		return nil
	})

	c.osds[1].start(t)
	c.waitUp(3)
	verifyEventually(c, 2*time.Minute)
	if out := c.mustCLI("status"); !strings.Contains(out, "HEALTH_OK") {
		t.Fatalf("after recovery status is not HEALTH_OK:\n%s", out)
	}

	c.stopAll()
	c.startAll()
	readBack(t, c, "data", all)
	verifyEventually(c, time.Minute)
	if got := strings.Count(c.mustCLI("object", "ls", "data"), "\n"); got != len(all) {
		t.Fatalf("object ls lists %d objects, want %d", got, len(all))
	}
}

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
// OSD processes (hosts h0-h2, failure domain host); put 64 objects of 4 KiB
// to 8 MiB; kill -9 one OSD; put 64 more and read all back byte-exact;
// restart it; once it caught up, pg verify finds every replica identical; a
// full restart keeps everything. The long form (make e2e) kills and
// restarts each OSD in turn.
func TestClusterKillAndRestart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("object seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--min-size", "2", "--pg-num", "32", "--failure-domain", "host")

	all := putRandom(t, c, rng, "data", "a", 64)
	victims := []int{1}
	if longE2E() {
		victims = []int{1, 0, 2}
	}
	for round, v := range victims {
		c.osds[v].kill9(t)
		all = append(all, putRandom(t, c, rng, "data", fmt.Sprintf("b%d", round), 64)...)
		readBack(t, c, "data", all)

		// The cluster is degraded but serving: once the killed OSD's
		// liveness lease expires, status says so (and exits 0).
		killed := c.osdName(v)
		c.eventually(30*time.Second, "status to report "+killed+" down", func() error {
			out := c.mustCLI("status")
			if !strings.Contains(out, "HEALTH_WARN") || !strings.Contains(out, fmt.Sprintf("%s (host h%d) is down", killed, v)) || !strings.Contains(out, "degraded") {
				return fmt.Errorf("status:\n%s", out)
			}
			return nil
		})

		c.osds[v].start(t)
		c.waitUp(3)
		verifyEventually(c, 2*time.Minute)
		if out := c.mustCLI("status"); !strings.Contains(out, "HEALTH_OK") {
			t.Fatalf("after recovery status is not HEALTH_OK:\n%s", out)
		}
	}

	c.stopAll()
	c.startAll()
	readBack(t, c, "data", all)
	verifyEventually(c, time.Minute)
	if got := strings.Count(c.mustCLI("object", "ls", "data"), "\n"); got != len(all) {
		t.Fatalf("object ls lists %d objects, want %d", got, len(all))
	}
}

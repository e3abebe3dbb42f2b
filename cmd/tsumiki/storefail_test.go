package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestClusterStoreFailureStopsOSD: an OSD whose store fails under its
// node loop (its object files refuse writes: made immutable, which even
// root cannot write; the raft log and checkpoints still work) stops its
// process, with an error, instead of lingering with a dead loop while it
// keeps serving and renewing its liveness lease (it did: the daemon waited
// for its transport inside the loop's goroutine, whose end was what would
// have stopped the transport). The other replicas keep taking writes.
func TestClusterStoreFailureStopsOSD(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr (e2fsprogs) not installed")
	}
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	in := filepath.Join(c.dir, "obj.in")
	if err := os.WriteFile(in, bytes.Repeat([]byte("tsumiki"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "data", "before", in)

	const victim = 1
	objects := filepath.Join(c.dir, "osd1", "store", "objects")
	if _, err := os.Stat(objects); err != nil {
		t.Fatalf("the OSD's object files are not where the test looks: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", objects).Run() }) // before TempDir's removal
	if out, err := exec.Command("chattr", "-R", "+i", objects).CombinedOutput(); err != nil {
		t.Skipf("chattr +i refused here (%v: %s): no way to fail the store from outside", err, out)
	}
	c.mustCLI("object", "put", "data", "before", in, "--offset", "100") // applied in place, in an existing file

	deadline := time.Now().Add(30 * time.Second)
	for c.osds[victim].running() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if c.osds[victim].running() {
		t.Fatalf("%s still runs 30 s after its store failed; log:\n%s", c.osdName(victim), tail(c.osds[victim].log))
	}
	if err := <-c.osds[victim].done; err == nil {
		t.Errorf("%s exited 0 after its store failed", c.osdName(victim))
	}
	if logb, _ := os.ReadFile(c.osds[victim].log); !bytes.Contains(logb, []byte("store failed")) {
		t.Errorf("%s stopped, but not over its store; log:\n%s", c.osdName(victim), tail(c.osds[victim].log))
	}
	c.osds[victim].cmd = nil
	c.mustCLI("object", "put", "data", "later", in)
}

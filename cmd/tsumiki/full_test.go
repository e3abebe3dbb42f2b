package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterFull: an OSD past its full ratio (here 1 %, so at once) makes
// the cluster refuse writes with a clear "no space" (an NBD client sees
// ENOSPC) while reads and deletes go on and status says which OSD is full;
// once it is not full any more, writes work again.
func TestClusterFull(t *testing.T) {
	c := newCluster(t, 3)
	fullArgs := append([]string(nil), c.osds[2].args...)
	c.osds[2].args = append(c.osds[2].args, "--full-ratio", "0.01")
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	in := filepath.Join(c.dir, "in")
	if err := exec.Command("sh", "-c", "head -c 100000 /dev/urandom > "+in).Run(); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "status reports the full OSD", func() error {
		out, err := c.cli("status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "is full") || !strings.Contains(out, "HEALTH_ERR") {
			return fmt.Errorf("status:\n%s", out)
		}
		return nil
	})
	_, err := c.cli("object", "put", "data", "obj", in)
	if err == nil || !strings.Contains(err.Error(), "no space") || !strings.Contains(err.Error(), "full") {
		t.Fatalf("object put on a full cluster: %v", err)
	}
	t.Logf("object put on a full cluster: %v", err)

	// Through NBD the refusal is ENOSPC.
	c.mustCLI("image", "create", "data/img", "--size", "16M")
	port := c.startNBDServe()
	if _, err := exec.LookPath("qemu-io"); err == nil {
		out, _ := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 64k",
			fmt.Sprintf("nbd://127.0.0.1:%d/data/img", port)).CombinedOutput()
		if !strings.Contains(string(out), "No space left on device") {
			t.Fatalf("qemu-io write on a full cluster: %s", out)
		}
		t.Logf("qemu-io on a full cluster: %s", strings.TrimSpace(string(out)))
	}

	// Not full any more: writes work again.
	c.osds[2].stop(t)
	c.osds[2].args = fullArgs
	c.osds[2].start(t)
	c.eventually(60*time.Second, "writes accepted again", func() error {
		_, err := c.cli("object", "put", "data", "obj", in)
		return err
	})
	if out := c.mustCLI("status"); strings.Contains(out, "is full") {
		t.Fatalf("status still reports a full OSD:\n%s", out)
	}
}

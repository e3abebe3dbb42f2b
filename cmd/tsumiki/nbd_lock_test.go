package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestClusterNBDWaitsOutGoneHolder: a writable NBD open of an image whose
// lock is held by a process of this host that was killed (kill -9, or a
// power cut with the host) waits for that lock's lease to expire and then
// serves, instead of refusing the client and blaming a writer that no
// longer exists; an image held by a live process is still refused at
// once, naming it; and a client reconnecting at once is not refused by
// the server's own lock, still being released.
func TestClusterNBDWaitsOutGoneHolder(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io (Debian's qemu-utils, installed by make test) is missing")
	}
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	port := c.startNBDServe()
	qemuIO := func(spec, cmd string) (string, error) {
		out, err := exec.Command("qemu-io", "-f", "raw", "-c", cmd, fmt.Sprintf("nbd://127.0.0.1:%d/%s", port, spec)).CombinedOutput()
		return string(out), err
	}

	live := c.holdImage("data/live", "8M")
	start := time.Now()
	out, err := qemuIO("data/live", "write -P 0xcd 0 64k")
	if err == nil || time.Since(start) > 5*time.Second || !strings.Contains(out, "is locked by host") {
		t.Fatalf("a write open of an image a live process holds: %v after %v (%s); want a refusal at once, naming the holder", err, time.Since(start), out)
	}

	gone := c.holdImage("data/gone", "8M")
	if err := gone.cmd.Process.Kill(); err != nil { // SIGKILL: the lock stays until its lease expires
		t.Fatal(err)
	}
	<-gone.done
	start = time.Now()
	if out, err := qemuIO("data/gone", "write -P 0xcd 0 64k"); err != nil {
		t.Fatalf("a write open after the holder was killed: %v (%s)\nserver log:\n%s", err, out, tail(c.dir+"/nbd.log"))
	}
	t.Logf("served after %v (the killed holder's lease expired)", time.Since(start).Round(100*time.Millisecond))
	if out, err := qemuIO("data/gone", "read -P 0xcd 0 64k"); err != nil {
		t.Fatalf("read back: %v (%s)", err, out)
	}
	// Clients that reconnect at once find the image free: the server
	// waits for its own release of the lock, not refusing them with its
	// own name.
	for i := range 10 {
		if out, err := qemuIO("data/gone", fmt.Sprintf("write -P %d 0 4k", i)); err != nil {
			t.Fatalf("reconnect %d: %v (%s)", i, err, out)
		}
	}
	if log, _ := os.ReadFile(c.dir + "/nbd.log"); !strings.Contains(string(log), "waiting for its lease to expire") {
		t.Fatalf("the server did not say it waited for the gone holder; log:\n%s", tail(c.dir+"/nbd.log"))
	}
	live.stdin.Close()
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestClusterStoppedLeader: the leader of a PG is frozen (SIGSTOP, as a
// paused VM or a host that hangs: its kernel still accepts connections
// and acknowledges what is sent). A write to the PG must still succeed
// within the CLI's deadline, through the replicas that elect a new
// leader, not fail at it waiting for the frozen one; after SIGCONT the
// replicas agree. (object put writes at an offset, so both contents have
// one length.)
func TestClusterStoppedLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	in := filepath.Join(c.dir, "probe.in")
	put := func(content string) {
		t.Helper()
		if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustCLI("object", "put", "data", "probe", in)
	}
	put("before")
	var om objectMap
	if err := json.Unmarshal([]byte(c.mustCLI("osd", "map", "data", "probe", "-o", "json")), &om); err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i := range c.osds {
		if c.osdName(i) == osdName(om.Leader) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no leader for pg %s: %+v", om.PG, om)
	}
	p := c.osds[victim].cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer p.Signal(syscall.SIGCONT)
	start := time.Now()
	put("after!")
	t.Logf("the write with %s frozen took %v", osdName(om.Leader), time.Since(start).Round(100*time.Millisecond))
	out := filepath.Join(c.dir, "probe.out")
	c.mustCLI("object", "get", "data", "probe", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, []byte("after!")) {
		t.Fatalf("read %q after the write, want %q", got, "after!")
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	verifyEventually(c, 2*time.Minute)
}

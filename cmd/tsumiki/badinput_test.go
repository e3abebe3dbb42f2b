package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterBadInput is the proof 5: each bad input is a clear
// error and a non-zero exit, and nothing is damaged by it.
func TestClusterBadInput(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	good := filepath.Join(c.dir, "good.in")
	want := bytes.Repeat([]byte("good data "), 1000)
	if err := os.WriteFile(good, want, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "data", "good", good)
	missingOut := filepath.Join(c.dir, "missing.out")
	big := filepath.Join(c.dir, "big.in")
	if err := os.WriteFile(big, make([]byte, 33<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"wrong pool", []string{"object", "put", "nopool", "x", good}, `pool "nopool" does not exist`},
		{"missing object get", []string{"object", "get", "data", "missing", missingOut}, `object "missing" not found in pool "data"`},
		{"missing object stat", []string{"object", "stat", "data", "missing"}, "not found"},
		{"missing object rm", []string{"object", "rm", "data", "missing"}, "not found"},
		{"offset past 32 MiB", []string{"object", "put", "data", "x", good, "--offset", "33554000"}, "past the 32 MiB object limit"},
		{"read past 32 MiB", []string{"object", "get", "data", "good", missingOut, "--offset", "33554432", "--length", "1"}, "past the 32 MiB object limit"},
		{"file over 32 MiB", []string{"object", "put", "data", "x", big}, "objects are limited to 32 MiB"},
		{"missing file", []string{"object", "put", "data", "x", filepath.Join(c.dir, "nope")}, "no such file"},
		{"missing args", []string{"object", "put", "data"}, "accepts 3 arg(s)"},
		{"unplaceable pool", []string{"pool", "create", "wide", "--size", "4", "--failure-domain", "host"}, "distinct hosts"},
		{"duplicate pool", []string{"pool", "create", "data"}, "exists"},
		{"bad pg id", []string{"pg", "lead", "zz", "osd.0"}, "not a PG id"},
		{"bad epoch", []string{"epoch", "raise", "0"}, "not an epoch"},
		{"unreachable etcd", []string{"status", "--etcd-endpoints", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, "cannot reach the control plane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, stderr, err := c.cliFull(nil, tc.args...)
			if err == nil {
				t.Fatalf("tsumiki %s succeeded", strings.Join(tc.args, " "))
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("tsumiki %s: stderr %q does not say %q", strings.Join(tc.args, " "), stderr, tc.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %v to fail", d)
			}
		})
	}
	if _, err := os.Stat(missingOut); !os.IsNotExist(err) {
		t.Fatalf("a failed get left %s behind (%v)", missingOut, err)
	}

	// A put replaces the object, as rados put does: a shorter file leaves
	// no old tail behind (it did, once). --offset patches in place.
	short := filepath.Join(c.dir, "short.in")
	if err := os.WriteFile(short, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "data", "replaced", good)
	c.mustCLI("object", "put", "data", "replaced", short)
	if out := c.mustCLI("object", "stat", "data", "replaced"); !strings.Contains(out, "size 5 ") {
		t.Fatalf("after a put of 5 bytes over %d: %s", len(want), out)
	}
	c.mustCLI("object", "put", "data", "replaced", short, "--offset", "3")
	if got, _, err := c.cliFull(nil, "object", "get", "data", "replaced", "-"); err != nil || got != "shoshort" {
		t.Fatalf("after a patch at 3: %q, %v; want %q", got, err, "shoshort")
	}

	// A second daemon on a data directory in use is refused at once.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"osd on a used data dir", []string{"osd", "--data", filepath.Join(c.dir, "osd0"), "--host", "h9",
			"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, "used by another tsumiki osd"},
		{"mon on a used data dir", []string{"mon", "--data", filepath.Join(c.dir, "mon"),
			"--listen-client", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}, "locked by another mon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := c.cliFull(nil, tc.args...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("tsumiki %s: err %v, stderr %q; want a refusal saying %q", strings.Join(tc.args, " "), err, stderr, tc.want)
			}
		})
	}

	// Nothing was damaged: the cluster still has one pool, the object reads
	// back, and every replica agrees.
	if out := c.mustCLI("pool", "ls"); strings.Count(out, "\n") != 2 {
		t.Fatalf("pools after bad input:\n%s", out)
	}
	out := filepath.Join(c.dir, "good.out")
	c.mustCLI("object", "get", "data", "good", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("the good object changed")
	}
	verifyEventually(c, time.Minute)
	c.waitUp(3)
}

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

// TestUpRestart: `tsumiki up` starts a working cluster with pool rbd, shuts
// down cleanly on SIGTERM, and a restart on the same folder brings every
// object back.
func TestUpRestart(t *testing.T) {
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, etcd: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	up := &proc{name: "up", log: filepath.Join(dir, "up.log"), args: []string{"up", "--data", filepath.Join(dir, "data"),
		"--listen-client", c.etcd, "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--osd-port", "0", "--cluster-port", "0"}}
	t.Cleanup(func() {
		up.kill9(t)
		if t.Failed() {
			t.Logf("up log:\n%s", tail(up.log))
		}
	})
	up.start(t)
	c.waitUp(3)
	c.eventually(30*time.Second, "pool rbd", func() error {
		out, err := c.cli("pool", "ls")
		if err == nil && !strings.Contains(out, "rbd") {
			err = fmt.Errorf("no rbd pool:\n%s", out)
		}
		return err
	})
	want := bytes.Repeat([]byte("tsumiki up "), 10000)
	in := filepath.Join(dir, "obj.in")
	if err := os.WriteFile(in, want, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "rbd", "hello", in)
	up.stop(t)
	if log, _ := os.ReadFile(up.log); !strings.Contains(string(log), "tsumiki stopped") {
		t.Fatalf("up did not report a clean stop:\n%s", tail(up.log))
	}

	up.start(t)
	c.waitUp(3)
	out := filepath.Join(dir, "obj.out")
	c.eventually(30*time.Second, "object back after restart", func() error {
		_, err := c.cli("object", "get", "rbd", "hello", out)
		return err
	})
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("object differs after restart")
	}
	up.stop(t)
}

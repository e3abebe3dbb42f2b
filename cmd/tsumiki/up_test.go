package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
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
	c, up := startUp(t, dir, "--nbd-listen", "127.0.0.1:0",
		"--nfs-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--nfs-portmap-listen", "")
	// status lists the gateways: the NBD server, and the NFS gateway or
	// why it does not run (here: no nbd module or not root).
	c.eventually(30*time.Second, "gateways in status", func() error {
		out, err := c.cli("status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "gateways:") || !strings.Contains(out, "nbd on ") {
			return fmt.Errorf("no NBD gateway in status:\n%s", out)
		}
		i := strings.Index(out, "nfs on ")
		if i < 0 {
			return fmt.Errorf("no NFS gateway in status:\n%s", out)
		}
		if nfs := out[i:]; strings.Contains(nfs, "not running:") && !strings.Contains(nfs, "nbd") && !strings.Contains(nfs, "root") {
			return fmt.Errorf("the NFS gateway does not run and status does not say it lacks root or the nbd module:\n%s", out)
		}
		return nil
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
	} else if strings.Contains(string(log), "cannot revoke the liveness lease") {
		// The control plane must outlive the OSDs, or they stay shown up
		// at their old addresses for a lease TTL after the restart.
		t.Fatalf("an OSD could not revoke its liveness lease at shutdown:\n%s", tail(up.log))
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

// TestUpOSDFailureDegrades: when one OSD of `tsumiki up` stops with an
// error (its store fails: its object files made immutable, as in
// TestClusterStoreFailureStopsOSD), up keeps running on the other two,
// says which OSD stopped and why, and keeps taking writes; it used to
// stop everything.
func TestUpOSDFailureDegrades(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr (e2fsprogs) not installed")
	}
	dir := t.TempDir()
	c, up := startUp(t, dir, "--nbd-listen", "off", "--nfs-image", "off", "--demo-image", "")
	objects := filepath.Join(dir, "data", "osd.1", "store", "objects")
	t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", objects).Run() }) // before TempDir's removal
	want := bytes.Repeat([]byte("tsumiki up "), 1000)
	in := filepath.Join(dir, "obj.in")
	if err := os.WriteFile(in, want, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "rbd", "before", in)
	if _, err := os.Stat(objects); err != nil {
		t.Fatalf("the OSD's object files are not where the test looks: %v", err)
	}
	if out, err := exec.Command("chattr", "-R", "+i", objects).CombinedOutput(); err != nil {
		t.Skipf("chattr +i refused here (%v: %s): no way to fail the store from outside", err, out)
	}
	c.mustCLI("object", "put", "rbd", "before", in, "--offset", "100") // in place, in an existing file
	c.eventually(30*time.Second, "the OSD's stop in up's log", func() error {
		if b, _ := os.ReadFile(up.log); !bytes.Contains(b, []byte("an OSD stopped")) {
			return errors.New("no \"an OSD stopped\" in the log yet")
		}
		return nil
	})
	if !up.running() {
		t.Fatal("tsumiki up stopped when one of its OSDs did")
	}
	c.mustCLI("object", "put", "rbd", "after", in)
	out := filepath.Join(dir, "obj.out")
	c.mustCLI("object", "get", "rbd", "after", out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("object written after the OSD stopped reads back different")
	}
	up.stop(t)
}

// startUp starts `tsumiki up` on dir/data with extra flags, waits for its
// three OSDs and pool rbd, and kills it at the test's end (logging its log
// if the test failed).
func startUp(t *testing.T, dir string, extra ...string) (*cluster, *proc) {
	t.Helper()
	c := &cluster{t: t, dir: dir, etcd: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	up := &proc{name: "up", log: filepath.Join(dir, "up.log"), args: append([]string{"up", "--data", filepath.Join(dir, "data"),
		"--listen-client", c.etcd, "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--osd-port", "0", "--cluster-port", "0"}, extra...)}
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
	return c, up
}

// TestUpNBDPortTaken: when the NBD port is taken, `tsumiki up` fails after
// its OSDs started, saying what to do, and stops them and its control
// plane in order, promptly.
func TestUpNBDPortTaken(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up := &proc{name: "up", log: filepath.Join(dir, "up.log"), args: []string{"up", "--data", filepath.Join(dir, "data"),
		"--listen-client", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--osd-port", "0", "--cluster-port", "0", "--nbd-listen", ln.Addr().String(), "--nfs-image", "off"}}
	t.Cleanup(func() { up.kill9(t) })
	up.start(t)
	select {
	case err := <-up.done:
		up.done <- err
		log, _ := os.ReadFile(up.log)
		if err == nil || !strings.Contains(string(log), "another tsumiki up?") {
			t.Fatalf("tsumiki up with its NBD port taken: %v; log:\n%s", err, tail(up.log))
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("tsumiki up still running 90 s after it could not listen for NBD; log:\n%s", tail(up.log))
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real binary as separate processes: a mon,
// OSDs, and the CLI. They are the short forms `make test` runs; TSUMIKI_E2E=long
// (make e2e) runs the full sizes.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tsumiki-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "tsumiki")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tsumiki:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func longE2E() bool { return os.Getenv("TSUMIKI_E2E") == "long" }

func freePort(t testing.TB) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may hand a closed port out again before the daemon
		// given the first one binds it (seen: two OSDs of one cluster got
		// the same cluster port): never return a port twice.
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// handedOut is every port freePort returned in this test binary.
var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// proc is a daemon process started by a test; only these are ever killed.
type proc struct {
	name string
	args []string
	ns   string // network namespace to run in (netlab_test.go); "" = this one
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = nsCommand(context.Background(), p.ns, binPath, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait(); f.Close() }()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// kill9 kills the process without warning.
func (p *proc) kill9(t testing.TB) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v on SIGTERM; log %s:\n%s", p.name, err, p.log, tail(p.log))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not stop within 30s of SIGTERM; log:\n%s", p.name, tail(p.log))
	}
	p.cmd = nil
}

// nsCommand is name with args, run in network namespace ns ("" = this
// one). `ip netns exec` execs the command in its own place, so the process
// is name's: its PID is the one to signal.
func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// cluster is a mon and OSD processes on loopback ports, data in a temp dir.
type cluster struct {
	t    testing.TB
	dir  string
	etcd string
	ns   string // network namespace the CLI runs in (netlab_test.go)
	mon  *proc
	osds []*proc
}

func newCluster(t testing.TB, osds int) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir}
	cp, pp := freePort(t), freePort(t)
	c.etcd = fmt.Sprintf("http://127.0.0.1:%d", cp)
	c.mon = &proc{name: "mon", log: filepath.Join(dir, "mon.log"), args: []string{
		"mon", "--data", filepath.Join(dir, "mon"), "--listen-client", c.etcd,
		"--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", pp)}}
	for i := 0; i < osds; i++ {
		c.osds = append(c.osds, &proc{name: fmt.Sprintf("osd%d", i), log: filepath.Join(dir, fmt.Sprintf("osd%d.log", i)), args: []string{
			"osd", "--data", filepath.Join(dir, fmt.Sprintf("osd%d", i)), "--host", fmt.Sprintf("h%d", i),
			"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"--etcd-endpoints", c.etcd}})
	}
	// TSUMIKI_E2E_OSD_FLAGS adds flags to every OSD, to run the suite with
	// a setting on (e.g. "--snapshot-behind 8").
	for _, o := range c.osds {
		o.args = append(o.args, strings.Fields(os.Getenv("TSUMIKI_E2E_OSD_FLAGS"))...)
	}
	t.Cleanup(func() {
		for _, o := range c.osds {
			o.kill9(t)
		}
		c.mon.kill9(t)
		if t.Failed() {
			for _, p := range append([]*proc{c.mon}, c.osds...) {
				t.Logf("--- %s log (%s):\n%s", p.name, p.log, tail(p.log))
			}
		}
	})
	return c
}

// startAll starts the mon, waits for it, then every OSD, and waits until
// the map shows them all up.
func (c *cluster) startAll() {
	c.t.Helper()
	c.mon.start(c.t)
	c.eventually(30*time.Second, "control plane answers", func() error {
		_, err := c.cli("status")
		return err
	})
	for _, o := range c.osds {
		o.start(c.t)
	}
	c.waitUp(len(c.osds))
}

func (c *cluster) waitUp(n int) {
	c.t.Helper()
	c.eventually(60*time.Second, fmt.Sprintf("%d osds up", n), func() error {
		out, err := c.cli("osd", "ls")
		if err != nil {
			return err
		}
		if got := strings.Count(out, "up,in") + strings.Count(out, "up,out"); got != n { // a drained osd is out
			return fmt.Errorf("%d up:\n%s", got, out)
		}
		return nil
	})
}

// osdName is the "osd.N" name of the i-th OSD process (ids are given by
// registration order, so read what the daemon recorded).
func (c *cluster) osdName(i int) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("osd%d", i), "osd_id"))
	if err != nil {
		c.t.Fatal(err)
	}
	return "osd." + strings.TrimSpace(string(b))
}

func (c *cluster) stopAll() {
	c.t.Helper()
	for _, o := range c.osds {
		o.stop(c.t)
	}
	c.mon.stop(c.t)
}

// cli runs one tsumiki command against the cluster; err includes stderr.
func (c *cluster) cli(args ...string) (string, error) {
	out, _, err := c.cliFull(nil, args...)
	return out, err
}

func (c *cluster) cliFull(stdin []byte, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := nsCommand(ctx, c.ns, binPath, args...)
	cmd.Env = append(os.Environ(), "TSUMIKI_ETCD_ENDPOINTS="+c.etcd)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("tsumiki %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(se.String()))
	}
	return so.String(), se.String(), err
}

func (c *cluster) mustCLI(args ...string) string {
	c.t.Helper()
	out, err := c.cli(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// eventually retries fn every 200ms until it succeeds or d passes.
func (c *cluster) eventually(d time.Duration, what string, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

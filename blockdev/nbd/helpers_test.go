package nbd_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

// testServer is a Server listening on 127.0.0.1 with in-memory exports.
type testServer struct {
	srv    *nbd.Server
	opener *nbdtest.Opener
	addr   string
}

// startServer starts a server on a random loopback port. cfg may adjust
// the config before the server is built. Cleanup cancels the server,
// waits for Serve to return nil and checks every export was closed.
func startServer(t testing.TB, opener *nbdtest.Opener, cfg func(*nbd.Config)) *testServer {
	t.Helper()
	c := nbd.Config{Opener: opener, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	if cfg != nil {
		cfg(&c)
	}
	srv, err := nbd.NewServer(c)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		opener.CheckAllClosed(t)
	})
	return &testServer{srv: srv, opener: opener, addr: ln.Addr().String()}
}

// uri returns the NBD URI of an export.
func (s *testServer) uri(name string) string { return "nbd://" + s.addr + "/" + name }

// needTool skips the test when a client binary is missing, naming the
// Debian package that provides it.
func needTool(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s not found: install it with `apt-get install -y %s`", bin, pkg)
	}
	return p
}

// run runs a command with a timeout and returns its stdout; it fails the
// test with stderr on error.
func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		stderr := ""
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out, stderr)
	}
	return out
}

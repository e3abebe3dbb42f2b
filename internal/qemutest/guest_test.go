package qemutest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGuestBasics boots once and checks the harness's promises: the job's
// exit status comes back, the 9p share works both ways, the host's loopback
// is reachable as 10.0.2.2, and nothing else is routable (checked with
// `ip route get`, which sends no packet).
func TestGuestBasics(t *testing.T) {
	SkipIfUnavailable(t)
	share := t.TempDir()
	token := newNonce()
	if err := os.WriteFile(filepath.Join(share, "in.txt"), []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A host server on loopback only: the guest sends a line, gets "ack".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		fmt.Fprintln(c, "ack")
		got <- strings.TrimSpace(line)
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	script := fmt.Sprintf(`set -eux
# 9p: read what the host wrote, write back.
token="$(cat /host/in.txt)"
mkdir /host/sub
echo "guest saw $token" > /host/sub/out.txt
# Routes: only 10.0.2.0/24 on eth0, no default.
ip route
if ip route | grep default; then echo "a default route" >&2; exit 1; fi
ip route get 10.0.2.2
if ip route get 192.0.2.1; then echo "192.0.2.1 is routable" >&2; exit 1; fi
# The host's loopback as 10.0.2.2.
reply="$(echo "hello $token" | nc -w 10 10.0.2.2 %d)"
test "$reply" = ack
uname -r > /host/release
echo BASICS-OK
exit 7
`, port)
	res, err := Run(t.Context(), t, Config{Script: script, Share: share, Timeout: 2 * time.Minute, Log: LineLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot and job took %s (accel %s)", res.Duration.Round(time.Millisecond), res.Accel)
	if res.ExitCode != 7 || !strings.Contains(res.Console, "BASICS-OK") {
		t.Fatalf("exit %d, want 7 after BASICS-OK (console above)", res.ExitCode)
	}
	if !strings.Contains(res.Console, "Network is unreachable") {
		t.Error("ip route get 192.0.2.1 did not fail with \"Network is unreachable\" (console above)")
	}
	out, err := os.ReadFile(filepath.Join(share, "sub", "out.txt"))
	if err != nil || string(out) != "guest saw "+token+"\n" {
		t.Errorf("share: out.txt = %q, %v; want %q", out, err, "guest saw "+token+"\n")
	}
	select {
	case line := <-got:
		if line != "hello "+token {
			t.Errorf("host server got %q, want %q", line, "hello "+token)
		}
	default:
		t.Error("the host server got no connection")
	}
	g, err := Load(t.Context(), t)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := os.ReadFile(filepath.Join(share, "release")); strings.TrimSpace(string(rel)) != g.Release {
		t.Errorf("guest runs kernel %q, the build says %q", rel, g.Release)
	}
}

// TestGuestKill checks that a guest that outlives its Timeout, or whose ctx
// is canceled, is killed promptly and leaves no process behind.
func TestGuestKill(t *testing.T) {
	SkipIfUnavailable(t)
	g, err := Load(t.Context(), t)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 2 * time.Second
	// Up to WaitDelay (5 s) on top of the limit if QEMU's output lingered.
	const slack = 6 * time.Second

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		res, err := g.Run(t.Context(), t, Config{Script: "sleep 600", Timeout: limit})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Run = %+v, %v; want ErrTimeout", res, err)
		}
		if d := time.Since(start); d > limit+slack {
			t.Errorf("Run returned after %s, limit %s", d, limit)
		}
		assertNoQEMUChild(t)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), limit)
		defer cancel()
		start := time.Now()
		_, err := g.Run(ctx, t, Config{Script: "sleep 600", Timeout: time.Minute})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
			t.Fatalf("Run = %v; want the ctx's error", err)
		}
		if d := time.Since(start); d > limit+slack {
			t.Errorf("Run returned after %s, ctx ended after %s", d, limit)
		}
		assertNoQEMUChild(t)
	})
}

// TestGuestPanic checks that a guest whose kernel dies is reported as
// ErrNoExit, with the panic in the console, and does not hang the test.
func TestGuestPanic(t *testing.T) {
	SkipIfUnavailable(t)
	res, err := Run(t.Context(), t, Config{Script: "echo c > /proc/sysrq-trigger; sleep 600", Timeout: time.Minute})
	if !errors.Is(err, ErrNoExit) {
		t.Fatalf("Run = exit %d, %v; want ErrNoExit", res.ExitCode, err)
	}
	if !strings.Contains(res.Console, "Kernel panic") {
		t.Errorf("console lacks the panic:\n%s", res.Console)
	}
	assertNoQEMUChild(t)
}

// assertNoQEMUChild fails if a QEMU whose parent is this test binary is
// still alive or a zombie.
func assertNoQEMUChild(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(me) && strings.HasPrefix(comm, "qemu-system") {
			t.Errorf("QEMU child %s (%s) still exists, state %s", e.Name(), comm, f[0])
		}
	}
}

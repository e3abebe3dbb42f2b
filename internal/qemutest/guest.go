package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Guest is a built guest: the files QEMU boots. Load returns it. It is
// read-only, so tests and goroutines may share it; each Run boots its own
// QEMU.
type Guest struct {
	Dir       string // the cache folder (GuestDir)
	Kernel    string // Dir/vmlinuz: the stock Debian kernel
	Initramfs string // Dir/initramfs.img: uncompressed cpio, 4-byte padded
	FioDisk   string // Dir/fio.ext4: fio and its libraries, attached read-only
	Release   string // the kernel release, e.g. 6.1.0-56-amd64
}

// buildScript is where build.sh sits, relative to the module root.
const buildScript = "scripts/guest/build.sh"

// buildTimeout bounds build.sh: a first build downloads about 120 MB of
// Debian packages; a cached one takes milliseconds.
const buildTimeout = 15 * time.Minute

// GuestDir returns the cache folder: $TSUMIKI_GUEST_DIR, or
// /var/tmp/tsumiki-guest.
func GuestDir() string {
	if d := os.Getenv("TSUMIKI_GUEST_DIR"); d != "" {
		return d
	}
	return "/var/tmp/tsumiki-guest"
}

// memo holds what one test binary learns once: the result of Load (one
// build.sh run, however many tests call it) and the accelerator (at most one
// probe boot). A package variable against STYLE.md habit 6 because the tests
// of a binary share no other owner; it holds no logger, clock or registry.
var memo struct {
	mu       sync.Mutex // guards the following
	guest    *Guest
	buildErr error
	accel    accel
	accelWhy string
}

// Load returns the guest in GuestDir, running scripts/guest/build.sh first
// (a no-op when the cache is up to date, a few minutes of downloads on a
// fresh machine). It runs build.sh once per test binary and remembers the
// outcome, failure included. build.sh is found by walking up from the
// working directory (go test runs in the package folder) to the module
// root. Errors wrap ErrBuild.
func Load(ctx context.Context, tb testing.TB) (*Guest, error) {
	tb.Helper()
	memo.mu.Lock()
	defer memo.mu.Unlock()
	if memo.guest != nil || memo.buildErr != nil {
		return memo.guest, memo.buildErr
	}
	g, err := build(ctx, tb, GuestDir())
	if err != nil && ctx.Err() != nil {
		return nil, err // canceled: let a later test try again
	}
	memo.guest, memo.buildErr = g, err
	return g, err
}

// build runs build.sh for dir and checks what it left there.
func build(ctx context.Context, tb testing.TB, dir string) (*Guest, error) {
	tb.Helper()
	script, err := findBuildScript()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBuild, err)
	}
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v; output ends:\n%s", ErrBuild, script, dir, err, tail(out.String(), 30))
	}
	tb.Logf("qemutest: %s (%s):\n%s", buildScript, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
	return readGuest(dir)
}

// readGuest returns the guest build.sh finished in dir.
func readGuest(dir string) (*Guest, error) {
	g := &Guest{
		Dir:       dir,
		Kernel:    filepath.Join(dir, "vmlinuz"),
		Initramfs: filepath.Join(dir, "initramfs.img"),
		FioDisk:   filepath.Join(dir, "fio.ext4"),
	}
	for _, f := range []string{filepath.Join(dir, "guest.ok"), g.Kernel, g.Initramfs, g.FioDisk} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w: %v (run %s %s)", ErrBuild, err, buildScript, dir)
		}
	}
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBuild, err)
	}
	g.Release = strings.TrimSpace(string(rel))
	return g, nil
}

// built reports whether dir holds a finished build (maybe an outdated one).
func built(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "guest.ok"))
	return err == nil
}

// findBuildScript walks up from the working directory to the first folder
// holding scripts/guest/build.sh next to a go.mod.
func findBuildScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		s := filepath.Join(d, buildScript)
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(s); err == nil {
				return s, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s in %s or any folder above it", buildScript, wd)
		}
	}
}

// decideAccel returns the accelerator for this test binary: planAccel's
// choice, confirmed by one probe boot where it asks for one (KVM), TCG if
// the probe fails. Logged once.
func (g *Guest) decideAccel(ctx context.Context, tb testing.TB) (accel, error) {
	tb.Helper()
	memo.mu.Lock()
	defer memo.mu.Unlock()
	if memo.accel != "" {
		return memo.accel, nil
	}
	plan, err := planAccel(readHostFacts())
	if err != nil {
		return "", err
	}
	if plan.probe {
		res, err := g.boot(ctx, Config{Script: "exit 0", MemMiB: 256, Timeout: time.Minute}.withDefaults(), plan.accel)
		switch {
		case err != nil && ctx.Err() != nil:
			return "", err
		case err != nil:
			plan = accelPlan{accel: accelTCG, why: fmt.Sprintf("a probe boot with %s failed: %v", plan.accel, firstLine(err.Error()))}
		case res.ExitCode != 0:
			plan = accelPlan{accel: accelTCG, why: fmt.Sprintf("a probe boot with %s exited %d", plan.accel, res.ExitCode)}
		default:
			plan.why += fmt.Sprintf(", probe boot took %s", res.Duration.Round(time.Millisecond))
		}
	}
	memo.accel, memo.accelWhy = plan.accel, plan.why
	tb.Logf("qemutest: accel %s: %s", plan.accel, plan.why)
	return plan.accel, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

package qemutest

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// Available reports whether Run can boot a guest here. When it cannot,
// reason says what is missing and how to get it, e.g.
// "qemu-system-x86_64 not installed: apt-get install qemu-system-x86".
// When it can, reason says where the guest is (or that Run will build it)
// and which accelerator the host facts point to. It boots nothing and
// builds nothing.
func Available(tb testing.TB) (reason string, ok bool) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		return "the guest needs a Linux host, not " + runtime.GOOS, false
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		return qemuBinary + " not installed: apt-get install qemu-system-x86", false
	}
	plan, err := planAccel(readHostFacts())
	if err != nil {
		return strings.TrimPrefix(err.Error(), "qemutest: "), false
	}
	accel := fmt.Sprintf("accel %s (%s)", plan.accel, plan.why)
	if plan.probe {
		accel = fmt.Sprintf("accel %s if a probe boot works, else tcg", plan.accel)
	}
	dir := GuestDir()
	if built(dir) {
		return fmt.Sprintf("guest in %s, %s", dir, accel), true
	}
	if _, err := findBuildScript(); err != nil {
		return fmt.Sprintf("guest not built in %s, and %v to build it", dir, err), false
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("guest not built in %s and %s needs %s (a Debian host)", dir, buildScript, tool), false
		}
	}
	return fmt.Sprintf("guest not built yet: Run builds it in %s with %s; %s", dir, buildScript, accel), true
}

// SkipIfUnavailable skips the test, saying what is missing, when Available
// says no guest can boot here.
func SkipIfUnavailable(tb testing.TB) {
	tb.Helper()
	if reason, ok := Available(tb); !ok {
		tb.Skipf("qemutest: %s", reason)
	}
}

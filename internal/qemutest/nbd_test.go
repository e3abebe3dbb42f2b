package qemutest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGuestKernelNBD drives the guest kernel's NBD client against nbdkit on
// the host: connect, mkfs.ext4, write, disconnect, reconnect (so the data
// must have gone through the server), verify the checksums, e2fsck clean,
// disconnect.
func TestGuestKernelNBD(t *testing.T) {
	SkipIfUnavailable(t)
	port := startNBDKit(t, "memory", "256M")

	script := fmt.Sprintf(`set -eux
connect() { nbd-client 10.0.2.2 %d /dev/nbd0 -N tsumiki -timeout 30; }
connect
test "$(blockdev --getsize64 /dev/nbd0)" = 268435456
mkfs.ext4 -q -F /dev/nbd0
mkdir -p /mnt/t
mount -t ext4 /dev/nbd0 /mnt/t
dd if=/dev/urandom of=/mnt/t/big bs=1M count=8 2>/dev/null
echo small > /mnt/t/small
mkdir /mnt/t/dir
head -c 123457 /dev/urandom > /mnt/t/dir/odd
(cd /mnt/t && sha256sum big small dir/odd) > /tmp/sums
umount /mnt/t
nbd-client -d /dev/nbd0
connect
mount -t ext4 -o ro /dev/nbd0 /mnt/t
(cd /mnt/t && sha256sum -c /tmp/sums)
umount /mnt/t
e2fsck -fn /dev/nbd0
nbd-client -d /dev/nbd0
echo NBD-OK
`, port)
	res, err := Run(t.Context(), t, Config{Script: script, Timeout: 3 * time.Minute, Log: LineLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot and job took %s (accel %s)", res.Duration.Round(time.Millisecond), res.Accel)
	if res.ExitCode != 0 || !strings.Contains(res.Console, "NBD-OK") {
		t.Fatalf("guest job exited %d (console above)", res.ExitCode)
	}
	for _, want := range []string{"big: OK", "small: OK", "dir/odd: OK"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
}

// startNBDKit starts nbdkit with a plugin on 127.0.0.1 and a port the
// kernel picked, and returns the port. The listening socket is opened here
// and handed over by socket activation (LISTEN_FDS), so there is no window
// in which another process could take the port. nbdkit is killed by PID at
// cleanup and dies with the test binary (--exit-with-parent).
func startNBDKit(t *testing.T, plugin string, args ...string) int {
	t.Helper()
	if _, err := exec.LookPath("nbdkit"); err != nil {
		t.Skip("nbdkit not installed: apt-get install nbdkit")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// LISTEN_PID must be nbdkit's own PID: sh sets it to $$ and execs.
	sh := append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec nbdkit --foreground --exit-with-parent "$@"`,
		"nbdkit", plugin}, args...)
	cmd := exec.Command("sh", sh...)
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/internal/qemutest"
)

// nfsWorkload is the guest's POSIX workload against a mounted gateway,
// one script for every gateway setup (nfsGuestScript with its @NAME@
// placeholders filled in): showmount -e and a plain mount through the
// portmapper, then POSIX and AUTH_SYS checks (as uid 1000 via su), each
// failing the script (set -e) if the result is wrong. It writes
// /host/showmount, /host/df and /host/big.sum (the big file's sha256), and
// leaves /mnt unmounted.
type nfsWorkload struct {
	// Server is the gateway's address as the guest sees it: 10.0.2.2 for
	// one on the host, 127.0.0.1 for one in the guest.
	Server string
	// SmallFiles is how many small files are created in /many (at least 2).
	SmallFiles int
	// BigMiB is the size of /big, written and checked with sha256 after a
	// remount.
	BigMiB int
	// Restart is shell code run while the shell's cwd is inside a directory
	// that was renamed: it must restart the gateway and return once it
	// serves again. The workload then goes on in that directory.
	Restart string
}

// script returns the workload as shell code.
func (w nfsWorkload) script() string {
	return strings.NewReplacer(
		"@SERVER@", w.Server,
		"@SMALL@", strconv.Itoa(w.SmallFiles),
		"@SMALLMID@", strconv.Itoa(w.SmallFiles/2),
		"@BIGMIB@", strconv.Itoa(w.BigMiB),
		"@RESTART@", w.Restart,
	).Replace(nfsGuestScript)
}

// nfsGuestScript is nfsWorkload's script, with placeholders.
const nfsGuestScript = `set -eux
showmount -e @SERVER@ | tee /host/showmount
grep -q '^/data' /host/showmount
mkdir -p /mnt
mount -t nfs -o vers=3,nolock @SERVER@:/data /mnt
cd /mnt
df -k /mnt | tee /host/df

# create, write, read, append, truncate
echo hello > a
[ "$(cat a)" = hello ]
echo more >> a
[ "$(cat a)" = "$(printf 'hello\nmore')" ]
truncate -s 3 a
[ "$(cat a)" = hel ]
[ "$(stat -c %s a)" = 3 ]

# rename: file over an existing file, directory over an empty directory
echo x > b
echo y > c
mv b c
[ "$(cat c)" = x ]
[ ! -e b ]
mkdir -p d1/sub d2
echo inner > d1/sub/f
mv -T d1 d2
[ "$(cat d2/sub/f)" = inner ]
[ ! -e d1 ]

# the kernel's errors come back: ENOTEMPTY, not EIO
mkdir -p ne/x ne2
if rmdir ne 2>/tmp/err; then echo "rmdir of a non-empty directory worked"; exit 1; fi
grep -qi 'not empty' /tmp/err
if mv -T ne2 ne 2>/tmp/err; then echo "rename over a non-empty directory worked"; exit 1; fi
grep -qi 'not empty' /tmp/err

# an open file keeps working after a rename of it and of its parent
mkdir od
echo keep > od/o
exec 4<od/o
mv od/o od/o2
mv od od2
[ "$(cat <&4)" = keep ]
exec 4<&-

# unlink while open: readable until closed, and the .nfs file goes away
echo gone > u
exec 3<u
rm u
[ ! -e u ]
[ "$(cat <&3)" = gone ]
exec 3<&-
sleep 1
[ -z "$(ls -A | grep '^\.nfs' || true)" ]

# symlinks (an absolute target is stored as given) and hard links
ln -s /etc/hostname abs
[ "$(readlink abs)" = /etc/hostname ]
ln -s c rel
[ "$(cat rel)" = x ]
ln c h
[ "$(stat -c %h c)" = 2 ]
[ "$(stat -c %i c)" = "$(stat -c %i h)" ]

# chmod, chown, utimes
chmod 0640 c
[ "$(stat -c %a c)" = 640 ]
chown 1000:1000 c
[ "$(stat -c %u:%g c)" = 1000:1000 ]
touch -d '2001-02-03 04:05:06' c
[ "$(stat -c %Y c)" = 981173106 ]

# AUTH_SYS: the caller's uid owns what it creates; a non-owner cannot
# write a 0644 file
[ -e /etc/passwd ] || echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'u1000:x:1000:1000:u:/tmp:/bin/sh' >> /etc/passwd
[ -e /etc/group ] || echo 'root:x:0:' > /etc/group
echo 'u1000:x:1000:' >> /etc/group
mkdir pub
chmod 1777 pub
[ "$(stat -c %a pub)" = 1777 ]
echo r > pub/rootfile
chmod 644 pub/rootfile
echo s > pub/shared
chmod 666 pub/shared
# a writer who is not the owner may set the times to now, and truncate
su -s /bin/sh u1000 -c 'touch /mnt/pub/shared'
su -s /bin/sh u1000 -c 'echo w > /mnt/pub/shared'
[ "$(cat pub/shared)" = w ]
su -s /bin/sh u1000 -c 'echo u > /mnt/pub/ufile; id -u'
[ "$(stat -c %u:%g pub/ufile)" = 1000:1000 ]
if su -s /bin/sh u1000 -c 'echo x >> /mnt/pub/rootfile'; then echo "non-owner wrote a 0644 file"; exit 1; fi
[ "$(cat pub/rootfile)" = r ]

# special files
mkfifo p
[ -p p ]
mknod cdev c 1 3
[ -c cdev ]
[ "$(stat -c '%t %T' cdev)" = "1 3" ]

# a deep tree and many small files
mkdir -p deep/a/b/c/d/e/f/g/h/i/j
echo bottom > deep/a/b/c/d/e/f/g/h/i/j/file
[ "$(cat deep/a/b/c/d/e/f/g/h/i/j/file)" = bottom ]
mkdir many
for i in $(seq 1 @SMALL@); do echo "n$i" > many/f$i; done
[ "$(ls many | wc -l)" = @SMALL@ ]
[ "$(cat many/f1)$(cat many/f@SMALLMID@)$(cat many/f@SMALL@)" = n1n@SMALLMID@n@SMALL@ ]

# a big file, checked after a remount (no client cache)
dd if=/dev/urandom of=/tmp/big bs=1M count=@BIGMIB@ status=none
sha256sum /tmp/big | cut -d' ' -f1 > /host/big.sum
cp /tmp/big /mnt/big
rm /tmp/big
cd /
umount /mnt
mount -t nfs -o vers=3,nolock @SERVER@:/data /mnt
[ "$(sha256sum /mnt/big | cut -d' ' -f1)" = "$(cat /host/big.sum)" ]

# a cwd inside a directory that is renamed, then the gateway restarts
mkdir -p /mnt/work/dir
cd /mnt/work/dir
echo before > f
mv /mnt/work /mnt/work2
echo renamed > g
[ "$(cat f)" = before ]
@RESTART@
ls . > /dev/null
echo after > h
[ "$(cat f g h)" = "$(printf 'before\nrenamed\nafter')" ]
[ "$(pwd)" = /mnt/work2/dir ] || true
cd /
umount /mnt
`

// skipUnlessPortmapperFree skips a test whose host gateway runs the
// portmapper on 127.0.0.1:111: that needs root (also for the kernel file
// handles, CAP_DAC_READ_SEARCH) and a free port 111.
func skipUnlessPortmapperFree(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the portmapper listens on port 111 and file handles need CAP_DAC_READ_SEARCH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:111")
	if err != nil {
		t.Skipf("port 111 is taken (a system rpcbind?): %v", err)
	}
	l.Close()
}

// TestClusterNFSGuestPlainMount boots a real Linux kernel (QEMU) that
// mounts `tsumiki nfs serve --dir` from the host with the plain
// `mount -t nfs -o vers=3,nolock 10.0.2.2:/data /mnt` (portmapper on
// 127.0.0.1:111, so it needs root and a free port 111) and runs
// nfsWorkload; the host restarts the gateway in the middle (SIGTERM,
// dentry cache dropped, start) and then checks what landed in the folder. Skipped where QEMU cannot run.
func TestClusterNFSGuestPlainMount(t *testing.T) {
	qemutest.SkipIfUnavailable(t)
	skipUnlessPortmapperFree(t)
	dir := t.TempDir()
	work := t.TempDir()
	port := freePort(t)
	gw := &proc{name: "nfs", log: filepath.Join(work, "nfs.log"), args: []string{"nfs", "serve",
		"--dir", dir, "--export", "/data", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--portmap-listen", "127.0.0.1:111"}}
	waitUp := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:111", time.Second)
			if err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway not listening: %v\n%s", err, tail(gw.log))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	gw.start(t)
	t.Cleanup(func() { gw.kill9(t) })
	waitUp()

	share := t.TempDir()
	restartErr := make(chan error, 1)
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				restartErr <- nil
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := os.Stat(filepath.Join(share, "ready-restart")); err != nil {
				continue
			}
			if gw.running() {
				_ = gw.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case err := <-gw.done:
					if err != nil {
						restartErr <- fmt.Errorf("gateway exited with %v on SIGTERM", err)
						return
					}
				case <-time.After(30 * time.Second):
					restartErr <- fmt.Errorf("gateway did not stop on SIGTERM")
					return
				}
			}
			// Evict dentries too, so that the restarted gateway meets
			// disconnected file handles (a cold cache after a reboot).
			if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0o200); err != nil {
				t.Logf("cannot drop the dentry cache: %v", err)
			}
			gw.start(t)
			restartErr <- os.WriteFile(filepath.Join(share, "restarted"), nil, 0o644)
			return
		}
	}()
	w := nfsWorkload{Server: "10.0.2.2", SmallFiles: 300, BigMiB: 64, Restart: `touch /host/ready-restart
i=0
while [ ! -e /host/restarted ]; do
  i=$((i+1)); [ $i -lt 120 ] || { echo "no restart"; exit 1; }
  sleep 1
done`}
	mem, timeout := 1024, 8*time.Minute
	if longE2E() {
		w.SmallFiles, w.BigMiB, mem, timeout = 2000, 256, 2048, 20*time.Minute
	}
	res, err := qemutest.Run(t.Context(), t, qemutest.Config{
		Script:  w.script() + "echo NFS-WORKLOAD-OK\n",
		Share:   share,
		MemMiB:  mem,
		Timeout: timeout,
		Log:     qemutest.LineLogger(t),
	})
	close(stopWatch)
	if rerr := <-restartErr; rerr != nil {
		t.Errorf("restart: %v", rerr)
	}
	if err != nil {
		t.Fatalf("guest: %v\ngateway log:\n%s", err, tail(gw.log))
	}
	if res.ExitCode != 0 || !strings.Contains(res.Console, "NFS-WORKLOAD-OK") {
		t.Fatalf("guest workload failed (exit %d, console above); gateway log:\n%s", res.ExitCode, tail(gw.log))
	}
	if _, err := os.Stat(filepath.Join(share, "restarted")); err != nil {
		t.Fatal("the gateway was never restarted")
	}

	// What the guest did is in the host folder.
	st := func(name string) *syscall.Stat_t {
		t.Helper()
		var s syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, name), &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	if s := st("c"); s.Uid != 1000 || s.Gid != 1000 || s.Mode&0o777 != 0o640 || s.Nlink != 2 || s.Mtim.Sec != 981173106 {
		t.Errorf("c: uid %d gid %d mode %o nlink %d mtime %d", s.Uid, s.Gid, s.Mode, s.Nlink, s.Mtim.Sec)
	}
	if target, err := os.Readlink(filepath.Join(dir, "abs")); err != nil || target != "/etc/hostname" {
		t.Errorf("abs symlink: %q %v", target, err)
	}
	if s := st("pub/ufile"); s.Uid != 1000 || s.Gid != 1000 {
		t.Errorf("pub/ufile: uid %d gid %d, want 1000 (AUTH_SYS)", s.Uid, s.Gid)
	}
	if s := st("cdev"); s.Mode&syscall.S_IFMT != syscall.S_IFCHR {
		t.Errorf("cdev mode %o", s.Mode)
	}
	want, _ := os.ReadFile(filepath.Join(share, "big.sum"))
	f, err := os.Open(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, f)
	f.Close()
	if got := hex.EncodeToString(h.Sum(nil)); n != int64(w.BigMiB)<<20 || got != strings.TrimSpace(string(want)) {
		t.Errorf("big: %d bytes sha256 %s, guest wrote %s", n, got, want)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".nfs") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "work2", "dir", "h")); string(b) != "after\n" {
		t.Errorf("work2/dir/h after the restart: %q", b)
	}
	gw.stop(t)
}

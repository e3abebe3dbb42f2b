package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/blockdev/attach"
	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// nfsMountRoot is where `nfs serve --image` mounts images.
const nfsMountRoot = "/run/tsumiki/nfs"

// checkNFSImageHost says what this host lacks for --image: root, the nbd
// module, blkid and mkfs.FS, mount support for FS. Nothing is changed.
func checkNFSImageHost(ctx context.Context, fsType string) error {
	if fsType != "ext4" && fsType != "xfs" {
		return fmt.Errorf("--fs %q: ext4 or xfs", fsType)
	}
	if err := attach.Check(ctx); err != nil {
		return fmt.Errorf("nfs serve --image needs root and the nbd kernel module: %w", err)
	}
	for _, tool := range []string{"blkid", "mkfs." + fsType} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("nfs serve --image needs %s (util-linux / e2fsprogs / xfsprogs): %w", tool, err)
		}
	}
	return nil
}

// fsTypeOf returns the filesystem (or other signature) blkid finds on dev,
// "" when there is none. It never guesses: any other blkid failure is an
// error, so that a device is never formatted over data.
func fsTypeOf(ctx context.Context, dev string) (string, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-o", "value", "-s", "TYPE", dev).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		// exit 2: nothing found. Make sure there is no partition table either.
		pt, perr := exec.CommandContext(ctx, "blkid", "-p", "-o", "value", "-s", "PTTYPE", dev).Output()
		var pe *exec.ExitError
		if errors.As(perr, &pe) && pe.ExitCode() == 2 {
			return "", nil
		}
		if perr != nil {
			return "", fmt.Errorf("blkid %s: %w", dev, perr)
		}
		return "partition table " + strings.TrimSpace(string(pt)), nil
	}
	if err != nil {
		return "", fmt.Errorf("blkid %s: %w", dev, err)
	}
	t := strings.TrimSpace(string(out))
	if t == "" {
		return "unknown signature", nil
	}
	return t, nil
}

// checkBlank refuses to format spec, on which blkid found nothing, if it
// holds data, unless format: blkid knows nothing of a raw database, an
// encrypted volume of a kind it does not probe, or a file system whose
// making a crash interrupted, and only the last may be formatted again.
func checkBlank(ctx context.Context, images *image.Store, spec, fsType string, format bool) error {
	if format {
		return nil
	}
	pool, name, err := parseSpec(spec)
	if err != nil {
		return err
	}
	_, u, err := images.Du(ctx, pool, name)
	if err != nil {
		return fmt.Errorf("image %s holds no file system blkid knows, and whether it is blank cannot be told: %w", spec, err)
	}
	if u.Objects > 0 {
		return fmt.Errorf("image %s holds data (%d objects written, %d bytes) but no file system or partition table that blkid knows: "+
			"refusing to format it. If it holds nothing you need (a format a crash interrupted, say), run again with --format, "+
			"or make the file system yourself (tsumiki map %s; mkfs.%s /dev/nbdX; tsumiki unmap /dev/nbdX)",
			spec, u.Objects, u.Used, spec, fsType)
	}
	return nil
}

// clearStaleMount undoes what a gateway killed with SIGKILL left on this
// host: its filesystem still mounted on mp from a /dev/nbdX that nobody
// serves any more. The kernel keeps a mounted NBD device's connection (and
// the dead server's pid in /sys/block/nbdX/pid) until the mount lets go,
// and the dead device fails all I/O. The mount is detached lazily
// (MNT_DETACH; its unsynced writeback fails on the dead device, nothing
// reaches the image; what the gateway acknowledged is in the image's
// journal and is replayed by the next mount), then the kernel frees the
// device. A mount on mp from anything else, or from a device that a live
// process serves (another gateway for this image), is an error: nothing is
// touched.
func clearStaleMount(mp string, log *zap.Logger) error {
	for range 8 { // mounts may be stacked; bounded
		src, ok, err := mountSource(mp)
		if err != nil || !ok {
			return err
		}
		dev := filepath.Base(src)
		if !strings.HasPrefix(src, "/dev/nbd") {
			return fmt.Errorf("%s is mounted from %s, not by a tsumiki gateway: unmount it first", mp, src)
		}
		pidFile := filepath.Join("/sys/block", dev, "pid")
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr != nil || !processGone(pid) {
				return fmt.Errorf("%s is mounted from %s, which process %s still serves: is another gateway serving this image here?",
					mp, src, strings.TrimSpace(string(b)))
			}
		}
		log.Warn("a previous gateway died without cleaning up: detaching its stale mount", zap.String("dir", mp), zap.String("device", src))
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount the stale %s (from %s): %w", mp, src, err)
		}
		// The last close of the device drops the kernel's record of it.
		for end := time.Now().Add(10 * time.Second); attach.Connected(src) && time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
		}
		if attach.Connected(src) {
			log.Warn("the dead device is still held; using another one", zap.String("device", src))
		}
	}
	return fmt.Errorf("%s: more than 8 stale mounts stacked on it", mp)
}

// mountSource returns the source of the topmost mount on dir, from
// /proc/self/mountinfo, and whether dir is a mount point at all.
func mountSource(dir string) (string, bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	src, ok := parseMountSource(string(b), dir)
	return src, ok, nil
}

// parseMountSource finds dir's topmost mount in a mountinfo text (later
// lines are mounted on top of earlier ones). Lines are "id parent
// major:minor root mountpoint options [optional fields...] - fstype source
// superoptions"; a mount point with a space is escaped (\040) and never
// matches one of ours.
func parseMountSource(info, dir string) (string, bool) {
	src, found := "", false
	for _, line := range strings.Split(info, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 || sep+2 >= len(f) || f[4] != dir {
			continue
		}
		src, found = f[sep+2], true
	}
	return src, found
}

// runNFSImage takes spec's lock, attaches it through the kernel NBD client,
// formats it (only when blkid finds nothing on it, and the image has never
// been written unless format), mounts it, and calls serve with the mount
// point. When serve returns (ctx ended), it syncs, unmounts, detaches and
// releases the lock, in that order.
func runNFSImage(ctx context.Context, g *globals, spec, fsType string, format bool, log *zap.Logger, serve func(dir string) error) (err error) {
	mp := filepath.Join(nfsMountRoot, strings.ReplaceAll(spec, "/", "_"))
	if err := clearStaleMount(mp, log); err != nil {
		return err
	}
	k, err := attachKernel(ctx, g, spec, attachOpts{Timeout: 60 * time.Second, Program: "tsumiki nfs serve",
		WaitGone: 3 * image.DefaultLockTTL}, log)
	if err != nil {
		return err
	}
	defer func() {
		if derr := k.Detach(false); err == nil {
			err = derr
		}
	}()
	dev := k.Dev

	found, err := fsTypeOf(ctx, dev)
	if err != nil {
		return err
	}
	switch found {
	case "":
		if err := checkBlank(ctx, k.images, spec, fsType, format); err != nil {
			return err
		}
		log.Info("no filesystem on the image: formatting", zap.String("fs", fsType))
		if out, err := exec.CommandContext(ctx, "mkfs."+fsType, "-q", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("mkfs.%s %s: %w: %s", fsType, dev, err, out)
		}
		found = fsType
	case "ext4", "xfs":
	default:
		return fmt.Errorf("image %s holds %q, not ext4 or xfs: refusing to format or mount it", spec, found)
	}
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, mp, found, 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, mp, err)
	}
	defer func() {
		if f, oerr := os.Open(mp); oerr == nil {
			_ = unix.Syncfs(int(f.Fd()))
			f.Close()
		}
		var uerr error
		for i := 0; i < 50; i++ {
			if uerr = unix.Unmount(mp, 0); uerr == nil || uerr == unix.EINVAL {
				uerr = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if uerr != nil {
			log.Error("cannot unmount", zap.String("dir", mp), zap.Error(uerr))
			if err == nil {
				err = fmt.Errorf("unmount %s: %w", mp, uerr)
			}
		}
	}()
	log.Info("mounted", zap.String("image", spec), zap.String("dir", mp), zap.String("fs", found))
	return serve(mp)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/blockdev/attach"
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

// runNFSImage takes spec's lock, attaches it through the kernel NBD client,
// formats it (only when blkid finds nothing on it), mounts it, and calls
// serve with the mount point. When serve returns (ctx ended), it syncs,
// unmounts, detaches and releases the lock, in that order.
func runNFSImage(ctx context.Context, g *globals, spec, fsType string, log *zap.Logger, serve func(dir string) error) (err error) {
	k, err := attachKernel(ctx, g, spec, attachOpts{Timeout: 60 * time.Second, Program: "tsumiki nfs serve"}, log)
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
		log.Info("no filesystem on the image: formatting", zap.String("fs", fsType))
		if out, err := exec.CommandContext(ctx, "mkfs."+fsType, "-q", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("mkfs.%s %s: %w: %s", fsType, dev, err, out)
		}
		found = fsType
	case "ext4", "xfs":
	default:
		return fmt.Errorf("image %s holds %q, not ext4 or xfs: refusing to format or mount it", spec, found)
	}
	mp := filepath.Join(nfsMountRoot, strings.ReplaceAll(spec, "/", "_"))
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

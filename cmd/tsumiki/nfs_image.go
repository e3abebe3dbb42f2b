package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/blockdev/attach"
	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
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
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(dctx, endpoints(g), log)
	if err != nil {
		return err
	}
	defer cli.Close()
	objs, err := client.New(dctx, client.Config{Etcd: cli, EtcdPrefix: g.etcdPrefix, Logger: log.Named("client")})
	if err != nil {
		return err
	}
	defer objs.Close()
	host, _ := os.Hostname()
	st, err := image.NewStore(image.Config{Etcd: cli, Prefix: g.etcdPrefix, Objects: objs, Logger: log.Named("image"),
		Holder: image.Holder{Program: "tsumiki nfs serve", Address: host}})
	if err != nil {
		return err
	}
	srv, err := nbd.NewServer(nbd.Config{Opener: newImageExports(ctx, st, log, false), Logger: log.Named("nbd")})
	if err != nil {
		return err
	}
	ks, err := srv.OpenKernel(dctx, spec) // takes the image's exclusive lock
	if err != nil {
		return imageMapError(err, spec)
	}
	dev, err := attach.FreeDevice()
	if err != nil {
		ks.Close()
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		ks.Close()
		return err
	}
	kernelEnd := os.NewFile(uintptr(fds[0]), "nbd-kernel")
	ourFile := os.NewFile(uintptr(fds[1]), "nbd-server")
	ours, err := net.FileConn(ourFile)
	ourFile.Close()
	if err != nil {
		kernelEnd.Close()
		ks.Close()
		return err
	}
	sctx, stopServe := context.WithCancel(context.Background()) // outlives ctx: detach first
	served := make(chan error, 1)
	go func() { served <- ks.Serve(sctx, ours) }()
	wait, err := attach.Attach(dev, kernelEnd, attach.Params{Size: ks.Size(), BlockSize: ks.BlockSize(),
		Flags: uint64(ks.Flags()), Timeout: 60 * time.Second})
	kernelEnd.Close()
	if err != nil {
		stopServe()
		<-served
		return err
	}
	detached := make(chan error, 1)
	go func() { detached <- wait() }()
	defer func() {
		if derr := attach.Detach(dev, 30*time.Second); derr != nil {
			log.Error("cannot disconnect the device", zap.String("device", dev), zap.Error(derr))
		}
		<-detached
		stopServe()
		if serr := <-served; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
		log.Info("detached; image lock released", zap.String("image", spec), zap.String("device", dev))
	}()
	log.Info("attached", zap.String("image", spec), zap.String("device", dev))

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
